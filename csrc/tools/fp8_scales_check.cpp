// fp8_scales_check.cpp — the fp8 weights of each --fp8-scales mode against the values they quantize. The oracle
// reads the same e4m3 bytes and scales as the variants, so a scale layout that is wrong in the same way in both
// would pass its check; this program recomputes, from the unquantized random weights (common.cpp's RNG), what
// each scale must be in the checkpoint's convention (common.h, Fp8Scales: w13 as the gate_proj and up_proj
// grids, w2 as down_proj [H x I], 128 x 128 blocks, partial at the edges) and checks, for every element of the
// routed and the shared experts' tensors:
//   - the scale it is read with (the loaders' index, Fp8*Idx) is the one of its channel, tensor or block, stored
//     where common.h's layout says (what the CUDA kernels index too);
//   - that scale is the amax of the unquantized elements it covers / 448 (1 when they are all 0);
//   - e4m3 x scale is within e4m3's rounding of the unquantized value (2^-4 relative, or 2^-10 x scale for
//     subnormals).
// Run by csrc/test_cpu.sh. Build: g++ -O2 -std=c++17 -pthread -Isrc tools/fp8_scales_check.cpp src/common.cpp
#include <cstdio>
#include <map>

#include "common.h"

using namespace moe;

namespace {

int failures = 0;
void fail(const char* what, const char* tensor, size_t i, double got, double want) {
  if (++failures <= 10) std::printf("FAIL %s: %s element %zu: got %.9g, expected %.9g\n", what, tensor, i, got, want);
}

// The checkpoint's coordinates of element (n, r, h): which matrix and block it is in, independent of common.h's
// index functions. gate/up: r = 2i + u (u 0 gate, 1 up); the checkpoint's row is i of gate_proj or up_proj.
// down: w2t[n][i][h] is down_proj[n][h][i] (output row h, input column i).
struct Key {
  size_t n, part, row_block, col_block;  // part: 0 gate, 1 up, 2 down
  bool operator<(const Key& o) const {
    return std::tie(n, part, row_block, col_block) < std::tie(o.n, o.part, o.row_block, o.col_block);
  }
};

template <class Idx>
void check_tensor(const char* name, const WeightTensor& w, Fp8Scales mode, float amp, uint64_t seed, uint64_t stream) {
  const size_t rows = w.down ? w.R : 2 * w.R, H = w.H;
  const Idx idx = Idx::of(w);
  // Key of an element under this mode: channel = (n, output channel), tensor = (n, matrix), block = (n, part, blocks).
  auto key_of = [&](size_t n, size_t r, size_t h) -> Key {
    const size_t part = w.down ? 2 : (r & 1), i = w.down ? r : r >> 1;
    const size_t out = w.down ? h : i, in = w.down ? i : h;  // checkpoint row (output) and column (input)
    if (mode == Fp8Scales::Tensor) return {n, w.down ? 2u : 0u, 0, 0};
    if (mode == Fp8Scales::Channel) return {n, part, out, 0};
    return {n, part, out / kFp8Block, in / kFp8Block};
  };
  // Where the scale of a key is stored: the layouts written out in common.h (Fp8Scales), in the checkpoint's
  // terms. Channel: w13 [n][2R] by this project's interleaved row, w2t [n][H]; tensor [n]; block: w13
  // [n][2][nRb][nHb] (gate grid, then up grid), w2t [n][nHb][nRb] (down_proj's [H/128][I/128]).
  const size_t nRb = (w.R + kFp8Block - 1) / kFp8Block, nHb = (H + kFp8Block - 1) / kFp8Block;
  auto stored_at = [&](const Key& k) -> size_t {
    if (mode == Fp8Scales::Tensor) return k.n;
    if (mode == Fp8Scales::Channel) return w.down ? k.n * H + k.row_block : k.n * 2 * w.R + 2 * k.row_block + k.part;
    if (w.down) return (k.n * nHb + k.row_block) * nRb + k.col_block;
    return ((k.n * 2 + k.part) * nRb + k.row_block) * nHb + k.col_block;
  };
  std::map<Key, double> amax;
  std::map<Key, size_t> where;  // the scale index every element of a key must use
  for (size_t n = 0; n < w.n; ++n)
    for (size_t r = 0; r < rows; ++r)
      for (size_t h = 0; h < H; ++h) {
        const size_t i = (n * rows + r) * H + h;
        const Key k = key_of(n, r, h);
        const double a = std::fabs((double)(amp * rng_uniform(seed, stream, i)));
        amax[k] = std::max(amax[k], a);
        const size_t s = idx(i);
        if (s != stored_at(k)) fail("the documented scale layout", name, i, (double)s, (double)stored_at(k));
        auto it = where.find(k);
        if (it == where.end()) where[k] = s;
        else if (it->second != s) fail("one scale per channel/tensor/block", name, i, (double)s, (double)it->second);
      }
  // Distinct keys read distinct scales, and every scale is read.
  std::map<size_t, int> used;
  for (auto& kv : where) ++used[kv.second];
  for (auto& u : used)
    if (u.second != 1 || u.first >= w.scale.size()) fail("scales of distinct keys", name, u.first, u.second, 1);
  if (used.size() != w.scale.size()) fail("scale count", name, 0, (double)w.scale.size(), (double)used.size());
  for (auto& kv : where) {
    const double want = amax[kv.first] == 0 ? 1.0 : (double)(float)(amax[kv.first] / 448.0);
    if (std::fabs(w.scale[kv.second] - want) > 1e-6 * want) fail("scale = amax / 448", name, kv.second, w.scale[kv.second], want);
  }
  for (size_t i = 0; i < w.q.n; ++i) {
    const double v = amp * rng_uniform(seed, stream, i), sc = w.scale[idx(i)];
    const double deq = (double)e4m3_to_f32(w.q.u8()[i]) * sc;
    const double tol = std::max(std::fabs(v) * 0.0625, sc * std::ldexp(1.0, -10)) * (1 + 1e-6);
    if (std::fabs(deq - v) > tol) fail("e4m3 x scale", name, i, deq, v);
  }
}

void check(const Shape& s, Fp8Scales mode) {
  const uint64_t seed = 11;
  Model m;
  build_model(m, s, DType::FP8, seed, mode);
  const float H = (float)s.hidden, I = (float)s.inter, IS = (float)std::max(1, s.shared_inter);
  const int before = failures;
  with_fp8_index(mode, [&](auto i13, auto i2t) {
    using I13 = decltype(i13);
    using I2t = decltype(i2t);
    check_tensor<I13>("w13", m.w13, mode, std::sqrt(3.0f / H), seed, 2);
    check_tensor<I2t>("w2t", m.w2t, mode, std::sqrt(3.0f / I), seed, 3);
    check_tensor<I13>("ws13", m.ws13, mode, std::sqrt(3.0f / H), seed, 4);
    check_tensor<I2t>("ws2t", m.ws2t, mode, std::sqrt(3.0f / IS), seed, 5);
  });
  std::printf("%s: hidden %d inter %d experts %d shared %d x %d: %s\n", fp8_scales_name(mode), s.hidden, s.inter,
              s.experts, s.shared_experts, s.shared_inter, failures == before ? "ok" : "FAILED");
}

}  // namespace

int main() {
  init_tables();
  // Partial edge blocks in both dimensions (192 = 128 + 64, 160 = 128 + 32, 200, 72), whole ones (256 x 128),
  // and a shape whose inter is one partial block.
  const Shape shapes[] = {{192, 160, 3, 2, 1, 72}, {256, 128, 2, 2, 2, 64}, {320, 200, 2, 1, 0, 0}, {128, 96, 2, 2, 1, 40}};
  for (Fp8Scales mode : {Fp8Scales::Channel, Fp8Scales::Tensor, Fp8Scales::Block})
    for (const Shape& s : shapes) check(s, mode);
  std::printf("fp8_scales_check: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
