// energy.cpp — NVML loaded with dlopen, and the energy window.
#include "energy.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace moe {

namespace {
double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double unix_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

EnergyCounter::~EnergyCounter() {
  if (inited_ && shutdown_) shutdown_();
  if (lib_) dlclose(lib_);
}

std::string EnergyCounter::open(const std::string& pci_bus_id) {
  lib_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib_) {
    const char* e = dlerror();
    return reason_ = std::string("NVML not available: dlopen(libnvidia-ml.so.1): ") + (e ? e : "failed");
  }
  auto sym = [&](const char* n) { return dlsym(lib_, n); };
  auto init = reinterpret_cast<int (*)()>(sym("nvmlInit_v2"));
  auto by_bus = reinterpret_cast<int (*)(const char*, void**)>(sym("nvmlDeviceGetHandleByPciBusId_v2"));
  get_energy_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(sym("nvmlDeviceGetTotalEnergyConsumption"));
  error_string_ = reinterpret_cast<const char* (*)(int)>(sym("nvmlErrorString"));
  shutdown_ = reinterpret_cast<int (*)()>(sym("nvmlShutdown"));
  if (!init || !by_bus || !get_energy_ || !error_string_ || !shutdown_)
    return reason_ = "NVML too old: libnvidia-ml.so.1 lacks nvmlInit_v2, nvmlDeviceGetHandleByPciBusId_v2 or nvmlDeviceGetTotalEnergyConsumption";
  int rc = init();
  if (rc != 0) return reason_ = std::string("nvmlInit_v2: ") + error_string_(rc);
  inited_ = true;
  void* dev = nullptr;
  rc = by_bus(pci_bus_id.c_str(), &dev);
  if (rc != 0) return reason_ = "nvmlDeviceGetHandleByPciBusId_v2(" + pci_bus_id + "): " + error_string_(rc);
  unsigned long long mj = 0;
  rc = get_energy_(dev, &mj);
  if (rc != 0) return reason_ = std::string("nvmlDeviceGetTotalEnergyConsumption: ") + error_string_(rc);
  dev_ = dev;
  reason_.clear();
  return "";
}

bool EnergyCounter::read_mj(unsigned long long& mj, std::string& err) {
  if (!dev_) { err = reason_; return false; }
  const int rc = get_energy_(dev_, &mj);
  if (rc != 0) { err = std::string("nvmlDeviceGetTotalEnergyConsumption: ") + error_string_(rc); return false; }
  return true;
}

EnergyResult measure_energy(EnergyCounter& counter, const EnergyWork& work, int min_ms) {
  EnergyResult r;
  if (!counter.ok()) return EnergyResult::unavailable(counter.reason());
  if (min_ms <= 0) return EnergyResult::unavailable("energy window disabled (--energy-ms 0)");
  // No counter update for this long means it is not counting (or is far coarser than measured).
  const double give_up_ms = std::max(3000.0, 10.0 * min_ms);
  struct Tick { double t; unsigned long long mj; };
  std::vector<Tick> ticks;  // every change of the counter seen, host time at mid-read
  std::string err;
  unsigned long long last = 0;
  if (!counter.read_mj(last, err)) return EnergyResult::unavailable(err);
  constexpr int kInFlight = 3;
  int in_flight = 0;
  long long launched = 0;
  for (; in_flight < kInFlight; ++in_flight, ++launched) work.launch_batch();
  const double t_begin = now_ms();
  r.unix_ms[0] = unix_ms();
  bool ramped = false;  // the first batch finished: the GPU is running the variant at steady state
  int start = -1;       // index in ticks of the window's first update
  int end = -1;
  double mid_prev = 0;  // midpoint of the previous read
  while (end < 0) {
    while (work.oldest_done()) {  // refill at once: a read takes 3-6 ms, the queue holds ~3 batches of ~10 ms
      ramped = true;
      work.launch_batch();
      ++launched;
    }
    const double t0 = now_ms();
    unsigned long long mj = 0;
    if (!counter.read_mj(mj, err)) { work.drain(); return EnergyResult::unavailable(err); }
    const double mid = 0.5 * (t0 + now_ms());
    if (mj != last && mid_prev > 0) {
      // The value changed between the previous read and this one: take the middle.
      const double t = 0.5 * (mid_prev + mid);
      ticks.push_back({t, mj});
      if (start < 0 && ramped) start = (int)ticks.size() - 1;
      else if (start >= 0 && (int)ticks.size() - 1 - start >= kMinUpdates && t - ticks[start].t >= min_ms)
        end = (int)ticks.size() - 1;
    }
    last = mj;
    mid_prev = mid;
    if (end < 0 && mid - t_begin > give_up_ms) {
      work.drain();
      return EnergyResult::unavailable("the energy counter changed " + std::to_string(ticks.size()) + " times in " +
                                       std::to_string((int)give_up_ms) + " ms of back-to-back forwards");
    }
  }
  const double gpu_ms = work.drain();
  r.unix_ms[1] = unix_ms();
  r.forwards = launched * work.forwards_per_batch;
  r.forward_us = gpu_ms * 1000.0 / (double)r.forwards;
  const Tick& a = ticks[start];
  const Tick& b = ticks[end];
  r.window_ms = b.t - a.t;
  r.updates = end - start;
  r.mean_power_w = (double)(b.mj - a.mj) / r.window_ms;  // mJ per ms = W
  r.joules_per_forward = r.mean_power_w * r.forward_us * 1e-6;
  std::vector<double> gaps;
  for (size_t i = 1; i < ticks.size(); ++i) {
    gaps.push_back(ticks[i].t - ticks[i - 1].t);
    const long long step = (long long)(ticks[i].mj - ticks[i - 1].mj);
    if (step > 0 && (r.step_mj_min == 0 || step < r.step_mj_min)) r.step_mj_min = step;
  }
  if (!gaps.empty()) {
    std::sort(gaps.begin(), gaps.end());
    r.update_ms_min = gaps.front();
    r.update_ms_max = gaps.back();
    r.update_ms_median = gaps[gaps.size() / 2];
  }
  r.measured = true;
  return r;
}

void EnergyResult::write_json(JsonWriter& j) const {
  j.begin_obj();
  if (measured) { j.kv("joules_per_forward", joules_per_forward); j.kv("mean_power_w", mean_power_w); }
  else { j.kv_null("joules_per_forward"); j.kv_null("mean_power_w"); }
  if (measured) j.kv_null("reason"); else j.kv("reason", reason);
  if (measured) {
    j.kv("window_ms", window_ms);
    j.kv("forward_us", forward_us);
    j.kv("forwards", forwards);
    j.kv("counter_updates", updates);
    j.key("counter_update_ms");
    j.begin_obj();
    j.kv("min", update_ms_min);
    j.kv("median", update_ms_median);
    j.kv("max", update_ms_max);
    j.end_obj();
    j.kv("counter_step_mj_min", step_mj_min);
    j.key("window_unix_ms");
    j.begin_arr();
    j.val((long long)std::floor(unix_ms[0]));
    j.val((long long)std::ceil(unix_ms[1]));
    j.end_arr();
  }
  j.end_obj();
}

}  // namespace moe
