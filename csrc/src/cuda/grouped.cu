// grouped.cu — family "grouped": the whole layer in one persistent launch in which every weight byte of an
// active expert is read once, whatever the number of tokens routed to it, and multiplied against all of them
// with tensor cores (mma.sync m16n8k16, fp32 accumulation). persistent-flat re-streams an expert's rows for
// every token routed to it (a decode kernel: about four times the layer's bytes at T = 64), split-K once per group
// of 4 of its tokens on CUDA cores; at T = 64 both were slower than separate (csrc/BENCHMARKS.md,
// "persistent-grouped").
//
//   1. Router on tensor cores too: units of 8 experts by 32 tokens (rows_by_tokens), then a grid barrier (ctrl
//      C_ROUTER).
//   2. Top-k + softmax, warp per token (logits in registers; routing.cuh topk_warp_regs), the tokens spread
//      over the grid, into topk_ids / topk_w; a grid barrier (ctrl C_TASK); every block reads them all and builds
//      the per-expert token lists (routing.cuh build_lists).
//      Groups: the active experts (ascending), then the shared experts (every token, weight 1).
//   3. Gate/up units, (group, 16 intermediate units): the group's 32 interleaved gate/up rows, 4 n-tiles of 8
//      rows in every warp, the inputs in 16 k-parts (one per warp). The tokens are the M dimension (tiles of 16;
//      an expert with more than 16 tokens takes another pass over the rows), the weight rows the N dimension: a
//      lane streams 16 bytes of each of its 4 rows per 32 inputs (the k order inside an mma is free, so a lane's 8
//      consecutive inputs are two mma k-steps' fragments, and the tokens' inputs are read in the same order from
//      L1, once for the 4 n-tiles). The 16 k-parts are summed in shared memory, and the lane that holds a gate and
//      its up makes h = w * silu(gate) * up, stored in bf16/fp16 per (slot, unit).
//   4. A grid barrier (ctrl C_DONE): every h is written.
//   5. Down units, (group, 64 hidden columns): warp w takes the k-steps (16 intermediate rows) w, w + 16, ... of
//      w2t's rows; a lane loads 16 bytes (8 columns) of 4 rows per k-step and pairs rows with byte permutes into
//      the B fragments of 8 mmas (n-tile j: columns 8g + j). The 16 warps' partial sums meet in shared memory
//      and are added into the fp32 output with vector reductions.
//   6. A grid barrier (ctrl C_K1), then every block converts its share of the output and clears it; the last
//      block to finish resets the control words and counts the launch.
// Tunables: order (0: each block a contiguous range of units; 1: round-robin, b, b + grid, .., so that one
// expert's units, which cost more when it has more tokens, spread over many blocks) and prefetch (1: each block
// prefetches its next unit's rows into L2 before it streams the current one).
#include "../backend.h"
#include "cuda_check.cuh"
#include "families.h"
#include "gemv.cuh"
#include "grid_barrier.cuh"
#include "routing.cuh"
#include "trace.cuh"

