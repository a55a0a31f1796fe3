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
float g_e4m3_table[256];
float e4m3_to_f32_slow(uint8_t q) {
  const int e = (q >> 3) & 15, m = q & 7;
  if (e == 15 && m == 7) return std::nanf("");
  const float v = e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
  return (q & 0x80) ? -v : v;
}
uint8_t f32_to_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;  // saturate (448 is the largest finite value)
  if (a < std::ldexp(1.0f, -6)) {       // subnormal: multiples of 2^-9; 8 * 2^-9 rounds up into the first normal
    return sign | (uint8_t)std::nearbyint(a * 512.0f);
  }
  int e = 0;
  const float fr = std::frexp(a, &e);  // a = fr * 2^e, fr in [0.5, 1)
  int m = (int)std::nearbyint((fr * 2.0f - 1.0f) * 8.0f), be = e - 1 + 7;
  if (m == 8) { m = 0; ++be; }
  if (be > 15 || (be == 15 && m == 7)) return sign | 0x7e;
  return sign | (uint8_t)((be << 3) | m);
}
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
  for (uint32_t i = 0; i < 256; ++i) g_e4m3_table[i] = e4m3_to_f32_slow((uint8_t)i);
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

// FP8, Channel: amax per output channel -> scale = amax / 448, q = e4m3(w / scale). The same random values as the
// other dtypes (counter-based RNG), generated twice (once for the amax, once to quantize). Rows of H: with
// col_per = 0 one scale per row; else the tensor is [n][col_per rows][H] and has one scale per (n, column).
static void fill_fp8_channel(WeightTensor& t, size_t rows, size_t H, size_t col_per, float scale, uint64_t seed, uint64_t stream) {
  t.q.alloc(DType::FP8, rows * H);
  const size_t groups = col_per ? rows / col_per : rows;  // a group: the rows that share a set of scales
  t.scale.assign(col_per ? groups * H : rows, 0.f);
  parallel_for((int)groups, [&](int g) {
    const size_t r0 = col_per ? g * col_per : g, nr = col_per ? col_per : 1;
    float* sc = col_per ? &t.scale[(size_t)g * H] : &t.scale[g];
    for (size_t r = r0; r < r0 + nr; ++r)
      for (size_t h = 0; h < H; ++h) {
        const float a = std::fabs(scale * rng_uniform(seed, stream, r * H + h));
        float& s = col_per ? sc[h] : sc[0];
        s = std::max(s, a / 448.0f);
      }
    for (size_t k = 0; k < (col_per ? H : 1); ++k) if (sc[k] == 0.f) sc[k] = 1.f;
    for (size_t r = r0; r < r0 + nr; ++r)
      for (size_t h = 0; h < H; ++h)
        t.q.bytes[r * H + h] = f32_to_e4m3(scale * rng_uniform(seed, stream, r * H + h) / (col_per ? sc[h] : sc[0]));
  });
}
// FP8, Tensor and Block (common.h, Fp8Scales): the same values, the same two passes; each expert's scales are its
// own (one per matrix, or its 128 x 128 blocks), so the experts are filled in parallel. A scale is the amax of
// the elements it covers / 448 (1 where they are all 0), the elements of a partial edge block included.
static void fill_fp8_grouped(WeightTensor& t, float scale, uint64_t seed, uint64_t stream) {
  const size_t H = t.H, rows = t.down ? t.R : 2 * t.R;  // rows per expert
  const size_t nRb = ceil_div(t.R, kFp8Block), nHb = ceil_div(H, kFp8Block);
  const size_t per = t.mode == Fp8Scales::Tensor ? 1 : (t.down ? 1 : 2) * nRb * nHb;  // scales per expert
  t.q.alloc(DType::FP8, t.n * rows * H);
  t.scale.assign(t.n * per, 0.f);
  parallel_for((int)t.n, [&](int e) {
    const size_t n = (size_t)e;
    auto index = [&](size_t r, size_t h) {
      if (t.mode == Fp8Scales::Tensor) return n;
      return t.down ? fp8_block_index_w2t(n, r, h, nRb, nHb) : fp8_block_index_w13(n, r, h, nRb, nHb);
    };
    for (size_t r = 0; r < rows; ++r)
      for (size_t h = 0; h < H; ++h) {
        const float a = std::fabs(scale * rng_uniform(seed, stream, (n * rows + r) * H + h));
        float& s = t.scale[index(r, h)];
        s = std::max(s, a / 448.0f);
      }
    for (size_t k = n * per; k < (n + 1) * per; ++k) if (t.scale[k] == 0.f) t.scale[k] = 1.f;
    for (size_t r = 0; r < rows; ++r)
      for (size_t h = 0; h < H; ++h) {
        const size_t i = (n * rows + r) * H + h;
        t.q.bytes[i] = f32_to_e4m3(scale * rng_uniform(seed, stream, i) / t.scale[index(r, h)]);
      }
  });
}

// n experts of R units, hidden H; down: a w2t-like [n][R][H] tensor, else w13-like [n][2R][H].
static void fill_weights(WeightTensor& t, size_t n, size_t R, size_t H, bool down, DType dt, Fp8Scales mode, float scale,
                         uint64_t seed, uint64_t stream) {
  t.mode = mode;
  t.n = n; t.R = R; t.H = H; t.down = down;
  const size_t rows = t.row_count();
  if (dt != DType::FP8) { fill(t.q, rows * H, dt, scale, seed, stream); t.scale.clear(); }
  else if (mode == Fp8Scales::Channel) fill_fp8_channel(t, rows, H, down ? (R ? R : 1) : 0, scale, seed, stream);
  else fill_fp8_grouped(t, scale, seed, stream);
}

std::vector<float> WeightTensor::channel_scales() const {
  if (mode != Fp8Scales::Tensor) return scale;
  std::vector<float> out(down ? n * H : n * 2 * R);
  const size_t per = out.size() / (n ? n : 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = scale[i / per];
  return out;
}

void build_model(Model& m, const Shape& s, DType dt, uint64_t seed, Fp8Scales scales) {
  m.s = s;
  m.dt = dt;
  m.scales = scales;
  const size_t E = s.experts, H = s.hidden, I = s.inter, NS = s.shared_experts, IS = s.shared_inter;
  fill(m.wr, E * H, act_dtype(dt), std::sqrt(3.0f / H), seed, 1);
  fill_weights(m.w13, E, I, H, false, dt, scales, std::sqrt(3.0f / H), seed, 2);
  fill_weights(m.w2t, E, I, H, true, dt, scales, std::sqrt(3.0f / I), seed, 3);
  fill_weights(m.ws13, NS, IS, H, false, dt, scales, std::sqrt(3.0f / H), seed, 4);
  fill_weights(m.ws2t, NS, IS, H, true, dt, scales, std::sqrt(3.0f / (IS ? IS : 1)), seed, 5);
}

void make_input(HostTensor& x, int T, int H, DType dt, uint64_t seed, uint64_t stream) {
  fill(x, (size_t)T * H, act_dtype(dt), std::sqrt(3.0f), seed, 1000 + stream);
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
