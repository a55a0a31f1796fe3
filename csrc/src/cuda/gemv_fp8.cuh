// gemv_fp8.cuh — the GEMV pieces of gemv.cuh for fp8 expert weights (--dtype fp8): OCP e4m3 bytes with fp32
// scales (common.h, Fp8Scales), bf16 router, inputs and output, fp32 accumulation.
//
// A 16-byte load holds 16 weights (bf16: 8), so a row is half the loads; each is unpacked with the cuda_fp8.h
// conversion (e4m3x2 -> f16x2: one cvt.rn.f16x2.e4m3x2 on sm_89 and later, emulated on sm_80; f16 -> f32 is
// exact) and the products are summed in fp32.
// Per-channel scales (BLK false; --fp8-scales channel, and tensor, uploaded as a channel scale repeated): the
// scale of an output channel is applied once per output: a gate or up row's after its dot product; a down
// column's (per expert and hidden column) once per run of units of one expert, on the partial sums, before they
// are added to the output.
// 128 x 128 block scales (BLK true; Params::q8blk): the scale changes every 128 input elements of a row. Gate/up:
// a 16-byte chunk c of a row (inputs 16c .. 16c+15) lies in input block c / 8, so each chunk's partial dot
// product is multiplied by its block's scale and added. Down (input dimension: inter): a thread's 16 columns lie
// in one 128-column block hb, so the scale of row i is that of block (hb, i / 128), one number per row: it
// multiplies the activation a_i before the row's FMAs (the sum over a block's rows times its scale, without 16
// more partial sums a token) and nothing is applied at the end. The BLK code was compiled, NOT yet run on a GPU
// (csrc/BENCHMARKS.md, "Scales per tensor and per 128 x 128 block").
#pragma once
#include <cuda_fp8.h>

#include "gemv.cuh"

namespace moe {

// 4 e4m3 weights (one 32-bit word; its byte k is element k) as floats. Before sm_89 cuda_fp8.h emulates the
// conversion with a loop per subnormal (14 KB of spills in separate's k_ffn1 at sm_80): there the bits go into
// an fp32 (sign, then exponent and mantissa 20 bits up) times 2^120, exact for every value but NaN, which the
// weights never hold (f32_to_e4m3 saturates at +-448).
__device__ __forceinline__ void unpack4_e4m3(uint32_t w, float f[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 890
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const uint32_t b = (w >> (8 * k)) & 0xffu;
    f[k] = __uint_as_float(((b & 0x80u) << 24) | ((b & 0x7fu) << 20)) * 0x1p120f;
  }
#else
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const __half2_raw r = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(w >> (16 * h)), __NV_E4M3);
    const float2 ff = __half22float2(*reinterpret_cast<const __half2*>(&r));
    f[2 * h] = ff.x;
    f[2 * h + 1] = ff.y;
  }
#endif
}

// 16 e4m3 values (one 16-byte load) as floats.
__device__ __forceinline__ void unpack16_e4m3(const uint4& v, float f[16]) {
  unpack4_e4m3(v.x, f);
  unpack4_e4m3(v.y, f + 4);
  unpack4_e4m3(v.z, f + 8);
  unpack4_e4m3(v.w, f + 12);
}

// acc[k] += a * w[k] for the 8 e4m3 weights of an 8-byte load.
__device__ __forceinline__ void axpy8_q8(float a, const uint2& w, float (&acc)[8]) {
  float f[8];
  unpack4_e4m3(w.x, f);
  unpack4_e4m3(w.y, f + 4);
#pragma unroll
  for (int k = 0; k < 8; ++k) acc[k] = fmaf(a, f[k], acc[k]);
}

// Two rows' dot products with the same 16 bf16 inputs (two 16-byte words x0, x1): gs += g . x, us += u . x, for
// 16 e4m3 weights of each row (unscaled). Word by word, so that only 4 inputs and 8 weights are unpacked at a
// time: the callers hold many loads in flight and have no registers for 16 unpacked inputs.
__device__ __forceinline__ void dot16x2_q8(const uint4& g, const uint4& u, const uint4& x0, const uint4& x1,
                                           float& gs, float& us) {
  const uint32_t gw[4] = {g.x, g.y, g.z, g.w}, uw[4] = {u.x, u.y, u.z, u.w};
  const uint32_t xw[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float xf[4] = {__uint_as_float(xw[2 * k] << 16), __uint_as_float(xw[2 * k] & 0xffff0000u),
                         __uint_as_float(xw[2 * k + 1] << 16), __uint_as_float(xw[2 * k + 1] & 0xffff0000u)};
    float gf[4], uf[4];
    unpack4_e4m3(gw[k], gf);
    unpack4_e4m3(uw[k], uf);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      gs = fmaf(gf[q], xf[q], gs);
      us = fmaf(uf[q], xf[q], us);
    }
  }
}