namespace moe {

namespace {

constexpr int kGuUnits = 16;   // intermediate units per gate/up unit (32 w13 rows: 4 n-tiles of 8)
constexpr int kDnCols = 64;    // hidden columns per down unit
constexpr int kGuLoads = 8;    // 16-byte weight loads in flight per lane (gate/up)
constexpr int kDnSteps = 2;    // down k-steps (16 rows each) in flight per warp: 8 16-byte loads a lane
constexpr int kMtGu = 1;       // 16-token M tiles per pass over a gate/up unit's rows (more tokens: another pass)
constexpr int kMtRt = 2;       // the same for a router unit (32 tokens a unit)
constexpr int kMtDn = 1;       // the same for a down unit (16 tokens); more tokens: another pass
constexpr int kPartStride = kDnCols + 4;  // floats per token row of a warp's partial down sums (bank spread)
constexpr int kPartFloats = kWarps * 16 * kPartStride;  // shared memory of the down partials (one M tile)

// D += A * B, m16n8k16, fp32 accumulators; A row-major 16 x 16 (4 registers), B column-major 16 x 8 (2).
template <bool BF>
__device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (BF)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
  __trap();  // the plan refuses devices below compute capability 8.0
#endif
}

// One group of the layer: an active routed expert, or a shared expert (every token, weight 1).
struct Group {
  const uint16_t* w13;  // its [2*inter][H] gate/up rows
  const uint16_t* w2t;  // its [inter][H] down rows
  uint16_t* h;          // activations, rows of inter: routed, by slot (token * K + pick); shared, by token
  const int* slots;     // routed: its slots, grouped by expert; null: shared (token j)
  int inter, cnt;
  __device__ int tok(int j, int K) const { return slots ? slots[j] / K : j; }
  // Row j's activations. By slot, not by position in the list: every block builds the lists with atomics, so
  // the order of an expert's tokens differs between blocks (the gate/up unit that wrote a row and the down unit
  // that reads it may be on different blocks).
  __device__ uint16_t* hrow(int j) const { return h + (size_t)(slots ? slots[j] : j) * inter; }
};

// Groups: a < nact the active experts (s.active order), then the NS shared experts. Activations: hbuf (p.act)
// [T*K][I] routed, by slot; p.act_s [NS][T][IS] shared; 16-bit values in buffers sized for floats.
__device__ __forceinline__ Group group_of(const Params& p, const Smem& s, uint16_t* hbuf, int nact, int a) {
  Group g;
  if (a < nact) {
    const int e = s.active[a], off = s.off[e];
    g.w13 = p.w13 + (size_t)e * 2 * p.I * p.H;
    g.w2t = p.w2t + (size_t)e * p.I * p.H;
    g.h = hbuf;
    g.slots = s.slots + off;
    g.inter = p.I;
    g.cnt = s.cnt[e];
  } else {
    const int n = a - nact;
    g.w13 = p.ws13 + (size_t)n * 2 * p.IS * p.H;
    g.w2t = p.ws2t + (size_t)n * p.IS * p.H;
    g.h = reinterpret_cast<uint16_t*>(p.act_s) + (size_t)n * p.T * p.IS;
    g.slots = nullptr;
    g.inter = p.IS;
    g.cnt = p.T;
  }
  return g;
}

// A grid barrier on control word `w` (every block resident: one per SM).
__device__ __forceinline__ void grid_sync(const Params& p, int w, int fail_code) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(&p.ctrl[w], 1);
    long long spins = 0;
    while (ld_acquire(&p.ctrl[w]) < (int)gridDim.x)
      if (++spins > kSpinLimit) spin_fail(p, fail_code);
    __threadfence();
  }
  __syncthreads();
}

// This block's units of a phase of U: order 0 a contiguous range (U * b / grid ..), 1 round-robin (b, b + grid, ..).
struct BlockUnits {
  int n, first, step;
  __device__ BlockUnits(int U, int order) {
    if (order) {
      first = blockIdx.x; step = gridDim.x;
      n = U > first ? (U - first + step - 1) / step : 0;
    } else {
      first = (int)((long long)blockIdx.x * U / gridDim.x); step = 1;
      n = (int)((long long)(blockIdx.x + 1) * U / gridDim.x) - first;
    }
  }
  __device__ int at(int k) const { return first + k * step; }
};

__device__ __forceinline__ uint4 ld_or_zero(const uint16_t* q) { return q ? ld_ro(q) : make_uint4(0, 0, 0, 0); }

