// flat.cu — family "flat": the whole layer in one persistent launch with one
// grid barrier and no task queue (the design of csrc/tools/t1_flat.cu, which
// reached 38.3 us at T=1 on the H100 for Qwen3-30B-A3B bf16).
//
//   1. Router, warp per expert, the experts spread over the grid (expert e on
//      block e % grid, warp e / grid); its weights are loaded evict-last (every
//      launch reads them again). Then the shared-expert rows of this block's
//      first chunk are prefetched into L2: they do not depend on the router,
//      so their bytes stream while the barrier and the top-k run.
//   2. One grid barrier (arrival counter; the launch's last column group
//      resets it).
//   3. Top-k + softmax in every block (T=1: rank top-k with conflict-free
//      float4 scans; else routing.cuh's topk_softmax).
//   4. Units: the T*NS*IS shared-expert units (token-major), then the T*K*I
//      routed (token, pick, intermediate unit) units. Each block takes one
//      contiguous range of units. 8 gate/up warps make a = w * silu(g.x) * (u.x)
//      for 8 units at a time into shared memory; 8 down warps, each thread
//      owning 8 output columns (NC groups of 2048 columns: hidden <= 2048*NC),
//      stream the same units' down rows and accumulate in registers; two pairs
//      of named barriers hand the chunks over (double-buffered). Down rows do not
//      depend on the activations, only on the routing: with NC = 1 the next
//      chunk's rows are loaded while the current chunk's activations are made;
//      with NC = 2 (no registers for two chunks) a chunk's rows are loaded before
//      its activations are waited for. When the token of the units changes
//      (T > 1: the T-loop), the down threads add their columns into the fp32
//      output and start again.
//   5. Completion per down warp's columns: the warp that adds the last block's
//      share converts those columns (all tokens) and clears them; the last of
//      the 8 column groups closes the launch (counters, launch index). No block
//      waits for the whole grid at the end.
// Limits (variants.json): hidden a multiple of 64 up to 4096, experts up to
// 512, top-k up to 32, tokens up to 256 (T > 1 is correct but re-streams an
// expert's weights for every token routed to it: a decode kernel).
// k_flat1's stream of units is unit_stream.cuh's stream_units_h2048 (ep-persistent's compute=1 runs it too).
// Tunable t1path (T = 1, hidden 2048): 0 the general kernel, 1 the T = 1 kernel (k_flat1: 38.9 us against 43.5 on
// the H100), 2 k_flat1 with its L2 prefetch of the next chunk (40.8 us: slower), 3 (the default) k_flat1 without
// the grid barrier: every router logit is published as one 64-bit word with its launch's tag and each block waits
// on the logits themselves (wait_tagged_logits; 37.98 us on the H100 through the farm; csrc/BENCHMARKS.md).
#include "../backend.h"
#include "cuda_check.cuh"
#include "families.h"
#include "gemv.cuh"
#include "gemv_fp8.cuh"
#include "grid_barrier.cuh"
#include "routing.cuh"
#include "trace.cuh"
#include "unit_stream.cuh"

namespace moe {

namespace {

// Unit u of a launch (unit_stream.cuh's Unit): shared units first (token-major), then routed.
__device__ __forceinline__ Unit unit_of(const Params& p, const int* ids, const float* wts, int u, int nsu) {
  Unit r;
  if (u < nsu) {
    const int q = u / p.IS, i = u - q * p.IS, t = q / p.NS, n = q - t * p.NS;
    r.g = p.ws13 + ((size_t)n * 2 * p.IS + 2 * (size_t)i) * p.H;
    r.d = p.ws2t + ((size_t)n * p.IS + i) * p.H;
    r.wt = 1.f;
    r.tok = t;
  } else {
    u -= nsu;
    const int sl = u / p.I, i = u - sl * p.I, e = ids[sl];
    r.g = p.w13 + ((size_t)e * 2 * p.I + 2 * (size_t)i) * p.H;
    r.d = p.w2t + ((size_t)e * p.I + i) * p.H;
    r.wt = wts[sl];
    r.tok = sl / p.K;
  }
  return r;
}

// Router: warp per expert, experts spread over the grid; tokens in groups of 4 (the weight row is read once per
// group; T=1 reads it once). All of a lane's loads are issued before the arithmetic.
template <bool BF>
__device__ __forceinline__ void router_warps(const Params& p, const uint16_t* x) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nchunk = p.H / 8;
  for (int e = blockIdx.x + gridDim.x * warp; e < p.E; e += gridDim.x * kWarps) {
    const uint16_t* w = p.wr + (size_t)e * p.H;
    for (int t0 = 0; t0 < p.T; t0 += kNT) {
      float acc[kNT] = {0.f, 0.f, 0.f, 0.f};
      for (int c0 = lane; c0 < nchunk; c0 += 32 * 8) {
        uint4 wv[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int c = c0 + 32 * j;
          wv[j] = c < nchunk ? ld_keep(w + (size_t)c * 8) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int c = c0 + 32 * j;
          if (c < nchunk)
#pragma unroll
            for (int t = 0; t < kNT; ++t)
              if (t0 + t < p.T) acc[t] += dot8<BF>(wv[j], ld_ro(x + (size_t)(t0 + t) * p.H + (size_t)c * 8));
        }
      }
#pragma unroll
      for (int t = 0; t < kNT; ++t) {
        const float v = warp_sum(acc[t]);
        if (lane == 0 && t0 + t < p.T) p.logits[(size_t)(t0 + t) * p.E + e] = v;
      }
    }
  }
}

// Shared-expert rows of the block's first units (those below nsu, one chunk: kChunk units at most):
// router-independent, into L2 while the router's barrier and the top-k run (gate+up rows are adjacent; then the
// down row). Called after the block's router rows: the H200 trace of 2026-11-28 (deepseek-v2-lite-shared, T = 1)
// showed the whole shared range prefetched before the router holding blocks' router rows back by up to 5.5 us
// (prefetches stall their issue once the SM's requests are queued) and the barrier waiting for them; one chunk
// per block (about 12 MB over the grid) is about what HBM moves in the ~4 us of that prologue.
__device__ __forceinline__ void prefetch_shared(const Params& p, int u0, int u1, int nsu) {
  if (u0 >= nsu) return;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int u = u0 + warp; u < min(min(u1, nsu), u0 + kChunk); u += kWarps) {
    const Unit un = unit_of(p, nullptr, nullptr, u, nsu);
    prefetch_unit_rows_l2(un.g, un.d, (size_t)p.H * 2, lane);
  }
}

