// moe_cuda.cu — CUDA backend of moe-bench: one MoE layer forward (decode-sized
// T), bf16/fp16 storage, fp32 accumulation. Layout as in common.h: router
// Wr[E][H], w13[E][2I][H] (gate/up rows interleaved), w2t[E][I][H] (down,
// input-major), x[T][H] -> out[T][H].
//
// Math (all variants): logits = Wr x; top-k on the logits, then softmax over
// the k picked only; a_i = silu(gate_i.x) * (up_i.x); out += w * sum_i a_i w2t[i].
// The combine accumulates in an fp32 buffer (atomics), converted to the storage
// dtype by whichever block finishes last, which also zeroes the buffer and
// resets the counters for the next launch (every launch leaves the control
// state clean; the host also clears it before each variant).
//
// Variants (--variant):
//   separate              3 ordinary kernels replayed from a CUDA graph:
//                         K1 router GEMV (warp per expert) + last block does
//                         top-k/softmax and the per-expert token lists; K2 fused
//                         gate+up GEMV + SiLU*mul, grid (I/16 tiles, active
//                         experts); K3 down GEMV + weighted combine, grid
//                         (H/128 tiles, active experts), last block converts.
//   persistent-simple     one persistent kernel, 1 block/SM (occupancy API):
//                         router rows spread over all blocks, block 0 = OS: it
//                         routes, then ONE thread dispatches every FFN1 tile to a
//                         worker doorbell (lowest idle worker, polling acks);
//                         workers count FFN1 completions per expert (fan-in) and
//                         the last one pushes that expert's FFN2 (down) tiles to
//                         a queue the OS dispatches in turn.
//   persistent-multiwarp  same, 4 scheduling warps share the dispatch (each owns
//                         a quarter of the workers, polls 32 acks per load
//                         round, tasks claimed through a shared counter).
//   persistent-roundrobin same, one thread, next_w round-robin search for a
//                         ready worker, initial order spread across SMs.
//   persistent-splitk     (ours) no OS block, no doorbells, no fan-in: a task is
//                         (expert, slice of 16..256 intermediate units): gate+up
//                         for the slice into shared memory, then that slice's
//                         share of the down projection (w2t rows are contiguous,
//                         so it is one contiguous read) added into the fp32
//                         output with vector reductions. Tasks are independent, so
//                         a static round-robin schedule needs no waits except one
//                         grid barrier after the router; the next task's gate/up
//                         slice and this task's down slice are prefetched into L2.
//   persistent-splitk-dyn (ours) as splitk, but blocks take tasks from an
//                         atomic counter (self-dispatch), and the last ~one task
//                         per block is cut into half-size slices (tail balance).
//   persistent-stream     (ours, sm_90 only, T <= 4) the splitk tasks, each
//                         block's weights one continuous stream of 16 KB chunks
//                         through the bulk copy engine (cp.async.bulk + mbarrier,
//                         8 stages). Slower than splitk, and known-wrong when an
//                         expert gets > 4 tokens (hence refused for T > 4).
//
// Measured (H100 SXM 80GB, 2026-11-26, Qwen3-30B-A3B, T=1, bf16; details and
// the full table in csrc/BENCHMARKS.md): separate 48.9 us, persistent-splitk
// 46.6-47.2 us, persistent-multiwarp 95 us, persistent-simple 218 us,
// persistent-roundrobin 208 us; memory floor 25.2 us (76 MB / 3.02 TB/s); a
// bare 76 MB read kernel takes 32.6 us on the same card.
//
// GEMV inner loops: 16-byte loads (ld.global.nc.L1::no_allocate), every lane
// keeps 8 independent loads in flight before the first use, warp-shuffle
// reductions; no staging of weights in shared memory (the seed found ILP beats it).
//
// Measured figures: see csrc/BENCHMARKS.md (H100 SXM).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <thread>
#include <memory>

#include "backend.h"
#include "cuda_util.cuh"

