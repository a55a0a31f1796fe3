// separate.cu — family "separate": three ordinary kernels replayed from a CUDA
// graph, the "separate kernels" approach and the stand-in for vLLM's
// multi-launch pipeline.
//   K1 k_router  router GEMV (one block per expert); the last block to finish
//                does top-k/softmax and the per-expert token lists.
//   K2 k_ffn1    fused gate+up GEMV + SiLU*mul, grid (inter/ffn1_tile, active experts).
//   K3 k_down    down GEMV + weighted combine, grid (hidden/down_tile, active
//                experts); the last block converts the output.
// Shared experts (p.NS > 0): NS more rows of blocks in K2 and K3 (blockIdx.y >= T*K
// slots' bound): each one a "routed" expert whose token list is every token with weight
// 1, run by the same device code on a Params whose weights, sizes and lists are the
// shared expert's (shared_view, shared_experts.cuh).
// fp8 (Q8: e4m3 expert weights; the router and activations bf16): the same three kernels, K2 and K3 through
// gemv_fp8.cuh (16 weights a 16-byte load). --fp8-scales channel and tensor (uploaded as a channel scale
// repeated): scales applied once per output; block (BLK, 128 x 128): K2 scales each 16-input chunk's partial
// sum by its block's scale, K3 each activation by the scale of its (column block, 128-row block). The block
// instantiations were compiled, NOT yet run on a GPU (csrc/BENCHMARKS.md, "Scales per tensor and per 128 x 128
// block").
// Tunables: ffn1_tile (16), down_tile (auto: 128, or 64 when 128 does not divide hidden).
// Measured (H100 SXM, Qwen3-30B-A3B, bf16; csrc/BENCHMARKS.md): T=1 48.9 us,
// T=4 131 us, T=16 352 us, T=64 805 us.
#include "../backend.h"
#include "cuda_check.cuh"
#include "epilogue.cuh"
#include "families.h"
#include "gemv_fp8.cuh"
#include "routing.cuh"
#include "shared_experts.cuh"