// The grid barrier's replacement with t1path=3 (T = 1): each thread waits for its experts' tagged words of this
// launch (router_t1<BF, true>; one 64-bit word holds the value and its tag, so the word itself is all that must
// be seen: no fence, no counter, no second read of the logits after a barrier) and puts the logits into s.red.
// Traces TR_ROUTER (this block's router rows) and TR_BARRIER (the wait for the others' logits), as
// router_barrier does; returns, in thread 0, the time the wait ended.
__device__ __forceinline__ unsigned long long wait_tagged_logits(const Params& p, const Smem& s, Tracer& tr, unsigned long long t0, int iter) {
  unsigned long long t1 = 0;
  if (threadIdx.x == 0) { t1 = gt(p); tr.add(TR_ROUTER, -1, t0, t1); }
  tagged_logits(p.logit_tags, p.E, (unsigned)(iter + 1), s.red, [&] { spin_fail(p, 4); });
  __syncthreads();
  if (threadIdx.x == 0) { t0 = gt(p); tr.add(TR_BARRIER, -1, t1, t0); }
  return t0;
}

// After the router: the grid barrier, then top-k + softmax of every token into s.ids / s.w (block 0 also writes
// them to topk_ids / topk_w). TAG (t1path=3; T = 1, E a multiple of 4): the tagged logits instead of the barrier
// (wait_tagged_logits). Whole block; ends with the routing visible to every thread.
template <bool TAG = false>
__device__ __forceinline__ void route(const Params& p, const Smem& s, Tracer& tr, unsigned long long t0, int iter = 0) {
  if constexpr (TAG) {
    t0 = wait_tagged_logits(p, s, tr, t0, iter);
    rank_topk_t1(s.red, p.E, p.K, s.ids, s.w);
  } else {
    t0 = router_barrier(p, tr, t0, 4);
    if (p.T == 1 && p.E % 4 == 0 && p.E <= kThreads * 8) {
      for (int e = threadIdx.x; e < p.E; e += blockDim.x) s.red[e] = __ldcg(p.logits + e);
      __syncthreads();
      rank_topk_t1(s.red, p.E, p.K, s.ids, s.w);
    } else {
      topk_softmax(p, s.ids, s.w, s.red);
      __syncthreads();
    }
  }
  if (blockIdx.x == 0)  // TAG: one token
    for (int i = threadIdx.x; i < (TAG ? p.K : p.T * p.K); i += blockDim.x) { p.topk_ids[i] = s.ids[i]; p.topk_w[i] = s.w[i]; }
  if (threadIdx.x == 0) tr.add(TR_TOPK, -1, t0, gt(p));
}

// Completion per down warp's columns (the same columns in every block): the warp that adds the last block's
// share converts them for every token and clears them; the last of the column groups closes the launch. Down
// warps only (t: the down thread, 0..255), after their red_add4s.
template <bool BF, int NC>
__device__ __forceinline__ void complete(const Params& p, int t, int iter, int T) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int dw = warp - kGuWarps;
  __threadfence();
  __syncwarp();
  int last = 0;
  if (lane == 0) last = atomicAdd(&p.ctrl[C_FLAT_COL + dw], 1) == (int)gridDim.x - 1;
  last = __shfl_sync(0xffffffffu, last, 0);
  if (last) {
    __threadfence();
    for (int tok = 0; tok < T; ++tok)
#pragma unroll
      for (int g = 0; g < NC; ++g) {
        const int col = g * kColsPerGroup + t * 8;
        if (col >= p.H) continue;
        float* src = p.out_acc + (size_t)tok * p.H + col;
        const float4 a = __ldcg(reinterpret_cast<const float4*>(src));
        const float4 b = __ldcg(reinterpret_cast<const float4*>(src + 4));
        const float f[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
        uint32_t w[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) w[k] = (uint32_t)to_store<BF>(f[2 * k]) | ((uint32_t)to_store<BF>(f[2 * k + 1]) << 16);
        *reinterpret_cast<uint4*>(p.out + (size_t)tok * p.H + col) = make_uint4(w[0], w[1], w[2], w[3]);
        reinterpret_cast<float4*>(src)[0] = make_float4(0.f, 0.f, 0.f, 0.f);
        reinterpret_cast<float4*>(src)[1] = make_float4(0.f, 0.f, 0.f, 0.f);
      }
    __syncwarp();
    if (lane == 0) {
      p.ctrl[C_FLAT_COL + dw] = 0;
      __threadfence();
      if (atomicAdd(&p.ctrl[C_FLAT_GRP], 1) == kDownThreads / 32 - 1) {  // the last column group: the launch is over
        p.ctrl[C_FLAT_GRP] = 0;
        p.ctrl[C_ROUTER] = 0;
        p.ctrl[C_ITER] = iter + 1;
      }
    }
  }
}