// rows_dot for fp8 rows: NR weight rows of H bytes (nchunk = H/16 16-byte chunks) dotted with NT bf16 token
// vectors; each lane takes chunks lane, lane+32, ...; U chunks per row in flight; reduced over the warp.
// BLK false: unscaled (sc unused). BLK true: row r's 128-input blocks have the scales sc[r][0..]: chunk c's
// partial sum is multiplied by sc[r][c / 8] before it is added.
template <int NR, int NT, int U, bool BLK>
__device__ __forceinline__ void rows_dot_q8(const uint8_t* const (&w)[NR], const uint16_t* const (&x)[NT],
                                            const float* const (&sc)[NR], int nchunk, float (&acc)[NR][NT]) {
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
        wv[r][u] = (c0 + 32 * u < nchunk) ? ld_stream(w[r] + (size_t)(c0 + 32 * u) * 16) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + 32 * u;
      if (c < nchunk) {
        float bs[NR];  // BLK: the scale of chunk c's block, per row
#pragma unroll
        for (int r = 0; r < NR; ++r) bs[r] = BLK ? __ldg(sc[r] + (c >> 3)) : 1.f;
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          float xf[16];
          unpack8<true>(ld_ro(x[t] + (size_t)c * 16), xf);
          unpack8<true>(ld_ro(x[t] + (size_t)c * 16 + 8), xf + 8);
#pragma unroll
          for (int r = 0; r < NR; ++r) {
            float wf[16];
            unpack16_e4m3(wv[r][u], wf);
            if constexpr (BLK) {
              float part = 0.f;
#pragma unroll
              for (int k = 0; k < 16; ++k) part = fmaf(wf[k], xf[k], part);
              acc[r][t] = fmaf(part, bs[r], acc[r][t]);
            } else {
#pragma unroll
              for (int k = 0; k < 16; ++k) acc[r][t] = fmaf(wf[k], xf[k], acc[r][t]);
            }
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

// The number of 128-element blocks of n elements (block scales: common.h, Fp8Scales).
__device__ __forceinline__ int nblk128(int n) { return (n + 127) >> 7; }

// ffn1_rows for fp8 weights (p.q13 / p.s13): warp per (gate, up) row pair of expert e, units [i0, i1), tokens
// slots[0..n); a = silu(g)*u written to dst(token j, unit i). BLK false: each row's scale applied to its dot
// product; BLK true: the 128 x 128 block scales of the gate and up rows applied per chunk (rows_dot_q8).
template <bool BLK, class Dst>
__device__ inline void ffn1_rows_q8(const Params& p, const uint16_t* x, int e, int i0, int i1, const int* slots, int n,
                                    Dst dst) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
  const int nchunk = p.H / 16;
  const int nIb = nblk128(p.I), nHb = nblk128(p.H);
  for (int i = i0 + warp; i < i1; i += nwarp) {
    const size_t row = (size_t)e * 2 * p.I + 2 * (size_t)i;
    const uint8_t* g = p.q13 + row * p.H;
    const uint8_t* w[2] = {g, g + p.H};
    // BLK: the gate unit's row of blocks [e][0][i/128][*] and the up unit's [e][1][i/128][*]; the channel scales 1.
    const float* gb = p.s13 + ((size_t)e * 2 * nIb + (i >> 7)) * nHb;
    const float* sc[2] = {gb, gb + (size_t)nIb * nHb};
    const float sg = BLK ? 1.f : __ldg(p.s13 + row), su = BLK ? 1.f : __ldg(p.s13 + row + 1);
    if (n == 1) {
      const uint16_t* xs[1] = {x + (size_t)(slots[0] / p.K) * p.H};
      float acc[2][1];
      rows_dot_q8<2, 1, 8, BLK>(w, xs, sc, nchunk, acc);
      if (lane == 0) dst(0, i, silu(acc[0][0] * sg) * (acc[1][0] * su));
    } else {
      for (int j0 = 0; j0 < n; j0 += kNT) {
        const uint16_t* xs[kNT];
#pragma unroll
        for (int t = 0; t < kNT; ++t) xs[t] = x + (size_t)(slots[min(j0 + t, n - 1)] / p.K) * p.H;
        float acc[2][kNT];
        rows_dot_q8<2, kNT, 4, BLK>(w, xs, sc, nchunk, acc);
        if (lane == 0)
#pragma unroll
          for (int t = 0; t < kNT; ++t)
            if (j0 + t < n) dst(j0 + t, i, silu(acc[0][t] * sg) * (acc[1][t] * su));
      }
    }
  }
}

// down_rows for fp8 weights (p.q2t / p.s2): rows i in [i0, i1) of expert e, hidden columns [h0, h0+nh), tokens
// j < nt (nt <= NT) with activations sa[j*astride + (i-i0)]; out_acc[tok][h] += w_j * scale * sum.
// Threads: CL = nh/16 column chunks (16 columns, one load) x RG = blockDim/CL row groups. A thread's 16 sums
// are reduced over the row groups 8 at a time (red: blockDim*8 floats), then BLK false: scaled once per column
// (scale[e][h]); BLK true: each row's activation was multiplied by the scale of block (h / 128, i / 128) of the
// thread's columns (16 columns at a multiple of 16: never across two 128-column blocks) before its FMAs.
template <int NT, bool BLK>
__device__ inline void down_rows_q8(const Params& p, int e, int i0, int i1, int h0, int nh, const float* sa,
                                    int astride, const int* toks, const float* wts, int nt, float* red) {
  const int CL = nh / 16, RG = blockDim.x / CL;
  const int cl = threadIdx.x % CL, rg = threadIdx.x / CL;
  float acc[NT][16];
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int k = 0; k < 16; ++k) acc[t][k] = 0.f;
  const uint8_t* base = p.q2t + (size_t)e * p.I * p.H + h0 + cl * 16;
  // BLK: the scales of this thread's column block, one per 128 rows: [e][hb][0..nIb)
  const int nIb = nblk128(p.I);
  const float* rs = p.s2 + ((size_t)e * nblk128(p.H) + ((h0 + cl * 16) >> 7)) * nIb;
  constexpr int U = NT == 1 ? 8 : 4;  // loads in flight; with 4 tokens the sums take the registers
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
          float wf[16];
          unpack16_e4m3(wv[u], wf);
          const float bs = BLK ? __ldg(rs + (i >> 7)) : 1.f;
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            const float a = BLK ? sa[t * astride + (i - i0)] * bs : sa[t * astride + (i - i0)];
#pragma unroll
            for (int k = 0; k < 16; ++k) acc[t][k] = fmaf(a, wf[k], acc[t][k]);
          }
        }
      }
    }
  }
  const int hn = nh / 2;  // floats of one row group in red: 8 of each thread's 16 columns
  const float* sc = p.s2 + (size_t)e * p.H + h0;
  for (int t = 0; t < nt; ++t) {
    float* dst = p.out_acc + (size_t)toks[t] * p.H + h0;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      __syncthreads();
      if (rg < RG)
#pragma unroll
        for (int k = 0; k < 8; ++k) red[rg * hn + cl * 8 + k] = acc[t][half * 8 + k];
      __syncthreads();
      for (int c4 = threadIdx.x; c4 < hn / 4; c4 += blockDim.x) {
        float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int g = 0; g < RG; ++g) {
          const float4 v = *reinterpret_cast<const float4*>(red + g * hn + c4 * 4);
          s.x += v.x; s.y += v.y; s.z += v.z; s.w += v.w;
        }
        const int col = (c4 >> 1) * 16 + half * 8 + (c4 & 1) * 4;  // red's float c4*4: thread cl = c4/2, its k (c4&1)*4
        const float w = wts[t];
        if constexpr (BLK) {  // the block scales are in the sums already
          s.x *= w; s.y *= w; s.z *= w; s.w *= w;
        } else {
          const float4 k4 = __ldg(reinterpret_cast<const float4*>(sc + col));
          s.x *= w * k4.x; s.y *= w * k4.y; s.z *= w * k4.z; s.w *= w * k4.w;
        }
        red_add4(dst + col, s);
      }
    }
  }
  __syncthreads();
}

// down_tile for fp8 weights: the staging of down_tile (gemv.cuh), the rows through down_rows_q8.
template <bool BLK>
__device__ inline void down_tile_q8(const Params& p, float* s_sa, float* s_red, int e, const int* slots, int n, int h0) {
  down_tile_groups(p, s_sa, slots, n, [&](int i0, int ni, const int* toks, const float* wts, int nt) {
    if (nt == 1) down_rows_q8<1, BLK>(p, e, i0, i0 + ni, h0, p.nh, s_sa, ni, toks, wts, nt, s_red);
    else down_rows_q8<kNT, BLK>(p, e, i0, i0 + ni, h0, p.nh, s_sa, ni, toks, wts, nt, s_red);
  });
}

}  // namespace moe