namespace moe {

namespace {

constexpr int kThreads = 512;           // every kernel here uses 512 threads (16 warps)
constexpr int kWarps = kThreads / 32;
constexpr int kNT = 4;                  // tokens per register group
constexpr int kMaxEv = 512;
constexpr int kSaccFloats = 16384;      // splitk: block-private output accumulator (64 KB)
constexpr bool kUseSacc = false;        // see k_persistent_splitk             // trace events per block per launch
constexpr long long kSpinLimit = 1ll << 24;  // seconds of polling (far beyond any real wait): then trap

enum TraceType : int {
  TR_ROUTER = 0, TR_BARRIER = 1, TR_FFN1 = 2, TR_FFN2 = 3, TR_DOORBELL = 4, TR_OS_QUEUE = 5,
  TR_OS_WORKER = 6, TR_CONVERT = 7, TR_TOPK = 8, TR_SPLITK = 9, TR_OS_DRAIN = 10, TR_TOPK_ONLY = 11, TR_SK_FFN1 = 12, TR_SK_DOWN = 13, TR_SK_FLUSH = 14, TR_NUM = 15
};
const char* kTraceNames[TR_NUM] = {"router", "wait:router-barrier", "ffn1", "ffn2", "wait:doorbell",
                                   "wait:os-queue(fan-in)", "wait:os-free-worker", "convert", "topk+lists",
                                   "splitk-task", "wait:os-drain", "topk-only", "splitk:gate-up", "splitk:down+atomics", "splitk:flush"};
inline bool trace_is_wait(int t) {
  return t == TR_BARRIER || t == TR_DOORBELL || t == TR_OS_QUEUE || t == TR_OS_WORKER || t == TR_OS_DRAIN;
}

struct TraceEv { int type, task; unsigned long long t0, t1; };

// Control words (ints), reset by the kernels themselves at the end of a launch.
enum Ctrl : int {
  C_ROUTER = 0,   // blocks that finished their router rows
  C_DONE = 1,     // blocks (or FFN2 tiles) finished -> last one converts
  C_QTAIL = 2,    // FFN2 queue tail (OS variants)
  C_TASK = 3,     // dynamic task counter (splitk-dyn)
  C_K1 = 4,       // separate: K1 blocks done
  C_K3 = 5,       // separate: K3 blocks done
  C_ITER = 6,     // launch counter (input rotation, clock slots)
  C_ERR = 7,      // error code set before a trap
  C_NACT = 8,     // number of active experts (published lists)
  C_N = 16
};

struct Params {
  const uint16_t* wr;
  const uint16_t* w13;
  const uint16_t* w2t;
  const uint16_t* x_base;
  int rotate;
  uint16_t* out;
  float* out_acc;     // [T][H], zero between launches
  float* logits;      // [T][E]
  int* topk_ids;      // [T][K]
  float* topk_w;      // [T][K]
  float* act;         // [T*K][I]
  int* l_cnt;         // [E] tokens per expert
  int* l_off;         // [E]
  int* l_slots;       // [T*K] slots (t*K+j) grouped by expert
  int* l_active;      // [E] active experts, ascending
  int* ctrl;          // Ctrl words
  int* fanin;         // [E]
  unsigned long long* db;  // [nb] doorbells: (task << 32) | seq
  int* ack;           // [nb]
  int* queue;         // [E * tiles2] FFN2 tasks pushed by workers
  int* qflag;         // [E * tiles2]
  int* smid;          // [nb]
  long long* clk;     // [clk_cap][4]: clock64 start/end, globaltimer start/end (block 0)
  int clk_cap;
  TraceEv* trace;     // [nb][kMaxEv] or null
  int* trace_n;       // [nb]
  int T, H, I, E, K;
  int ti;             // FFN1 / split-K slice (intermediate units)
  int nh;             // FFN2 tile (hidden rows)
  int strategy;       // OS: 0 simple, 1 multiwarp, 2 roundrobin; splitk: 0 static, 1 dynamic
  int nb;             // grid size (persistent)
  int debug;          // experiments (env MOE_DEBUG): 1 = top-k twice (trace the 2nd), 2 = atomicAdd(float4) API
};

// ------------------------------------------------------------------ PTX helpers
// Streamed weights: read once per launch, so no L1 allocation, and marked
// evict-first in L2 so they do not push out what is reused (code, x, logits,
// control words, the fp32 output).
__device__ __forceinline__ uint4 ld_stream(const uint16_t* p) {
  uint4 v;
#ifdef MOE_NO_L2_HINT
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
#else
  asm volatile("{\n .reg .b64 pol;\n createpolicy.fractional.L2::evict_first.b64 pol, 1.0;\n"
               " ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], pol;\n}"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
#endif
  return v;
}
__device__ __forceinline__ uint4 ld_ro(const uint16_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ int ld_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_release(int* p, int v) {
  asm volatile("st.release.gpu.global.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ unsigned long long ld_volatile64(const unsigned long long* p) {
  return *reinterpret_cast<const volatile unsigned long long*>(p);
}
__device__ __forceinline__ int4 ld_volatile_v4(const int* p) {
  int4 v;
  asm volatile("ld.volatile.global.v4.s32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ unsigned long long gtimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
// Trace timestamps only when tracing: timed launches do not read the timer.
#define gt(p) ((p).trace ? gtimer() : 0ull)
__device__ __forceinline__ int get_smid() {
  int s;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
  return s;
}
__device__ __forceinline__ void spin_fail(const Params& p, int code) {
  atomicExch(&p.ctrl[C_ERR], code);
  __threadfence();
  __trap();
}

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

__device__ __forceinline__ const uint16_t* x_of(const Params& p, int iter) {
  return p.x_base + (size_t)(iter % p.rotate) * p.T * p.H;
}

// Trace helpers (thread 0 of a block only).
struct Tracer {
  TraceEv* buf = nullptr;
  int n = 0;
  __device__ void init(const Params& p) { buf = p.trace ? p.trace + (size_t)blockIdx.x * kMaxEv : nullptr; n = 0; }
  __device__ void add(int type, int task, unsigned long long t0, unsigned long long t1) {
    if (buf && n < kMaxEv) { buf[n] = TraceEv{type, task, t0, t1}; ++n; }
  }
  __device__ void finish(const Params& p) { if (buf) p.trace_n[blockIdx.x] = n; }
};

// ------------------------------------------------------------------ GEMV pieces
// NR weight rows (length H, 16B chunks) dotted with NT token vectors; each lane
// takes chunks lane, lane+32, ...; U chunks per row in flight. Results reduced
// over the warp (every lane gets them).
template <bool BF, int NR, int NT, int U>
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
          unpack8<BF>(ld_ro(x[t] + (size_t)c * 8), xf);
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
template <bool BF>
__device__ void router_expert(const Params& p, const uint16_t* x, int e) {
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
      p.logits[(size_t)(t0 + threadIdx.x) * p.E + e] = sum;
    }
    __syncthreads();
  }
}

__device__ __forceinline__ void prefetch_l2(const void* base, size_t bytes) {
  for (size_t off = (size_t)threadIdx.x * 128; off < bytes; off += (size_t)blockDim.x * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"((const char*)base + off));
}

// Top-k by rank (E <= 256): logits of up to 2048/E tokens at a time in shared
// memory; every (token, expert) pair counts how many logits beat it (ties: the
// lower id wins, as on the CPU), the count split over Q threads when the block
// has spare threads (T=1: 4 threads per expert); rank < k is a pick. Then the
// softmax over the k picked logits, warp per token. No serial rounds.
__device__ void topk_rank(const Params& p, int* s_ids, float* s_w, float* buf) {
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
__device__ void topk_warp(const Params& p, int* s_ids, float* s_w, float* buf_all) {
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

// Whole block calls; results in s_ids/s_w after a __syncthreads by the caller.
__device__ void topk_softmax(const Params& p, int* s_ids, float* s_w, float* buf) {
  if (p.E <= 256) topk_rank(p, s_ids, s_w, buf);
  else topk_warp(p, s_ids, s_w, buf);
}

// Per-expert token lists in shared memory from s_ids: cnt, off (exclusive
// prefix), slots grouped by expert, active experts ascending. Returns n_active.
__device__ int build_lists(const Params& p, const int* s_ids, int* cnt, int* off, int* fill, int* slots,
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

// FFN1 for intermediate units [i0, i1) of expert e and tokens slots[0..n):
// warp per (gate, up) row pair; a = silu(g)*u written to dst(token j, unit i).
template <bool BF, class Dst>
__device__ void ffn1_rows(const Params& p, const uint16_t* x, int e, int i0, int i1, const int* slots, int n,
                          Dst dst) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
  const int nchunk = p.H / 8;
  for (int i = i0 + warp; i < i1; i += nwarp) {
    const uint16_t* g = p.w13 + ((size_t)e * 2 * p.I + 2 * (size_t)i) * p.H;
    const uint16_t* w[2] = {g, g + p.H};
    if (n == 1) {
      const uint16_t* xs[1] = {x + (size_t)(slots[0] / p.K) * p.H};
      float acc[2][1];
      rows_dot<BF, 2, 1, 8>(w, xs, nchunk, acc);
      if (lane == 0) dst(0, i, silu(acc[0][0]) * acc[1][0]);
    } else {
      for (int j0 = 0; j0 < n; j0 += kNT) {
        const uint16_t* xs[kNT];
#pragma unroll
        for (int t = 0; t < kNT; ++t) xs[t] = x + (size_t)(slots[min(j0 + t, n - 1)] / p.K) * p.H;
        float acc[2][kNT];
        rows_dot<BF, 2, kNT, 4>(w, xs, nchunk, acc);
        if (lane == 0)
#pragma unroll
          for (int t = 0; t < kNT; ++t)
            if (j0 + t < n) dst(j0 + t, i, silu(acc[0][t]) * acc[1][t]);
      }
    }
  }
}

// out[0..3] += v, no return value (sm_90: one vector reduction; else 4 scalar ones).
__device__ __forceinline__ void red_add4(float* d, float4 v, bool use_atomic_api) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (use_atomic_api) { atomicAdd(reinterpret_cast<float4*>(d), v); return; }
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(d), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
               : "memory");
#else
  (void)use_atomic_api;
  atomicAdd(d, v.x); atomicAdd(d + 1, v.y); atomicAdd(d + 2, v.z); atomicAdd(d + 3, v.w);
#endif
}

// Widest column chunk for down_rows that divides hidden (a multiple of 256) and leaves every
// thread a column group: nh/8 column chunks must divide the block.
__device__ __forceinline__ int down_chunk(int H) {
  for (int c = min(4096, 8 * (int)blockDim.x); c > 256; c >>= 1)
    if (H % c == 0 && (int)blockDim.x % (c / 8) == 0) return c;
  return 256;
}

// Down projection share: rows i in [i0, i1) of w2t[e], hidden columns
// [h0, h0+nh), tokens j < nt (nt <= kNT) with activations sa[j*astride + (i-i0)]
// in shared memory; out_acc[tok][h] += w_j * sum. red: blockDim*8 floats.
// Threads: CL = nh/8 column chunks x RG = blockDim/CL row groups.
template <bool BF, int NT>
__device__ void down_rows(const Params& p, int e, int i0, int i1, int h0, int nh, const float* sa, int astride,
                          const int* toks, const float* wts, int nt, float* red, float* sacc = nullptr) {
  const int CL = nh / 8, RG = blockDim.x / CL;
  const int cl = threadIdx.x % CL, rg = threadIdx.x / CL;
  float acc[NT][8];
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[t][k] = 0.f;
  const uint16_t* base = p.w2t + (size_t)e * p.I * p.H + h0 + cl * 8;
  constexpr int U = 8;
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
  if (sacc) {  // block-private fp32 output in shared memory: no reduction pass, no global atomics per task
    for (int t = 0; t < nt; ++t) {
      float* d = sacc + (size_t)toks[t] * p.H + h0 + cl * 8;
#pragma unroll
      for (int k = 0; k < 8; ++k) atomicAdd(d + k, wts[t] * acc[t][k]);
    }
    return;
  }
  // reduce over the RG row groups, then one atomic per 4 columns per token
  for (int t = 0; t < nt; ++t) {
    __syncthreads();
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
      red_add4(dst + c4 * 4, s, p.debug & 2);
    }
  }
  __syncthreads();
}

// The block that finishes last: out = dtype(out_acc); out_acc = 0.
template <bool BF>
__device__ void convert_out(const Params& p) {
  const int n = p.T * p.H;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float v = __ldcg(p.out_acc + i);
    p.out[i] = to_store<BF>(v);
    p.out_acc[i] = 0.f;
  }
}

// Am I the last of `total` arrivals on ctrl[c]? Whole block calls; returns to all.
__device__ bool arrive_last(int* ctr, int total) {
  __shared__ int s_last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    s_last = atomicAdd(ctr, 1) == total - 1;
    if (s_last) __threadfence();
  }
  __syncthreads();
  return s_last;
}

__device__ void clock_begin(long long (&c)[2]) { c[0] = clock64(); c[1] = (long long)gtimer(); }
__device__ void clock_end(const Params& p, int iter, const long long (&c)[2]) {
  if (iter < p.clk_cap) {
    long long* d = p.clk + (size_t)iter * 4;
    d[0] = c[0]; d[1] = clock64(); d[2] = c[1]; d[3] = (long long)gtimer();
  }
}

// Shared memory layout of the persistent kernels (dynamic).
struct Smem {
  float* red; float* sa; int* ids; float* w; int* cnt; int* off; int* fill; int* slots; int* active; int* misc;
  __device__ Smem(char* base, const Params& p) {
    red = reinterpret_cast<float*>(base);
    sa = red + kThreads * 8;
    ids = reinterpret_cast<int*>(sa + (size_t)kNT * max(p.I, p.ti));
    w = reinterpret_cast<float*>(ids + p.T * p.K);
    cnt = reinterpret_cast<int*>(w + p.T * p.K);
    off = cnt + p.E;
    fill = off + p.E;
    slots = fill + p.E;
    active = slots + p.T * p.K;
    misc = active + p.E;
  }
};
size_t smem_bytes(int T, int I, int E, int K, int ti, int nb) {
  return (size_t)kThreads * 8 * 4 + (size_t)kNT * std::max(I, ti) * 4 + (size_t)T * K * 4 * 3 +
         (size_t)E * 4 * 4 + (size_t)(nb + 64) * 4 * 4 + 256 + (size_t)T * K * 4;
}

// ================================================================== separate
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

template <bool BF>
__global__ void __launch_bounds__(kThreads) k_ffn1(Params p) {
  __shared__ long long clk[2];
  const bool timer = blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0;
  if (timer) clock_begin(clk);
  const int iter = p.ctrl[C_ITER];
  if ((int)blockIdx.y < p.ctrl[C_NACT]) {
    const int e = p.l_active[blockIdx.y];
    const int n = p.l_cnt[e];
    const int* slots = p.l_slots + p.l_off[e];
    const int i0 = blockIdx.x * p.ti, i1 = min(p.I, i0 + p.ti);
    float* act = p.act;
    const int I = p.I;
    ffn1_rows<BF>(p, x_of(p, iter), e, i0, i1, slots, n,
                  [&](int j, int i, float v) { act[(size_t)slots[j] * I + i] = v; });
  }
  if (timer) clock_end(p, iter, clk);
}

template <bool BF>
__global__ void __launch_bounds__(kThreads) k_down(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  Smem s(smem_raw, p);
  if ((int)blockIdx.y < p.ctrl[C_NACT]) {
    const int e = p.l_active[blockIdx.y];
    const int n = p.l_cnt[e];
    const int* slots = p.l_slots + p.l_off[e];
    for (int j0 = 0; j0 < n; j0 += kNT) {
      const int nt = min(kNT, n - j0);
      int toks[kNT];
      float wts[kNT];
      for (int t = 0; t < kNT; ++t) {
        int sl = slots[min(j0 + t, n - 1)];
        toks[t] = sl / p.K;
        wts[t] = p.topk_w[sl];
      }
      __syncthreads();
      for (int idx = threadIdx.x; idx < kNT * p.I; idx += blockDim.x) {
        int t = idx / p.I, i = idx % p.I;
        s.sa[idx] = t < nt ? __ldcg(p.act + (size_t)slots[j0 + t] * p.I + i) : 0.f;
      }
      __syncthreads();
      if (nt == 1) down_rows<BF, 1>(p, e, 0, p.I, blockIdx.x * p.nh, p.nh, s.sa, p.I, toks, wts, nt, s.red);
      else down_rows<BF, kNT>(p, e, 0, p.I, blockIdx.x * p.nh, p.nh, s.sa, p.I, toks, wts, nt, s.red);
    }
  }
  if (arrive_last(&p.ctrl[C_K3], gridDim.x * gridDim.y)) {
    convert_out<BF>(p);
    if (threadIdx.x == 0) { p.ctrl[C_K3] = 0; p.ctrl[C_ITER] += 1; }
  }
}

// ================================================================== persistent, OS block
__device__ __forceinline__ int task_make(int type, int e, int tile) { return (type << 28) | (e << 16) | tile; }

template <bool BF>
__device__ void os_block(const Params& p, Smem& s, Tracer& tr, int nact) {
  // Task list: FFN1 tasks are generated here; FFN2 tasks arrive in the queue.
  const int tiles1 = (p.I + p.ti - 1) / p.ti, tiles2 = p.H / p.nh;
  const int n1 = nact * tiles1, ntot = n1 + nact * tiles2;
  const int nw = p.nb - 1;  // workers are blocks 1..nb-1
  int* seq = s.misc;        // [nb] last seq sent
  int* idle = seq + p.nb;   // [nb] locally known idle
  int* order = idle + p.nb; // [nb] roundrobin order
  __shared__ int s_head;
  for (int w = threadIdx.x; w < p.nb; w += blockDim.x) { seq[w] = 0; idle[w] = 1; order[w] = w + 1; }
  if (threadIdx.x == 0) s_head = 0;
  __syncthreads();
  int* sm_of = reinterpret_cast<int*>(s.red);  // scratch: smid per block (red is unused by the OS block)
  for (int w = threadIdx.x; w < p.nb; w += blockDim.x) sm_of[w] = __ldcg(&p.smid[w]);
  __syncthreads();
  if (p.strategy == 2) {
    // spread across SMs: order workers by (index among the workers of its SM, smid)
    for (int w = 1 + threadIdx.x; w <= nw; w += blockDim.x) {
      const int sm = sm_of[w];
      int r = 0;
      for (int v = 1; v < w; ++v) r += sm_of[v] == sm;
      sm_of[p.nb + w] = r * 4096 + sm;  // key
    }
    __syncthreads();
    for (int w = 1 + threadIdx.x; w <= nw; w += blockDim.x) {
      const int key = sm_of[p.nb + w];
      int pos = 0;
      for (int v = 1; v <= nw; ++v) {
        const int kv = sm_of[p.nb + v];
        pos += kv < key || (kv == key && v < w);
      }
      order[pos] = w;
    }
  }
  __syncthreads();
  auto task_at = [&](int k, unsigned long long& t_wait) -> int {
    if (k < n1) return task_make(1, s.active[k % nact], k / nact);  // tile-major: experts interleaved
    const int q = k - n1;
    unsigned long long t0 = gt(p);
    long long spins = 0;
    while (ld_acquire(&p.qflag[q]) == 0)
      if (++spins > kSpinLimit) spin_fail(p, 10);
    t_wait += gt(p) - t0;
    const int task = __ldcg(&p.queue[q]);
    p.qflag[q] = 0;  // self-clean
    return task;
  };
  auto send = [&](int w, int task) {
    seq[w] += 1;
    idle[w] = 0;
    unsigned long long v = ((unsigned long long)(unsigned)task << 32) | (unsigned)seq[w];
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(&p.db[w]), "l"(v) : "memory");
  };
  if (p.strategy == 0 || p.strategy == 2) {
    if (threadIdx.x == 0) {
      // Ready workers as a bitmap over positions in order[] (simple: identity;
      // roundrobin: spread across SMs). Known-idle bits are set locally; when
      // none is set, one pass reads every ack with 16-byte loads (8 in flight).
      unsigned* rdy = reinterpret_cast<unsigned*>(order + p.nb);  // [32]
      int* pos_of = reinterpret_cast<int*>(rdy + 32);               // [nb]
      const int nwords = (nw + 31) / 32;
      for (int i = 0; i < 32; ++i) rdy[i] = 0;
      for (int q = 0; q < nw; ++q) { pos_of[order[q]] = q; rdy[q >> 5] |= 1u << (q & 31); }
      auto refresh = [&]() {
        for (int w0 = 0; w0 < p.nb; w0 += 32) {
          int4 a[8];
#pragma unroll
          for (int u = 0; u < 8; ++u)
            a[u] = w0 + 4 * u < p.nb ? ld_volatile_v4(p.ack + w0 + 4 * u) : make_int4(0, 0, 0, 0);
#pragma unroll
          for (int u = 0; u < 8; ++u) {
            const int v4[4] = {a[u].x, a[u].y, a[u].z, a[u].w};
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              const int w = w0 + 4 * u + c;
              if (w >= 1 && w <= nw && !idle[w] && v4[c] == seq[w]) {
                idle[w] = 1;
                const int q = pos_of[w];
                rdy[q >> 5] |= 1u << (q & 31);
              }
            }
          }
        }
      };
      auto pick = [&](int start) -> int {  // first ready position at or after start (cyclic)
        for (int it = 0; it <= nwords; ++it) {
          const int wi = ((start >> 5) + it) % nwords;
          unsigned m = rdy[wi];
          if (it == 0) m &= ~0u << (start & 31);
          if (it == nwords) m = rdy[start >> 5] & ~(~0u << (start & 31));
          if (m) return wi * 32 + __ffs(m) - 1;
        }
        return -1;
      };
      int next = 0;
      for (int k = 0; k < ntot; ++k) {
        unsigned long long tq = 0;
        const unsigned long long t0 = gt(p);
        const int task = task_at(k, tq);
        if (tq > 0) tr.add(TR_OS_QUEUE, k, t0, t0 + tq);
        const unsigned long long t1 = gt(p);
        int q = -1;
        long long spins = 0;
        while ((q = pick(p.strategy == 0 ? 0 : next)) < 0) {
          refresh();
          if (++spins > kSpinLimit / 64) spin_fail(p, 11);
        }
        rdy[q >> 5] &= ~(1u << (q & 31));
        next = (q + 1) % nw;
        const unsigned long long t2 = gt(p);
        if (t2 - t1 > 500) tr.add(TR_OS_WORKER, k, t1, t2);
        send(order[q], task);
      }
    }
  } else {
    // multiwarp: 4 scheduling warps; warp m owns workers w with (w-1) % 4 == m
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    constexpr int NM = 4;
    if (warp < NM) {
      unsigned long long tq = 0, tw = 0;
      while (true) {
        int k = 0;
        if (lane == 0) k = atomicAdd(&s_head, 1);
        k = __shfl_sync(0xffffffffu, k, 0);
        if (k >= ntot) break;
        int task = 0;
        if (lane == 0) task = task_at(k, tq);
        task = __shfl_sync(0xffffffffu, task, 0);
        const unsigned long long t1 = gt(p);
        int w = -1;
        long long spins = 0;
        while (w < 0) {
          for (int b = 0; b < nw && w < 0; b += 32 * NM) {
            const int v = 1 + b + lane * NM + warp;
            const bool ok = v <= nw && (idle[v] || ld_acquire(&p.ack[v]) == seq[v]);
            const unsigned m = __ballot_sync(0xffffffffu, ok);
            if (m) w = 1 + b + (__ffs(m) - 1) * NM + warp;
          }
          if (w < 0 && ++spins > kSpinLimit / 64) spin_fail(p, 12);
        }
        if (lane == 0) send(w, task);
        __syncwarp();
        tw += gt(p) - t1;
      }
      // per-warp waits are summed into the block's trace as one span each
      if (lane == 0 && warp == 0 && (tq + tw) > 0) tr.add(TR_OS_WORKER, -1, gt(p) - tw - tq, gt(p));
    }
  }
  __syncthreads();
  // drain: every worker idle (its last ack), then tell them to exit
  const unsigned long long t0 = gt(p);
  for (int w = 1 + threadIdx.x; w <= nw; w += blockDim.x) {
    long long spins = 0;
    while (!idle[w] && ld_acquire(&p.ack[w]) != seq[w])
      if (++spins > kSpinLimit) spin_fail(p, 13);
    seq[w] += 1;
    unsigned long long v = ((unsigned long long)0xffffffffu << 32) | (unsigned)seq[w];
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(&p.db[w]), "l"(v) : "memory");
  }
  __syncthreads();
  if (threadIdx.x == 0) tr.add(TR_OS_DRAIN, -1, t0, gt(p));
}