// Rows by tokens on tensor cores, one block: 8 * NTS * NTW rows from `rows` (row-major, H long; rows >= nrows
// read as zero) against the tokens of M tiles [mt0, mt1) (16 each; token j < cnt, xrow(j) its input row). Warp w
// takes the NTW n-tiles (8 rows each) (w % NTS) * NTW .. and the 32-input chunks c with c % KP == w / NTS (KP =
// 16 / NTS k-parts): a lane streams 16 bytes of row g of each of its n-tiles per chunk, which are two mma k-steps'
// B fragments (the k order inside an mma is free, and the tokens' inputs are read in the same order, once per
// chunk for all of the warp's n-tiles). Per M tile the k-parts meet in red (kWarps * NTW * 128 floats), and warp
// n (n < NTS * NTW) sums n-tile n and calls emit(m, n, d): d[0], d[1] = token 16 m + g's sums of rows 2 t4,
// 2 t4 + 1 of n-tile n; d[2], d[3] token + 8. KEEP: rows read evict-last (the router's), else evict-first.
template <bool BF, bool KEEP, int NTS, int NTW, int MTG, class XRow, class Emit>
__device__ __forceinline__ void rows_by_tokens(const uint16_t* rows, int nrows, int H, int mt0, int mt1, int cnt, XRow xrow, float* red, Emit emit) {
  constexpr int KP = kWarps / NTS, JC = kGuLoads / NTW;  // chunks per batch of loads
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
  const int ns = warp % NTS, kp = warp / NTS;
  const int nkc = H / 32;
  const uint16_t* wrow[NTW];
  bool row_ok[NTW];
#pragma unroll
  for (int w = 0; w < NTW; ++w) {
    const int r = (ns * NTW + w) * 8 + g;
    row_ok[w] = r < nrows;
    wrow[w] = rows + (size_t)(row_ok[w] ? r : 0) * H + t4 * 8;
  }
  for (int m0 = mt0; m0 < mt1; m0 += MTG) {
    const uint16_t* xr[MTG][2];
#pragma unroll
    for (int mt = 0; mt < MTG; ++mt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int j = (m0 + mt) * 16 + g + 8 * hh;
        xr[mt][hh] = (m0 + mt < mt1 && j < cnt) ? xrow(j) + t4 * 8 : nullptr;
      }
    float acc[MTG][NTW][4];
#pragma unroll
    for (int mt = 0; mt < MTG; ++mt)
#pragma unroll
      for (int w = 0; w < NTW; ++w)
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[mt][w][r] = 0.f;
    for (int c0 = kp; c0 < nkc; c0 += KP * JC) {
      uint4 wv[JC][NTW];
#pragma unroll
      for (int j = 0; j < JC; ++j)
#pragma unroll
        for (int w = 0; w < NTW; ++w) {
          const int c = c0 + KP * j;
          wv[j][w] = (c < nkc && row_ok[w]) ? (KEEP ? ld_keep(wrow[w] + (size_t)c * 32) : ld_stream(wrow[w] + (size_t)c * 32))
                                            : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
      for (int j = 0; j < JC; ++j) {
        const int c = c0 + KP * j;
        if (c >= nkc) break;
#pragma unroll
        for (int mt = 0; mt < MTG; ++mt) {
          if (m0 + mt >= mt1) break;
          const uint4 xa = ld_or_zero(xr[mt][0] ? xr[mt][0] + (size_t)c * 32 : nullptr);
          const uint4 xb = ld_or_zero(xr[mt][1] ? xr[mt][1] + (size_t)c * 32 : nullptr);
#pragma unroll
          for (int w = 0; w < NTW; ++w) {
            mma16816<BF>(acc[mt][w], xa.x, xb.x, xa.y, xb.y, wv[j][w].x, wv[j][w].y);
            mma16816<BF>(acc[mt][w], xa.z, xb.z, xa.w, xb.w, wv[j][w].z, wv[j][w].w);
          }
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < MTG; ++mt) {
      if (m0 + mt >= mt1) break;
#pragma unroll
      for (int w = 0; w < NTW; ++w)
        *reinterpret_cast<float4*>(red + (((size_t)warp * NTW + w) * 32 + lane) * 4) = make_float4(acc[mt][w][0], acc[mt][w][1], acc[mt][w][2], acc[mt][w][3]);
      __syncthreads();
      if (warp < NTS * NTW) {  // n-tile `warp`: of warps (warp / NTW) + NTS q, their n-tile warp % NTW
        float d[4] = {0.f, 0.f, 0.f, 0.f};
        for (int q = 0; q < KP; ++q) {
          const int src = warp / NTW + NTS * q;
          const float4 v = *reinterpret_cast<const float4*>(red + (((size_t)src * NTW + warp % NTW) * 32 + lane) * 4);
          d[0] += v.x; d[1] += v.y; d[2] += v.z; d[3] += v.w;
        }
        emit(m0 + mt, warp, d);
      }
      __syncthreads();
    }
  }
}

// Gate/up unit: 16 intermediate units [i0, i0 + 16) of group gr (its 32 interleaved rows: 4 n-tiles, all in
// every warp, 16 k-parts), all its tokens. The lane of (token row g, n 2 t4) holds gate and up of unit
// i0 + 4 nt + t4: h = w * silu(gate) * up. red: kWarps * 4 * 128 floats.
template <bool BF>
__device__ __forceinline__ void gate_up_unit(const Params& p, const Group& gr, const float* wts, int i0, const uint16_t* x, float* red) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  rows_by_tokens<BF, false, 1, 4, kMtGu>(
      gr.w13 + (size_t)2 * i0 * p.H, 2 * (gr.inter - i0), p.H, 0, (gr.cnt + 15) / 16, gr.cnt, [&](int j) { return x + (size_t)gr.tok(j, p.K) * p.H; }, red,
      [&](int m, int nt, const float (&d)[4]) {
        const int i = i0 + nt * 4 + t4;
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int j = m * 16 + g + 8 * hh;
          if (j < gr.cnt && i < gr.inter) {
            const float w = gr.slots ? wts[gr.slots[j]] : 1.f;
            gr.hrow(j)[i] = to_store<BF>(w * silu(d[2 * hh]) * d[2 * hh + 1]);
          }
        }
      });
}

// Router unit: 8 experts (16 k-parts) by the tokens of M tiles [mt0, mt0 + kMtRt); logits [T][E].
template <bool BF>
__device__ __forceinline__ void router_unit(const Params& p, int e0, int mt0, const uint16_t* x, float* red) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  rows_by_tokens<BF, true, 1, 1, kMtRt>(
      p.wr + (size_t)e0 * p.H, p.E - e0, p.H, mt0, min(mt0 + kMtRt, (p.T + 15) / 16), p.T, [&](int j) { return x + (size_t)j * p.H; }, red,
      [&](int m, int, const float (&d)[4]) {
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int t = m * 16 + g + 8 * hh;
#pragma unroll
          for (int q = 0; q < 2; ++q) {
            const int e = e0 + 2 * t4 + q;
            if (t < p.T && e < p.E) p.logits[(size_t)t * p.E + e] = d[2 * hh + q];
          }
        }
      });
}

