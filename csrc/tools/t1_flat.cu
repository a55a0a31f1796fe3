// t1_flat.cu — design probe for single-token MoE decode in one kernel (not a
// variant of moe-bench; a tool that answers "how close to the read floor can
// one launch get, and where does the rest go").
//
// Layer: Qwen3-30B-A3B routed experts by default (H 2048, I 768, E 128, K 8),
// bf16 weights in moe-bench's layout (router Wr[E][H]; w13[E][2I][H] with gate
// and up rows interleaved; w2t[E][I][H]), fp32 accumulation, T = 1.
//
// Kernels timed, each a single launch per iteration with CUDA events around
// it, inputs rotated over R token vectors so consecutive iterations route to
// other experts:
//   read     the bytes of the 8 routed experts (routing done on the host),
//            each block a contiguous share, 16-byte loads, nothing computed:
//            the floor of this access pattern in one launch.
//   prologue router + grid barrier + top-k only (no expert weights).
//   flat     the whole layer: router (warp per expert, weights kept in L2),
//            one grid barrier (generation counter, no reset), rank top-k in
//            every block, then each block takes a contiguous range of the
//            K*I (expert, unit) pairs: 8 "gate/up" warps compute
//            a = w_k * silu(g.x) * (u.x) for 8 units at a time into shared
//            memory while 8 "down" warps, each thread owning 8 output columns
//            in registers, stream the same units' down rows (loaded one
//            chunk ahead) and accumulate; two named barriers hand the chunks
//            over. One vector reduction per thread into the fp32 output at the
//            end; the last block converts and clears.
// Correctness: flat's output against a CPU fp64 evaluation of the same layer
// for several rotated inputs (relative L2 error), before any timing.
//
// Build: nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -o t1_flat t1_flat.cu
// Usage: t1_flat [iters=200] [H I E K]
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define CK(x)                                                                                        \
  do {                                                                                               \
    cudaError_t e_ = (x);                                                                            \
    if (e_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "t1_flat: %s -> %s at %s:%d\n", #x, cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(3);                                                                                  \
    }                                                                                                \
  } while (0)

constexpr int kThreads = 512;
constexpr int kGuWarps = 8;   // warps 0..7: gate/up; 8..15: down
constexpr int kChunk = 8;     // units per hand-over (one per gate/up warp)
constexpr int kMaxE = 1024;
constexpr int kMaxK = 32;

struct P {
  const uint16_t* wr;
  const uint16_t* w13;
  const uint16_t* w2t;
  const uint16_t* x_base;
  int rotate;
  float* logits;    // [E]
  unsigned long long* slots;  // [E] (generation << 32) | float bits: barrier and logits in one word
  float* out_acc;   // [H] fp32, zero between launches
  uint16_t* out;    // [H]
  int* ctrl;        // [0] barrier generation counter, [1] done counter, [2] launch counter
  int H, I, E, K;
  const int* route_ids;  // read kernel: [R][K] host-computed experts
  unsigned long long* stamps;  // [8 launches][nb][8] globaltimer per phase (thread 0 of each block)
};

