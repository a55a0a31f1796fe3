// routing.cuh — top-k and softmax over the k picked logits, and the
// per-expert token lists, computed by one block from the router's logits
// (the separate router's last block; every block of a split-K launch; the OS
// block). Ties: the lower expert id wins, as in the CPU oracle.
#pragma once
#include "ptx.cuh"

namespace moe {

// Top-k by rank (E <= 256): logits of up to 2048/E tokens at a time in shared
// memory; every (token, expert) pair counts how many logits beat it (ties: the
// lower id wins, as on the CPU), the count split over Q threads when the block
// has spare threads (T=1: 4 threads per expert); rank < k is a pick. Then the
// softmax over the k picked logits, warp per token. No serial rounds.
__device__ inline void topk_rank(const Params& p, int* s_ids, float* s_w, float* buf) {
  const int TB = max(1, (kThreads * 4) / p.E);
  float* lg = buf;
  int* rk = reinterpret_cast<int*>(buf + kThreads * 4);
  for (int t0 = 0; t0 < p.T; t0 += TB) {
    const int nt = min(TB, p.T - t0), np = nt * p.E;
    const int Q = max(1, min(8, (int)blockDim.x / np));
    const int span = (p.E + Q - 1) / Q;
    for (int i = threadIdx.x; i < np; i += blockDim.x) {
      lg[i] = __ldcg(p.logits + (size_t)t0 * p.E + i);
      rk[i] = 0;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < np * Q; i += blockDim.x) {
      const int pair = i % np, q = i / np;
      const int tl = pair / p.E, e = pair - tl * p.E;
      const float* row = lg + tl * p.E;
      const float v = row[e];
      const int f0 = q * span, f1 = min(p.E, f0 + span);
      int r = 0;
#pragma unroll 8
      for (int f = f0; f < f1; ++f) {
        const float u = row[f];
        r += (u > v) | ((u == v) & (f < e));
      }
      if (Q == 1) rk[pair] = r; else atomicAdd(&rk[pair], r);
    }
    __syncthreads();
    for (int pair = threadIdx.x; pair < np; pair += blockDim.x) {
      const int r = rk[pair];
      if (r < p.K) {
        const int tl = pair / p.E;
        s_ids[(t0 + tl) * p.K + r] = pair - tl * p.E;
        s_w[(t0 + tl) * p.K + r] = lg[pair];
      }
    }
    __syncthreads();
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
  for (int t = warp; t < p.T; t += nwarp) {  // K <= 32: lane k holds pick k
    const float v = lane < p.K ? s_w[t * p.K + lane] : -INFINITY;
    const float m = __shfl_sync(0xffffffffu, v, 0);  // rank 0 is the largest
    const float ex = lane < p.K ? __expf(v - m) : 0.f;
    float sum = ex;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane < p.K) s_w[t * p.K + lane] = ex / sum;
  }
}

// Top-k then softmax over the k, warp per token. Each warp copies its token's
// logits (written by other blocks: read from L2) into shared memory `buf`
// (kThreads*8 floats), then K rounds of a warp argmax. Kept as compact loops:
// the code runs once per launch, and after the weight stream has swept L2 its
// instructions come from DRAM. Ties: lower expert id first (as the CPU).
__device__ inline void topk_warp(const Params& p, int* s_ids, float* s_w, float* buf_all) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwu = min((int)(blockDim.x >> 5), (kThreads * 8) / p.E);
  if (warp >= nwu) return;
  float* buf = buf_all + warp * p.E;
#pragma unroll 1
  for (int t = warp; t < p.T; t += nwu) {
    const float* lg = p.logits + (size_t)t * p.E;
#pragma unroll 1
    for (int e = lane; e < p.E; e += 32) buf[e] = __ldcg(lg + e);
    __syncwarp();
    float best0 = 0.f, wsum = 0.f;
#pragma unroll 1
    for (int k = 0; k < p.K; ++k) {
      float bv = -INFINITY;
      int bi = 0x7fffffff;
#pragma unroll 1
      for (int e = lane; e < p.E; e += 32) {
        const float v = buf[e];
        if (v > bv) { bv = v; bi = e; }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
      }
      if (k == 0) best0 = bv;
      const float ex = __expf(bv - best0);
      wsum += ex;
      if (lane == 0) { buf[bi] = -INFINITY; s_ids[t * p.K + k] = bi; s_w[t * p.K + k] = ex; }
      __syncwarp();
    }
    if (lane == 0)
#pragma unroll 1
      for (int k = 0; k < p.K; ++k) s_w[t * p.K + k] /= wsum;
    __syncwarp();
  }
}