// Down unit: hidden columns [c0, c0 + 64) of group gr, all its tokens, into out_acc. part: kPartFloats.
template <bool BF>
__device__ __forceinline__ void down_unit(const Params& p, const Group& gr, int c0, float* part) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
  const int nks = (gr.inter + 15) / 16;  // k-steps; warp w takes w, w + 16, ...
  const uint16_t* wcol = gr.w2t + c0 + 8 * g;
  const int nmt = (gr.cnt + 15) / 16;
  for (int m0 = 0; m0 < nmt; m0 += kMtDn) {
    float acc[kMtDn][8][4];
#pragma unroll
    for (int mt = 0; mt < kMtDn; ++mt)
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[mt][j][r] = 0.f;
    for (int ks0 = warp; ks0 < nks; ks0 += kWarps * kDnSteps) {
      uint4 wv[kDnSteps][4];  // rows i + 2 t4, + 1, + 8, + 9 of k-step ks0 + 16 s
#pragma unroll
      for (int s = 0; s < kDnSteps; ++s) {
        const int ib = (ks0 + kWarps * s) * 16 + 2 * t4;
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int i = ib + (r & 1) + 8 * (r >> 1);
          wv[s][r] = i < gr.inter ? ld_stream(wcol + (size_t)i * p.H) : make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int s = 0; s < kDnSteps; ++s) {
        const int ks = ks0 + kWarps * s;
        if (ks >= nks) break;
        const int ia = ks * 16 + 2 * t4;
#pragma unroll
        for (int mt = 0; mt < kMtDn; ++mt) {
          if (m0 + mt >= nmt) break;
          uint32_t a[4];  // h rows g and g + 8 of the tile, units ia, ia + 1 and ia + 8, ia + 9
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const int j = (m0 + mt) * 16 + g + 8 * (q & 1), i = ia + 8 * (q >> 1);
            a[q] = (j < gr.cnt && i < gr.inter) ? __ldcg(reinterpret_cast<const unsigned*>(gr.hrow(j) + i)) : 0u;
          }
          const uint32_t r0[4] = {wv[s][0].x, wv[s][0].y, wv[s][0].z, wv[s][0].w};
          const uint32_t r1[4] = {wv[s][1].x, wv[s][1].y, wv[s][1].z, wv[s][1].w};
          const uint32_t r8[4] = {wv[s][2].x, wv[s][2].y, wv[s][2].z, wv[s][2].w};
          const uint32_t r9[4] = {wv[s][3].x, wv[s][3].y, wv[s][3].z, wv[s][3].w};
#pragma unroll
          for (int j = 0; j < 8; ++j) {  // n-tile j: column 8 g + j of rows (2 t4, 2 t4 + 1), (2 t4 + 8, + 9)
            const unsigned sel = (j & 1) ? 0x7632u : 0x5410u;
            const uint32_t b0 = __byte_perm(r0[j >> 1], r1[j >> 1], sel);
            const uint32_t b1 = __byte_perm(r8[j >> 1], r9[j >> 1], sel);
            mma16816<BF>(acc[mt][j], a[0], a[1], a[2], a[3], b0, b1);
          }
        }
      }
    }
    // acc[mt][j]: (token row g, column 16 t4 + j), (g, 16 t4 + 8 + j), then rows g + 8. Sum the 16 warps.