__device__ __forceinline__ uint4 ld_stream(const uint16_t* p) {
  uint4 v;
  asm volatile(
      "{\n .reg .b64 pol;\n createpolicy.fractional.L2::evict_first.b64 pol, 1.0;\n"
      " ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], pol;\n}"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}
__device__ __forceinline__ uint4 ld_keep(const uint16_t* p) {  // router weights and x: stay in L2
  uint4 v;
  asm volatile(
      "{\n .reg .b64 pol;\n createpolicy.fractional.L2::evict_last.b64 pol, 1.0;\n"
      " ld.global.nc.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], pol;\n}"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}
__device__ __forceinline__ unsigned long long gtimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
#define STAMP(p, iter, k) \
  do { if (threadIdx.x == 0) (p).stamps[((size_t)((iter) & 7) * gridDim.x + blockIdx.x) * 8 + (k)] = gtimer(); } while (0)
__device__ __forceinline__ int ld_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void bar_sync(int id, int n) { asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void bar_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void red4(float* d, float a, float b, float c, float e) {
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(d), "f"(a), "f"(b), "f"(c), "f"(e) : "memory");
}
__device__ __forceinline__ void unpack8(const uint4& v, float f[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    f[2 * k] = __uint_as_float(w[k] << 16);
    f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
  }
}
__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
  float fa[8], fb[8];
  unpack8(a, fa);
  unpack8(b, fb);
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < 8; ++k) s = fmaf(fa[k], fb[k], s);
  return s;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Rank top-k over logits in shared memory: Q threads per expert (Q = nthr / E, lanes next to each other) each
// count the logits of one share that beat this expert's (ties: lower id first); a shuffle sums the Q counts.
// No barrier inside, and not inlined: warps that would only wait at the grid barrier run it once on scratch
// data first, so that its instructions are in the SM's instruction cache when it runs for real (the code runs
// once per launch; cold, its fetches cost about 1.8 us).
// Rank top-k over logits in shared memory (E a multiple of 4): Q threads per expert (a power of two, lanes next
// to each other); thread q of an expert compares against float4 groups q, q+Q, q+2Q, ...: the Q lanes of a
// group read Q consecutive 16-byte words (no bank conflict) and the other experts' lanes read the same
// words (broadcast). Ties: the lower id first. A butterfly over the Q lanes sums the counts. (A first
// version, each thread scanning a contiguous quarter one float at a time, took 1.7 us at E = 128: its Q
// lanes hit one bank, one dependent load at a time.)
__device__ __forceinline__ void rank_topk(const float* lg, int E, int K, int* ids, float* w, int tid, int nthr) {
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
}

// Router + barrier + top-k; leaves ids/weights in shared memory. Returns the launch index.
template <bool POLL>
__device__ int prologue(const P& p, int* s_ids, float* s_w, float* s_lg) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int iter = p.ctrl[2];
  STAMP(p, iter, 0);
  const uint16_t* x = p.x_base + (size_t)(iter % p.rotate) * p.H;
  const int nchunk = p.H / 8;
  // warp-per-expert router, experts spread over the grid: expert e on block e % nb, warp e / nb
  for (int e = blockIdx.x + gridDim.x * warp; e < p.E; e += gridDim.x * (kThreads / 32)) {
    const uint16_t* w = p.wr + (size_t)e * p.H;
    // All of a lane's loads first, then the arithmetic: a load consumed before the next one is issued costs a
    // full memory round trip each (measured: 8 such round trips made this prologue ~7 us).
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
      for (int j = 0; j < 8; ++j) acc += dot8(wv[j], xv[j]);
    }
    acc = warp_sum(acc);
    if (lane == 0) {
      if constexpr (POLL) {
        const unsigned long long v = ((unsigned long long)(unsigned)(iter + 1) << 32) | __float_as_uint(acc);
        asm volatile("st.release.gpu.global.u64 [%0], %1;" ::"l"(p.slots + e), "l"(v) : "memory");
      } else {
        p.logits[e] = acc;
      }
    }
  }
  STAMP(p, iter, 1);
  if constexpr (POLL) {
    // No counter: every block polls the E tagged slots until all carry this launch's generation; the last
    // load that sees them all is also the read of the logits (one L2 round trip instead of an atomic
    // arrival, a poll and a read).
    for (;;) {
      int missing = 0;
      for (int e = threadIdx.x; e < p.E; e += kThreads) {
        unsigned long long v;
        asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p.slots + e) : "memory");
        if ((unsigned)(v >> 32) != (unsigned)(iter + 1)) missing = 1;
        else s_lg[e] = __uint_as_float((unsigned)v);
      }
      if (!__syncthreads_or(missing)) break;
    }
    __threadfence();  // acquire side of the slots' release stores, for whatever the logits' writers wrote before
  } else {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const int target = (iter + 1) * (int)gridDim.x;  // generation: never reset
    atomicAdd(&p.ctrl[0], 1);
    while (ld_acquire(&p.ctrl[0]) < target) {
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < p.E; e += kThreads) s_lg[e] = __ldcg(p.logits + e);
  __syncthreads();
  }
  STAMP(p, iter, 2);
  rank_topk(s_lg, p.E, p.K, s_ids, s_w, threadIdx.x, kThreads);
  __syncthreads();
  STAMP(p, iter, 7);
  if (warp == 0) {  // softmax over the k picked
    const float v = lane < p.K ? s_w[lane] : -INFINITY;
    const float m = __shfl_sync(0xffffffffu, v, 0);
    const float ex = lane < p.K ? __expf(v - m) : 0.f;
    const float sum = warp_sum(ex);
    if (lane < p.K) s_w[lane] = ex / sum;
  }
  __syncthreads();
  STAMP(p, iter, 3);
  return iter;
}

