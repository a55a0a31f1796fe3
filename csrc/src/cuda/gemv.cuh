// gemv.cuh — the GEMV pieces every kernel family is built from: the router
// row, the fused gate/up (+SiLU) rows, and the down-projection share.
//
// Inner loops: 16-byte loads (ld.global.nc.L1::no_allocate, evict-first in L2),
// every lane keeps 8 independent loads in flight before the first use,
// warp-shuffle reductions; no staging of weights in shared memory (the seed
// found ILP beats it).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "ptx.cuh"

namespace moe {

template <bool BF>
__device__ __forceinline__ void unpack8(const uint4& v, float f[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if constexpr (BF) {
      f[2 * k] = __uint_as_float(w[k] << 16);
      f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    } else {
      __half2 h = *reinterpret_cast<const __half2*>(&w[k]);
      float2 ff = __half22float2(h);
      f[2 * k] = ff.x;
      f[2 * k + 1] = ff.y;
    }
  }
}
template <bool BF>
__device__ __forceinline__ uint16_t to_store(float f) {
  if constexpr (BF) { __nv_bfloat16 b = __float2bfloat16_rn(f); return *reinterpret_cast<uint16_t*>(&b); }
  else { __half h = __float2half_rn(f); return *reinterpret_cast<uint16_t*>(&h); }
}
__device__ __forceinline__ float silu(float g) { return g / (1.f + __expf(-g)); }

// The token input of launch `iter` (inputs rotate so that iterations route to other experts).
__device__ __forceinline__ const uint16_t* x_of(const Params& p, int iter) {
  return p.x_base + (size_t)(iter % p.rotate) * p.T * p.H;
}

// Token rows that another GPU stored during this launch (ep-persistent) must not go through the
// non-coherent path (ld.global.nc may return stale lines; DeepEP's notes say the same): XC = true reads
// them through L2. Every single-GPU variant keeps XC = false (ld_ro).
__device__ __forceinline__ uint4 ld_x(const uint16_t* p, bool coherent) {
  return coherent ? __ldcg(reinterpret_cast<const uint4*>(p)) : ld_ro(p);
}

// NR weight rows (length H, 16B chunks) dotted with NT token vectors; each lane
// takes chunks lane, lane+32, ...; U chunks per row in flight. Results reduced
// over the warp (every lane gets them).
template <bool BF, int NR, int NT, int U, bool XC = false>
__device__ __forceinline__ void rows_dot(const uint16_t* const (&w)[NR], const uint16_t* const (&x)[NT],
                                         int nchunk, float (&acc)[NR][NT]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < NR; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.f;
  for (int c0 = lane; c0 < nchunk; c0 += 32 * U) {
    uint4 wv[NR][U];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < NR; ++r)
        wv[r][u] = (c0 + 32 * u < nchunk) ? ld_stream(w[r] + (size_t)(c0 + 32 * u) * 8) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + 32 * u;
      if (c < nchunk) {
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          float xf[8];
          unpack8<BF>(ld_x(x[t] + (size_t)c * 8, XC), xf);
#pragma unroll
          for (int r = 0; r < NR; ++r) {
            float wf[8];
            unpack8<BF>(wv[r][u], wf);
#pragma unroll
            for (int k = 0; k < 8; ++k) acc[r][t] = fmaf(wf[k], xf[k], acc[r][t]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < NR; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[r][t] += __shfl_xor_sync(0xffffffffu, acc[r][t], o);
}

// Router: the whole block computes logits[t][e] for one expert e (threads
// split the row's 16-byte chunks; block reduction), tokens in groups of 4.
// TAG (T = 1 only): the logit goes to logit_tags[e] as one tagged word of launch
// `tag` (routing.cuh, tagged_logits) instead of logits[e].
template <bool BF, bool TAG = false>
__device__ inline void router_expert(const Params& p, const uint16_t* x, int e, unsigned tag = 0) {
  __shared__ float s_part[kWarps][kNT];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nchunk = p.H / 8;
  const uint16_t* w = p.wr + (size_t)e * p.H;
  for (int t0 = 0; t0 < p.T; t0 += kNT) {
    float acc[kNT] = {0.f, 0.f, 0.f, 0.f};
    for (int c = threadIdx.x; c < nchunk; c += blockDim.x) {
      float wf[8];
      unpack8<BF>(ld_stream(w + (size_t)c * 8), wf);
#pragma unroll
      for (int t = 0; t < kNT; ++t) {
        float xf[8];
        unpack8<BF>(ld_ro(x + (size_t)min(t0 + t, p.T - 1) * p.H + (size_t)c * 8), xf);
#pragma unroll
        for (int k = 0; k < 8; ++k) acc[t] = fmaf(wf[k], xf[k], acc[t]);
      }
    }
#pragma unroll
    for (int t = 0; t < kNT; ++t) {
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
      if (lane == 0) s_part[warp][t] = acc[t];
    }
    __syncthreads();
    if (threadIdx.x < kNT && t0 + (int)threadIdx.x < p.T) {
      float sum = 0.f;
      for (int wi = 0; wi < (int)(blockDim.x >> 5); ++wi) sum += s_part[wi][threadIdx.x];
      if constexpr (TAG) st_relaxed64(p.logit_tags + e, (unsigned long long)tag << 32 | __float_as_uint(sum));
      else p.logits[(size_t)(t0 + threadIdx.x) * p.E + e] = sum;
    }
    __syncthreads();
  }
}

// FFN1 for intermediate units [i0, i1) of expert e and tokens slots[0..n):
// warp per (gate, up) row pair; a = silu(g)*u written to dst(token j, unit i). XC: see ld_x.
template <bool BF, bool XC = false, class Dst>
__device__ inline void ffn1_rows(const Params& p, const uint16_t* x, int e, int i0, int i1, const int* slots, int n,
                                 Dst dst) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
  const int nchunk = p.H / 8;
  for (int i = i0 + warp; i < i1; i += nwarp) {
    const uint16_t* g = p.w13 + ((size_t)e * 2 * p.I + 2 * (size_t)i) * p.H;
    const uint16_t* w[2] = {g, g + p.H};
    if (n == 1) {
      const uint16_t* xs[1] = {x + (size_t)(slots[0] / p.K) * p.H};
      float acc[2][1];
      rows_dot<BF, 2, 1, 8, XC>(w, xs, nchunk, acc);
      if (lane == 0) dst(0, i, silu(acc[0][0]) * acc[1][0]);
    } else {
      for (int j0 = 0; j0 < n; j0 += kNT) {
        const uint16_t* xs[kNT];
#pragma unroll
        for (int t = 0; t < kNT; ++t) xs[t] = x + (size_t)(slots[min(j0 + t, n - 1)] / p.K) * p.H;
        float acc[2][kNT];
        rows_dot<BF, 2, kNT, 4, XC>(w, xs, nchunk, acc);
        if (lane == 0)
#pragma unroll
          for (int t = 0; t < kNT; ++t)
            if (j0 + t < n) dst(j0 + t, i, silu(acc[0][t]) * acc[1][t]);
      }
    }
  }
}

// out[0..3] += v, no return value (sm_90: one vector reduction; else 4 scalar ones).
__device__ __forceinline__ void red_add4(float* d, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(d), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
               : "memory");
#else
  atomicAdd(d, v.x); atomicAdd(d + 1, v.y); atomicAdd(d + 2, v.z); atomicAdd(d + 3, v.w);
#endif
}

// Down projection share: rows i in [i0, i1) of w2t[e], hidden columns
// [h0, h0+nh), tokens j < nt (nt <= NT) with activations sa[j*astride + (i-i0)]
// in shared memory; out_acc[tok][h] += w_j * sum. red: blockDim*8 floats.
// Threads: CL = nh/8 column chunks x RG = blockDim/CL row groups; when CL does
// not divide the block, the last blockDim - RG*CL threads only help reduce.
constexpr int kMaxDownCols = kThreads * 8;  // down_rows' widest tile: one 8-column chunk per thread of a block

template <bool BF, int NT>
__device__ inline void down_rows(const Params& p, int e, int i0, int i1, int h0, int nh, const float* sa, int astride,
                                 const int* toks, const float* wts, int nt, float* red) {
  const int CL = nh / 8, RG = blockDim.x / CL;
  const int cl = threadIdx.x % CL, rg = threadIdx.x / CL;
  float acc[NT][8];
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[t][k] = 0.f;
  const uint16_t* base = p.w2t + (size_t)e * p.I * p.H + h0 + cl * 8;
  constexpr int U = 8;
  if (rg < RG) {
    for (int ib = i0 + rg; ib < i1; ib += RG * U) {
      uint4 wv[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int i = ib + RG * u;
        wv[u] = i < i1 ? ld_stream(base + (size_t)i * p.H) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int i = ib + RG * u;
        if (i < i1) {
          float wf[8];
          unpack8<BF>(wv[u], wf);
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            const float a = sa[t * astride + (i - i0)];
#pragma unroll
            for (int k = 0; k < 8; ++k) acc[t][k] = fmaf(a, wf[k], acc[t][k]);
          }
        }
      }
    }
  }
  // reduce over the RG row groups, then one vector reduction per 4 columns per token
  for (int t = 0; t < nt; ++t) {
    __syncthreads();
    if (rg < RG)
#pragma unroll
      for (int k = 0; k < 8; ++k) red[rg * nh + cl * 8 + k] = acc[t][k];
    __syncthreads();
    float* dst = p.out_acc + (size_t)toks[t] * p.H + h0;
    for (int c4 = threadIdx.x; c4 < nh / 4; c4 += blockDim.x) {
      float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int g = 0; g < RG; ++g) {
        float4 v = *reinterpret_cast<const float4*>(red + g * nh + c4 * 4);
        s.x += v.x; s.y += v.y; s.z += v.z; s.w += v.w;
      }
      const float w = wts[t];
      s.x *= w; s.y *= w; s.z *= w; s.w *= w;
      red_add4(dst + c4 * 4, s);
    }
  }
  __syncthreads();
}