#pragma unroll
    for (int mt = 0; mt < kMtDn; ++mt) {
      if (m0 + mt >= nmt) break;
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        float* row = part + ((size_t)warp * 16 + g + 8 * hh) * kPartStride + 16 * t4;
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          reinterpret_cast<float4*>(row + 8 * q)[0] = make_float4(acc[mt][0][2 * hh + q], acc[mt][1][2 * hh + q], acc[mt][2][2 * hh + q], acc[mt][3][2 * hh + q]);
          reinterpret_cast<float4*>(row + 8 * q)[1] = make_float4(acc[mt][4][2 * hh + q], acc[mt][5][2 * hh + q], acc[mt][6][2 * hh + q], acc[mt][7][2 * hh + q]);
        }
      }
      __syncthreads();
      if (threadIdx.x < 16 * (kDnCols / 4)) {
        const int rr = threadIdx.x / (kDnCols / 4), c4 = (threadIdx.x % (kDnCols / 4)) * 4;
        const int j = (m0 + mt) * 16 + rr;
        if (j < gr.cnt) {
          float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 4
          for (int w = 0; w < kWarps; ++w) {
            const float4 v = *reinterpret_cast<const float4*>(part + ((size_t)w * 16 + rr) * kPartStride + c4);
            sum.x += v.x; sum.y += v.y; sum.z += v.z; sum.w += v.w;
          }
          red_add4(p.out_acc + (size_t)gr.tok(j, p.K) * p.H + c0 + c4, sum);
        }
      }
      __syncthreads();
    }
  }
}