template <bool BF, int NC>
__global__ void __launch_bounds__(kThreads, 1) k_flat(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  Smem s(smem_raw, p);
  __shared__ float s_a[2][kChunk];
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  long long clk[2];
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_begin(clk);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);

  // This block's units are known before the router runs: [u0, u1) of nsu shared + T*K*I routed.
  const int nsu = p.T * p.NS * p.IS;
  const int U = nsu + p.T * p.K * p.I;
  const int u0 = (int)((long long)blockIdx.x * U / gridDim.x), u1 = (int)((long long)(blockIdx.x + 1) * U / gridDim.x);
  unsigned long long t0 = gt(p);
  router_warps<BF>(p, x);
  prefetch_shared(p, u0, u1, nsu);
  route(p, s, tr, t0);

  const int nchunks = (u1 - u0 + kChunk - 1) / kChunk;
  const int nchunk16 = p.H / 8;  // 16-byte chunks of a row
  if (warp < kGuWarps) {
    // gate/up: warp w makes unit u0 + c*8 + w of chunk c
    t0 = gt(p);
    for (int c = 0; c < nchunks; ++c) {
      const int b = c & 1;
      if (c >= 2) bar_sync(3 + b, kThreads);  // EMPTY[b]: the down warps are done with this buffer
      const int u = u0 + c * kChunk + warp;
      float a = 0.f;
      if (u < u1) {
        const Unit un = unit_of(p, s.ids, s.w, u, nsu);
        const uint16_t* xt = x + (size_t)un.tok * p.H;
        float gs = 0.f, us = 0.f;
        for (int c0 = lane; c0 < nchunk16; c0 += 32 * 8) {
          uint4 gv[8], uv[8];
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const int cc = c0 + 32 * j;
            gv[j] = cc < nchunk16 ? ld_stream(un.g + (size_t)cc * 8) : make_uint4(0, 0, 0, 0);
          }
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const int cc = c0 + 32 * j;
            uv[j] = cc < nchunk16 ? ld_stream(un.g + p.H + (size_t)cc * 8) : make_uint4(0, 0, 0, 0);
          }
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const int cc = c0 + 32 * j;
            if (cc < nchunk16) {
              const uint4 xv = ld_ro(xt + (size_t)cc * 8);
              gs += dot8<BF>(gv[j], xv);
              us += dot8<BF>(uv[j], xv);
            }
          }
        }
        gs = warp_sum(gs);
        us = warp_sum(us);
        a = un.wt * silu(gs) * us;
      }
      if (lane == 0) s_a[b][warp] = a;
      bar_arrive(1 + b, kThreads);  // FULL[b]
    }
    if (threadIdx.x == 0) tr.add(TR_FLAT_GU, -1, t0, gt(p));
  } else {
    const int t = threadIdx.x - kGuWarps * 32;  // 0..255: columns g*2048 + 8t .. +7
    float acc[NC][8];
#pragma unroll
    for (int g = 0; g < NC; ++g)
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[g][k] = 0.f;
    int cur = -1;  // token of acc
    auto flush = [&]() {
#pragma unroll
      for (int g = 0; g < NC; ++g) {
        const int col = g * kColsPerGroup + t * 8;
        if (col < p.H) {
          float* d = p.out_acc + (size_t)cur * p.H + col;
          red_add4(d, make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]));
          red_add4(d + 4, make_float4(acc[g][4], acc[g][5], acc[g][6], acc[g][7]));
        }
#pragma unroll
        for (int k = 0; k < 8; ++k) acc[g][k] = 0.f;
      }
    };
    // The down rows of chunk c (routing only) and their tokens (-1: past the block's range).
    auto load_chunk = [&](int c, uint4 (&dst)[kChunk][NC], int (&tk)[kChunk]) {
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        const int u = u0 + c * kChunk + j;
        if (u < u1) {
          const Unit un = unit_of(p, s.ids, s.w, u, nsu);
          tk[j] = un.tok;
#pragma unroll
          for (int g = 0; g < NC; ++g) {
            const int col = g * kColsPerGroup + t * 8;
            dst[j][g] = col < p.H ? ld_stream(un.d + col) : make_uint4(0, 0, 0, 0);
          }
        } else {
          tk[j] = -1;
#pragma unroll
          for (int g = 0; g < NC; ++g) dst[j][g] = make_uint4(0, 0, 0, 0);
        }
      }
    };
    auto consume = [&](int b, const uint4 (&wv)[kChunk][NC], const int (&tk)[kChunk]) {
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        if (tk[j] < 0) continue;
        if (tk[j] != cur) {  // the T-loop: this block's units moved on to the next token
          if (cur >= 0) flush();
          cur = tk[j];
        }
        const float a = s_a[b][j];
#pragma unroll
        for (int g = 0; g < NC; ++g) {
          float wf[8];
          unpack8<BF>(wv[j][g], wf);
#pragma unroll
          for (int k = 0; k < 8; ++k) acc[g][k] = fmaf(a, wf[k], acc[g][k]);
        }
      }
    };
    if constexpr (NC == 1) {
      uint4 wv[kChunk][NC];
      int tk[kChunk];
      if (nchunks > 0) load_chunk(0, wv, tk);
      for (int c = 0; c < nchunks; ++c) {
        const int b = c & 1;
        uint4 nx[kChunk][NC];
        int ntk[kChunk];
        if (c + 1 < nchunks) load_chunk(c + 1, nx, ntk);  // next chunk's rows while this one's activations are made
        bar_sync(1 + b, kThreads);                        // FULL[b]
        consume(b, wv, tk);
        if (c + 2 < nchunks) bar_arrive(3 + b, kThreads);  // EMPTY[b]
        if (c + 1 < nchunks) {
#pragma unroll
          for (int j = 0; j < kChunk; ++j) {
            wv[j][0] = nx[j][0];
            tk[j] = ntk[j];
          }
        }
      }
    } else {
      for (int c = 0; c < nchunks; ++c) {
        const int b = c & 1;
        uint4 wv[kChunk][NC];
        int tk[kChunk];
        load_chunk(c, wv, tk);     // issued before the wait for the activations
        bar_sync(1 + b, kThreads);  // FULL[b]
        consume(b, wv, tk);
        if (c + 2 < nchunks) bar_arrive(3 + b, kThreads);  // EMPTY[b]
      }
    }
    if (cur >= 0) flush();
    complete<BF, NC>(p, t, iter, p.T);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_end(p, iter, clk);
  if (threadIdx.x == 0) tr.finish(p);
}

// ---------------------------------------------------------------------------------------------------------------
// T = 1, hidden = 2048 (one column group, every real model of that width): the t1_flat probe's code paths. What the general kernel pays for its
// generality and this one does not: the token read from L1 for every weight chunk (here: in registers, loaded
// once, 8 x 16 bytes a lane, next to the router's weight loads), the token of every unit and the T-loop checks in
// the down warps' inner loop, and the per-token completion loop. PF (t1path=2): each gate/up warp also prefetches
// its next unit's gate/up rows into L2 when it issues the current ones, and each down thread one 128-byte line of
// the down rows two chunks ahead, so more of the block's bytes are in flight than its registers hold.

// Router for one token: warp per expert; all of a lane's weight and input loads issued before the arithmetic.
// TAG (t1path=3): the logit is published as one 64-bit word with its launch's tag (wait_tagged_logits reads it).
template <bool BF, bool TAG = false>
__device__ __forceinline__ void router_t1(const Params& p, const uint16_t* x, int iter = 0) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nchunk = p.H / 8;
  for (int e = blockIdx.x + gridDim.x * warp; e < p.E; e += gridDim.x * kWarps) {
    const uint16_t* w = p.wr + (size_t)e * p.H;
    float acc = 0.f;
    for (int c0 = lane; c0 < nchunk; c0 += 32 * 8) {
      uint4 wv[8], xv[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int c = c0 + 32 * j;
        wv[j] = c < nchunk ? ld_keep(w + (size_t)c * 8) : make_uint4(0, 0, 0, 0);
        xv[j] = c < nchunk ? ld_keep(x + (size_t)c * 8) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) acc += dot8<BF>(wv[j], xv[j]);
    }
    acc = warp_sum(acc);
    if (lane == 0) {
      if constexpr (TAG) st_relaxed64(p.logit_tags + e, (unsigned long long)(unsigned)(iter + 1) << 32 | __float_as_uint(acc));
      else p.logits[e] = acc;
    }
  }
}

