// splitk.cu — family "splitk" (ours): no OS block, no doorbells, no fan-in. A
// task is (expert, slice of `slice` intermediate units): gate+up for the slice
// into shared memory, then that slice's share of the down projection (w2t rows
// are contiguous, so it is one contiguous read) added into the fp32 output
// with vector reductions. Tasks are independent, so the only wait is one grid
// barrier after the router; every block then routes redundantly (T*E logits
// from L2). Strategies:
//   static   task k goes to block k % grid (round robin)
//   dynamic  blocks take tasks from an atomic counter (self-dispatch); with
//            tail_split=1 the last ~one task per block is cut into half slices
// Shared experts (p.NS > 0; the SHARED kernel instantiation): tasks (shared expert n, slice of `slice` of its IS
// units) for every token with weight 1, added into the same fp32 output. They need no routing, so they come first
// and hide the router's latency: a block counts itself in at the router barrier after its router rows, runs
// shared slices (static: position g = block, block + grid, .. of the order shared slices then routed tasks;
// dynamic: tickets of their own counter, C_STASK), and waits for the barrier only before its top-k and first
// routed task. Compiled, NOT yet run on a GPU (csrc/BENCHMARKS.md, "Shared experts in the os and splitk families").
// Tunables: slice (auto: about 8 tasks per block), threads (512), blocks_per_sm
// (auto: as many as fit), down_chunk (auto), prefetch (1), tail_split (dynamic, 1).
// Measured (H100 SXM, Qwen3-30B-A3B bf16; csrc/BENCHMARKS.md): static T=1
// 47.2 us (separate 48.9), dynamic T=4 125.8 us (separate 130.8); dynamic at
// T=16 with slice 16 317.7 us (heuristic 96: 430.7; separate 351): the H100
// tuning table's entry.
#include "../backend.h"
#include "cuda_check.cuh"
#include "epilogue.cuh"
#include "families.h"
#include "grid_barrier.cuh"
#include "routing.cuh"
#include "shared_experts.cuh"