template <bool BF>
__global__ void __launch_bounds__(kThreads, 1) k_grouped(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  Smem s(smem_raw, p);
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  long long clk[2];
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_begin(clk);
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);
  uint16_t* hbuf = reinterpret_cast<uint16_t*>(p.act);

  unsigned long long t0 = gt(p);
  const int nrt = (p.E + 7) / 8, nrm = ((p.T + 15) / 16 + kMtRt - 1) / kMtRt;  // router units: n-tiles x token passes
  for (int u = blockIdx.x; u < nrt * nrm; u += gridDim.x) router_unit<BF>(p, (u % nrt) * 8, (u / nrt) * kMtRt, x, s.red);
  t0 = router_barrier(p, tr, t0, 30);
  // Top-k of token t by warp (t / grid) % 16 of block t % grid, into topk_ids / topk_w; a grid barrier; then
  // every block reads all of them and builds the lists.
  topk_warp_regs(p, p.topk_ids, p.topk_w, blockIdx.x, gridDim.x);
  if (threadIdx.x == 0) { const unsigned long long t1 = gt(p); tr.add(TR_TOPK_ONLY, -1, t0, t1); t0 = t1; }
  grid_sync(p, C_TASK, 33);
  if (threadIdx.x == 0) { const unsigned long long t1 = gt(p); tr.add(TR_BARRIER, -1, t0, t1); t0 = t1; }
  for (int i = threadIdx.x; i < p.T * p.K; i += blockDim.x) { s.ids[i] = __ldcg(p.topk_ids + i); s.w[i] = __ldcg(p.topk_w + i); }
  __syncthreads();
  const int nact = build_lists(p, s.ids, s.cnt, s.off, s.fill, s.slots, s.active);
  if (threadIdx.x == 0) { const unsigned long long t1 = gt(p); tr.add(TR_TOPK, -1, t0, t1); t0 = t1; }

  // Gate/up units: the routed groups' nact * I/16, then the shared ones' NS * IS/16.
  const int nib = p.I / kGuUnits, nisb = p.NS > 0 ? p.IS / kGuUnits : 0;
  const int U1 = nact * nib + p.NS * nisb;
  auto gu_unit = [&](int u, int& i0) {
    const bool routed = u < nact * nib;
    i0 = (routed ? u % nib : (u - nact * nib) % nisb) * kGuUnits;
    return group_of(p, s, hbuf, nact, routed ? u / nib : nact + (u - nact * nib) / nisb);
  };
  const BlockUnits r1(U1, p.order);
  for (int k = 0; k < r1.n; ++k) {
    int i0, n0;
    const Group gr = gu_unit(r1.at(k), i0);
    if (p.prefetch && k + 1 < r1.n) {  // the block's next unit's rows into L2 while this one streams
      const Group nx = gu_unit(r1.at(k + 1), n0);
      prefetch_l2(nx.w13 + (size_t)2 * n0 * p.H, (size_t)2 * kGuUnits * p.H * sizeof(uint16_t));
    }
    gate_up_unit<BF>(p, gr, s.w, i0, x, s.sa);
  }
  if (threadIdx.x == 0) { const unsigned long long t1 = gt(p); tr.add(TR_FFN1, -1, t0, t1); t0 = t1; }
  grid_sync(p, C_DONE, 31);
  if (threadIdx.x == 0) { const unsigned long long t1 = gt(p); tr.add(TR_BARRIER, -1, t0, t1); t0 = t1; }

  // Down units: (group, 64 columns), every group.
  const int nhb = p.H / kDnCols;
  const int U2 = (nact + p.NS) * nhb;
  const BlockUnits r2(U2, p.order);
  for (int k = 0; k < r2.n; ++k) {
    const int u = r2.at(k);
    if (p.prefetch && k + 1 < r2.n) {  // the next unit's 128-byte row pieces into L2
      const int v = r2.at(k + 1);
      const Group nx = group_of(p, s, hbuf, nact, v / nhb);
      const uint16_t* base = nx.w2t + (v % nhb) * kDnCols;
      for (int i = threadIdx.x; i < nx.inter; i += blockDim.x) prefetch_l2(base + (size_t)i * p.H);
    }
    down_unit<BF>(p, group_of(p, s, hbuf, nact, u / nhb), (u % nhb) * kDnCols, s.sa);
  }
  if (threadIdx.x == 0) { const unsigned long long t1 = gt(p); tr.add(TR_FFN2, -1, t0, t1); t0 = t1; }
  grid_sync(p, C_K1, 32);
  if (threadIdx.x == 0) { const unsigned long long t1 = gt(p); tr.add(TR_BARRIER, -1, t0, t1); t0 = t1; }

  // The output: every block converts and clears its share, 8 columns a thread.
  const int n8 = p.T * p.H / 8;
  for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < n8; q += gridDim.x * blockDim.x) {
    float4* src = reinterpret_cast<float4*>(p.out_acc) + 2 * (size_t)q;
    const float4 lo = __ldcg(src), hi = __ldcg(src + 1);
    const float f[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) w[k] = (uint32_t)to_store<BF>(f[2 * k]) | ((uint32_t)to_store<BF>(f[2 * k + 1]) << 16);
    reinterpret_cast<uint4*>(p.out)[q] = make_uint4(w[0], w[1], w[2], w[3]);
    src[0] = make_float4(0.f, 0.f, 0.f, 0.f);
    src[1] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    tr.add(TR_CONVERT, -1, t0, gt(p));
    __threadfence();
    if (atomicAdd(&p.ctrl[C_K3], 1) == (int)gridDim.x - 1) {  // every block is past every barrier of this launch
      p.ctrl[C_ROUTER] = 0;
      p.ctrl[C_DONE] = 0;
      p.ctrl[C_K1] = 0;
      p.ctrl[C_K3] = 0;
      p.ctrl[C_TASK] = 0;
      p.ctrl[C_ITER] = iter + 1;
    }
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_end(p, iter, clk);
  if (threadIdx.x == 0) tr.finish(p);
}