template <bool BF, bool PF, bool TAG = false>
__global__ void __launch_bounds__(kThreads, 1) k_flat1(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  Smem s(smem_raw, p);
  __shared__ float s_a[2][kChunk];
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  long long clk[2];
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_begin(clk);
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);

  const int nsu = p.NS * p.IS;
  const int U = nsu + p.K * p.I;
  const int u0 = (int)((long long)blockIdx.x * U / gridDim.x), u1 = (int)((long long)(blockIdx.x + 1) * U / gridDim.x);
  unsigned long long t0 = gt(p);
  router_t1<BF, TAG>(p, x, iter);
  prefetch_shared(p, u0, u1, nsu);
  route<TAG>(p, s, tr, t0, iter);

  const int* ids = s.ids;
  const float* wts = s.w;
  stream_units_h2048<BF, PF, false>(
      p, tr, TR_FLAT_GU, s_a, u0, u1, [&](int u) { return unit_of(p, ids, wts, u, nsu); },
      [&](int, int c) { return ld_keep(x + c * 8); }, p.out_acc, [&](int t) { complete<BF, 1>(p, t, iter, 1); });
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_end(p, iter, clk);
  if (threadIdx.x == 0) tr.finish(p);
}

// ---------------------------------------------------------------------------------------------------------------
// fp8 (e4m3 expert weights, per-output-channel scales; router, inputs and output bf16): the same design with 16
// units per hand-over (two per gate/up warp), so that the block keeps as many bytes in flight as with bf16. The
// gate/up rows are read with 16-byte loads (16 weights each). The down threads keep bf16's layout, 8 columns
// each (thread t: columns g*2048 + 8t), with 8-byte loads of all 16 rows of a chunk: 16 columns a thread (one
// 16-byte load a row) would need 16 sums besides two chunks of rows in flight, and spilled at 128 registers
// (-Xptxas -v). A down column's scale belongs to its expert: a thread keeps unscaled sums for one run of units
// of one (token, expert) — a segment: the T*NS shared ones, then one per routed slot — and scales them when the
// segment ends (at most two segments in a chunk: the plan asks inter and shared_inter >= 16).
//   k_flat1_q8 (T = 1, hidden 2048): the token staged in shared memory (no registers to hold it next to two
//   units' loads); a segment's scaled sums go to the thread's own 8 floats of shared memory, added to the fp32
//   output once at the end (as many atomics as bf16).
//   k_flat_q8<NC> (any T, hidden up to 4096): a segment's scaled sums go to the fp32 output directly.
// 128 x 128 block scales (BLK, --fp8-scales block; Params::q8blk): a segment is a run of units of one (token,
// expert) within one 128-unit block of inter (the down projection's input dimension), so that every down column
// has one scale per segment (its block (column / 128, unit / 128)) and the same flush applies it; a chunk still
// spans at most two segments (the plan asks the last block of inter and shared_inter for >= 16 units when it is
// partial). Gate/up: each 16-byte chunk (16 inputs, all in one 128-input block) has its partial dot product
// multiplied by its block's scale before it is added. --fp8-scales tensor runs as channel (the backend uploads
// each expert's scale repeated per channel). The BLK instantiations were compiled (no spills), NOT yet run on a
// GPU: csrc/BENCHMARKS.md, "Scales per tensor and per 128 x 128 block", has the commands of their first run.
constexpr int kChunkQ = 2 * kChunk;  // units per hand-over with fp8 weights
constexpr int kMinSegQ = kChunkQ;    // units of a segment at least (inter, shared_inter): the plan checks it

