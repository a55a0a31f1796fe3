// common.h — shared pieces of moe-bench (CPU and CUDA backends): dtypes and
// their round-to-nearest-even conversions, the counter-based RNG, the shape and
// configuration, the model and its inputs, statistics and error helpers.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace moe {

// ---------------------------------------------------------------- errors
// Exit codes of the contract: 1 check failed, 2 usage/shape, 3 runtime error.
[[noreturn]] void die_usage(const std::string& msg);    // "moe-bench: <msg>", exit 2
[[noreturn]] void die_runtime(const std::string& msg);  // "moe-bench: <msg>", exit 3

// ---------------------------------------------------------------- dtypes
// FP8 (`--dtype fp8`): the experts' weights (w13, w2t and the shared experts') are OCP e4m3 (max 448, no
// infinities) with fp32 scales, q = e4m3(w / scale), each scale the amax of what it covers / 448
// (`--fp8-scales`, Fp8Scales below; default one per output channel: per row of w13, each gate or up unit, and
// per hidden column of w2t, stored [I][H], whose output channel is h). The router, the token inputs and the
// output stay bf16; accumulation is fp32 as for every dtype. In a HostTensor, FP8 means the raw e4m3 bytes (no
// scale).
enum class DType { BF16, FP16, FP32, FP8 };
inline const char* dtype_name(DType d) {
  return d == DType::BF16 ? "bf16" : d == DType::FP16 ? "fp16" : d == DType::FP8 ? "fp8" : "fp32";
}
inline size_t dtype_size(DType d) { return d == DType::FP32 ? 4 : d == DType::FP8 ? 1 : 2; }
// The storage type of the router, the inputs and the output of a run of dtype d.
inline DType act_dtype(DType d) { return d == DType::FP8 ? DType::BF16 : d; }