// Top-k then softmax over the k, warp per token, the token's logits in registers (lane l holds experts l,
// l + 32, ..; E <= 512): K rounds of a warp argmax, no shared memory. Ties: the lower id first (as the CPU).
// Spread over the grid (persistent-grouped: token t by block t % nb, warp (t / nb) % warps, into global ids / w);
// the whole block: b = 0, nb = 1. At T = 64 on the H100, topk_rank in every block took 50 us.
__device__ inline void topk_warp_regs(const Params& p, int* s_ids, float* s_w, int b = 0, int nb = 1) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int t = b + nb * warp; t < p.T; t += nb * nw) {
    const float* lg = p.logits + (size_t)t * p.E;
    float v[16];
#pragma unroll
    for (int q = 0; q < 16; ++q) v[q] = lane + 32 * q < p.E ? __ldcg(lg + lane + 32 * q) : -INFINITY;
    float best0 = 0.f, wsum = 0.f, mine = 0.f;  // lane k keeps pick k's exp
    for (int k = 0; k < p.K; ++k) {
      float bv = -INFINITY;
      int bq = -1;
#pragma unroll
      for (int q = 0; q < 16; ++q)
        if (v[q] > bv) { bv = v[q]; bq = q; }
      int bi = bq < 0 ? 0x7fffffff : lane + 32 * bq;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
      }
      if (k == 0) best0 = bv;
      const float ex = __expf(bv - best0);
      wsum += ex;
      if (lane == k) { mine = ex; s_ids[t * p.K + k] = bi; }
#pragma unroll
      for (int q = 0; q < 16; ++q)
        if (bi == lane + 32 * q) v[q] = -INFINITY;
    }
    if (lane < p.K) s_w[t * p.K + lane] = mine / wsum;
  }
}

// Whole block calls; results in s_ids/s_w after a __syncthreads by the caller.
__device__ inline void topk_softmax(const Params& p, int* s_ids, float* s_w, float* buf) {
  if (p.E <= 256) topk_rank(p, s_ids, s_w, buf);
  else topk_warp(p, s_ids, s_w, buf);
}

// Per-expert token lists in shared memory from s_ids: cnt, off (exclusive
// prefix), slots grouped by expert, active experts ascending. Returns n_active.
__device__ inline int build_lists(const Params& p, const int* s_ids, int* cnt, int* off, int* fill, int* slots,
                           int* active) {
  const int TK = p.T * p.K;
  for (int e = threadIdx.x; e < p.E; e += blockDim.x) { cnt[e] = 0; fill[e] = 0; }
  __syncthreads();
  for (int s = threadIdx.x; s < TK; s += blockDim.x) atomicAdd(&cnt[s_ids[s]], 1);
  __syncthreads();
  __shared__ int s_nact;
  if (threadIdx.x < 32) {  // warp 0: scans over E (<= 1024) for offsets and the active list
    const int lane = threadIdx.x;
    int run = 0, runa = 0;
    for (int e0 = 0; e0 < p.E; e0 += 32) {
      int e = e0 + lane;
      int c = e < p.E ? cnt[e] : 0;
      int a = c > 0;
      int sc = c, sa = a;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        int v = __shfl_up_sync(0xffffffffu, sc, o), va = __shfl_up_sync(0xffffffffu, sa, o);
        if (lane >= o) { sc += v; sa += va; }
      }
      if (e < p.E) {
        off[e] = run + sc - c;
        if (a) active[runa + sa - 1] = e;
      }
      run += __shfl_sync(0xffffffffu, sc, 31);
      runa += __shfl_sync(0xffffffffu, sa, 31);
    }
    if (lane == 0) s_nact = runa;
  }
  __syncthreads();
  for (int s = threadIdx.x; s < TK; s += blockDim.x) {
    int e = s_ids[s];
    slots[off[e] + atomicAdd(&fill[e], 1)] = s;
  }
  __syncthreads();
  return s_nact;
}