struct UnitQ {
  const uint8_t* g;    // gate row; the up row follows it
  const uint8_t* d;    // down row
  const float* sgu;    // channel: the gate row's scale, the up row's follows it; BLK: the gate unit's row of
                       // block scales [nHb] (s13 [e][0][i/128][*]), the up unit's is uoff further
  int uoff;            // BLK: nIb * nHb of the unit's expert (routed or shared)
  float wt;            // routing weight (1 for a shared expert)
  int tok;
  int seg;             // segment: shared (token, expert) t*NS+n, then T*NS + routed slot; BLK: each of these
                       // split into its 128-unit blocks (x nISb, x nIb)
};
template <bool BLK>
__device__ __forceinline__ UnitQ unit_q8(const Params& p, const int* ids, const float* wts, int u, int nsu) {
  UnitQ r;
  if (u < nsu) {
    const int q = u / p.IS, i = u - q * p.IS, t = q / p.NS, n = q - t * p.NS;
    r.g = p.qs13 + ((size_t)n * 2 * p.IS + 2 * (size_t)i) * p.H;
    r.d = p.qs2t + ((size_t)n * p.IS + i) * p.H;
    if constexpr (BLK) {
      const int nb = nblk128(p.IS), nh = nblk128(p.H);
      r.sgu = p.ss13 + ((size_t)n * 2 * nb + (i >> 7)) * nh;
      r.uoff = nb * nh;
      r.seg = q * nb + (i >> 7);
    } else {
      r.sgu = p.ss13 + (size_t)n * 2 * p.IS + 2 * i;
      r.seg = q;
    }
    r.wt = 1.f;
    r.tok = t;
  } else {
    u -= nsu;
    const int sl = u / p.I, i = u - sl * p.I, e = ids[sl];
    r.g = p.q13 + ((size_t)e * 2 * p.I + 2 * (size_t)i) * p.H;
    r.d = p.q2t + ((size_t)e * p.I + i) * p.H;
    if constexpr (BLK) {
      const int nb = nblk128(p.I), nh = nblk128(p.H);
      r.sgu = p.s13 + ((size_t)e * 2 * nb + (i >> 7)) * nh;
      r.uoff = nb * nh;
      r.seg = p.T * p.NS * nblk128(p.IS) + sl * nb + (i >> 7);
    } else {
      r.sgu = p.s13 + (size_t)e * 2 * p.I + 2 * i;
      r.seg = p.T * p.NS + sl;
    }
    r.wt = wts[sl];
    r.tok = sl / p.K;
  }
  return r;
}
template <bool BLK>
__device__ __forceinline__ int seg_end(const Params& p, int seg, int nsu) {  // the first unit past segment seg
  if constexpr (BLK) {
    const int nsb = nblk128(p.IS), nss = p.T * p.NS * nsb;
    if (seg < nss) {
      const int q = seg / nsb, b = seg - q * nsb;
      return q * p.IS + min(p.IS, (b + 1) * 128);
    }
    const int nb = nblk128(p.I), s = seg - nss, sl = s / nb, b = s - sl * nb;
    return nsu + sl * p.I + min(p.I, (b + 1) * 128);
  } else {
    const int nss = p.T * p.NS;
    return seg < nss ? (seg + 1) * p.IS : nsu + (seg - nss + 1) * p.I;
  }
}
// A segment's token and the scales of its down columns: channel, its row of s2 / ss2 (column col's scale at
// [col]); BLK, its expert's block scales of its 128-unit block ib: s2 [e][0][ib] (column col's scale at
// [(col / 128) * stride], stride = nIb or nISb).
template <bool BLK>
__device__ __forceinline__ const float* seg_scales(const Params& p, const int* ids, int seg, int& tok, int& stride) {
  if constexpr (BLK) {
    const int nsb = nblk128(p.IS), nss = p.T * p.NS * nsb, nh = nblk128(p.H);
    if (seg < nss) {
      const int q = seg / nsb, b = seg - q * nsb;
      tok = q / p.NS;
      stride = nsb;
      return p.ss2 + (size_t)(q - tok * p.NS) * nh * nsb + b;
    }
    const int nb = nblk128(p.I), s = seg - nss, sl = s / nb, b = s - sl * nb;
    tok = sl / p.K;
    stride = nb;
    return p.s2 + (size_t)ids[sl] * nh * nb + b;
  } else {
    const int nss = p.T * p.NS;
    stride = 0;
    if (seg < nss) {
      tok = seg / p.NS;
      return p.ss2 + (size_t)(seg - tok * p.NS) * p.H;
    }
    const int sl = seg - nss;
    tok = sl / p.K;
    return p.s2 + (size_t)ids[sl] * p.H;
  }
}
// Shared-expert rows of the block's first units, fp8: as prefetch_shared (one chunk: kChunkQ units, the same bytes).
__device__ __forceinline__ void prefetch_shared_q8(const Params& p, int u0, int u1, int nsu) {
  if (u0 >= nsu) return;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int u = u0 + warp; u < min(min(u1, nsu), u0 + kChunkQ); u += kWarps) {
    const UnitQ un = unit_q8<false>(p, nullptr, nullptr, u, nsu);  // the rows only (the same in both layouts)
    prefetch_unit_rows_l2(un.g, un.d, (size_t)p.H, lane);
  }
}
// a = w * silu(scale_g * g.x) * (scale_u * u.x) from a unit's unscaled, warp-reduced dot products; BLK: the
// block scales are in the sums already.
template <bool BLK>
__device__ __forceinline__ float act_q8(const UnitQ& un, float gs, float us) {
  if constexpr (BLK) return un.wt * silu(gs) * us;
  else return un.wt * silu(gs * __ldg(un.sgu)) * (us * __ldg(un.sgu + 1));
}
// gs += g . x and us += u . x for one 16-byte chunk cc of a unit's rows (dot16x2_q8); BLK: each multiplied by
// its 128-input block's scale (chunk cc is in block cc / 8) before it is added.
template <bool BLK>
__device__ __forceinline__ void dot_chunk_q8(const UnitQ& un, int cc, const uint4& g, const uint4& u, const uint4& x0,
                                             const uint4& x1, float& gs, float& us) {
  if constexpr (BLK) {
    float gp = 0.f, up = 0.f;
    dot16x2_q8(g, u, x0, x1, gp, up);
    gs = fmaf(gp, __ldg(un.sgu + (cc >> 3)), gs);
    us = fmaf(up, __ldg(un.sgu + un.uoff + (cc >> 3)), us);
  } else {
    dot16x2_q8(g, u, x0, x1, gs, us);
  }
}

// The 16 units of a chunk from ub (those below u1): at most two segments. A down thread keeps the first one's
// segment, the index of the first unit of the next one, and how many units are valid, not one per unit.
struct RunQ { int seg, jb, nv; };
// Their down rows (8 bytes at column g*2048 + col of each, for the NC column groups) into dst; returns the run.
// HC: hidden when the kernel knows it at compile time (the rows' offsets are then immediates), else 0.
template <int NC, int HC, bool BLK>
__device__ __forceinline__ RunQ load_rows_q8(const Params& p, const Smem& s, int ub, int u1, int nsu, int col,
                                             uint2 (&dst)[kChunkQ][NC]) {
  const size_t H = HC ? HC : p.H;
  RunQ r{-1, kChunkQ, max(0, min(kChunkQ, u1 - ub))};
  const uint8_t* d0 = nullptr;  // row j of the first segment: d0 + j*H; of the second: d1 + j*H
  const uint8_t* d1 = nullptr;
  if (r.nv > 0) {
    const UnitQ a = unit_q8<BLK>(p, s.ids, s.w, ub, nsu);
    r.seg = a.seg;
    d0 = a.d + col;
    const int end = seg_end<BLK>(p, a.seg, nsu);
    r.jb = min(kChunkQ, end - ub);
    if (r.jb < r.nv) d1 = unit_q8<false>(p, s.ids, s.w, end, nsu).d + col - (size_t)r.jb * H;
  }
#pragma unroll
  for (int j = 0; j < kChunkQ; ++j) {
    const uint8_t* row = (j < r.jb ? d0 : d1) + (size_t)j * H;
#pragma unroll
    for (int g = 0; g < NC; ++g)
      dst[j][g] = j < r.nv && g * kColsPerGroup + col < (int)H ? ld_stream8(row + g * kColsPerGroup) : make_uint2(0, 0);
  }
  return r;
}
// acc += a_j * row_j for the run's units (a: the chunk's activations), calling flush() where a segment ends
// (cur: the segment of acc). Two passes, one per segment, so that the flush is not repeated in the unrolled loop.
template <int NC, class Flush>
__device__ __forceinline__ void consume_q8(const RunQ& run, const float* a, const uint2 (&wv)[kChunkQ][NC],
                                           float (&acc)[NC][8], int& cur, Flush flush) {
  if (run.nv > 0 && run.seg != cur) { flush(); cur = run.seg; }
#pragma unroll
  for (int j = 0; j < kChunkQ; ++j)
    if (j < run.jb && j < run.nv)
#pragma unroll
      for (int g = 0; g < NC; ++g) axpy8_q8(a[j], wv[j][g], acc[g]);
  if (run.jb < run.nv) {  // the next segment starts in this chunk
    flush();
    cur = run.seg + 1;
#pragma unroll
    for (int j = 1; j < kChunkQ; ++j)
      if (j >= run.jb && j < run.nv)
#pragma unroll
        for (int g = 0; g < NC; ++g) axpy8_q8(a[j], wv[j][g], acc[g]);
  }
}