template <bool BF>
__device__ void worker_block(const Params& p, Smem& s, Tracer& tr, const uint16_t* x) {
  const int w = blockIdx.x;
  const int tiles1 = (p.I + p.ti - 1) / p.ti, tiles2 = p.H / p.nh;
  __shared__ int s_task;
  int my_seq = 0;
  while (true) {
    if (threadIdx.x == 0) {
      const unsigned long long t0 = gt(p);
      long long spins = 0;
      unsigned long long v;
      while (((unsigned)(v = ld_volatile64(&p.db[w]))) == (unsigned)my_seq)
        if (++spins > kSpinLimit) spin_fail(p, 20);
      __threadfence();
      my_seq = (int)(unsigned)v;
      s_task = (int)(v >> 32);
      tr.add(TR_DOORBELL, s_task, t0, gt(p));
    }
    __syncthreads();
    const int task = s_task;
    if (task == -1) break;
    const int type = task >> 28, e = (task >> 16) & 0xfff, tile = task & 0xffff;
    const int n = __ldcg(&p.l_cnt[e]);
    const int* slots = p.l_slots + __ldcg(&p.l_off[e]);
    const unsigned long long t0 = gt(p);
    if (type == 1) {
      const int i0 = tile * p.ti, i1 = min(p.I, i0 + p.ti);
      float* act = p.act;
      const int I = p.I;
      ffn1_rows<BF>(p, x, e, i0, i1, slots, n, [&](int j, int i, float v) { act[(size_t)__ldcg(slots + j) * I + i] = v; });
      __syncthreads();
      if (threadIdx.x == 0) {
        tr.add(TR_FFN1, task, t0, gt(p));
        __threadfence();
        if (atomicAdd(&p.fanin[e], 1) == tiles1 - 1) {  // last FFN1 tile of e: push its FFN2 tiles
          p.fanin[e] = 0;
          const int pos = atomicAdd(&p.ctrl[C_QTAIL], tiles2);
          for (int k = 0; k < tiles2; ++k) p.queue[pos + k] = task_make(2, e, k);
          __threadfence();
          for (int k = 0; k < tiles2; ++k) st_release(&p.qflag[pos + k], 1);
        }
        st_release(&p.ack[w], my_seq);
      }
    } else {
      for (int j0 = 0; j0 < n; j0 += kNT) {
        const int nt = min(kNT, n - j0);
        int toks[kNT];
        float wts[kNT];
        for (int t = 0; t < kNT; ++t) {
          const int sl = __ldcg(slots + min(j0 + t, n - 1));
          toks[t] = sl / p.K;
          wts[t] = __ldcg(&p.topk_w[sl]);
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < kNT * p.I; idx += blockDim.x) {
          const int t = idx / p.I, i = idx % p.I;
          s.sa[idx] = t < nt ? __ldcg(p.act + (size_t)__ldcg(slots + j0 + t) * p.I + i) : 0.f;
        }
        __syncthreads();
        if (nt == 1) down_rows<BF, 1>(p, e, 0, p.I, tile * p.nh, p.nh, s.sa, p.I, toks, wts, nt, s.red);
        else down_rows<BF, kNT>(p, e, 0, p.I, tile * p.nh, p.nh, s.sa, p.I, toks, wts, nt, s.red);
      }
      if (threadIdx.x == 0) tr.add(TR_FFN2, task, t0, gt(p));
      const int nact = __ldcg(&p.ctrl[C_NACT]);
      if (arrive_last(&p.ctrl[C_DONE], nact * tiles2)) {
        const unsigned long long tc = gt(p);
        convert_out<BF>(p);
        __syncthreads();
        if (threadIdx.x == 0) {
          p.ctrl[C_DONE] = 0;
          tr.add(TR_CONVERT, -1, tc, gt(p));
        }
      }
      if (threadIdx.x == 0) { __threadfence(); st_release(&p.ack[w], my_seq); }
    }
  }
  if (threadIdx.x == 0) { p.db[w] = 0; p.ack[w] = 0; }  // self-clean for the next launch
}