inline uint32_t f2u(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float u2f(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// float -> bf16 bits, round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f2u(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
inline float bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

// float -> IEEE fp16 bits, round to nearest even (subnormals, overflow to inf).
inline uint16_t f32_to_fp16(float f) {
  uint32_t x = f2u(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           // NaN
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          // >= 65520 rounds to inf
  if (ax < 0x38800000u) {                                            // below 2^-14: subnormal or zero
    // value * 2^24 rounded to integer, RNE, via float arithmetic (exact in this range)
    float v = u2f(ax) * 16777216.0f;  // 2^24
    float r = std::nearbyint(v);      // default rounding mode = nearest even
    return (uint16_t)(sign | (uint32_t)r);
  }
  uint32_t e = (ax >> 23) - 127 + 15;
  uint32_t m = ax & 0x7fffffu;
  uint32_t h = (e << 10) | (m >> 13);
  uint32_t rest = m & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1;  // carry may bump exponent: still correct
  return (uint16_t)(sign | h);
}
float fp16_to_f32_slow(uint16_t h);
extern float g_fp16_table[65536];   // filled by init_tables()
extern float g_e4m3_table[256];     // filled by init_tables()
void init_tables();
inline float fp16_to_f32(uint16_t h) { return g_fp16_table[h]; }
// e4m3 (OCP FP8, "FN": bias 7, max 448, 0x7f/0xff NaN, no infinities).
float e4m3_to_f32_slow(uint8_t q);
inline float e4m3_to_f32(uint8_t q) { return g_e4m3_table[q]; }
// float -> e4m3, round to nearest even, saturating at +-448 (NaN stays NaN).
uint8_t f32_to_e4m3(float f);

// A tensor stored in the chosen dtype: raw bytes, 2 or 4 per element.
struct HostTensor {
  DType dt = DType::BF16;
  size_t n = 0;
  std::vector<uint8_t> bytes;
  void alloc(DType d, size_t count) { dt = d; n = count; bytes.assign(count * dtype_size(d), 0); }
  size_t nbytes() const { return bytes.size(); }
  const uint16_t* h16() const { return reinterpret_cast<const uint16_t*>(bytes.data()); }
  const float* f32() const { return reinterpret_cast<const float*>(bytes.data()); }
  const uint8_t* u8() const { return bytes.data(); }
  float get(size_t i) const {
    switch (dt) {
      case DType::BF16: return bf16_to_f32(h16()[i]);
      case DType::FP16: return fp16_to_f32(h16()[i]);
      case DType::FP8: return e4m3_to_f32(u8()[i]);
      default: return f32()[i];
    }
  }
  void set(size_t i, float v) {
    switch (dt) {
      case DType::BF16: reinterpret_cast<uint16_t*>(bytes.data())[i] = f32_to_bf16(v); break;
      case DType::FP16: reinterpret_cast<uint16_t*>(bytes.data())[i] = f32_to_fp16(v); break;
      case DType::FP8: bytes[i] = f32_to_e4m3(v); break;
      default: reinterpret_cast<float*>(bytes.data())[i] = v;
    }
  }
};

// What one fp32 scale of fp8 weights covers (`--fp8-scales`). Per expert, in the checkpoint's convention (output
// rows x input columns: w13 is [2I x H], gate rows then up rows; w2 is [H x I]):
//   Channel  one per output channel: w13 [n][2I] one per row (in this project's interleaved row order), w2t
//            [n][H] one per hidden column. The default (what --dtype fp8 always meant).
//   Tensor   one per weight matrix per expert: w13 [n] (amax of the whole [2I x H]), w2t [n] (of [H x I]).
//   Block    one per 128 x 128 block (kFp8Block), as the Qwen3-30B-A3B-FP8 checkpoint stores them
//            (weight_scale_inv); edge blocks are partial when a dimension is not a multiple of 128. With
//            nIb = ceil(I/128), nHb = ceil(H/128):
//              w13 [n][2][nIb][nHb]: [n][0][ib][hb] covers gate units 128ib.. (this project's rows 2i, i in the
//                  block) x hidden columns 128hb..; [n][1][ib][hb] the same up units (rows 2i+1). These are the
//                  separate gate_proj and up_proj grids of the checkpoint one after the other, which is the
//                  fused [2I x H] w13's grid [n][2nIb][nHb] whenever I is a multiple of 128.
//              w2t [n][nHb][nIb]: the checkpoint's down_proj grid [H/128][I/128] (rows = output = hidden):
//                  [n][hb][ib] covers hidden columns 128hb.. x intermediate rows 128ib.. of w2t [n][I][H],
//                  which stores down_proj transposed (w2t[n][i][h] = w2[n][h][i]).
enum class Fp8Scales { Channel, Tensor, Block };
constexpr int kFp8Block = 128;
inline const char* fp8_scales_name(Fp8Scales m) {
  return m == Fp8Scales::Channel ? "channel" : m == Fp8Scales::Tensor ? "tensor" : "block";
}
inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
// fp32 scales of one expert with I units and hidden H (both matrices): what bytes_per_iter counts.
inline size_t fp8_scales_per_expert(Fp8Scales m, size_t I, size_t H) {
  if (m == Fp8Scales::Tensor) return 2;
  if (m == Fp8Scales::Block) return 3 * ceil_div(I, kFp8Block) * ceil_div(H, kFp8Block);
  return 2 * I + H;
}
// Index into the scales of element (expert n, row r, column h), Block layout above. Gate/up (w13-like, [n][2R][H],
// r interleaved: r = 2i gate, 2i+1 up) and down (w2t-like, [n][R][H], r = i).
inline size_t fp8_block_index_w13(size_t n, size_t r, size_t h, size_t nRb, size_t nHb) {
  return ((n * 2 + (r & 1)) * nRb + (r >> 1) / kFp8Block) * nHb + h / kFp8Block;
}
inline size_t fp8_block_index_w2t(size_t n, size_t r, size_t h, size_t nRb, size_t nHb) {
  return (n * nHb + h / kFp8Block) * nRb + r / kFp8Block;
}

// Expert weights: values in their storage type and, for FP8, the fp32 scales (empty otherwise) in the layout of
// `mode` (Fp8Scales above). n experts of R intermediate units and hidden H; `down`: a w2t-like [n][R][H] tensor,
// else w13-like [n][2R][H].
struct WeightTensor {
  HostTensor q;
  std::vector<float> scale;
  Fp8Scales mode = Fp8Scales::Channel;
  size_t n = 0, R = 0, H = 0;
  bool down = false;
  size_t row_count() const { return n * (down ? R : 2 * R); }
  // The scales in the Channel layout (Tensor: each expert's one scale repeated; Channel: as they are). For
  // kernels that read per-channel scales and take tensor scales as a channel scale repeated.
  std::vector<float> channel_scales() const;
};

// Where the scale of flat element i of an fp8 WeightTensor is, one functor per layout (made from the tensor with
// of()); the CPU variants and the oracle read a weight as e4m3_to_f32(q[i]) * scale[idx(i)].
struct Fp8RowIdx {  // Channel, w13-like: one per row
  size_t H;
  static Fp8RowIdx of(const WeightTensor& w) { return {w.H}; }
  size_t operator()(size_t i) const { return i / H; }
};
struct Fp8ColIdx {  // Channel, w2t-like: one per (expert, hidden column)
  size_t H, RH;
  static Fp8ColIdx of(const WeightTensor& w) { return {w.H, std::max<size_t>(1, w.R) * w.H}; }
  size_t operator()(size_t i) const { return (i / RH) * H + i % H; }
};
struct Fp8TensorIdx {  // Tensor: one per expert and matrix
  size_t per;  // elements of one expert's matrix
  static Fp8TensorIdx of(const WeightTensor& w) { return {std::max<size_t>(1, (w.down ? w.R : 2 * w.R) * w.H)}; }
  size_t operator()(size_t i) const { return i / per; }
};
template <bool Down>
struct Fp8BlockIdx {  // Block: one per 128 x 128 block (fp8_block_index_w13 / _w2t)
  size_t H, RH, nRb, nHb;  // RH: elements of one expert's matrix
  static Fp8BlockIdx of(const WeightTensor& w) {
    return {w.H, std::max<size_t>(1, (Down ? w.R : 2 * w.R) * w.H), ceil_div(w.R, kFp8Block), ceil_div(w.H, kFp8Block)};
  }
  size_t operator()(size_t i) const {
    const size_t n = i / RH, rem = i - n * RH, r = rem / H, h = rem - r * H;
    return Down ? fp8_block_index_w2t(n, r, h, nRb, nHb) : fp8_block_index_w13(n, r, h, nRb, nHb);
  }
};
// f(Idx13{}, Idx2t{}) with the index types of mode m (gate/up tensors, down tensors): one instantiation per mode.
template <class F>
void with_fp8_index(Fp8Scales m, F f) {
  switch (m) {
    case Fp8Scales::Channel: f(Fp8RowIdx{}, Fp8ColIdx{}); break;
    case Fp8Scales::Tensor: f(Fp8TensorIdx{}, Fp8TensorIdx{}); break;
    case Fp8Scales::Block: f(Fp8BlockIdx<false>{}, Fp8BlockIdx<true>{}); break;
  }
}

// ---------------------------------------------------------------- RNG
// Counter-based: value(seed, stream, index) so any element can be generated
// independently (and in parallel) and the CPU and GPU see the same numbers.
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// uniform in [-1, 1)
inline float rng_uniform(uint64_t seed, uint64_t stream, uint64_t idx) {
  uint64_t r = splitmix64(splitmix64(seed ^ (stream * 0xd1342543de82ef95ull)) + idx);
  return (float)((double)(r >> 40) * (1.0 / 8388608.0) - 1.0);  // 24 bits
}

// ---------------------------------------------------------------- shape/config
// shared_experts: experts every token goes through (router-independent, weight 1 each, added to the routed
// experts' sum), each with shared_inter intermediate units; 0: none.
struct Shape { int hidden = 0, inter = 0, experts = 0, topk = 0, shared_experts = 0, shared_inter = 0; };

enum class TestOut { None, Garbage, Partial, NaN, Exit3 };

// One --tune value: for `variant`, or for every listed variant when empty.
struct TuneFlag { std::string variant, name; long long value = 0; };

// Default of --energy-ms: see csrc/BENCHMARKS.md ("Energy per forward").
constexpr int kDefaultEnergyMs = 500;

struct Config {
  std::string backend = "cpu";
  std::vector<std::string> variants;
  std::string model;  // empty = none
  Shape shape;
  int tokens = 1;  // per device: with --gpus N the layer holds N x tokens (each device its own T)
  int gpus = 1;    // --gpus: devices the experts are split across (expert parallelism)
  DType dtype = DType::BF16;
  Fp8Scales fp8_scales = Fp8Scales::Channel;  // --fp8-scales (only with --dtype fp8)
  int warmup = 10, iters = 100, rounds = 1;
  uint64_t seed = 1;
  int rotate = 0;  // 0 = backend default
  bool cold_l2 = false;
  int repeat_work = 1;
  std::string trace;
  std::vector<TuneFlag> tune;
  bool use_tuning_table = true;
  int energy_ms = kDefaultEnergyMs;  // 0: no energy window
  int test_sleep_ms = 0;
  TestOut test_output = TestOut::None;
  bool test_any = false;
  // Tokens of the whole layer: every device holds its own `tokens` (as after data-parallel attention).
  int layer_tokens() const { return tokens * gpus; }
};

// Data layout (both backends):
//   router  Wr [E][H]
//   w13     [E][2I][H]  gate and up rows INTERLEAVED: row 2i = gate_i, row 2i+1 = up_i
//   w2t     [E][I][H]   down projection stored input-major (transposed):
//                       out[h] += a[i] * w2t[e][i][h]
//   ws13    [NS][2*IS][H]  shared experts, laid out as w13 (NS = shared_experts, IS = shared_inter)
//   ws2t    [NS][IS][H]    shared experts, laid out as w2t
//   x       [T][H], out [T][H]
// Weights ~ U(-1,1)*sqrt(3/fan_in) (unit-variance outputs), x ~ U(-1,1)*sqrt(3).
// dt is the run's dtype; wr, x and out are stored in act_dtype(dt), the experts' weights in dt (fp8: with the
// scales of `scales`).
struct Model {
  Shape s;
  DType dt;
  Fp8Scales scales = Fp8Scales::Channel;
  HostTensor wr;
  WeightTensor w13, w2t, ws13, ws2t;
};
void build_model(Model& m, const Shape& s, DType dt, uint64_t seed, Fp8Scales scales = Fp8Scales::Channel);
void make_input(HostTensor& x, int T, int H, DType dt, uint64_t seed, uint64_t stream);

// Routing of T tokens: topk ids (sorted by logit desc) and softmax weights over the k.
struct Routing {
  int T = 0, K = 0;
  std::vector<int> ids;      // [T][K]
  std::vector<float> wts;    // [T][K]
};

// Runs f(0..n-1) over up to 16 threads (host work: oracle, inputs).
template <class F>
void parallel_for(int n, F f) {
  unsigned nt = std::max(1u, std::min<unsigned>(16, std::thread::hardware_concurrency()));
  std::vector<std::thread> th;
  std::atomic<int> next{0};
  for (unsigned k = 0; k < nt; ++k)
    th.emplace_back([&] { for (int i; (i = next++) < n;) f(i); });
  for (auto& t : th) t.join();
}

// ---------------------------------------------------------------- stats
struct Stats { int n = 0; double min = 0, p10 = 0, median = 0, mean = 0, p90 = 0, p99 = 0, max = 0, stdev = 0; };
Stats compute_stats(const std::vector<double>& samples);  // ignores non-finite samples

}  // namespace moe