// T = 1, hidden 2048, fp8. PF (t1path=2): each gate/up warp prefetches its units of the next chunk into L2, each
// down thread one 128-byte line of the down rows two chunks ahead. BLK: 128 x 128 block scales.
template <bool PF, bool BLK, bool TAG = false>
__global__ void __launch_bounds__(kThreads, 1) k_flat1_q8(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  Smem s(smem_raw, p);
  __shared__ float s_a[2][kChunkQ];
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  long long clk[2];
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_begin(clk);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);
  constexpr int H = kColsPerGroup;  // hidden is exactly 2048: a row is 2048 bytes, 128 16-byte chunks, 4 a lane

  // The token into shared memory (s.sa, 4 KB) in the order the gate/up lanes read it: lane l's 16-byte word h of
  // its chunk j (inputs (l + 32j)*16 + 8h ..) at [(2j + h)*32 + l], so a warp's read is conflict-free.
  uint4* xs = reinterpret_cast<uint4*>(s.sa);
  if (threadIdx.x < H / 8) {
    const int q = threadIdx.x, c = q >> 1, h = q & 1;
    xs[((c >> 5) * 2 + h) * 32 + (c & 31)] = ld_keep(x + q * 8);
  }
  const int nsu = p.NS * p.IS;
  const int U = nsu + p.K * p.I;
  const int u0 = (int)((long long)blockIdx.x * U / gridDim.x), u1 = (int)((long long)(blockIdx.x + 1) * U / gridDim.x);
  unsigned long long t0 = gt(p);
  router_t1<true, TAG>(p, x, iter);
  prefetch_shared_q8(p, u0, u1, nsu);
  route<TAG>(p, s, tr, t0, iter);  // ends with __syncthreads: xs is visible

  const int nchunks = (u1 - u0 + kChunkQ - 1) / kChunkQ;
  if (warp < kGuWarps) {
    t0 = gt(p);
    for (int c = 0; c < nchunks; ++c) {
      const int b = c & 1;
      if (c >= 2) bar_sync(3 + b, kThreads);  // EMPTY[b]
      UnitQ un[2];
      bool ok[2];
#pragma unroll
      for (int v = 0; v < 2; ++v) {  // this warp's two units
        const int u = u0 + c * kChunkQ + v * kChunk + warp;
        ok[v] = u < u1;
        if (ok[v]) un[v] = unit_q8<BLK>(p, s.ids, s.w, u, nsu);
        if constexpr (PF) {
          if (u + kChunkQ < u1)  // the same unit of the next chunk: gate and up rows, adjacent, 4096 bytes
            prefetch_l2((const char*)unit_q8<false>(p, s.ids, s.w, u + kChunkQ, nsu).g + lane * 128);
        }
      }
      uint4 gv[2][4], uv[2][4];  // both units' loads issued before any arithmetic
#pragma unroll
      for (int v = 0; v < 2; ++v)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          gv[v][j] = ok[v] ? ld_stream(un[v].g + (lane + 32 * j) * 16) : make_uint4(0, 0, 0, 0);
          uv[v][j] = ok[v] ? ld_stream(un[v].g + H + (lane + 32 * j) * 16) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
      for (int v = 0; v < 2; ++v) {
        float gs = 0.f, us = 0.f;
#pragma unroll
        for (int j = 0; j < 4; ++j)  // chunk lane + 32j
          dot_chunk_q8<BLK>(un[v], lane + 32 * j, gv[v][j], uv[v][j], xs[(2 * j) * 32 + lane], xs[(2 * j + 1) * 32 + lane], gs, us);
        gs = warp_sum(gs);
        us = warp_sum(us);
        if (lane == 0) s_a[b][v * kChunk + warp] = ok[v] ? act_q8<BLK>(un[v], gs, us) : 0.f;
      }
      bar_arrive(1 + b, kThreads);  // FULL[b]
    }
    if (threadIdx.x == 0) tr.add(TR_FLAT_GU, -1, t0, gt(p));
  } else {
    const int t = threadIdx.x - kGuWarps * 32;  // 0..255: columns 8t .. 8t+7
    const int col = t * 8;
    float4* mine = reinterpret_cast<float4*>(s.red + col);  // the scaled sums (s.red is free after the routing)
    mine[0] = mine[1] = make_float4(0.f, 0.f, 0.f, 0.f);
    float acc[1][8];
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[0][k] = 0.f;
    int cur = -1;  // segment of acc
    auto flush = [&]() {
      if (cur < 0) return;
      int tok, stride;
      const float* scp = seg_scales<BLK>(p, s.ids, cur, tok, stride);
      const float4* sc = reinterpret_cast<const float4*>(scp + col);
      const float kb = BLK ? __ldg(scp + (col >> 7) * stride) : 0.f;  // BLK: one scale for the thread's 8 columns
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        const float4 k4 = BLK ? make_float4(kb, kb, kb, kb) : __ldg(sc + q);
        float4 m = mine[q];
        m.x = fmaf(acc[0][4 * q], k4.x, m.x);
        m.y = fmaf(acc[0][4 * q + 1], k4.y, m.y);
        m.z = fmaf(acc[0][4 * q + 2], k4.z, m.z);
        m.w = fmaf(acc[0][4 * q + 3], k4.w, m.w);
        mine[q] = m;
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[0][k] = 0.f;
    };
    uint2 wv[kChunkQ][1];
    RunQ run{-1, kChunkQ, 0};
    if (nchunks > 0) run = load_rows_q8<1, H, BLK>(p, s, u0, u1, nsu, col, wv);
    for (int c = 0; c < nchunks; ++c) {
      const int b = c & 1;
      uint2 nx[kChunkQ][1];
      RunQ nrun{-1, kChunkQ, 0};
      if (c + 1 < nchunks) nrun = load_rows_q8<1, H, BLK>(p, s, u0 + (c + 1) * kChunkQ, u1, nsu, col, nx);  // next chunk's rows
      if constexpr (PF) {  // chunk c+2's down rows into L2: unit t / 16 of it, line t % 16 of that row
        const int u = u0 + (c + 2) * kChunkQ + (t >> 4);
        if (u < u1) prefetch_l2((const char*)unit_q8<false>(p, s.ids, s.w, u, nsu).d + (t & 15) * 128);
      }
      bar_sync(1 + b, kThreads);  // FULL[b]
      consume_q8<1>(run, s_a[b], wv, acc, cur, flush);
      if (c + 2 < nchunks) bar_arrive(3 + b, kThreads);  // EMPTY[b]
      if (c + 1 < nchunks) {
#pragma unroll
        for (int j = 0; j < kChunkQ; ++j) wv[j][0] = nx[j][0];
        run = nrun;
      }
    }
    flush();
    if (nchunks > 0) {
      float* d = p.out_acc + col;
      red_add4(d, mine[0]);
      red_add4(d + 4, mine[1]);
    }
    complete<true, 1>(p, t, iter, 1);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_end(p, iter, clk);
  if (threadIdx.x == 0) tr.finish(p);
}