namespace moe {

namespace {

// A shared-expert task: gate/up of units [i0, i1) of shared expert n (q: shared_as_routed, so expert n) for every
// token into shared memory, kNT tokens at a time, each group's share of the down projection added into the fp32
// output with weight 1. As a routed task's loop below, except that the tokens and their weights are Params::iota
// and ::ones (token j0 + t, weight 1); next() prefetches the next task's gate/up slice while the first group's
// down share runs.
template <bool BF, bool CHUNKED, class Next>
__device__ __forceinline__ void shared_slice(const Params& q, const uint16_t* x, Smem& s, Tracer& tr, int n, int i0,
                                             int i1, Next next) {
  const int ni = i1 - i0;
  // this task's down-projection slice streams into L2 while gate/up run
  if (q.prefetch) prefetch_l2(q.w2t + ((size_t)n * q.I + i0) * q.H, (size_t)ni * q.H * 2);
  for (int j0 = 0; j0 < q.T; j0 += kNT) {
    const int nt = min(kNT, q.T - j0);
    float* sa = s.sa;
    const int ti = q.ti;
    __syncthreads();
    for (int idx = threadIdx.x; idx < kNT * ti; idx += blockDim.x) sa[idx] = 0.f;
    __syncthreads();
    const unsigned long long tf = gt(q);
    ffn1_rows<BF>(q, x, n, i0, i1, q.iota + j0, nt, [&](int j, int i, float v) { sa[j * ti + (i - i0)] = v; });
    __syncthreads();
    const unsigned long long td = gt(q);
    if (threadIdx.x == 0 && j0 == 0) tr.add(TR_SK_FFN1, -1, tf, td);
    if (j0 == 0 && q.prefetch) next();
    const int* toks = q.iota + j0;
    const float* wts = q.ones + j0;
    if constexpr (!CHUNKED) {
      if (nt == 1) down_rows<BF, 1>(q, n, i0, i1, 0, q.H, sa, ti, toks, wts, nt, s.red);
      else down_rows<BF, kNT>(q, n, i0, i1, 0, q.H, sa, ti, toks, wts, nt, s.red);
    } else {
      const int nh = q.down_chunk;
      for (int h0 = 0; h0 < q.H; h0 += nh) {
        if (nt == 1) down_rows<BF, 1>(q, n, i0, i1, h0, nh, sa, ti, toks, wts, nt, s.red);
        else down_rows<BF, kNT>(q, n, i0, i1, h0, nh, sa, ti, toks, wts, nt, s.red);
      }
    }
    if (threadIdx.x == 0 && j0 == 0) tr.add(TR_SK_DOWN, -1, td, gt(q));
  }
}

// CHUNKED: the down share in column chunks of p.down_chunk (hidden wider than
// the thread layout takes in one pass, or not a power of two). A separate
// instantiation, so the kernel timed for the presets keeps its code: the same
// source with a run-time branch measured 1.7 us slower at T=1 (H100).
// SHARED: the layer has shared experts (p.NS > 0), another instantiation for the same reason (the kernels without
// them compile to the same SASS as before, compared at sm_90a and sm_80). The task order is then the nsh shared
// slices (g < nsh: slice g / NS of shared expert g % NS), then the routed tasks: a block arrives at the router
// barrier, runs its shared slices (static: g = block, block + grid, ..; dynamic: tickets from C_STASK, so that
// the routed loop below keeps its code) while the other blocks finish their router rows, and waits for the
// barrier only before its top-k; static routed tasks continue the block's positions past the shared slices.
template <bool BF, bool CHUNKED, bool SHARED>
__global__ void __launch_bounds__(kThreads, 1) k_persistent_splitk(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  Smem s(smem_raw, p);
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  long long clk[2];
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_begin(clk);
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);
  const bool dynamic = p.strategy == SK_DYNAMIC;
  __shared__ int s_next;
  if constexpr (SHARED) {
    const int nsh = p.NS * ((p.IS + p.ti - 1) / p.ti);  // shared slices, first in the task order
    const Params q = shared_as_routed(p);
    unsigned long long ts = gt(p);
    for (int e = blockIdx.x; e < p.E; e += gridDim.x) router_expert<BF>(p, x, e);
    router_arrive(p, tr, ts);
    int g = blockIdx.x;  // static: g, g + grid, ..; dynamic: tickets of their own counter (C_STASK)
    if (dynamic) {
      if (threadIdx.x == 0) s_next = atomicAdd(&p.ctrl[C_STASK], 1);
      __syncthreads();
      g = s_next;
    }
    while (g < nsh) {  // no routing needed: these fill the block's wait at the barrier
      if (dynamic) {
        __syncthreads();
        if (threadIdx.x == 0) s_next = atomicAdd(&p.ctrl[C_STASK], 1);
      }
      ts = gt(p);
      const int n = g % p.NS, i0 = (g / p.NS) * p.ti, i1 = min(p.IS, i0 + p.ti);
      shared_slice<BF, CHUNKED>(q, x, s, tr, n, i0, i1, [&]() {
        const int gn = dynamic ? s_next : g + (int)gridDim.x;  // (a routed task's expert is not known yet)
        if (gn < nsh) {
          const int nn = gn % p.NS, i0n = (gn / p.NS) * p.ti, i1n = min(p.IS, i0n + p.ti);
          prefetch_l2(p.ws13 + ((size_t)nn * 2 * p.IS + 2 * (size_t)i0n) * p.H, (size_t)2 * (i1n - i0n) * p.H * 2);
        }
      });
      if (threadIdx.x == 0) tr.add(TR_SPLITK, task_make(3, p.E + n, g / p.NS), ts, gt(p));
      if (dynamic) {
        __syncthreads();
        g = s_next;
      } else {
        g += gridDim.x;
      }
    }
    router_wait(p, tr, 2);
  } else {
    route_all_then_barrier<BF>(p, x, tr, 2);
  }
  unsigned long long t0 = gt(p);
  topk_softmax(p, s.ids, s.w, s.red);
  __syncthreads();
  if (threadIdx.x == 0) tr.add(TR_TOPK_ONLY, -1, t0, gt(p));
  const int nact = build_lists(p, s.ids, s.cnt, s.off, s.fill, s.slots, s.active);
  if (blockIdx.x == 0)
    for (int i = threadIdx.x; i < p.T * p.K; i += blockDim.x) { p.topk_ids[i] = s.ids[i]; p.topk_w[i] = s.w[i]; }
  if (threadIdx.x == 0) tr.add(TR_TOPK, -1, t0, gt(p));
  // Tasks: slices of ti units; dynamic with tail_split ends with about one
  // block's worth of half-size slices per block so that blocks finishing early take the tail.
  const int tpe = (p.I + p.ti - 1) / p.ti;
  const int half = max(1, p.ti / 2);
  const int sA = dynamic && p.tail_split ? max(0, (p.I - (p.nb * p.ti + nact - 1) / nact) / p.ti) : tpe;
  const int nbig = nact * min(sA, tpe);
  const int rest = max(0, p.I - sA * p.ti);
  const int ntask = nbig + nact * ((rest + half - 1) / half);
  auto decode = [&](int kk, int& a, int& j0u, int& j1u) {
    if (kk < nbig) { a = kk % nact; j0u = (kk / nact) * p.ti; j1u = min(p.I, j0u + p.ti); }
    else { kk -= nbig; a = kk % nact; j0u = sA * p.ti + (kk / nact) * half; j1u = min(p.I, j0u + half); }
  };
  int k = blockIdx.x;
  if constexpr (SHARED) {  // static: this block's positions past the nsh shared slices in the order
    const int nsh = p.NS * ((p.IS + p.ti - 1) / p.ti), G = gridDim.x;
    k = ((k - nsh) % G + G) % G;
  }
  if (dynamic) {
    if (threadIdx.x == 0) s_next = atomicAdd(&p.ctrl[C_TASK], 1);
    __syncthreads();
    k = s_next;
  }
  while (k < ntask) {
    if (dynamic) {
      __syncthreads();
      if (threadIdx.x == 0) s_next = atomicAdd(&p.ctrl[C_TASK], 1);  // fetch the next ticket early
    }
    t0 = gt(p);
    // task k: slice k / nact of expert active[k % nact] (experts interleaved)
    int a_idx, i0, i1;
    decode(k, a_idx, i0, i1);
    const int e = s.active[a_idx], slice = i0 / max(1, half), ni = i1 - i0;
    const int n = s.cnt[e];
    const int* slots = s.slots + s.off[e];
    // this task's down-projection slice streams into L2 while gate/up run
    if (p.prefetch) prefetch_l2(p.w2t + ((size_t)e * p.I + i0) * p.H, (size_t)ni * p.H * 2);
    for (int j0 = 0; j0 < n; j0 += kNT) {
      const int nt = min(kNT, n - j0);
      float* sa = s.sa;
      const int ti = p.ti;
      __syncthreads();
      for (int idx = threadIdx.x; idx < kNT * ti; idx += blockDim.x) sa[idx] = 0.f;
      __syncthreads();
      const unsigned long long tf = gt(p);
      ffn1_rows<BF>(p, x, e, i0, i1, slots + j0, nt, [&](int j, int i, float v) { sa[j * ti + (i - i0)] = v; });
      __syncthreads();
      const unsigned long long td = gt(p);
      if (threadIdx.x == 0 && j0 == 0) tr.add(TR_SK_FFN1, -1, tf, td);
      if (j0 == 0 && p.prefetch) {  // the next task's gate/up slice streams into L2 while the down share runs
        const int kn = dynamic ? s_next : k + (int)gridDim.x;
        if (kn < ntask) {
          int an, i0n, i1n;
          decode(kn, an, i0n, i1n);
          const int en = s.active[an];
          prefetch_l2(p.w13 + ((size_t)en * 2 * p.I + 2 * (size_t)i0n) * p.H, (size_t)2 * (i1n - i0n) * p.H * 2);
        }
      }
      int toks[kNT];
      float wts[kNT];
      for (int t = 0; t < kNT; ++t) {
        const int sl = slots[j0 + min(t, nt - 1)];
        toks[t] = sl / p.K;
        wts[t] = s.w[sl];
      }
      if constexpr (!CHUNKED) {  // every hidden column at once
        if (nt == 1) down_rows<BF, 1>(p, e, i0, i1, 0, p.H, sa, ti, toks, wts, nt, s.red);
        else down_rows<BF, kNT>(p, e, i0, i1, 0, p.H, sa, ti, toks, wts, nt, s.red);
      } else {  // in chunks that down_rows' thread layout can take
        const int nh = p.down_chunk;
        for (int h0 = 0; h0 < p.H; h0 += nh) {
          if (nt == 1) down_rows<BF, 1>(p, e, i0, i1, h0, nh, sa, ti, toks, wts, nt, s.red);
          else down_rows<BF, kNT>(p, e, i0, i1, h0, nh, sa, ti, toks, wts, nt, s.red);
        }
      }
      if (threadIdx.x == 0 && j0 == 0) tr.add(TR_SK_DOWN, -1, td, gt(p));
    }
    if (threadIdx.x == 0) tr.add(TR_SPLITK, task_make(3, e, slice), t0, gt(p));
    if (dynamic) {
      __syncthreads();
      k = s_next;
    } else {
      k += gridDim.x;
    }
  }
  finish_launch<BF, SHARED>(p, tr, iter, clk);
}

using KernelFn = void (*)(Params);
template <bool BF>
KernelFn kernel_of(bool chunked, bool shared) {
  if (shared) return chunked ? k_persistent_splitk<BF, true, true> : k_persistent_splitk<BF, false, true>;
  return chunked ? k_persistent_splitk<BF, true, false> : k_persistent_splitk<BF, false, false>;
}
KernelFn kernel_of(bool bf, bool chunked, bool shared) {
  return bf ? kernel_of<true>(chunked, shared) : kernel_of<false>(chunked, shared);
}

// down_chunk "auto": hidden in one pass when its H/8 column groups divide the
// block; else the widest power-of-two chunk >= 256 that divides hidden and
// whose column groups divide the block (the rule the presets were timed with);
// else (hidden not a multiple of 256) the widest chunk that divides hidden and
// keeps >= 90% of the threads busy.
int auto_down_chunk(int H, int threads) {
  if ((8 * threads) % H == 0) return H;
  for (int c = std::min(4096, 8 * threads); c >= 256; c >>= 1)
    if (H % c == 0 && threads % (c / 8) == 0) return c;
  for (int c = std::min(H, 8 * threads) / 8 * 8; c >= 8; c -= 8) {
    const int cl = c / 8;
    if (H % c == 0 && (threads / cl) * cl * 10 >= threads * 9) return c;
  }
  return 8;
}

std::string plan(const PlanCtx& ctx, TunableSet& tun, Plan& pl) {
  const Shape& s = ctx.s;
  const int SMs = ctx.prop.multiProcessorCount;
  pl.persistent = true;
  pl.threads = (int)tun.get("threads");
  pl.prefetch = (int)tun.get("prefetch");
  pl.tail_split = tun.find("tail_split") ? (int)tun.get("tail_split") : 0;
  if (tun.is_auto("down_chunk")) tun.set_heuristic("down_chunk", auto_down_chunk(s.hidden, pl.threads));
  pl.down_chunk = (int)tun.get("down_chunk");
  if (s.hidden % pl.down_chunk != 0 || pl.down_chunk > 8 * pl.threads)
    return "tunable " + tun.describe("down_chunk") + ": must divide hidden (" + std::to_string(s.hidden) +
           ") and be at most 8 x threads (" + std::to_string(8 * pl.threads) + ")";
  const bool chunked = pl.down_chunk != s.hidden;
  // Occupancy with the largest slice (256 units); the real slice only needs less shared memory.
  SmemLayout widest{ctx.T * s.topk, s.experts, kNT * 256, 0};
  std::string why = shared_memory_reason(ctx, widest);
  if (!why.empty()) return why;
  const int occ = blocks_per_sm((const void*)kernel_of(ctx.bf, chunked, s.shared_experts > 0), pl.threads, widest.bytes());
  if (occ < 1) return "no block of " + std::to_string(pl.threads) + " threads with " + std::to_string(widest.bytes()) + " bytes of shared memory fits on an SM";
  if (tun.is_auto("blocks_per_sm")) tun.set_heuristic("blocks_per_sm", std::min(occ, 4));
  const int bps = (int)tun.get("blocks_per_sm");
  if (bps > occ)
    return "tunable " + tun.describe("blocks_per_sm") + ": only " + std::to_string(occ) + " block(s) of " +
           std::to_string(pl.threads) + " threads fit on an SM of this device (" + std::to_string(widest.bytes()) +
           " bytes of shared memory each); a persistent grid must co-reside";
  pl.grid = bps * SMs;
  if (tun.is_auto("slice")) {  // about 8 tasks per block (3 per block left a 33% imbalance at T=4), shared slices counted
    const int nact_est = std::min(s.experts, ctx.T * s.topk);
    int ti = (int)(((double)nact_est * s.inter + (double)s.shared_experts * s.shared_inter) / (8.0 * pl.grid));
    ti = std::max(16, std::min(256, (ti + 15) / 16 * 16));
    tun.set_heuristic("slice", std::min(ti, (std::max(s.inter, s.shared_inter) + 15) / 16 * 16));
  }
  pl.ti = (int)tun.get("slice");
  pl.sl = SmemLayout{ctx.T * s.topk, s.experts, kNT * pl.ti, 0};
  return "";
}

void launch(const Plan& pl, const Params& p, bool bf, cudaStream_t st) {
  const bool chunked = pl.down_chunk != p.H;
  kernel_of(bf, chunked, p.NS > 0)<<<pl.grid, pl.threads, pl.smem(), st>>>(p);
  CUDA_CHECK_LAUNCH("k_persistent_splitk");
}

}  // namespace

const Family kSplitkFamily = {"splitk", plan, launch};

}  // namespace moe