template <bool BF>
__global__ void __launch_bounds__(kThreads, 1) k_persistent_os(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  Smem s(smem_raw, p);
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  long long clk[2];
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_begin(clk);
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);
  if (threadIdx.x == 0) p.smid[blockIdx.x] = get_smid();
  // router rows spread over every block, then one arrival per block
  unsigned long long t0 = gt(p);
  for (int e = blockIdx.x; e < p.E; e += gridDim.x) router_expert<BF>(p, x, e);
  __syncthreads();
  if (threadIdx.x == 0) {
    tr.add(TR_ROUTER, -1, t0, gt(p));
    __threadfence();
    atomicAdd(&p.ctrl[C_ROUTER], 1);
  }
  if (blockIdx.x == 0) {
    __shared__ int s_nact;
    if (threadIdx.x == 0) {
      t0 = gt(p);
      long long spins = 0;
      while (ld_acquire(&p.ctrl[C_ROUTER]) < (int)gridDim.x)
        if (++spins > kSpinLimit) spin_fail(p, 1);
      __threadfence();
      p.ctrl[C_ROUTER] = 0;
      tr.add(TR_BARRIER, -1, t0, gt(p));
    }
    __syncthreads();
    t0 = gt(p);
    topk_softmax(p, s.ids, s.w, s.red);
    __syncthreads();
    const int nact = build_lists(p, s.ids, s.cnt, s.off, s.fill, s.slots, s.active);
    for (int i = threadIdx.x; i < p.T * p.K; i += blockDim.x) {
      p.topk_ids[i] = s.ids[i];
      p.topk_w[i] = s.w[i];
      p.l_slots[i] = s.slots[i];
    }
    for (int e = threadIdx.x; e < p.E; e += blockDim.x) { p.l_cnt[e] = s.cnt[e]; p.l_off[e] = s.off[e]; }
    if (threadIdx.x == 0) { p.ctrl[C_NACT] = nact; s_nact = nact; }
    __syncthreads();
    if (threadIdx.x == 0) { __threadfence(); tr.add(TR_TOPK, -1, t0, gt(p)); }
    __syncthreads();
    os_block<BF>(p, s, tr, s_nact);
    if (threadIdx.x == 0) {
      p.ctrl[C_QTAIL] = 0;
      p.ctrl[C_ITER] = iter + 1;
      clock_end(p, iter, clk);
    }
  } else {
    worker_block<BF>(p, s, tr, x);
  }
  if (threadIdx.x == 0) tr.finish(p);
}

// Router logits for every expert, spread over the grid, then a grid-wide barrier so that every
// block sees all logits before its own top-k (used by the split-K and stream kernels).
// `fail_code` tells which kernel's barrier spun out.
template <bool BF>
__device__ __forceinline__ void route_all_then_barrier(const Params& p, const uint16_t* x, Tracer& tr, int fail_code) {
  const unsigned long long t0 = gt(p);
  for (int e = blockIdx.x; e < p.E; e += gridDim.x) router_expert<BF>(p, x, e);
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned long long t1 = gt(p);
    tr.add(TR_ROUTER, -1, t0, t1);
    __threadfence();
    atomicAdd(&p.ctrl[C_ROUTER], 1);
    long long spins = 0;
    while (ld_acquire(&p.ctrl[C_ROUTER]) < (int)gridDim.x)
      if (++spins > kSpinLimit) spin_fail(p, fail_code);
    __threadfence();
    tr.add(TR_BARRIER, -1, t1, gt(p));
  }
  __syncthreads();
}

