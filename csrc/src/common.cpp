// common.cpp — fp16 table, model/input generation, statistics, errors.
#include "common.h"

#include <algorithm>
#include <thread>

namespace moe {

void die_usage(const std::string& msg) {
  std::fprintf(stderr, "moe-bench: %s\n", msg.c_str());
  std::fflush(stderr);
  std::exit(2);
}
void die_runtime(const std::string& msg) {
  std::fprintf(stderr, "moe-bench: %s\n", msg.c_str());
  std::fflush(stderr);
  std::exit(3);
}

float g_fp16_table[65536];
float fp16_to_f32_slow(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) {
    float v = std::ldexp((float)m, -24);
    return sign ? -v : v;
  }
  if (e == 31) return u2f(sign | 0x7f800000u | (m << 13));
  return u2f(sign | ((e - 15 + 127) << 23) | (m << 13));
}
void init_tables() {
  for (uint32_t i = 0; i < 65536; ++i) g_fp16_table[i] = fp16_to_f32_slow((uint16_t)i);
}

// Fill t[0..n) with scale*U(-1,1) from (seed, stream), in parallel.
static void fill(HostTensor& t, size_t n, DType dt, float scale, uint64_t seed, uint64_t stream) {
  t.alloc(dt, n);
  unsigned nt = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  if (n < (1u << 16)) nt = 1;
  std::vector<std::thread> th;
  for (unsigned k = 0; k < nt; ++k) {
    th.emplace_back([&, k] {
      size_t lo = n * k / nt, hi = n * (k + 1) / nt;
      for (size_t i = lo; i < hi; ++i) t.set(i, scale * rng_uniform(seed, stream, i));
    });
  }
  for (auto& x : th) x.join();
}

void build_model(Model& m, const Shape& s, DType dt, uint64_t seed) {
  m.s = s;
  m.dt = dt;
  const size_t E = s.experts, H = s.hidden, I = s.inter;
  fill(m.wr, E * H, dt, std::sqrt(3.0f / H), seed, 1);
  fill(m.w13, E * 2 * I * H, dt, std::sqrt(3.0f / H), seed, 2);
  fill(m.w2t, E * I * H, dt, std::sqrt(3.0f / I), seed, 3);
}

void make_input(HostTensor& x, int T, int H, DType dt, uint64_t seed, uint64_t stream) {
  fill(x, (size_t)T * H, dt, std::sqrt(3.0f), seed, 1000 + stream);
}

Stats compute_stats(const std::vector<double>& in) {
  std::vector<double> v;
  for (double d : in) if (std::isfinite(d)) v.push_back(d);
  Stats st;
  st.n = (int)v.size();
  if (v.empty()) return st;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    double pos = p * (v.size() - 1);
    size_t lo = (size_t)pos;
    size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - lo);
  };
  double sum = 0;
  for (double d : v) sum += d;
  st.mean = sum / v.size();
  double var = 0;
  for (double d : v) var += (d - st.mean) * (d - st.mean);
  st.stdev = v.size() > 1 ? std::sqrt(var / (v.size() - 1)) : 0.0;
  st.min = v.front();
  st.max = v.back();
  st.p10 = pct(0.10);
  st.median = pct(0.5);
  st.p90 = pct(0.90);
  st.p99 = pct(0.99);
  return st;
}

}  // namespace moe