__device__ void finish(const P& p, int iter) {
  __shared__ int s_last;
  __syncthreads();
  STAMP(p, iter, 4);
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) s_last = atomicAdd(&p.ctrl[1], 1) == (int)gridDim.x - 1;
  __syncthreads();
  STAMP(p, iter, 5);
  if (!s_last) return;
  __threadfence();
  for (int h = threadIdx.x; h < p.H; h += kThreads) {
    const float v = __ldcg(p.out_acc + h);
    __nv_bfloat16 b = __float2bfloat16_rn(v);
    p.out[h] = *reinterpret_cast<uint16_t*>(&b);
    p.out_acc[h] = 0.f;
  }
  if (threadIdx.x == 0) {
    p.ctrl[1] = 0;
    p.ctrl[2] = iter + 1;
  }
  STAMP(p, iter, 6);
}

template <bool POLL>
__global__ void __launch_bounds__(kThreads, 1) k_prologue(P p) {
  __shared__ int s_ids[kMaxK];
  __shared__ float s_w[kMaxK];
  __shared__ __align__(16) float s_lg[kMaxE];
  const int iter = prologue<POLL>(p, s_ids, s_w, s_lg);
  if (blockIdx.x == 0 && threadIdx.x < p.K) p.out_acc[threadIdx.x] += s_w[threadIdx.x] * 0.f;  // keep it live
  finish(p, iter);
}