// The last block to finish converts the fp32 output and resets the counters for the next launch
// (the split-K task counter too: the stream kernel leaves it at 0 anyway); then the clock and trace
// records are closed. Shared by the split-K and stream kernels.
template <bool BF>
__device__ __forceinline__ void finish_launch(const Params& p, Tracer& tr, int iter, const long long (&clk)[2]) {
  if (arrive_last(&p.ctrl[C_DONE], gridDim.x)) {
    const unsigned long long t0 = gt(p);
    convert_out<BF>(p);
    __syncthreads();
    if (threadIdx.x == 0) {
      p.ctrl[C_DONE] = 0;
      p.ctrl[C_ROUTER] = 0;
      p.ctrl[C_TASK] = 0;
      p.ctrl[C_ITER] = iter + 1;
      tr.add(TR_CONVERT, -1, t0, gt(p));
    }
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_end(p, iter, clk);
  if (threadIdx.x == 0) tr.finish(p);
}

// ================================================================== persistent split-K (ours)
// CHUNKED: the down share in column chunks (hidden not a power of two up to 4096). A separate
// instantiation, so the kernel timed for the presets keeps its code: the same source with a
// run-time branch measured 1.7 us slower at T=1 (H100).
template <bool BF, bool CHUNKED>
__global__ void __launch_bounds__(kThreads, 1) k_persistent_splitk(Params p) {
  extern __shared__ __align__(16) char smem_raw[];
  // T*H <= kSaccFloats: the block accumulates its share of the output in
  // shared memory over all its tasks and adds it to the global fp32 output once.
  // Measured on H100 (T=1 Qwen3): 57.2 us with it vs 46.8 us without (shared-memory float
  // atomics cost more than the global vector atomics they replace), so it is off (kUseSacc).
  float* sacc = kUseSacc && p.T * p.H <= kSaccFloats ? reinterpret_cast<float*>(smem_raw) : nullptr;
  Smem s(smem_raw + (kUseSacc ? kSaccFloats * 4 : 0), p);
  if (sacc)
    for (int i = threadIdx.x; i < p.T * p.H; i += blockDim.x) sacc[i] = 0.f;
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  long long clk[2];
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_begin(clk);
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);
  route_all_then_barrier<BF>(p, x, tr, 2);
  unsigned long long t0;
  // every block routes redundantly (cheap: T*E logits from L2)
  t0 = gt(p);
  topk_softmax(p, s.ids, s.w, s.red);
  __syncthreads();
  if (p.debug & 1) {  // experiment: is the first top-k slow because its code/data are cold?
    t0 = gt(p);
    topk_softmax(p, s.ids, s.w, s.red);
    __syncthreads();
  }
  if (threadIdx.x == 0) tr.add(TR_TOPK_ONLY, -1, t0, gt(p));
  const int nact = build_lists(p, s.ids, s.cnt, s.off, s.fill, s.slots, s.active);
  if (blockIdx.x == 0)
    for (int i = threadIdx.x; i < p.T * p.K; i += blockDim.x) { p.topk_ids[i] = s.ids[i]; p.topk_w[i] = s.w[i]; }
  if (threadIdx.x == 0) tr.add(TR_TOPK, -1, t0, gt(p));
  // Tasks: slices of ti units; splitk-dyn ends with about one block's worth of
  // half-size slices per block so that blocks finishing early take the tail.
  const int tpe = (p.I + p.ti - 1) / p.ti;
  const int half = max(1, p.ti / 2);
  const int sA = p.strategy == 1 ? max(0, (p.I - (p.nb * p.ti + nact - 1) / nact) / p.ti) : tpe;
  const int nbig = nact * min(sA, tpe);
  const int rest = max(0, p.I - sA * p.ti);
  const int ntask = nbig + nact * ((rest + half - 1) / half);
  auto decode = [&](int kk, int& a, int& j0u, int& j1u) {
    if (kk < nbig) { a = kk % nact; j0u = (kk / nact) * p.ti; j1u = min(p.I, j0u + p.ti); }
    else { kk -= nbig; a = kk % nact; j0u = sA * p.ti + (kk / nact) * half; j1u = min(p.I, j0u + half); }
  };
  __shared__ int s_next;
  int k = blockIdx.x;
  if (p.strategy == 1) {
    if (threadIdx.x == 0) s_next = atomicAdd(&p.ctrl[C_TASK], 1);
    __syncthreads();
    k = s_next;
  }
  while (k < ntask) {
    if (p.strategy == 1) {
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
    prefetch_l2(p.w2t + ((size_t)e * p.I + i0) * p.H, (size_t)ni * p.H * 2);
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
      if (j0 == 0) {  // the next task's gate/up slice streams into L2 while the down share runs
        const int kn = p.strategy == 1 ? s_next : k + (int)gridDim.x;
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
        if (nt == 1) down_rows<BF, 1>(p, e, i0, i1, 0, p.H, sa, ti, toks, wts, nt, s.red, sacc);
        else down_rows<BF, kNT>(p, e, i0, i1, 0, p.H, sa, ti, toks, wts, nt, s.red, sacc);
      } else {  // in chunks that down_rows' thread layout can take
        const int nh = down_chunk(p.H);
        for (int h0 = 0; h0 < p.H; h0 += nh) {
          if (nt == 1) down_rows<BF, 1>(p, e, i0, i1, h0, nh, sa, ti, toks, wts, nt, s.red, sacc);
          else down_rows<BF, kNT>(p, e, i0, i1, h0, nh, sa, ti, toks, wts, nt, s.red, sacc);
        }
      }
      if (threadIdx.x == 0 && j0 == 0) tr.add(TR_SK_DOWN, -1, td, gt(p));
    }
    if (threadIdx.x == 0) tr.add(TR_SPLITK, task_make(3, e, slice), t0, gt(p));
    if (p.strategy == 1) {
      __syncthreads();
      k = s_next;
    } else {
      k += gridDim.x;
    }
  }
  if (sacc) {  // one pass of float4 atomics for this block's whole share
    __syncthreads();
    const unsigned long long tf = gt(p);
    for (int i4 = threadIdx.x; i4 < p.T * p.H / 4; i4 += blockDim.x) {
      const float4 v = reinterpret_cast<const float4*>(sacc)[i4];
      if (v.x != 0.f || v.y != 0.f || v.z != 0.f || v.w != 0.f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        atomicAdd(reinterpret_cast<float4*>(p.out_acc) + i4, v);
#else
        float* d = p.out_acc + (size_t)i4 * 4;
        atomicAdd(d, v.x); atomicAdd(d + 1, v.y); atomicAdd(d + 2, v.z); atomicAdd(d + 3, v.w);
#endif
      }
    }
    if (threadIdx.x == 0) tr.add(TR_SK_FLUSH, -1, tf, gt(p));
  }
  finish_launch<BF>(p, tr, iter, clk);
}

// The split-K kernel for a dtype and a down-share layout.
inline const void* splitk_fn(bool bf, bool chunked) {
  if (bf) return chunked ? (const void*)k_persistent_splitk<true, true> : (const void*)k_persistent_splitk<true, false>;
  return chunked ? (const void*)k_persistent_splitk<false, true> : (const void*)k_persistent_splitk<false, false>;
}

// ================================================================== persistent stream (ours, sm_90)
// persistent-stream: the split-K task set, but each block's weights arrive as
// ONE continuous stream of 16 KB chunks through the bulk copy engine
// (cp.async.bulk -> shared memory, completion on an mbarrier, kStages deep),
// running ahead across task boundaries, so the SM never drains its loads
// between the gate/up part, the down part and the next task. Tasks are
// (expert, group of <= 4 of its tokens, slice of ti intermediate units).
constexpr int kStages = 8;
constexpr int kChunk = 16384;
constexpr size_t kStreamExtra = (size_t)kStages * kChunk + 128 + 2 * 256 * kNT * 4;  // stages, mbarriers, gu

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ uint32_t smem_u32(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

struct StreamTask {  // one task of this block, decoded
  int e, i0, ni, nt, nA, nB;
  int toks[kNT];
  float wts[kNT];
};

__device__ __forceinline__ void decode_task(const Params& p, const Smem& s, const int* eg, int neg, int k, StreamTask& t,
                                            int rc) {
  const int g = eg[k % neg];
  const int a = g >> 10, grp = g & 1023;
  t.e = s.active[a];
  t.i0 = (k / neg) * p.ti;
  t.ni = min(p.I, t.i0 + p.ti) - t.i0;
  const int n = s.cnt[t.e];
  t.nt = min(kNT, n - grp * kNT);
  const int* sl = s.slots + s.off[t.e] + grp * kNT;
#pragma unroll
  for (int j = 0; j < kNT; ++j) {
    const int slot = sl[min(j, t.nt - 1)];
    t.toks[j] = slot / p.K;
    t.wts[j] = s.w[slot];
  }
  t.nA = (2 * t.ni + rc - 1) / rc;
  t.nB = (t.ni + rc - 1) / rc;
}

struct Producer {  // thread 0 only
  int k, c, issued;
  StreamTask t;
};

__device__ __forceinline__ void produce(const Params& p, const Smem& s, const int* eg, int neg, int ntask, int rc,
                                        char* stages, uint64_t* full, Producer& pr) {
  if (pr.k >= ntask) return;
  const int st = pr.issued % kStages;
  const uint16_t* src;
  int rows;
  if (pr.c < pr.t.nA) {
    const int r0 = pr.c * rc;
    rows = min(rc, 2 * pr.t.ni - r0);
    src = p.w13 + ((size_t)pr.t.e * 2 * p.I + 2 * (size_t)pr.t.i0 + r0) * p.H;
  } else {
    const int r0 = (pr.c - pr.t.nA) * rc;
    rows = min(rc, pr.t.ni - r0);
    src = p.w2t + ((size_t)pr.t.e * p.I + pr.t.i0 + r0) * p.H;
  }
  const uint32_t bytes = (uint32_t)rows * p.H * 2;
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(full + st)), "r"(bytes) : "memory");
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                   smem_u32(stages + (size_t)st * kChunk)),
               "l"(src), "r"(bytes), "r"(smem_u32(full + st))
               : "memory");
  ++pr.issued;
  if (++pr.c == pr.t.nA + pr.t.nB) {
    pr.c = 0;
    pr.k += gridDim.x;
    if (pr.k < ntask) decode_task(p, s, eg, neg, pr.k, pr.t, rc);
  }
}

__device__ __forceinline__ void chunk_wait(const Params& p, uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  long long spins = 0;
  do {
    asm volatile("{\n .reg .pred q;\n mbarrier.try_wait.parity.shared::cta.b64 q, [%1], %2;\n selp.u32 %0, 1, 0, q;\n}"
                 : "=r"(done) : "r"(smem_u32(bar)), "r"(parity) : "memory");
    if (!done && ++spins > kSpinLimit) spin_fail(p, 30);
  } while (!done);
}