// The general kernel with fp8 weights: any T, hidden a multiple of 64 up to 2048 * NC. BLK: 128 x 128 block scales.
template <int NC, bool BLK>
__global__ void __launch_bounds__(kThreads, 1) k_flat_q8(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  Smem s(smem_raw, p);
  __shared__ float s_a[2][kChunkQ];
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  long long clk[2];
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_begin(clk);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);

  const int nsu = p.T * p.NS * p.IS;
  const int U = nsu + p.T * p.K * p.I;
  const int u0 = (int)((long long)blockIdx.x * U / gridDim.x), u1 = (int)((long long)(blockIdx.x + 1) * U / gridDim.x);
  unsigned long long t0 = gt(p);
  router_warps<true>(p, x);
  prefetch_shared_q8(p, u0, u1, nsu);
  route(p, s, tr, t0);

  const int nchunks = (u1 - u0 + kChunkQ - 1) / kChunkQ;
  const int nchunk16 = p.H / 16;  // 16-byte chunks of an fp8 row
  if (warp < kGuWarps) {
    t0 = gt(p);
    for (int c = 0; c < nchunks; ++c) {
      const int b = c & 1;
      if (c >= 2) bar_sync(3 + b, kThreads);  // EMPTY[b]
#pragma unroll
      for (int v = 0; v < 2; ++v) {  // this warp's two units, one after the other (the token is read from L1)
        const int u = u0 + c * kChunkQ + v * kChunk + warp;
        float a = 0.f;
        if (u < u1) {
          const UnitQ un = unit_q8<BLK>(p, s.ids, s.w, u, nsu);
          const uint16_t* xt = x + (size_t)un.tok * p.H;
          float gs = 0.f, us = 0.f;
          for (int c0 = lane; c0 < nchunk16; c0 += 32 * 4) {
            uint4 gv[4], uv[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              const int cc = c0 + 32 * j;
              gv[j] = cc < nchunk16 ? ld_stream(un.g + (size_t)cc * 16) : make_uint4(0, 0, 0, 0);
              uv[j] = cc < nchunk16 ? ld_stream(un.g + p.H + (size_t)cc * 16) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              const int cc = c0 + 32 * j;
              if (cc < nchunk16)
                dot_chunk_q8<BLK>(un, cc, gv[j], uv[j], ld_ro(xt + (size_t)cc * 16), ld_ro(xt + (size_t)cc * 16 + 8), gs, us);
            }
          }
          a = act_q8<BLK>(un, warp_sum(gs), warp_sum(us));
        }
        if (lane == 0) s_a[b][v * kChunk + warp] = a;
      }
      bar_arrive(1 + b, kThreads);  // FULL[b]
    }
    if (threadIdx.x == 0) tr.add(TR_FLAT_GU, -1, t0, gt(p));
  } else {
    const int t = threadIdx.x - kGuWarps * 32;  // 0..255: columns g*2048 + 8t .. +7
    float acc[NC][8];
#pragma unroll
    for (int g = 0; g < NC; ++g)
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[g][k] = 0.f;
    int cur = -1;  // segment of acc
    auto flush = [&]() {  // the segment's scaled sums into the fp32 output of its token
      if (cur < 0) return;
      int tok, stride;
      const float* sc = seg_scales<BLK>(p, s.ids, cur, tok, stride);
#pragma unroll
      for (int g = 0; g < NC; ++g) {
        const int col = g * kColsPerGroup + t * 8;
        if (col < p.H) {
          float* d = p.out_acc + (size_t)tok * p.H + col;
          const float kb = BLK ? __ldg(sc + (col >> 7) * stride) : 0.f;  // BLK: one scale for the 8 columns
#pragma unroll
          for (int q = 0; q < 2; ++q) {
            const float4 k4 = BLK ? make_float4(kb, kb, kb, kb) : __ldg(reinterpret_cast<const float4*>(sc + col) + q);
            red_add4(d + 4 * q, make_float4(acc[g][4 * q] * k4.x, acc[g][4 * q + 1] * k4.y, acc[g][4 * q + 2] * k4.z,
                                            acc[g][4 * q + 3] * k4.w));
          }
        }
#pragma unroll
        for (int k = 0; k < 8; ++k) acc[g][k] = 0.f;
      }
    };
    if constexpr (NC == 1) {  // the next chunk's rows in flight while this one's are consumed
      uint2 wv[kChunkQ][NC];
      RunQ run{-1, kChunkQ, 0};
      if (nchunks > 0) run = load_rows_q8<NC, 0, BLK>(p, s, u0, u1, nsu, t * 8, wv);
      for (int c = 0; c < nchunks; ++c) {
        const int b = c & 1;
        uint2 nx[kChunkQ][NC];
        RunQ nrun{-1, kChunkQ, 0};
        if (c + 1 < nchunks) nrun = load_rows_q8<NC, 0, BLK>(p, s, u0 + (c + 1) * kChunkQ, u1, nsu, t * 8, nx);
        bar_sync(1 + b, kThreads);  // FULL[b]
        consume_q8<NC>(run, s_a[b], wv, acc, cur, flush);
        if (c + 2 < nchunks) bar_arrive(3 + b, kThreads);  // EMPTY[b]
        if (c + 1 < nchunks) {
#pragma unroll
          for (int j = 0; j < kChunkQ; ++j) wv[j][0] = nx[j][0];
          run = nrun;
        }
      }
    } else {  // no registers for two chunks: a chunk's rows issued before the wait for its activations
      for (int c = 0; c < nchunks; ++c) {
        const int b = c & 1;
        uint2 wv[kChunkQ][NC];
        const RunQ run = load_rows_q8<NC, 0, BLK>(p, s, u0 + c * kChunkQ, u1, nsu, t * 8, wv);
        bar_sync(1 + b, kThreads);  // FULL[b]
        consume_q8<NC>(run, s_a[b], wv, acc, cur, flush);
        if (c + 2 < nchunks) bar_arrive(3 + b, kThreads);  // EMPTY[b]
      }
    }
    flush();
    complete<true, NC>(p, t, iter, p.T);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_end(p, iter, clk);
  if (threadIdx.x == 0) tr.finish(p);
}