// H = 2048 exactly: each down thread owns 8 columns (256 threads x 8).
template <bool POLL>
__global__ void __launch_bounds__(kThreads, 1) k_flat(P p) {
  __shared__ int s_ids[kMaxK];
  __shared__ float s_w[kMaxK];
  __shared__ __align__(16) float s_lg[kMaxE];
  __shared__ float s_a[2][kChunk];
  const int iter = prologue<POLL>(p, s_ids, s_w, s_lg);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int U = p.K * p.I;
  const int u0 = (int)((long long)blockIdx.x * U / gridDim.x), u1 = (int)((long long)(blockIdx.x + 1) * U / gridDim.x);
  const int nchunks = (u1 - u0 + kChunk - 1) / kChunk;
  const uint16_t* x = p.x_base + (size_t)(iter % p.rotate) * p.H;
  if (warp < kGuWarps) {
    // gate/up: warp w takes unit u0 + c*8 + w of chunk c
    uint4 xr[8];  // x chunks lane + 32 j (H = 2048 -> 256 chunks, 8 per lane)
#pragma unroll
    for (int j = 0; j < 8; ++j) xr[j] = ld_keep(x + (size_t)(lane + 32 * j) * 8);
    for (int c = 0; c < nchunks; ++c) {
      const int b = c & 1;
      if (c >= 2) bar_sync(3 + b, kThreads);  // EMPTY[b]: the down warps are done with this buffer
      const int u = u0 + c * kChunk + warp;
      float a = 0.f;
      if (u < u1) {
        const int k = u / p.I, i = u - k * p.I, e = s_ids[k];
        const uint16_t* g = p.w13 + ((size_t)e * 2 * p.I + 2 * (size_t)i) * p.H;
        uint4 gv[8], uv[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) gv[j] = ld_stream(g + (size_t)(lane + 32 * j) * 8);
#pragma unroll
        for (int j = 0; j < 8; ++j) uv[j] = ld_stream(g + p.H + (size_t)(lane + 32 * j) * 8);
        float gs = 0.f, us = 0.f;
#pragma unroll
        for (int j = 0; j < 8; ++j) { gs += dot8(gv[j], xr[j]); us += dot8(uv[j], xr[j]); }
        gs = warp_sum(gs);
        us = warp_sum(us);
        a = s_w[k] * (gs / (1.f + __expf(-gs))) * us;
      }
      if (lane == 0) s_a[b][warp] = a;
      bar_arrive(1 + b, kThreads);  // FULL[b]
    }
  } else {
    const int t = threadIdx.x - kGuWarps * 32;  // 0..255, owns columns 8t..8t+7
    float acc[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[k] = 0.f;
    uint4 wv[kChunk];
    // The down rows of a chunk are known before its activations are: the unit -> (expert, i) map only needs the
    // routing, which every block already has. Load chunk c+1 while chunk c's activations are being made.
    auto load_chunk = [&](int c, uint4 (&dst)[kChunk]) {
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        const int u = u0 + c * kChunk + j;
        if (u < u1) {
          const int k = u / p.I, i = u - k * p.I, e = s_ids[k];
          dst[j] = ld_stream(p.w2t + ((size_t)e * p.I + i) * p.H + (size_t)t * 8);
        } else {
          dst[j] = make_uint4(0, 0, 0, 0);
        }
      }
    };
    if (nchunks > 0) load_chunk(0, wv);
    for (int c = 0; c < nchunks; ++c) {
      const int b = c & 1;
      uint4 nx[kChunk];
      if (c + 1 < nchunks) load_chunk(c + 1, nx);
      bar_sync(1 + b, kThreads);  // FULL[b]
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        const float a = s_a[b][j];
        float wf[8];
        unpack8(wv[j], wf);
#pragma unroll
        for (int k = 0; k < 8; ++k) acc[k] = fmaf(a, wf[k], acc[k]);
      }
      if (c + 2 < nchunks) bar_arrive(3 + b, kThreads);  // EMPTY[b]
      if (c + 1 < nchunks)
#pragma unroll
        for (int j = 0; j < kChunk; ++j) wv[j] = nx[j];
    }
    // Completion per 256 output columns (one down warp's columns, the same in every block): the warp that adds
    // the last block's share converts those columns and clears them, so no block waits for the whole grid and
    // the conversion is spread over 8 warps instead of one block.
    const int dw = warp - kGuWarps;
    if (threadIdx.x == kGuWarps * 32) p.stamps[((size_t)(iter & 7) * gridDim.x + blockIdx.x) * 8 + 4] = gtimer();
    red4(p.out_acc + t * 8, acc[0], acc[1], acc[2], acc[3]);
    red4(p.out_acc + t * 8 + 4, acc[4], acc[5], acc[6], acc[7]);
    __threadfence();
    __syncwarp();
    int last = 0;
    if (lane == 0) last = atomicAdd(&p.ctrl[8 + dw], 1) == (int)gridDim.x - 1;
    last = __shfl_sync(0xffffffffu, last, 0);
    if (threadIdx.x == kGuWarps * 32) p.stamps[((size_t)(iter & 7) * gridDim.x + blockIdx.x) * 8 + 5] = gtimer();
    if (last) {
      __threadfence();
      const float4 a = __ldcg(reinterpret_cast<const float4*>(p.out_acc + t * 8));
      const float4 b = __ldcg(reinterpret_cast<const float4*>(p.out_acc + t * 8 + 4));
      const float f[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
      uint32_t w[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        __nv_bfloat162 h = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
        w[k] = *reinterpret_cast<uint32_t*>(&h);
      }
      *reinterpret_cast<uint4*>(p.out + t * 8) = make_uint4(w[0], w[1], w[2], w[3]);
      reinterpret_cast<float4*>(p.out_acc + t * 8)[0] = make_float4(0.f, 0.f, 0.f, 0.f);
      reinterpret_cast<float4*>(p.out_acc + t * 8)[1] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (lane == 0) {
        p.ctrl[8 + dw] = 0;
        if (atomicAdd(&p.ctrl[3], 1) == 7) {  // the last of the 8 column groups: the launch is over
          p.ctrl[3] = 0;
          p.ctrl[2] = iter + 1;
          p.stamps[((size_t)(iter & 7) * gridDim.x + blockIdx.x) * 8 + 6] = gtimer();
        }
      }
    }
  }
}

