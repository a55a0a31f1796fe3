// unit_stream.cuh — the unit stream of persistent-flat's one-token kernel (flat.cu, k_flat1), shared with
// ep-persistent's stream compute (ep.cu, k_epp with compute=1).
//
// A unit is one intermediate unit of one expert for one row of input (a token): its gate and up rows make
// a = w * silu(g.x) * (u.x), and its down row, scaled by a, adds into the row's hidden columns. A block takes a
// contiguous range [u0, u1) of units. Warps 0..7 (gate/up) make the activations of 8 units at a time into shared
// memory; warps 8..15 (down), each thread owning 8 of the 2048 output columns, stream the same units' down rows
// and accumulate in registers; two pairs of named barriers hand the chunks over (double-buffered), and a chunk's
// down rows are loaded while its activations are made (they depend on the routing only).
// Hidden is exactly 2048 (kColsPerGroup): a gate/up lane holds its row's 8 x 16 bytes of input in registers.
//
// ROWS = false: every unit has row 0 (one token: k_flat1, whose code this is; the instantiation compiles to the
//   kernel measured at 38.7 us on the H100).
// ROWS = true: units carry their row (Unit::tok), in ascending order within the block's range, and the input
//   row is reloaded when it changes; the down threads add their columns into out_acc's row when the row changes
//   (and at the end). The units of a chunk span at most two rows, which needs inter >= kChunk (the caller checks).
// PF: each gate/up warp also prefetches its next unit's gate/up rows into L2, each down thread one 128-byte line
//   of the down rows two chunks ahead (flat's t1path=2).
#pragma once
#include "gemv.cuh"
#include "trace.cuh"

namespace moe {

constexpr int kGuWarps = 8;      // warps 0..7: gate/up; 8..15: down
constexpr int kChunk = 8;        // units per hand-over (one per gate/up warp)
constexpr int kDownThreads = kThreads - kGuWarps * 32;  // 256, 8 columns each per 2048-column group
constexpr int kColsPerGroup = kDownThreads * 8;         // 2048
static_assert(kGuWarps == kChunk, "one unit per gate/up warp per chunk");

__device__ __forceinline__ void bar_sync(int id, int n) { asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void bar_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(n) : "memory"); }
// One unit's rows into L2, by one warp: its gate and up rows (adjacent, 2 x row_bytes) and its down row.
__device__ __forceinline__ void prefetch_unit_rows_l2(const void* gu, const void* dn, size_t row_bytes, int lane) {
  for (size_t off = (size_t)lane * 128; off < 2 * row_bytes; off += 32 * 128) prefetch_l2((const char*)gu + off);
  for (size_t off = (size_t)lane * 128; off < row_bytes; off += 32 * 128) prefetch_l2((const char*)dn + off);
}

template <bool BF>
__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
  float fa[8], fb[8];
  unpack8<BF>(a, fa);
  unpack8<BF>(b, fb);
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < 8; ++k) s = fmaf(fa[k], fb[k], s);
  return s;
}

// A unit: one intermediate unit of one expert for one row.
struct Unit {
  const uint16_t* g;   // gate row; the up row follows it (interleaved layout)
  const uint16_t* d;   // down row (w2t / ws2t)
  float wt;            // routing weight (1 for a shared expert)
  int tok;             // the row (token) of its input and output
};