// The staging of a whole down tile for n tokens (slots): activations from p.act, kNT tokens x up to kDownIC
// units at a time in s_sa, then rows(i0, ni, toks, wts, nt) runs the rows of that group (separate's down kernel
// and the OS workers, through down_tile and down_tile_q8).
template <class Rows>
__device__ inline void down_tile_groups(const Params& p, float* s_sa, const int* slots, int n, Rows rows) {
  for (int i0 = 0; i0 < p.I; i0 += kDownIC) {
    const int ni = min(kDownIC, p.I - i0);
    for (int j0 = 0; j0 < n; j0 += kNT) {
      const int nt = min(kNT, n - j0);
      int sl[kNT], toks[kNT];
      float wts[kNT];
#pragma unroll
      for (int t = 0; t < kNT; ++t) {
        sl[t] = __ldcg(slots + min(j0 + t, n - 1));  // L2: the OS block writes the lists in the same launch
        toks[t] = sl[t] / p.K;
        wts[t] = __ldcg(&p.topk_w[sl[t]]);
      }
      __syncthreads();
#pragma unroll
      for (int t = 0; t < kNT; ++t) {  // one activation row per token; the slot stays in a register
        const float* src = p.act + (size_t)sl[t] * p.I + i0;
        for (int i = threadIdx.x; i < ni; i += blockDim.x) s_sa[t * ni + i] = t < nt ? __ldcg(src + i) : 0.f;
      }
      __syncthreads();
      rows(i0, ni, toks, wts, nt);
    }
  }
}

// A whole down tile, hidden columns [h0, h0 + p.nh) of expert e, for its n tokens (slots).
template <bool BF>
__device__ inline void down_tile(const Params& p, float* s_sa, float* s_red, int e, const int* slots, int n, int h0) {
  down_tile_groups(p, s_sa, slots, n, [&](int i0, int ni, const int* toks, const float* wts, int nt) {
    if (nt == 1) down_rows<BF, 1>(p, e, i0, i0 + ni, h0, p.nh, s_sa, ni, toks, wts, nt, s_red);
    else down_rows<BF, kNT>(p, e, i0, i0 + ni, h0, p.nh, s_sa, ni, toks, wts, nt, s_red);
  });
}

}  // namespace moe