// The routed experts' bytes, host-routed, each block a contiguous share of the 3*K*I rows.
__global__ void __launch_bounds__(kThreads, 1) k_read(P p, unsigned* sink) {
  const int iter = p.ctrl[2];
  const int* ids = p.route_ids + (size_t)(iter % p.rotate) * p.K;
  const int rows = 3 * p.K * p.I;  // per expert: 2I rows of w13 then I rows of w2t
  const int r0 = (int)((long long)blockIdx.x * rows / gridDim.x), r1 = (int)((long long)(blockIdx.x + 1) * rows / gridDim.x);
  const int nchunk = p.H / 8;
  unsigned accx = 0;
  const int total = (r1 - r0) * nchunk;
  for (int q0 = threadIdx.x; q0 < total; q0 += kThreads * 8) {
    uint4 v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int q = q0 + j * kThreads;
      if (q < total) {
        const int r = r0 + q / nchunk, c = q % nchunk;
        const int k = r / (3 * p.I), rr = r % (3 * p.I), e = ids[k];
        const uint16_t* base = rr < 2 * p.I ? p.w13 + ((size_t)e * 2 * p.I + rr) * p.H : p.w2t + ((size_t)e * p.I + (rr - 2 * p.I)) * p.H;
        v[j] = ld_stream(base + (size_t)c * 8);
      } else {
        v[j] = make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) accx ^= v[j].x ^ v[j].y ^ v[j].z ^ v[j].w;
  }
  if (accx == 0x12345678u) *sink = accx;
  __syncthreads();
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    __threadfence();
  }
  // launch counter: last block
  __shared__ int s_last;
  if (threadIdx.x == 0) s_last = atomicAdd(&p.ctrl[1], 1) == (int)gridDim.x - 1;
  __syncthreads();
  if (s_last && threadIdx.x == 0) { p.ctrl[1] = 0; p.ctrl[2] = iter + 1; }
}

__global__ void k_empty() {}