namespace moe {

namespace {

template <bool BF>
__global__ void __launch_bounds__(kThreads) k_router(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);
  router_expert<BF>(p, x, blockIdx.x);
  if (!arrive_last(&p.ctrl[C_K1], gridDim.x)) return;
  Smem s(smem_raw, p);
  topk_softmax(p, s.ids, s.w, s.red);
  __syncthreads();
  const int nact = build_lists(p, s.ids, s.cnt, s.off, s.fill, s.slots, s.active);
  for (int i = threadIdx.x; i < p.T * p.K; i += blockDim.x) {
    p.topk_ids[i] = s.ids[i];
    p.topk_w[i] = s.w[i];
    p.l_slots[i] = s.slots[i];
  }
  for (int e = threadIdx.x; e < p.E; e += blockDim.x) {
    p.l_cnt[e] = s.cnt[e];
    p.l_off[e] = s.off[e];
    if (e < nact) p.l_active[e] = s.active[e];
  }
  if (threadIdx.x == 0) { p.ctrl[C_NACT] = nact; p.ctrl[C_K1] = 0; }
}

// Gate/up rows of expert e, units [i0, i1), tokens slots[0..n), in the weights' dtype (BLK: fp8 with block scales).
template <bool BF, bool Q8, bool BLK, class Dst>
__device__ __forceinline__ void ffn1_any(const Params& p, const uint16_t* x, int e, int i0, int i1, const int* slots,
                                         int n, Dst dst) {
  static_assert(!Q8 || BF, "fp8 weights run with bf16 activations");
  static_assert(!BLK || Q8, "block scales are fp8's");
  if constexpr (Q8) ffn1_rows_q8<BLK>(p, x, e, i0, i1, slots, n, dst);
  else ffn1_rows<BF>(p, x, e, i0, i1, slots, n, dst);
}

template <bool BF, bool Q8, bool BLK>
__global__ void __launch_bounds__(kThreads) k_ffn1(Params p) {
  __shared__ long long clk[2];
  const bool timer = blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0;
  if (timer) clock_begin(clk);
  const int iter = p.ctrl[C_ITER];
  const int maxact = min(p.E, p.T * p.K);
  if ((int)blockIdx.y < p.ctrl[C_NACT]) {
    const int e = p.l_active[blockIdx.y];
    const int n = p.l_cnt[e];
    const int* slots = p.l_slots + p.l_off[e];
    const int i0 = blockIdx.x * p.ti, i1 = min(p.I, i0 + p.ti);
    float* act = p.act;
    const int I = p.I;
    if (i0 < i1)
      ffn1_any<BF, Q8, BLK>(p, x_of(p, iter), e, i0, i1, slots, n,
                       [&](int j, int i, float v) { act[(size_t)slots[j] * I + i] = v; });
  } else if ((int)blockIdx.y >= maxact) {  // shared expert blockIdx.y - maxact: every token
    const Params q = shared_view<BLK>(p, blockIdx.y - maxact);
    const int i0 = blockIdx.x * q.ti, i1 = min(q.I, i0 + q.ti);
    float* act = q.act;
    const int I = q.I;
    if (i0 < i1)
      ffn1_any<BF, Q8, BLK>(q, x_of(q, iter), 0, i0, i1, q.iota, q.T,
                       [&](int j, int i, float v) { act[(size_t)j * I + i] = v; });
  }
  if (timer) clock_end(p, iter, clk);
}

template <bool BF, bool Q8, bool BLK>
__device__ __forceinline__ void down_any(const Params& p, float* s_sa, float* s_red, int e, const int* slots, int n,
                                         int h0) {
  if constexpr (Q8) down_tile_q8<BLK>(p, s_sa, s_red, e, slots, n, h0);
  else down_tile<BF>(p, s_sa, s_red, e, slots, n, h0);
}

template <bool BF, bool Q8, bool BLK>
__global__ void __launch_bounds__(kThreads) k_down(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  Smem s(smem_raw, p);
  const int maxact = min(p.E, p.T * p.K);
  if ((int)blockIdx.y < p.ctrl[C_NACT]) {
    const int e = p.l_active[blockIdx.y];
    down_any<BF, Q8, BLK>(p, s.sa, s.red, e, p.l_slots + p.l_off[e], p.l_cnt[e], blockIdx.x * p.nh);
  } else if ((int)blockIdx.y >= maxact) {  // shared expert: every token, weight 1
    const Params q = shared_view<BLK>(p, blockIdx.y - maxact);
    down_any<BF, Q8, BLK>(q, s.sa, s.red, 0, q.iota, q.T, blockIdx.x * q.nh);
  }
  if (arrive_last(&p.ctrl[C_K3], gridDim.x * gridDim.y)) {
    convert_out<BF>(p);
    if (threadIdx.x == 0) { p.ctrl[C_K3] = 0; p.ctrl[C_ITER] += 1; }
  }
}

using KernelFn = void (*)(Params);
// K3 of a run: fp8 weights run with bf16 activations; blk: their 128 x 128 block scales.
KernelFn down_kernel(bool bf, bool fp8, bool blk) {
  if (fp8) return blk ? k_down<true, true, true> : k_down<true, true, false>;
  return bf ? k_down<true, false, false> : k_down<false, false, false>;
}
KernelFn ffn1_kernel(bool bf, bool fp8, bool blk) {
  if (fp8) return blk ? k_ffn1<true, true, true> : k_ffn1<true, true, false>;
  return bf ? k_ffn1<true, false, false> : k_ffn1<false, false, false>;
}

std::string plan(const PlanCtx& ctx, TunableSet& tun, Plan& pl) {
  const Shape& s = ctx.s;
  pl.ti = (int)tun.get("ffn1_tile");
  std::string why = plan_down_tile(ctx, tun, pl.nh);
  if (!why.empty()) return why;
  pl.sl = SmemLayout{ctx.T * s.topk, s.experts, kNT * std::min(std::max(s.inter, s.shared_inter), kDownIC), 0};
  why = shared_memory_reason(ctx, pl.sl);
  if (!why.empty()) return why;
  for (const void* f : {(const void*)(ctx.bf ? (const void*)k_router<true> : (const void*)k_router<false>),
                        (const void*)down_kernel(ctx.bf, ctx.fp8, ctx.scales == Fp8Scales::Block)})
    CUDA_CHECK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)pl.smem()));
  pl.grid = s.experts;
  return "";
}

void launch(const Plan& pl, const Params& p, bool bf, cudaStream_t st) {
  const size_t smem = pl.smem();
  if (bf) k_router<true><<<p.E, kThreads, smem, st>>>(p); else k_router<false><<<p.E, kThreads, smem, st>>>(p);
  CUDA_CHECK_LAUNCH("k_router");
  const int maxact = std::min(p.E, p.T * p.K);  // + p.NS rows of shared-expert blocks
  dim3 g2((std::max(p.I, p.IS) + p.ti - 1) / p.ti, maxact + p.NS);
  ffn1_kernel(bf, pl.fp8, pl.q8blk)<<<g2, kThreads, 0, st>>>(p);
  CUDA_CHECK_LAUNCH("k_ffn1");
  dim3 g3(p.H / p.nh, maxact + p.NS);
  down_kernel(bf, pl.fp8, pl.q8blk)<<<g3, kThreads, smem, st>>>(p);
  CUDA_CHECK_LAUNCH("k_down");
}

}  // namespace

const Family kSeparateFamily = {"separate", plan, launch};

}  // namespace moe