template <bool BF, int NT>
__device__ void stream_task(const Params& p, const Smem& s, const int* eg, int neg, int ntask, int rc, char* stages,
                            uint64_t* full, Producer& pr, int& consumed, const StreamTask& t, const uint16_t* x,
                            float* gu) {
  const int VR = p.H / 8, RPP = blockDim.x / VR, rr = threadIdx.x / VR, col8 = threadIdx.x % VR;
  const int lane = threadIdx.x & 31;
  float xr[NT][8];
#pragma unroll
  for (int g = 0; g < NT; ++g) unpack8<BF>(ld_ro(x + (size_t)t.toks[g] * p.H + col8 * 8), xr[g]);
  float acc[NT][8];
#pragma unroll
  for (int g = 0; g < NT; ++g)
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[g][k] = 0.f;
  float* sa = s.sa;
  for (int c = 0; c < t.nA + t.nB; ++c) {
    const int st = consumed % kStages;
    if (c == t.nA) {  // gate/up complete: a = silu(g) * u for the slice, gu zeroed for the next task
      for (int idx = threadIdx.x; idx < t.ni * NT; idx += blockDim.x) {
        const int i = idx / NT, g = idx % NT;
        const float gv = gu[(2 * i) * kNT + g], uv = gu[(2 * i + 1) * kNT + g];
        sa[g * p.ti + i] = silu(gv) * uv;
        gu[(2 * i) * kNT + g] = 0.f;
        gu[(2 * i + 1) * kNT + g] = 0.f;
      }
      __syncthreads();
    }
    chunk_wait(p, full + st, (uint32_t)(consumed / kStages) & 1u);
    const uint4* chunk = reinterpret_cast<const uint4*>(stages + (size_t)st * kChunk);
    if (c < t.nA) {
      const int r0 = c * rc, nr = min(rc, 2 * t.ni - r0);
      for (int row = rr; row < nr; row += RPP) {
        float wf[8];
        unpack8<BF>(chunk[row * VR + col8], wf);
        float part[NT];
#pragma unroll
        for (int g = 0; g < NT; ++g) {
          part[g] = 0.f;
#pragma unroll
          for (int k = 0; k < 8; ++k) part[g] = fmaf(wf[k], xr[g][k], part[g]);
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) part[g] += __shfl_xor_sync(0xffffffffu, part[g], o);
        }
        if (lane == 0)
#pragma unroll
          for (int g = 0; g < NT; ++g) atomicAdd(&gu[(r0 + row) * kNT + g], part[g]);
      }
    } else {
      const int r0 = (c - t.nA) * rc, nr = min(rc, t.ni - r0);
      for (int row = rr; row < nr; row += RPP) {
        float wf[8];
        unpack8<BF>(chunk[row * VR + col8], wf);
#pragma unroll
        for (int g = 0; g < NT; ++g) {
          const float a = sa[g * p.ti + r0 + row];
#pragma unroll
          for (int k = 0; k < 8; ++k) acc[g][k] = fmaf(a, wf[k], acc[g][k]);
        }
      }
    }
    ++consumed;
    __syncthreads();  // stage free
    if (threadIdx.x == 0) produce(p, s, eg, neg, ntask, rc, stages, full, pr);
  }
  // down share of the slice: reduce the RPP row groups, one float4 atomic per 4 columns
  float* red = s.red;
  for (int g = 0; g < t.nt; ++g) {
#pragma unroll
    for (int k = 0; k < 8; ++k) red[rr * p.H + col8 * 8 + k] = acc[g][k];
    __syncthreads();
    float* dst = p.out_acc + (size_t)t.toks[g] * p.H;
    for (int c4 = threadIdx.x; c4 < p.H / 4; c4 += blockDim.x) {
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int q = 0; q < RPP; ++q) {
        const float4 r = *reinterpret_cast<const float4*>(red + q * p.H + c4 * 4);
        v.x += r.x; v.y += r.y; v.z += r.z; v.w += r.w;
      }
      const float w = t.wts[g];
      v.x *= w; v.y *= w; v.z *= w; v.w *= w;
      atomicAdd(reinterpret_cast<float4*>(dst + c4 * 4), v);
    }
    __syncthreads();
  }
}
#endif

template <bool BF>
__global__ void __launch_bounds__(kThreads, 1) k_persistent_stream(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(16) char smem_raw[];
  char* stages = smem_raw;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem_raw + (size_t)kStages * kChunk);
  float* gu = reinterpret_cast<float*>(smem_raw + (size_t)kStages * kChunk + 128);
  Smem s(smem_raw + kStreamExtra, p);
  int* eg = s.misc;  // [T*K] expert-groups: (active index << 10) | group
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  long long clk[2];
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_begin(clk);
  if (threadIdx.x < kStages) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(full + threadIdx.x)));
  for (int i = threadIdx.x; i < 2 * p.ti * kNT; i += blockDim.x) gu[i] = 0.f;
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  const int iter = p.ctrl[C_ITER];
  const uint16_t* x = x_of(p, iter);
  route_all_then_barrier<BF>(p, x, tr, 3);
  unsigned long long t0;
  t0 = gt(p);
  topk_softmax(p, s.ids, s.w, s.red);
  __syncthreads();
  const int nact = build_lists(p, s.ids, s.cnt, s.off, s.fill, s.slots, s.active);
  if (blockIdx.x == 0)
    for (int i = threadIdx.x; i < p.T * p.K; i += blockDim.x) { p.topk_ids[i] = s.ids[i]; p.topk_w[i] = s.w[i]; }
  // expert-groups of <= kNT tokens, in active-expert order
  __shared__ int s_neg;
  if (threadIdx.x < 32) {
    int base = 0;
    for (int a0 = 0; a0 < nact; a0 += 32) {
      const int a = a0 + threadIdx.x;
      const int ng = a < nact ? (s.cnt[s.active[a]] + kNT - 1) / kNT : 0;
      int sc = ng;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int v = __shfl_up_sync(0xffffffffu, sc, o);
        if ((int)threadIdx.x >= o) sc += v;
      }
      for (int g = 0; g < ng; ++g) eg[base + sc - ng + g] = (a << 10) | g;
      base += __shfl_sync(0xffffffffu, sc, 31);
    }
    if (threadIdx.x == 0) s_neg = base;
  }
  __syncthreads();
  const int neg = s_neg;
  const int tpe = (p.I + p.ti - 1) / p.ti;
  const int ntask = neg * tpe;
  const int rc = kChunk / (p.H * 2);
  if (threadIdx.x == 0) tr.add(TR_TOPK, -1, t0, gt(p));
  Producer pr;
  pr.k = blockIdx.x; pr.c = 0; pr.issued = 0;
  if (threadIdx.x == 0 && pr.k < ntask) {
    decode_task(p, s, eg, neg, pr.k, pr.t, rc);
    for (int i = 0; i < kStages; ++i) produce(p, s, eg, neg, ntask, rc, stages, full, pr);
  }
  int consumed = 0;
  for (int k = blockIdx.x; k < ntask; k += gridDim.x) {
    t0 = gt(p);
    StreamTask t;
    decode_task(p, s, eg, neg, k, t, rc);
    if (t.nt == 1) stream_task<BF, 1>(p, s, eg, neg, ntask, rc, stages, full, pr, consumed, t, x, gu);
    else stream_task<BF, kNT>(p, s, eg, neg, ntask, rc, stages, full, pr, consumed, t, x, gu);
    if (threadIdx.x == 0) tr.add(TR_SPLITK, task_make(3, t.e, t.i0 / p.ti), t0, gt(p));
  }
  finish_launch<BF>(p, tr, iter, clk);
#else
  __trap();  // the host refuses persistent-stream below compute capability 9.0
#endif
}

// ================================================================== host side
const char* kVariants[] = {"separate", "persistent-simple", "persistent-multiwarp", "persistent-roundrobin",
                           "persistent-splitk", "persistent-splitk-dyn", "persistent-stream"};
constexpr int kNumVariants = 7;

bool is_os(const std::string& v) {
  return v == "persistent-simple" || v == "persistent-multiwarp" || v == "persistent-roundrobin";
}
bool is_splitk(const std::string& v) { return v == "persistent-splitk" || v == "persistent-splitk-dyn"; }
bool is_stream(const std::string& v) { return v == "persistent-stream"; }
bool is_persistent(const std::string& v) { return is_os(v) || is_splitk(v) || is_stream(v); }