// Rank top-k of one token over logits in shared memory (E a multiple of 4): Q threads per expert (a power of
// two, neighbouring lanes); thread q of an expert compares against float4 groups q, q+Q, ...: the Q lanes of a
// group read Q consecutive 16-byte words (no bank conflict), other experts' lanes the same words (broadcast).
// Ties: the lower id first. Then the softmax over the k picked (warp 0). Whole block; ends with __syncthreads.
// (persistent-flat at T = 1; ep-persistent at T = 1 in every block.)
__device__ __forceinline__ void rank_topk_t1(const float* lg, int E, int K, int* ids, float* w) {
  const int tid = threadIdx.x, nthr = blockDim.x;
  int Q = 1;
  while (Q * 2 <= 32 && Q * 2 * E <= nthr) Q *= 2;
  const int n = E * Q, total = (n + 31) / 32 * 32;  // whole warps enter every round: the shuffles need them all
  const float4* lg4 = reinterpret_cast<const float4*>(lg);
  const int groups = E / 4;
  for (int idx = tid; idx < total; idx += nthr) {
    const bool act = idx < n;
    const int e = act ? idx / Q : 0, q = idx % Q;
    const float v = lg[e];
    int r = 0;
    if (act) {
#pragma unroll 4
      for (int g = q; g < groups; g += Q) {
        const float4 u = lg4[g];
        const int f = 4 * g;
        r += (u.x > v) | ((u.x == v) & (f < e));
        r += (u.y > v) | ((u.y == v) & (f + 1 < e));
        r += (u.z > v) | ((u.z == v) & (f + 2 < e));
        r += (u.w > v) | ((u.w == v) & (f + 3 < e));
      }
    }
    for (int o = 1; o < Q; o <<= 1) r += __shfl_xor_sync(0xffffffffu, r, o);
    if (act && q == 0 && r < K) { ids[r] = e; w[r] = v; }
  }
  __syncthreads();
  if (tid < 32) {
    const float v = tid < K ? w[tid] : -INFINITY;
    const float m = __shfl_sync(0xffffffffu, v, 0);  // rank 0 is the largest
    const float ex = tid < K ? __expf(v - m) : 0.f;
    const float sum = warp_sum(ex);
    if (tid < K) w[tid] = ex / sum;
  }
  __syncthreads();
}

// T = 1 without a grid barrier (persistent-flat's t1path=3, ep-persistent's route=1): the router publishes each
// logit as one 64-bit word, (launch << 32) | its float bits (router_t1<BF, true>, router_expert<BF, true>), so the
// word itself is all a reader must see: no fence, no counter. Every thread of the block waits for its experts' words
// of launch `tag` and puts the values into dst[e]; fail() on a spin past kSpinLimit. The caller's bar.sync makes dst
// the block's.
template <class Fail>
__device__ __forceinline__ void tagged_logits(const unsigned long long* tags, int E, unsigned tag, float* dst, Fail fail) {
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    unsigned long long v;
    long long spins = 0;
    while (((v = ld_relaxed64(tags + e)) >> 32) != tag)
      if (++spins > kSpinLimit) fail();
    dst[e] = __uint_as_float((unsigned)v);
  }
}

}  // namespace moe