// The stream of units [u0, u1) on hidden 2048; every thread of the block calls it, and it returns when the
// thread's part is done: gate/up warps after their last hand-over, down threads after adding their columns into
// out_acc and calling down_done(t) (t: the down thread, 0..255). unit_at(u) -> Unit; x_at(row, c) -> uint4, the
// 16-byte chunk c (0..255) of that row's input. Thread 0 (a gate/up thread) traces its loop as `span`.
template <bool BF, bool PF, bool ROWS, class UnitAt, class XAt, class DownDone>
__device__ __forceinline__ void stream_units_h2048(const Params& p, Tracer& tr, int span, float (&s_a)[2][kChunk], int u0, int u1,
                                                   UnitAt unit_at, XAt x_at, float* out_acc, DownDone down_done) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nchunks = (u1 - u0 + kChunk - 1) / kChunk;
  constexpr int H = kColsPerGroup;  // hidden is exactly 2048 here: 256 16-byte chunks a row, 8 a lane
  if (warp < kGuWarps) {
    const unsigned long long t0 = gt(p);
    uint4 xr[8];
    int xrow = -1;  // ROWS: the row held in xr
    if constexpr (!ROWS) {
#pragma unroll
      for (int j = 0; j < 8; ++j) xr[j] = x_at(0, lane + 32 * j);
    }
    for (int c = 0; c < nchunks; ++c) {
      const int b = c & 1;
      if (c >= 2) bar_sync(3 + b, kThreads);  // EMPTY[b]
      const int u = u0 + c * kChunk + warp;
      float a = 0.f;
      if (u < u1) {
        if constexpr (PF) {  // before this unit's loads: none of their registers are held yet
          if (u + kChunk < u1) {  // this warp's unit of the next chunk: gate and up rows, adjacent
            const Unit nx = unit_at(u + kChunk);
#pragma unroll
            for (int off = lane * 128; off < 4 * H; off += 32 * 128) prefetch_l2((const char*)nx.g + off);
          }
        }
        const Unit un = unit_at(u);
        if constexpr (ROWS) {
          if (un.tok != xrow) {
            xrow = un.tok;
#pragma unroll
            for (int j = 0; j < 8; ++j) xr[j] = x_at(xrow, lane + 32 * j);
          }
        }
        uint4 gv[8], uv[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) gv[j] = ld_stream(un.g + (lane + 32 * j) * 8);
#pragma unroll
        for (int j = 0; j < 8; ++j) uv[j] = ld_stream(un.g + H + (lane + 32 * j) * 8);
        float gs = 0.f, us = 0.f;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          gs += dot8<BF>(gv[j], xr[j]);
          us += dot8<BF>(uv[j], xr[j]);
        }
        gs = warp_sum(gs);
        us = warp_sum(us);
        a = un.wt * silu(gs) * us;
      }
      if (lane == 0) s_a[b][warp] = a;
      bar_arrive(1 + b, kThreads);  // FULL[b]
    }
    if (threadIdx.x == 0) tr.add(span, -1, t0, gt(p));
  } else {
    const int t = threadIdx.x - kGuWarps * 32;  // 0..255: columns 8t .. 8t+7
    const int col = t * 8;
    float acc[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[k] = 0.f;
    int cur = -1;  // ROWS: the row of acc (-1: none yet)
    auto flush = [&](int row) {
      float* d = out_acc + (size_t)row * H + col;
      red_add4(d, make_float4(acc[0], acc[1], acc[2], acc[3]));
      red_add4(d + 4, make_float4(acc[4], acc[5], acc[6], acc[7]));
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[k] = 0.f;
    };
    // ROWS: a chunk's rows are r[0] for its units j < r[2] and r[1] from r[2] on (r[2] = kChunk: one row).
    auto load_chunk = [&](int c, uint4 (&dst)[kChunk], int (&r)[3]) {
      if constexpr (ROWS) r[2] = kChunk;
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        const int u = u0 + c * kChunk + j;
        if (u < u1) {
          const Unit un = unit_at(u);
          dst[j] = ld_stream(un.d + col);
          if constexpr (ROWS) {
            if (j == 0) r[0] = un.tok;
            else if (un.tok != r[0] && r[2] == kChunk) { r[1] = un.tok; r[2] = j; }
          }
        } else {
          dst[j] = make_uint4(0, 0, 0, 0);
        }
      }
    };
    uint4 wv[kChunk];
    int rw[3] = {0, 0, kChunk};
    if (nchunks > 0) load_chunk(0, wv, rw);
    for (int c = 0; c < nchunks; ++c) {
      const int b = c & 1;
      uint4 nx[kChunk];
      int rn[3] = {0, 0, kChunk};
      if (c + 1 < nchunks) load_chunk(c + 1, nx, rn);  // next chunk's rows while this one's activations are made
      if constexpr (PF) {  // chunk c+2's down rows into L2: unit t / 32 of it, line t % 32 of that row
        const int u = u0 + (c + 2) * kChunk + (t >> 5);
        const int off = (t & 31) * 128;
        if (u < u1) prefetch_l2((const char*)unit_at(u).d + off);
      }
      bar_sync(1 + b, kThreads);  // FULL[b]
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        if constexpr (ROWS) {
          const int row = j < rw[2] ? rw[0] : rw[1];
          if (row != cur) {  // units past u1 are zero rows: they add nothing to the row they are counted in
            if (cur >= 0) flush(cur);
            cur = row;
          }
        }
        const float a = s_a[b][j];
        float wf[8];
        unpack8<BF>(wv[j], wf);
#pragma unroll
        for (int k = 0; k < 8; ++k) acc[k] = fmaf(a, wf[k], acc[k]);
      }
      if (c + 2 < nchunks) bar_arrive(3 + b, kThreads);  // EMPTY[b]
      if (c + 1 < nchunks) {
#pragma unroll
        for (int j = 0; j < kChunk; ++j) wv[j] = nx[j];
        if constexpr (ROWS) {
          rw[0] = rn[0];
          rw[1] = rn[1];
          rw[2] = rn[2];
        }
      }
    }
    if (nchunks > 0) flush(ROWS ? cur : 0);
    down_done(t);
  }
}

}  // namespace moe