class CudaBackend : public Backend {
 public:
  CudaBackend() {
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop_, dev));
    CUDA_CHECK(cudaDriverGetVersion(&driver_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~CudaBackend() override {
    for (auto& g : graphs_) cudaGraphExecDestroy(g.second);
    cudaStreamDestroy(stream_);
  }
  const char* name() const override { return "cuda"; }
  std::vector<std::string> variants() const override { return std::vector<std::string>(kVariants, kVariants + kNumVariants); }
  int default_rotate() const override { return 64; }
  std::string unsupported(const std::string& v, const Shape& s, int T, DType dt) const override {
    if (dt == DType::FP32) return "dtype fp32 is not supported by the CUDA variants (bf16 or fp16)";
    if (s.hidden % 256 != 0) return "hidden (" + std::to_string(s.hidden) + ") must be a multiple of 256";
    if (s.experts > 1024) return "experts (" + std::to_string(s.experts) + ") must be <= 1024";
    if (s.topk > 32) return "topk (" + std::to_string(s.topk) + ") must be <= 32";
    if (T > 256) return "tokens (" + std::to_string(T) + ") must be <= 256";
    if (s.inter > 8192) return "inter (" + std::to_string(s.inter) + ") must be <= 8192";
    if (is_stream(v) && T > kNT)  // known bug: wrong results when an expert gets more than kNT tokens (BENCHMARKS.md)
      return "tokens (" + std::to_string(T) + ") must be <= " + std::to_string(kNT) + " (an expert with more than " +
             std::to_string(kNT) + " tokens is not handled correctly yet)";
    if (is_stream(v) && prop_.major < 9)
      return "needs compute capability >= 9.0 (bulk copy engine), device is " + std::to_string(prop_.major) + "." + std::to_string(prop_.minor);
    if (is_stream(v) && (s.hidden > 4096 || (4096 % s.hidden) != 0))
      return "hidden (" + std::to_string(s.hidden) + ") must be a power of two in 256..4096";
    return "";
  }
  void device_json(Json& j) override {
    j.kv("kind", "cuda");
    j.kv("name", prop_.name);
    j.kv("sm_count", prop_.multiProcessorCount);
    j.kv("compute_capability", std::to_string(prop_.major) + "." + std::to_string(prop_.minor));
    j.kv("driver", std::to_string(driver_));
    j.kv("l2_bytes", (long long)prop_.l2CacheSize);
    j.kv("mem_bytes", (long long)prop_.totalGlobalMem);
    j.kv("cores", (int)std::thread::hardware_concurrency());
    int rt = 0;
    CUDA_CHECK(cudaRuntimeGetVersion(&rt));
    j.kv("runtime", std::to_string(rt));
    j.kv("persistent_blocks", nb_);
  }

  void upload(const Model& m, const Config& cfg) override {
    m_ = &m;
    cfg_ = &cfg;
    bf_ = m.dt == DType::BF16;
    const int T = cfg.tokens, H = m.s.hidden, I = m.s.inter, E = m.s.experts, K = m.s.topk;
    auto up = [&](DevBuf<uint16_t>& d, const HostTensor& h) {
      d.alloc(h.n);
      CUDA_CHECK(cudaMemcpy(d.p, h.bytes.data(), h.nbytes(), cudaMemcpyHostToDevice));
    };
    up(wr_, m.wr);
    up(w13_, m.w13);
    up(w2t_, m.w2t);
    out_.alloc((size_t)T * H);
    out_acc_.alloc((size_t)T * H);
    CUDA_CHECK(cudaMemset(out_acc_.p, 0, out_acc_.bytes()));
    logits_.alloc((size_t)T * E);
    topk_ids_.alloc((size_t)T * K);
    topk_w_.alloc((size_t)T * K);
    act_.alloc((size_t)T * K * I);
    l_cnt_.alloc(E); l_off_.alloc(E); l_slots_.alloc((size_t)T * K); l_active_.alloc(E);
    ctrl_.alloc(C_N);
    fanin_.alloc(E);
    x_check_.alloc((size_t)T * H);
    // tile sizes
    const int nact_est = std::min(E, T * K);
    sep_ti_ = 16;
    sep_nh_ = 128;
    // persistent grid: as many 512-thread blocks as are co-resident
    const size_t smem_guess = smem_bytes(T, I, E, K, 256, 4 * prop_.multiProcessorCount);
    auto occ = [&](const void* fn) {
      CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_guess));
      int b = 0;
      CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, fn, kThreads, smem_guess));
      return b;
    };
    const void* fos = bf_ ? (const void*)k_persistent_os<true> : (const void*)k_persistent_os<false>;
    const void* fsk = splitk_fn(bf_, false);
    CUDA_CHECK(cudaFuncSetAttribute(splitk_fn(bf_, true), cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_guess));
    for (const void* f : {(const void*)(bf_ ? (const void*)k_router<true> : (const void*)k_router<false>),
                          (const void*)(bf_ ? (const void*)k_down<true> : (const void*)k_down<false>)})
      CUDA_CHECK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_guess));
    const void* fst = bf_ ? (const void*)k_persistent_stream<true> : (const void*)k_persistent_stream<false>;
    smem_st_ = smem_guess + kStreamExtra;
    CUDA_CHECK(cudaFuncSetAttribute(fst, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_st_));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ_st_, fst, kThreads, smem_st_));
    nb_st_ = occ_st_ * prop_.multiProcessorCount;
    occ_os_ = occ(fos);
    smem_sk_ = smem_guess + (kUseSacc ? (size_t)kSaccFloats * 4 : 0);
    CUDA_CHECK(cudaFuncSetAttribute(fsk, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_sk_));
    sk_threads_ = kThreads;
    if (const char* e = std::getenv("MOE_SK_THREADS"))  // experiments only: 256 -> two blocks per SM
      if (std::atoi(e) == 256 && H <= 2048) sk_threads_ = 256;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ_sk_, fsk, sk_threads_, smem_sk_));
    if (occ_os_ < 1 || occ_sk_ < 1) die_runtime("persistent kernels: occupancy is 0 blocks/SM (shared memory " + std::to_string(smem_guess) + " B)");
    nb_os_ = occ_os_ * prop_.multiProcessorCount;
    nb_sk_ = occ_sk_ * prop_.multiProcessorCount;
    nb_ = std::max(std::max(nb_os_, nb_sk_), nb_st_);
    smem_ = smem_guess;
    // OS: about one FFN1 and one FFN2 tile per worker for the expected active experts
    const int nw = nb_os_ - 1;
    int tpe1 = std::max(1, (nw + nact_est - 1) / nact_est);
    os_ti_ = std::max(16, ((I + tpe1 - 1) / tpe1 + 15) / 16 * 16);
    os_nh_ = 128;
    // split-K: about 8 tasks per block (3 per block left a 33% imbalance at T=4)
    int ti = (int)((double)nact_est * I / (8.0 * nb_sk_));
    ti = std::max(16, std::min(256, (ti + 15) / 16 * 16));
    sk_ti_ = std::min(ti, (I + 15) / 16 * 16);
    if (const char* e = std::getenv("MOE_SK_TI")) sk_ti_ = std::max(8, std::min(256, std::atoi(e)));  // experiments only
    const int tiles2 = H / os_nh_;
    queue_.alloc((size_t)E * tiles2);
    qflag_.alloc((size_t)E * tiles2);
    CUDA_CHECK(cudaMemset(qflag_.p, 0, qflag_.bytes()));
    db_.alloc(nb_);
    ack_.alloc(nb_ + 8);
    smid_.alloc(nb_);
    trace_.alloc((size_t)nb_ * kMaxEv);
    trace_n_.alloc(nb_);
    clear_ctrl();
    if (cfg.cold_l2) flush_.alloc((size_t)prop_.l2CacheSize * 2 / 4 + 1024);
  }

  void clear_ctrl() {
    CUDA_CHECK(cudaMemsetAsync(ctrl_.p, 0, ctrl_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(fanin_.p, 0, fanin_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(db_.p, 0, db_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(ack_.p, 0, ack_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(qflag_.p, 0, qflag_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(out_acc_.p, 0, out_acc_.bytes(), stream_));
  }

  Params params(const std::string& v, const uint16_t* xb, int rotate, bool trace) {
    Params p{};
    p.wr = wr_.p; p.w13 = w13_.p; p.w2t = w2t_.p;
    p.x_base = xb; p.rotate = rotate;
    p.out = out_.p; p.out_acc = out_acc_.p; p.logits = logits_.p;
    p.topk_ids = topk_ids_.p; p.topk_w = topk_w_.p; p.act = act_.p;
    p.l_cnt = l_cnt_.p; p.l_off = l_off_.p; p.l_slots = l_slots_.p; p.l_active = l_active_.p;
    p.ctrl = ctrl_.p; p.fanin = fanin_.p; p.db = db_.p; p.ack = ack_.p; p.queue = queue_.p; p.qflag = qflag_.p;
    p.smid = smid_.p;
    p.clk = clk_.p; p.clk_cap = (int)(clk_.n / 4);
    p.trace = trace ? trace_.p : nullptr; p.trace_n = trace_n_.p;
    if (const char* e = std::getenv("MOE_DEBUG")) p.debug = std::atoi(e);
    p.T = cfg_->tokens; p.H = m_->s.hidden; p.I = m_->s.inter; p.E = m_->s.experts; p.K = m_->s.topk;
    if (v == "separate") { p.ti = sep_ti_; p.nh = sep_nh_; p.nb = 0; }
    else if (is_os(v)) {
      p.ti = os_ti_; p.nh = os_nh_; p.nb = nb_os_;
      p.strategy = v == "persistent-simple" ? 0 : v == "persistent-multiwarp" ? 1 : 2;
    } else if (is_stream(v)) {
      p.ti = sk_ti_; p.nh = p.H; p.nb = nb_st_;
    } else {
      p.ti = sk_ti_; p.nh = p.H; p.nb = nb_sk_;
      p.strategy = v == "persistent-splitk-dyn" ? 1 : 0;
    }
    return p;
  }

  void launch(const std::string& v, const Params& p, cudaStream_t st) {
    const int T = p.T, K = p.K;
    if (v == "separate") {
      dim3 g1(p.E);
      if (bf_) k_router<true><<<g1, kThreads, smem_, st>>>(p); else k_router<false><<<g1, kThreads, smem_, st>>>(p);
      CUDA_CHECK_LAUNCH("k_router");
      const int maxact = std::min(p.E, T * K);
      dim3 g2((p.I + p.ti - 1) / p.ti, maxact);
      if (bf_) k_ffn1<true><<<g2, kThreads, 0, st>>>(p); else k_ffn1<false><<<g2, kThreads, 0, st>>>(p);
      CUDA_CHECK_LAUNCH("k_ffn1");
      dim3 g3(p.H / p.nh, maxact);
      if (bf_) k_down<true><<<g3, kThreads, smem_, st>>>(p); else k_down<false><<<g3, kThreads, smem_, st>>>(p);
      CUDA_CHECK_LAUNCH("k_down");
    } else if (is_os(v)) {
      if (bf_) k_persistent_os<true><<<p.nb, kThreads, smem_, st>>>(p); else k_persistent_os<false><<<p.nb, kThreads, smem_, st>>>(p);
      CUDA_CHECK_LAUNCH("k_persistent_os");
    } else if (is_stream(v)) {
      if (p.nb < 1) die_runtime("persistent-stream: occupancy is 0 blocks/SM (shared memory " + std::to_string(smem_st_) + " B)");
      if (bf_) k_persistent_stream<true><<<p.nb, kThreads, smem_st_, st>>>(p); else k_persistent_stream<false><<<p.nb, kThreads, smem_st_, st>>>(p);
      CUDA_CHECK_LAUNCH("k_persistent_stream");
    } else {
      // Hidden a power of two up to 4096: the down share in one pass; else in column chunks.
      const bool chunked = 4096 % p.H != 0;
      if (chunked) {
        if (bf_) k_persistent_splitk<true, true><<<p.nb, sk_threads_, smem_sk_, st>>>(p); else k_persistent_splitk<false, true><<<p.nb, sk_threads_, smem_sk_, st>>>(p);
      } else {
        if (bf_) k_persistent_splitk<true, false><<<p.nb, sk_threads_, smem_sk_, st>>>(p); else k_persistent_splitk<false, false><<<p.nb, sk_threads_, smem_sk_, st>>>(p);
      }
      CUDA_CHECK_LAUNCH("k_persistent_splitk");
    }
  }

  void sync() {
    cudaError_t e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess)
      die_runtime(std::string("CUDA error: cudaStreamSynchronize -> ") + cudaGetErrorName(e) + " (" +
                  cudaGetErrorString(e) + ") at " + __FILE__ + ":" + std::to_string(__LINE__) +
                  " (a persistent kernel traps when a spin wait exceeds its bound)");
  }

  void run_once(const std::string& v, const HostTensor& x, int T, std::vector<float>& out,
                std::vector<int>& ids) override {
    const size_t n = (size_t)T * m_->s.hidden;
    CUDA_CHECK(cudaMemcpyAsync(x_check_.p, x.bytes.data(), x.nbytes(), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemsetAsync(out_.p, 0xff, out_.bytes(), stream_));  // poison: 0xffff is NaN in bf16 and fp16
    CUDA_CHECK(cudaMemsetAsync(topk_ids_.p, 0xff, topk_ids_.bytes(), stream_));
    if (!checked_[v]) { clear_ctrl(); checked_[v] = true; }
    launch(v, params(v, x_check_.p, 1, false), stream_);
    std::vector<uint16_t> o(n);
    ids.assign((size_t)T * m_->s.topk, -1);
    CUDA_CHECK(cudaMemcpyAsync(o.data(), out_.p, n * 2, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemcpyAsync(ids.data(), topk_ids_.p, ids.size() * 4, cudaMemcpyDeviceToHost, stream_));
    sync();
    out.resize(n);
    for (size_t i = 0; i < n; ++i) out[i] = bf_ ? bf16_to_f32(o[i]) : fp16_to_f32(o[i]);
  }

  void set_rotation(const std::vector<HostTensor>& xs, int T) override {
    const size_t per = (size_t)T * m_->s.hidden;
    x_rot_.alloc(per * xs.size());
    for (size_t r = 0; r < xs.size(); ++r)
      CUDA_CHECK(cudaMemcpy(x_rot_.p + r * per, xs[r].bytes.data(), xs[r].nbytes(), cudaMemcpyHostToDevice));
    rotate_ = (int)xs.size();
    const size_t cap = (size_t)(cfg_->warmup + cfg_->iters) * cfg_->repeat_work + 64;
    clk_.alloc(cap * 4);
    for (auto& g : graphs_) CUDA_CHECK(cudaGraphExecDestroy(g.second));
    graphs_.clear();
  }

  cudaGraphExec_t graph_for(const std::string& v) {
    auto it = graphs_.find(v);
    if (it != graphs_.end()) return it->second;
    cudaStream_t cap;
    CUDA_CHECK(cudaStreamCreateWithFlags(&cap, cudaStreamNonBlocking));
    cudaGraph_t g;
    CUDA_CHECK(cudaStreamBeginCapture(cap, cudaStreamCaptureModeThreadLocal));
    launch(v, params(v, x_rot_.p, rotate_, false), cap);
    CUDA_CHECK(cudaStreamEndCapture(cap, &g));
    cudaGraphExec_t ge;
    CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
    CUDA_CHECK(cudaGraphDestroy(g));
    CUDA_CHECK(cudaStreamDestroy(cap));
    graphs_[v] = ge;
    return ge;
  }

  void time_iters(const std::string& v, int warmup, int iters, std::vector<double>& us,
                  std::vector<double>& mhz) override {
    cudaGraphExec_t ge = graph_for(v);
    clear_ctrl();  // also sets the launch counter (input rotation, clock slot) to 0
    const int R = cfg_->repeat_work;
    std::vector<cudaEvent_t> ev(2 * (size_t)iters);
    for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
    for (int it = -warmup; it < iters; ++it) {
      if (cfg_->cold_l2) CUDA_CHECK(cudaMemsetAsync(flush_.p, it & 0xff, flush_.bytes(), stream_));
      if (it >= 0) CUDA_CHECK(cudaEventRecord(ev[2 * it], stream_));
      for (int r = 0; r < R; ++r) CUDA_CHECK(cudaGraphLaunch(ge, stream_));
      if (it >= 0) CUDA_CHECK(cudaEventRecord(ev[2 * it + 1], stream_));
    }
    sync();
    std::vector<long long> clk(clk_.n);
    CUDA_CHECK(cudaMemcpy(clk.data(), clk_.p, clk_.bytes(), cudaMemcpyDeviceToHost));
    for (int it = 0; it < iters; ++it) {
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, ev[2 * it], ev[2 * it + 1]));
      us.push_back(ms * 1000.0);
      const size_t L = (size_t)(warmup + it) * R + (R - 1);
      double mz = NAN;
      if (L * 4 + 3 < clk.size()) {
        const long long dc = clk[L * 4 + 1] - clk[L * 4], dt = clk[L * 4 + 3] - clk[L * 4 + 2];
        if (dt > 0 && dc > 0) mz = (double)dc / (double)dt * 1000.0;
      }
      mhz.push_back(mz);
    }
    for (auto& e : ev) CUDA_CHECK(cudaEventDestroy(e));
  }

  Waits trace_waits(const std::string& v, int pid, Json* tj) override {
    Waits w;
    if (!is_persistent(v)) return w;
    const Params p = params(v, x_rot_.p, rotate_, true);
    const int nb = p.nb, L = 5;
    std::vector<TraceEv> ev((size_t)nb * kMaxEv);
    std::vector<int> cnt(nb);
    w.present = true;
    w.per_block_us.assign(nb, 0.0);
    for (int l = 0; l < L; ++l) {
      CUDA_CHECK(cudaMemsetAsync(trace_n_.p, 0, trace_n_.bytes(), stream_));
      launch(v, p, stream_);
      sync();
      CUDA_CHECK(cudaMemcpy(cnt.data(), trace_n_.p, nb * sizeof(int), cudaMemcpyDeviceToHost));
      CUDA_CHECK(cudaMemcpy(ev.data(), trace_.p, ev.size() * sizeof(TraceEv), cudaMemcpyDeviceToHost));
      unsigned long long tmin = ~0ull, tmax = 0;
      for (int b = 0; b < nb; ++b)
        for (int i = 0; i < cnt[b]; ++i) {
          const TraceEv& e = ev[(size_t)b * kMaxEv + i];
          tmin = std::min(tmin, e.t0);
          tmax = std::max(tmax, e.t1);
        }
      const double span = (tmax - tmin) / 1000.0;
      w.kernel_us += span / L;
      for (int b = 0; b < nb; ++b) {
        unsigned long long last = tmin;
        for (int i = 0; i < cnt[b]; ++i) {
          const TraceEv& e = ev[(size_t)b * kMaxEv + i];
          if (trace_is_wait(e.type)) w.per_block_us[b] += (e.t1 - e.t0) / 1000.0 / L;
          last = std::max(last, e.t1);
        }
        w.tail_us += (tmax - last) / 1000.0 / L;  // block done, kernel not: the end-of-kernel bubble
      }
      if (tj && l == L - 1) {
        tj->begin_obj();
        tj->kv("name", "process_name"); tj->kv("ph", "M"); tj->kv("pid", pid);
        tj->key("args"); tj->begin_obj(); tj->kv("name", v); tj->end_obj();
        tj->end_obj();
        for (int b = 0; b < nb; ++b)
          for (int i = 0; i < cnt[b]; ++i) {
            const TraceEv& e = ev[(size_t)b * kMaxEv + i];
            tj->begin_obj();
            tj->kv("name", kTraceNames[e.type < TR_NUM && e.type >= 0 ? e.type : 0]);
            tj->kv("cat", trace_is_wait(e.type) ? "wait" : "work");
            tj->kv("ph", "X");
            tj->kv("pid", pid);
            tj->kv("tid", b);
            tj->kv("ts", (e.t0 - tmin) / 1000.0);
            tj->kv("dur", (e.t1 - e.t0) / 1000.0);
            tj->key("args");
            tj->begin_obj();
            if (e.task >= 0) { tj->kv("task_type", e.task >> 28); tj->kv("expert", (e.task >> 16) & 0xfff); tj->kv("tile", e.task & 0xffff); }
            tj->end_obj();
            tj->end_obj();
          }
      }
    }
    for (double d : w.per_block_us) w.total_us += d;
    w.share = w.kernel_us > 0 ? w.total_us / (nb * w.kernel_us) : 0;
    w.launches = L;
    return w;
  }

 private:
  cudaDeviceProp prop_{};
  int driver_ = 0;
  cudaStream_t stream_{};
  const Model* m_ = nullptr;
  const Config* cfg_ = nullptr;
  bool bf_ = true;
  DevBuf<uint16_t> wr_, w13_, w2t_, out_, x_check_, x_rot_;
  DevBuf<float> out_acc_, logits_, topk_w_, act_;
  DevBuf<int> topk_ids_, l_cnt_, l_off_, l_slots_, l_active_, ctrl_, fanin_, ack_, queue_, qflag_, smid_, trace_n_;
  DevBuf<unsigned long long> db_;
  DevBuf<long long> clk_;
  DevBuf<TraceEv> trace_;
  DevBuf<float> flush_;
  int rotate_ = 1;
  int occ_os_ = 0, occ_sk_ = 0, nb_os_ = 0, nb_sk_ = 0, nb_ = 0;
  int sep_ti_ = 16, sep_nh_ = 128, os_ti_ = 16, os_nh_ = 128, sk_ti_ = 16;
  size_t smem_ = 0, smem_st_ = 0, smem_sk_ = 0;
  int sk_threads_ = kThreads;
  int occ_st_ = 0, nb_st_ = 0;
  std::map<std::string, cudaGraphExec_t> graphs_;
  std::map<std::string, bool> checked_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }
std::vector<std::string> cuda_variant_names() { return std::vector<std::string>(kVariants, kVariants + kNumVariants); }

}  // namespace moe