using KernelFn = void (*)(Params);
KernelFn kernel_of(bool bf) { return bf ? k_grouped<true> : k_grouped<false>; }

std::string plan(const PlanCtx& ctx, TunableSet& tun, Plan& pl) {
  const Shape& s = ctx.s;
  if (ctx.prop.major < 8) return "needs compute capability 8.0 or newer (mma.sync m16n8k16); the device has " + std::to_string(ctx.prop.major) + "." + std::to_string(ctx.prop.minor);
  // The table says so too; guards for a table edited past the code.
  if (s.hidden % kDnCols != 0) return "hidden (" + std::to_string(s.hidden) + ") must be a multiple of " + std::to_string(kDnCols) + " (columns per down unit)";
  if (s.inter % kGuUnits != 0) return "inter (" + std::to_string(s.inter) + ") must be a multiple of " + std::to_string(kGuUnits) + " (units per gate/up unit)";
  if (s.shared_experts > 0 && s.shared_inter % kGuUnits != 0)
    return "shared_inter (" + std::to_string(s.shared_inter) + ") must be a multiple of " + std::to_string(kGuUnits) + " (units per gate/up unit)";
  pl.persistent = true;
  pl.threads = kThreads;
  pl.order = (int)tun.get("order");
  pl.prefetch = (int)tun.get("prefetch");
  pl.sl = SmemLayout{ctx.T * s.topk, s.experts, kPartFloats, 0};
  std::string why = shared_memory_reason(ctx, pl.sl);
  if (!why.empty()) return why;
  const int occ = blocks_per_sm((const void*)kernel_of(ctx.bf), kThreads, pl.smem());
  if (occ < 1) return "no block of " + std::to_string(kThreads) + " threads with " + std::to_string(pl.smem()) + " bytes of shared memory fits on an SM";
  pl.grid = ctx.prop.multiProcessorCount;  // one block per SM: the whole grid co-resides (grid barriers)
  return "";
}

void launch(const Plan& pl, const Params& p, bool bf, cudaStream_t st) {
  kernel_of(bf)<<<pl.grid, pl.threads, pl.smem(), st>>>(p);
  CUDA_CHECK_LAUNCH("k_grouped");
}

}  // namespace

const Family kGroupedFamily = {"grouped", plan, launch};

}  // namespace moe
