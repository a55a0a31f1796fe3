// nvml_probe.cpp — how fine is the GPU's energy counter? Polls
// nvmlDeviceGetTotalEnergyConsumption (GPU 0, NVML opened with dlopen as
// moe-bench does) as fast as it can for SECONDS and prints, as JSON: the cost
// of one read, how often the value changed (update interval) and by how much
// (step, mJ), and the mean power it implies. Run it once idle and once while
// the GPU is busy (csrc/BENCHMARKS.md, "Energy per forward").
// Build: g++ -O2 -std=c++17 -o nvml_probe tools/nvml_probe.cpp -ldl
// Usage: nvml_probe [SECONDS=2]
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

static double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static void pct(const char* name, std::vector<double> v) {
  if (v.empty()) { std::printf("\"%s\":null", name); return; }
  std::sort(v.begin(), v.end());
  auto at = [&](double p) { return v[(size_t)(p * (v.size() - 1))]; };
  std::printf("\"%s\":{\"n\":%zu,\"min\":%.4g,\"p10\":%.4g,\"median\":%.4g,\"p90\":%.4g,\"max\":%.4g}", name, v.size(),
              v.front(), at(0.1), at(0.5), at(0.9), v.back());
}

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
  if (!lib) { std::fprintf(stderr, "nvml_probe: %s\n", dlerror()); return 3; }
  auto init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
  auto by_index = reinterpret_cast<int (*)(unsigned, void**)>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto energy = reinterpret_cast<int (*)(void*, unsigned long long*)>(dlsym(lib, "nvmlDeviceGetTotalEnergyConsumption"));
  void* dev = nullptr;
  if (!init || !by_index || !energy || init() != 0 || by_index(0, &dev) != 0) {
    std::fprintf(stderr, "nvml_probe: NVML init or device 0 failed\n");
    return 3;
  }
  std::vector<double> call_us, gaps, steps;
  unsigned long long last = 0, first_mj = 0, last_mj = 0;
  double t_last = 0, t_first = 0;
  const double t_end = now_ms() + seconds * 1000.0;
  long calls = 0;
  while (true) {
    const double t0 = now_ms();
    if (t0 > t_end) break;
    unsigned long long mj = 0;
    if (energy(dev, &mj) != 0) { std::fprintf(stderr, "nvml_probe: energy read failed\n"); return 3; }
    const double t1 = now_ms();
    ++calls;
    if (call_us.size() < 100000) call_us.push_back((t1 - t0) * 1000.0);
    const double t = 0.5 * (t0 + t1);
    if (calls == 1) { last = mj; continue; }
    if (mj != last) {
      if (t_last > 0) gaps.push_back(t - t_last);
      else { t_first = t; first_mj = mj; }
      steps.push_back((double)(mj - last));
      t_last = t;
      last = last_mj = mj;
    }
  }
  std::printf("{\"seconds\":%.3g,\"reads\":%ld,", seconds, calls);
  pct("read_us", call_us);
  std::printf(",");
  pct("update_interval_ms", gaps);
  std::printf(",");
  pct("step_mj", steps);
  std::printf(",\"mean_power_w\":%.4g}\n", t_last > t_first ? (double)(last_mj - first_mj) / (t_last - t_first) : 0.0);
  return 0;
}