// ------------------------------------------------------------------ host
static float bf2f(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; std::memcpy(&f, &u, 4); return f; }
static uint16_t f2bf(float f) {
  uint32_t u; std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static uint64_t sm64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static float urand(uint64_t s, uint64_t i) { return (float)((double)(sm64(s * 0x1000003ull + i) >> 40) * (1.0 / 8388608.0) - 1.0); }

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 200;
  const int H = argc > 5 ? std::atoi(argv[2]) : 2048, I = argc > 5 ? std::atoi(argv[3]) : 768;
  const int E = argc > 5 ? std::atoi(argv[4]) : 128, K = argc > 5 ? std::atoi(argv[5]) : 8;
  if (H != 2048) { std::fprintf(stderr, "t1_flat: the flat kernel here needs H = 2048\n"); return 2; }
  const int R = 64;
  std::vector<uint16_t> wr((size_t)E * H), w13((size_t)E * 2 * I * H), w2t((size_t)E * I * H), xs((size_t)R * H);
  const float sh = std::sqrt(3.f / H), si = std::sqrt(3.f / I);
  for (size_t i = 0; i < wr.size(); ++i) wr[i] = f2bf(urand(1, i) * sh);
  for (size_t i = 0; i < w13.size(); ++i) w13[i] = f2bf(urand(2, i) * sh);
  for (size_t i = 0; i < w2t.size(); ++i) w2t[i] = f2bf(urand(3, i) * si);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = f2bf(urand(4, i) * std::sqrt(3.f));
  // host routing (fp64) for the read kernel and the check
  std::vector<int> ids((size_t)R * K);
  std::vector<double> wts((size_t)R * K);
  for (int r = 0; r < R; ++r) {
    std::vector<double> lg(E);
    for (int e = 0; e < E; ++e) {
      double s = 0;
      for (int h = 0; h < H; ++h) s += (double)bf2f(wr[(size_t)e * H + h]) * bf2f(xs[(size_t)r * H + h]);
      lg[e] = s;
    }
    std::vector<int> ord(E);
    for (int e = 0; e < E; ++e) ord[e] = e;
    std::partial_sort(ord.begin(), ord.begin() + K, ord.end(), [&](int a, int b) { return lg[a] > lg[b] || (lg[a] == lg[b] && a < b); });
    double m = lg[ord[0]], sum = 0;
    for (int k = 0; k < K; ++k) { ids[(size_t)r * K + k] = ord[k]; wts[(size_t)r * K + k] = std::exp(lg[ord[k]] - m); sum += wts[(size_t)r * K + k]; }
    for (int k = 0; k < K; ++k) wts[(size_t)r * K + k] /= sum;
  }
  auto up16 = [](const std::vector<uint16_t>& h) { uint16_t* d; CK(cudaMalloc(&d, h.size() * 2)); CK(cudaMemcpy(d, h.data(), h.size() * 2, cudaMemcpyHostToDevice)); return d; };
  P p{};
  p.wr = up16(wr); p.w13 = up16(w13); p.w2t = up16(w2t); p.x_base = up16(xs);
  p.rotate = R; p.H = H; p.I = I; p.E = E; p.K = K;
  CK(cudaMalloc(&p.logits, E * 4));
  CK(cudaMalloc(&p.slots, E * 8));
  CK(cudaMalloc(&p.stamps, (size_t)8 * 1024 * 8 * 8));
  CK(cudaMalloc(&p.out_acc, H * 4)); CK(cudaMemset(p.out_acc, 0, H * 4));
  CK(cudaMalloc(&p.out, H * 2));
  CK(cudaMalloc(&p.ctrl, 64)); CK(cudaMemset(p.ctrl, 0, 64));
  int* dids; CK(cudaMalloc(&dids, ids.size() * 4)); CK(cudaMemcpy(dids, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
  p.route_ids = dids;
  unsigned* sink; CK(cudaMalloc(&sink, 4));
  cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, 0));
  const int nb = prop.multiProcessorCount;
  cudaStream_t st; CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  auto reset = [&]() {
    CK(cudaMemsetAsync(p.ctrl, 0, 64, st));
    CK(cudaMemsetAsync(p.out_acc, 0, H * 4, st));
    CK(cudaMemsetAsync(p.slots, 0, E * 8, st));
  };

  // correctness of flat (both barriers), iterations 0..7 (inputs 0..7)
  double worst = 0;
  for (int pass = 0; pass < 2; ++pass) {
  reset();
  for (int r = 0; r < 8; ++r) {
    CK(cudaMemsetAsync(p.out, 0xff, H * 2, st));  // poison (bf16 NaN)
    if (pass == 0) k_flat<false><<<nb, kThreads, 0, st>>>(p); else k_flat<true><<<nb, kThreads, 0, st>>>(p);
    CK(cudaGetLastError());
    std::vector<uint16_t> out(H);
    CK(cudaMemcpyAsync(out.data(), p.out, H * 2, cudaMemcpyDeviceToHost, st));
    CK(cudaStreamSynchronize(st));
    std::vector<double> ref(H, 0.0);
    for (int k = 0; k < K; ++k) {
      const int e = ids[(size_t)r * K + k];
      for (int i = 0; i < I; ++i) {
        double g = 0, u = 0;
        for (int h = 0; h < H; ++h) {
          const double xv = bf2f(xs[(size_t)r * H + h]);
          g += bf2f(w13[((size_t)e * 2 * I + 2 * (size_t)i) * H + h]) * xv;
          u += bf2f(w13[((size_t)e * 2 * I + 2 * (size_t)i + 1) * H + h]) * xv;
        }
        const double a = wts[(size_t)r * K + k] * g / (1 + std::exp(-g)) * u;
        for (int h = 0; h < H; ++h) ref[h] += a * bf2f(w2t[((size_t)e * I + i) * H + h]);
      }
    }
    double num = 0, den = 0;
    bool nan = false;
    for (int h = 0; h < H; ++h) {
      const double o = bf2f(out[h]);
      if (!std::isfinite(o)) nan = true;
      num += (o - ref[h]) * (o - ref[h]);
      den += ref[h] * ref[h];
    }
    const double rel = nan ? INFINITY : std::sqrt(num / den);
    worst = std::max(worst, rel);
  }
  }
  std::printf("{\"device\":\"%s\",\"sms\":%d,\"H\":%d,\"I\":%d,\"E\":%d,\"K\":%d,\"check_rel_err\":%.3e,\"check_pass\":%s}\n", prop.name, nb, H, I, E, K,
              worst, worst < 2e-2 ? "true" : "false");
  if (!(worst < 2e-2)) return 1;

  auto time = [&](const char* name, auto launch) {
    reset();
    for (int i = 0; i < 20; ++i) launch();
    std::vector<cudaEvent_t> ev(2 * iters);
    for (auto& e : ev) CK(cudaEventCreate(&e));
    for (int i = 0; i < iters; ++i) {
      CK(cudaEventRecord(ev[2 * i], st));
      launch();
      CK(cudaEventRecord(ev[2 * i + 1], st));
    }
    CK(cudaStreamSynchronize(st));
    std::vector<float> us(iters);
    for (int i = 0; i < iters; ++i) { float ms; CK(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1])); us[i] = ms * 1000.f; }
    for (auto& e : ev) CK(cudaEventDestroy(e));
    std::sort(us.begin(), us.end());
    const double bytes = (double)K * 3 * I * H * 2 + (double)E * H * 2;
    std::printf("{\"kernel\":\"%s\",\"median_us\":%.2f,\"p10_us\":%.2f,\"p90_us\":%.2f,\"tbps\":%.3f}\n", name, us[iters / 2], us[iters / 10],
                us[iters * 9 / 10], bytes / (us[iters / 2] * 1e-6) / 1e12);
    if (std::string(name).rfind("read", 0) == 0 || std::string(name) == "empty") return;
    // phases of the last 8 launches: per launch, t0 = earliest block entry; each stamp's median over blocks
    std::vector<unsigned long long> stv((size_t)8 * nb * 8);
    CK(cudaMemcpy(stv.data(), p.stamps, stv.size() * 8, cudaMemcpyDeviceToHost));
    const char* names[8] = {"entry", "router_done", "barrier_done", "topk_done", "work_done", "arrived", "converted", "ranked"};
    std::printf("{\"phases_of\":\"%s\"", name);
    for (int k = 0; k < 8; ++k) {
      std::vector<double> v;
      std::vector<double> mx;
      for (int l = 0; l < 8; ++l) {
        unsigned long long t0 = ~0ull;
        for (int b = 0; b < nb; ++b) t0 = std::min(t0, stv[((size_t)l * nb + b) * 8]);
        double m = 0;
        for (int b = 0; b < nb; ++b) {
          const unsigned long long t = stv[((size_t)l * nb + b) * 8 + k];
          if (t >= t0 && t - t0 < 1000000ull) { v.push_back((t - t0) / 1000.0); m = std::max(m, (t - t0) / 1000.0); }
        }
        mx.push_back(m);
      }
      if (v.empty()) continue;
      std::sort(v.begin(), v.end());
      std::sort(mx.begin(), mx.end());
      std::printf(",\"%s_med_us\":%.2f,\"%s_max_us\":%.2f", names[k], v[v.size() / 2], names[k], mx[mx.size() / 2]);
    }
    std::printf("}\n");
  };
  for (int rep = 0; rep < 2; ++rep) {
    time("read", [&]() { k_read<<<nb, kThreads, 0, st>>>(p, sink); CK(cudaGetLastError()); });
    time("prologue", [&]() { k_prologue<false><<<nb, kThreads, 0, st>>>(p); CK(cudaGetLastError()); });
    time("prologue-poll", [&]() { k_prologue<true><<<nb, kThreads, 0, st>>>(p); CK(cudaGetLastError()); });
    time("flat", [&]() { k_flat<false><<<nb, kThreads, 0, st>>>(p); CK(cudaGetLastError()); });
    time("flat-poll", [&]() { k_flat<true><<<nb, kThreads, 0, st>>>(p); CK(cudaGetLastError()); });
    time("empty", [&]() { k_empty<<<nb, kThreads, 0, st>>>(); CK(cudaGetLastError()); });
  }
  return 0;
}