using KernelFn = void (*)(Params);
int groups_of(int H) { return H <= kColsPerGroup ? 1 : 2; }
// path: 0 the general kernel; 1, 2 the T = 1 kernel without / with its L2 prefetch (T = 1, hidden 2048 only);
// 3 the T = 1 kernel without the prefetch and without the grid barrier (tagged logits; E a multiple of 4).
// fp8: the same paths with e4m3 weights (bf16 activations); blk: their 128 x 128 block scales.
KernelFn kernel_of(bool bf, bool fp8, bool blk, int H, int path) {
  if (fp8 && blk) {
    if (path == 1) return k_flat1_q8<false, true>;
    if (path == 2) return k_flat1_q8<true, true>;
    if (path == 3) return k_flat1_q8<false, true, true>;
    return groups_of(H) == 1 ? k_flat_q8<1, true> : k_flat_q8<2, true>;
  }
  if (fp8) {
    if (path == 1) return k_flat1_q8<false, false>;
    if (path == 2) return k_flat1_q8<true, false>;
    if (path == 3) return k_flat1_q8<false, false, true>;
    return groups_of(H) == 1 ? k_flat_q8<1, false> : k_flat_q8<2, false>;
  }
  if (path == 1) return bf ? k_flat1<true, false> : k_flat1<false, false>;
  if (path == 2) return bf ? k_flat1<true, true> : k_flat1<false, true>;
  if (path == 3) return bf ? k_flat1<true, false, true> : k_flat1<false, false, true>;
  const int nc = groups_of(H);
  if (bf) return nc == 1 ? k_flat<true, 1> : k_flat<true, 2>;
  return nc == 1 ? k_flat<false, 1> : k_flat<false, 2>;
}

std::string plan(const PlanCtx& ctx, TunableSet& tun, Plan& pl) {
  const Shape& s = ctx.s;
  if (s.hidden > 2 * kColsPerGroup)  // the table says so too; a guard for a table edited past the code
    return "hidden (" + std::to_string(s.hidden) + ") must be <= " + std::to_string(2 * kColsPerGroup) + " (8 columns per down thread, 2 groups)";
  pl.persistent = true;
  pl.threads = kThreads;
  // t1path applies where the T = 1 kernel can run (one token, hidden 2048); elsewhere the general kernel.
  pl.path = (ctx.T == 1 && s.hidden == kColsPerGroup) ? (int)tun.get("t1path") : 0;
  if (pl.path == 3 && s.experts % 4 != 0) pl.path = 1;  // the tagged wait feeds the rank top-k, which reads float4s
  const bool blk = ctx.fp8 && ctx.scales == Fp8Scales::Block;
  if (ctx.fp8) {  // a chunk's 16 units span at most two segments (load_rows_q8)
    if (s.inter < kMinSegQ) return "fp8: inter (" + std::to_string(s.inter) + ") must be >= " + std::to_string(kMinSegQ) + " (a chunk's units span at most two experts)";
    if (s.shared_experts > 0 && s.shared_inter < kMinSegQ) return "fp8: shared_inter (" + std::to_string(s.shared_inter) + ") must be >= " + std::to_string(kMinSegQ);
    // Block scales: a segment is also cut at every 128 units; a partial last block must hold a chunk's worth.
    auto last_block = [](int n) { return n % kFp8Block; };
    for (const auto& [name, n] : {std::pair<const char*, int>{"inter", s.inter}, {"shared_inter", s.shared_experts > 0 ? s.shared_inter : 0}})
      if (blk && n > 0 && last_block(n) != 0 && last_block(n) < kMinSegQ)
        return std::string("fp8_scales block: ") + name + " (" + std::to_string(n) + ") must be a multiple of " + std::to_string(kFp8Block) +
               " or leave >= " + std::to_string(kMinSegQ) + " units in its last 128-unit block (a chunk's units span at most two segments)";
  }
  // fp8 at T = 1: the token staged in shared memory (hidden bf16 values, s.sa).
  pl.sl = SmemLayout{ctx.T * s.topk, s.experts, ctx.fp8 && pl.path != 0 ? s.hidden / 2 : 0, 0};
  std::string why = shared_memory_reason(ctx, pl.sl);
  if (!why.empty()) return why;
  const int occ = blocks_per_sm((const void*)kernel_of(ctx.bf, ctx.fp8, blk, s.hidden, pl.path), kThreads, pl.smem());
  if (occ < 1) return "no block of " + std::to_string(kThreads) + " threads with " + std::to_string(pl.smem()) + " bytes of shared memory fits on an SM";
  pl.grid = ctx.prop.multiProcessorCount;  // one block per SM: the whole grid co-resides (grid barrier)
  return "";
}

void launch(const Plan& pl, const Params& p, bool bf, cudaStream_t st) {
  kernel_of(bf, pl.fp8, pl.q8blk, p.H, pl.path)<<<pl.grid, pl.threads, pl.smem(), st>>>(p);
  CUDA_CHECK_LAUNCH("k_flat");
}

}  // namespace

const Family kFlatFamily = {"flat", plan, launch};

}  // namespace moe
