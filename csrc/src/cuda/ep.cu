// ep.cu — family "ep": the MoE layer split over the G GPUs of one process by experts (expert parallelism,
// --gpus G; CONTRACT.md "Expert parallelism"). Device d holds its own T tokens (as after data-parallel
// attention) and owns experts [d*E/G, (d+1)*E/G); the router is replicated. Per forward:
//   route     every device routes its own T tokens (router GEMV, top-k, softmax over the k);
//   dispatch  a device's tokens, with their picked experts and weights, go to the devices that own them;
//   compute   each owner runs its own experts on what it received: tokens grouped per (local expert, source)
//             bucket, gate/up+SiLU then down (the GEMV pieces of gemv.cuh that `separate` is made of),
//             the down projection accumulating each source's partial sums in fp32 (part[source][t][h]);
//   combine   the partial sums go back to the tokens' home, which adds them in owner order (fixed: no atomics
//             across devices) and stores the output in bf16/fp16.
// The two variants do the same arithmetic; they differ in how data moves and who waits for whom.
//   ep-separate    per-device kernels on one stream per device: k_eps_route (router + top-k; every block
//                  also copies its share of the token rows into the outgoing block), all-to-all dispatch,
//                  k_eps_lists (one block: buckets), k_eps_ffn1, k_eps_down, all-to-all combine,
//                  k_eps_combine. The all-to-alls move a fixed capacity per pair (the whole outgoing block:
//                  T token rows, their ids and weights; the whole T x H partial block back), so their sizes
//                  are known on the host and nothing waits for the host: with NCCL (libnccl.so.2 opened at
//                  run time with dlopen, as energy.cpp opens NVML; ncclSend/ncclRecv in one group) or with
//                  cudaMemcpyPeerAsync and cross-device events. Tunable `comm`: 1 peer copies, 2 NCCL;
//                  auto: NCCL when it loads. Launched from the host every iteration (no CUDA graph: graphs
//                  spanning devices were not tried).
//   ep-persistent  FlashDMoE's way: one persistent kernel per device (one block per SM, k_epp). Tokens,
//                  their ids/weights and the partial results move by 16-byte stores straight into the peer's
//                  memory (cudaDeviceEnablePeerAccess; NVLink where the GPUs have it), only the rows that are
//                  needed; each transfer ends with a flag stored into the peer carrying the iteration
//                  number, released after the stores as the tunable `fence` says (0: __threadfence_system()
//                  in every thread, then st.release.sys; 1: bar.sync, then one fence.acq_rel.sys and
//                  st.relaxed.sys; arrive_then_signal gives the memory-order argument); the receiver spins
//                  on its own memory (ld.acquire.sys). Inside a device: grid barriers on monotonic counters
//                  (target iteration x blocks, never reset). No host involvement between the router and the
//                  combined output. --trace: one span per block per phase (k_epp), every device.
//                  Tunable `compute`: 0 the buckets (step "compute" above, the first run's code); 1, where hidden
//                  is 2048 and inter >= 8, persistent-flat's one-token unit stream (unit_stream.cuh) over (local
//                  slot, intermediate unit), each block listing the slots itself: no buckets, one grid barrier
//                  instead of two, the gate/up warps handing activations to the down warps in registers' reach
//                  (at G = 1 the first run measured ep-persistent 81.9 us against persistent-flat's 38.7: the
//                  compute phase first). Run on 2 H200s 2026-11-28 (csrc/BENCHMARKS.md): compute=1 with fence=1
//                  took Qwen3 T=1 from 79.1 us (0, 0) to 49.1 us on 2 GPUs, through the farm. compute=auto (the
//                  default since): the stream up to kStreamMaxT tokens per GPU, the buckets beyond (at T = 64 they
//                  read an expert once per bucket, the stream once per slot). The buckets' two phases are split
//                  into one even range of (bucket, unit) or (bucket, column tile) pairs per block (before, about
//                  one task per block left some blocks two: DeepSeek-V3's shape at T = 1 ran slower than
//                  ep-separate, 9% faster since), both phases' ranges even in cost (tunable `balance`, default 2),
//                  computed once by block 0 with the lists (block_ranges).
//                  Tunable `topk`: 1 (default) every block computes the top-k itself instead of waiting for
//                  block 0's. Tunable `returns` (with the stream): 1 (default) each partial-sum row goes home from
//                  the last block that adds into it (return_rows), with no grid barrier after the stream. Tunable
//                  `route` (T = 1): 1 (default) the router's logits as tagged words, no grid barrier after it.
//                  Tunable `dispatch`: 1 block 0 alone sends small token rows (measured slower: default 0).
// Shared experts (--shared-experts N, NS > 0), replicated as the CPU backend's forward_ep does: every device holds
// their weights and runs them for its own T tokens (weight 1), adding into its own partial sums part[d] (home d is
// itself); those rows then go home like an owner's (ep-separate: the whole block is sent anyway; ep-persistent:
// row (d, t) of every own token is returned to itself), and the combine counts owner d for every token. No other
// device waits for them, so they go where the device would otherwise wait for its peers:
//   ep-separate    NS more block rows of k_eps_ffn1 and k_eps_down (as `separate` adds them).
//   ep-persistent  buckets: gate/up tasks of the shared experts over the grid between the dispatch and the wait for
//                  the peers' tokens, their down tasks after the routed ones (behind the ffn1 barrier that is there
//                  anyway); compute=1: a unit stream of their own (token, shared expert, unit) units in the same
//                  place, which needs no barrier (a unit's gate/up and down rows are one block's). Trace: ep:shared.
// Timing: each device records a CUDA event on its own stream at every iteration boundary; a sample is the
// slowest device's time for that iteration (events of different devices are never subtracted: their clocks
// are not one). All devices start after a host barrier (every device synchronized), and the warm-up
// iterations, which the dispatch/combine dependencies hold in step, come before the first timed one.
// results[].ep reports each device's median and the spread (slowest - fastest) per sample.
// Correctness: main's check runs the fp64 oracle over all G x T tokens (every device's output gathered).
// The split is not compared bit for bit with one device here (fp32 atomics in the down projection make
// the order of additions differ between launches).
// First run on 4 H100s on 2026-11-27 (csrc/BENCHMARKS.md "EP on CUDA").
#include <dlfcn.h>

#include <algorithm>

#include "../backend.h"
#include "cuda_check.cuh"
#include "ep.h"
#include "epilogue.cuh"
#include "routing.cuh"
#include "shared_experts.cuh"
#include "trace.cuh"
#include "unit_stream.cuh"

namespace moe {

namespace {

constexpr int kMaxG = 8;  // owner masks are bits of an int; variants.json max_gpus
constexpr int kStreamMaxT = 16;  // ep-persistent compute=auto: the unit stream up to this many tokens per GPU
constexpr size_t kSoloBytes = 32 << 10;  // ep-persistent dispatch=1: block 0 alone stores up to this many row bytes

// Control words of the ep kernels (their own array, one per device).
enum EpCtl : int {
  EP_ITER = 0,   // launches completed (input rotation; the sequence number of the next one is ITER + 1)
  EP_ERR = 1,    // spin-wait failure code before a trap
  EP_K1 = 2,     // separate: route blocks done (reset by the last)
  EP_K5 = 3,     // separate: combine blocks done (reset by the last)
  EP_NACT = 4,   // buckets with work (published lists)
  EP_R = 5, EP_TOPK = 6, EP_DISP = 7, EP_LISTS = 8, EP_F = 9, EP_D = 10, EP_RET = 11, EP_END = 12,  // persistent
  EP_N = 16
};

struct EpArgs {
  Params p;                 // this device: full router, its EL experts (w13/w2t), x_base/rotate, out, logits, act
                            // [G*T*K][I], lists over buckets, T = its own tokens, sl = the ep smem layout
  int G, d, EL;
  size_t SB;                // bytes of one token block: x [T][H] | ids [T*K] | w [T*K], rounded to 256
  unsigned char* sb;        // separate: this device's outgoing block
  unsigned char* rb;        // [G][SB] blocks received, by source (its own included)
  float* part;              // [G][T][H] partial sums computed here, by home
  float* ret;               // [G][T][H] partial sums received, by owner
  int* ctl;                 // EpCtl words
  int* flags;               // [2G]: [s] tokens from source s arrived; [G + o] partial sums from owner o arrived
  int fence;                // persistent: how a block releases its stores before a signal (arrive_then_signal)
  int topk_all;             // persistent: tunable topk (k_epp, 2)
  int balance;              // persistent: tunable balance (block_ranges)
  int* ranges;              // persistent, compute=0: [2][grid + 1] the blocks' ranges of pairs (block_ranges)
  int returns;              // persistent, compute=1: tunable returns (1: return_rows)
  int route_tag;            // persistent: tunable route=1 where it applies (T = 1: tagged logits, tagged_logits)
  int solo;                 // persistent: tunable dispatch=1 where it applies (block 0 alone dispatches)
  int* rowcnt;              // [G][T] returns=1: blocks counted in on row (source, token) this launch (reset by the last)
  int* rflags;              // [G][T] returns=1: [o * T + t] owner o's sums of own token t arrived (launch number)
  unsigned char* rb_peer[kMaxG];  // rb of device o
  float* ret_peer[kMaxG];         // ret of device o
  int* flags_peer[kMaxG];         // flags of device o
  int* rflags_peer[kMaxG];        // rflags of device o
};

// ---------------------------------------------------------------- device side

__device__ __noinline__ void ep_fail(const EpArgs& a, int code) {
  atomicExch(&a.ctl[EP_ERR], code);
  __threadfence_system();
  __trap();
}
// One thread: spin until *f >= v (sys: the word is stored by another device).
__device__ __forceinline__ void wait_ge(const EpArgs& a, const int* f, int v, bool sys, int code) {
  long long spins = 0;
  while ((sys ? ld_acquire_sys(f) : ld_acquire(f)) < v)
    if (++spins > kSpinLimit) ep_fail(a, code);
}

__device__ __forceinline__ const uint16_t* blk_x(const unsigned char* rb, size_t SB, int s) {
  return reinterpret_cast<const uint16_t*>(rb + (size_t)s * SB);
}
__device__ __forceinline__ int* blk_ids(unsigned char* rb, size_t SB, int s, const Params& p) {
  return reinterpret_cast<int*>(rb + (size_t)s * SB + (size_t)p.T * p.H * 2);
}
__device__ __forceinline__ float* blk_w(unsigned char* rb, size_t SB, int s, const Params& p) {
  return reinterpret_cast<float*>(blk_ids(rb, SB, s, p) + p.T * p.K);
}

// The Params whose Smem layout holds the buckets: G*T*K slots, E+1 buckets (bucket el*G + s: local expert
// el, source s; bucket E: slots owned elsewhere).
__device__ __forceinline__ Params bucket_params(const EpArgs& a) {
  Params q = a.p;
  q.T = a.G * a.p.T;
  q.E = a.p.E + 1;
  return q;
}
// The Params of the work of source s on this device: its activations, weights and partial-sum rows.
__device__ __forceinline__ Params source_view(const EpArgs& a, int s) {
  Params q = a.p;
  q.act = a.p.act + (size_t)s * a.p.T * a.p.K * a.p.I;
  q.topk_w = blk_w(a.rb, a.SB, s, a.p);
  q.out_acc = a.part + (size_t)s * a.p.T * a.p.H;
  return q;
}

// One block: the buckets of this device from every source's ids, into the global lists (l_cnt, l_off,
// l_active, l_slots with slots local to their source: t*K + k) and ctl[EP_NACT]. Returns the routed buckets with work.
__device__ int build_buckets(const EpArgs& a, const Smem& s) {
  const Params& p = a.p;
  const int TK = p.T * p.K, n = a.G * TK, NB = p.E + 1;
  for (int g = threadIdx.x; g < n; g += blockDim.x) {
    const int src = g / TK;
    const int id = __ldcg(blk_ids(a.rb, a.SB, src, p) + (g - src * TK));
    s.ids[g] = id / a.EL == a.d ? (id - a.d * a.EL) * a.G + src : p.E;
  }
  __syncthreads();
  const Params q = bucket_params(a);
  const int nact = build_lists(q, s.ids, s.cnt, s.off, s.fill, s.slots, s.active);
  for (int b = threadIdx.x; b < NB; b += blockDim.x) { p.l_cnt[b] = s.cnt[b]; p.l_off[b] = s.off[b]; }
  for (int i = threadIdx.x; i < n; i += blockDim.x) p.l_slots[i] = s.slots[i] % TK;
  for (int i = threadIdx.x; i < nact; i += blockDim.x) p.l_active[i] = s.active[i];
  const int routed = nact - (s.cnt[p.E] > 0 ? 1 : 0);  // the "elsewhere" bucket is last
  if (threadIdx.x == 0) a.ctl[EP_NACT] = routed;
  __syncthreads();
  return routed;
}

// compute=1, every block: the slots (source, token, pick) of every source whose expert lives here, in that
// order, into s.slots (slot g = source * T*K + t*K + k); s.ids[g] the local expert (-1: owned elsewhere), s.w[g]
// its routing weight. Returns how many. Whole block.
__device__ int local_slots(const EpArgs& a, const Smem& s) {
  const Params& p = a.p;
  const int TK = p.T * p.K, n = a.G * TK;
  for (int g = threadIdx.x; g < n; g += blockDim.x) {
    const int src = g / TK, r = g - src * TK;
    const int id = __ldcg(blk_ids(a.rb, a.SB, src, p) + r);
    s.ids[g] = id >= 0 && id / a.EL == a.d ? id - a.d * a.EL : -1;
    s.w[g] = __ldcg(blk_w(a.rb, a.SB, src, p) + r);
  }
  __syncthreads();
  if (threadIdx.x < 32) {  // warp 0 compacts in order: a ballot per 32 slots
    const int lane = threadIdx.x;
    int base = 0;
    for (int g0 = 0; g0 < n; g0 += 32) {
      const int g = g0 + lane;
      const bool mine = g < n && s.ids[g] >= 0;
      const unsigned m = __ballot_sync(0xffffffffu, mine);
      if (mine) s.slots[base + __popc(m & ((1u << lane) - 1u))] = g;
      base += __popc(m);
    }
    if (lane == 0) s.misc[0] = base;
  }
  __syncthreads();
  return s.misc[0];
}

// Gate/up + SiLU of bucket b, intermediate units [i0, i1): act[source][slot][i].
template <bool BF>
__device__ __forceinline__ void ffn1_bucket(const EpArgs& a, int b, int i0, int i1) {
  const int el = b / a.G, src = b % a.G;
  const int n = __ldcg(a.p.l_cnt + b);
  const int* slots = a.p.l_slots + __ldcg(a.p.l_off + b);
  const Params q = source_view(a, src);
  float* act = q.act;
  const int I = q.I;
  if (n > 0 && i0 < i1)
    ffn1_rows<BF, true>(q, blk_x(a.rb, a.SB, src), el, i0, i1, slots, n,
                  [&](int j, int i, float v) { act[(size_t)slots[j] * I + i] = v; });
}

// Shared expert n of this device's own tokens: slot = token, weight 1, its activations in act_s, its down
// projection into this device's own partial sums part[d] (see "Shared experts" above).
__device__ __forceinline__ Params shared_q(const EpArgs& a, int n) {
  Params q = shared_view<false>(a.p, n);
  q.out_acc = a.part + (size_t)a.d * a.p.T * a.p.H;
  return q;
}

// Gate/up + SiLU of shared expert n, intermediate units [i0, min(i1, IS)), every own token (x: this launch's input).
template <bool BF>
__device__ __forceinline__ void ffn1_shared(const EpArgs& a, const uint16_t* x, int n, int i0, int i1) {
  const Params q = shared_q(a, n);
  float* act = q.act;
  const int I = q.I;
  i1 = min(i1, I);
  if (i0 < i1) ffn1_rows<BF>(q, x, 0, i0, i1, q.iota, q.T, [&](int j, int i, float v) { act[(size_t)j * I + i] = v; });
}

// Down projection, column tiles [c0, c1) of p.nh columns of item b (active bucket l_active[b] below nact, else shared
// expert b - nact) as one down_tile of their joint width, into the partial sums (fp32 reductions); one down_tile
// call serves both kinds of item (two inlined copies spilled registers in the fp16 kernel).
template <bool BF>
__device__ __forceinline__ void down_segment(const EpArgs& a, const Smem& s, int nact, int b, int c0, int c1) {
  const Params& p = a.p;
  Params q;
  int e, n;
  const int* slots;
  if (b < nact) {
    const int bk = __ldcg(p.l_active + b), src = bk % a.G;
    q = source_view(a, src);
    e = bk / a.G;
    n = __ldcg(p.l_cnt + bk);
    slots = p.l_slots + __ldcg(p.l_off + bk);
  } else {
    q = shared_q(a, b - nact);
    e = 0;
    n = p.T;
    slots = q.iota;
  }
  q.nh = (c1 - c0) * p.nh;
  if (n > 0) down_tile<BF>(q, s.sa, s.red, e, slots, n, c0 * p.nh);
}

// Owner mask of each of this device's tokens (bit o: a picked expert lives on device o; with shared experts bit d
// always: they add into this device's own partial sums), into mask[T].
__device__ __forceinline__ void owner_masks(const EpArgs& a, int* mask) {
  const Params& p = a.p;
  const int* ids = blk_ids(a.rb, a.SB, a.d, p);
  for (int t = threadIdx.x; t < p.T; t += blockDim.x) {
    int m = p.NS > 0 ? 1 << a.d : 0;
    for (int k = 0; k < p.K; ++k) m |= 1 << (__ldcg(ids + t * p.K + k) / a.EL);
    mask[t] = m;
  }
}

// out[t][h] = sum over owners o (ascending) that hold one of t's experts of ret[o][t][h]; float4 i of T*H/4.
template <bool BF>
__device__ __forceinline__ void combine_range(const EpArgs& a, const int* mask, int first, int stride) {
  const Params& p = a.p;
  const int n4 = p.T * p.H / 4;
  const size_t TH = (size_t)p.T * p.H;
  for (int i = first; i < n4; i += stride) {
    const int m = mask[(i * 4) / p.H];
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int o = 0; o < a.G; ++o)
      if ((m >> o) & 1) {
        const float4 v = __ldcg(reinterpret_cast<const float4*>(a.ret + o * TH) + i);
        acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
      }
    const uint32_t lo = (uint32_t)to_store<BF>(acc.x) | ((uint32_t)to_store<BF>(acc.y) << 16);
    const uint32_t hi = (uint32_t)to_store<BF>(acc.z) | ((uint32_t)to_store<BF>(acc.w) << 16);
    reinterpret_cast<uint2*>(p.out)[i] = make_uint2(lo, hi);
  }
}

// ---- ep-separate: ordinary kernels

template <bool BF>
__global__ void __launch_bounds__(kThreads) k_eps_route(EpArgs a) {
  extern __shared__ __align__(16) char smem_raw[];
  const Params& p = a.p;
  const int iter = a.ctl[EP_ITER];
  const uint16_t* x = x_of(p, iter);
  router_expert<BF>(p, x, blockIdx.x);
  const int n16 = p.T * p.H / 8;  // this block's share of the token rows into the outgoing block
  const int lo = (int)((long long)blockIdx.x * n16 / gridDim.x), hi = (int)((long long)(blockIdx.x + 1) * n16 / gridDim.x);
  for (int c = lo + threadIdx.x; c < hi; c += blockDim.x) reinterpret_cast<uint4*>(a.sb)[c] = ld_ro(x + (size_t)c * 8);
  if (!arrive_last(&a.ctl[EP_K1], gridDim.x)) return;
  const Smem s(smem_raw, bucket_params(a));
  topk_softmax(p, s.ids, s.w, s.red);
  __syncthreads();
  int* ids = blk_ids(a.sb, a.SB, 0, p);
  float* w = blk_w(a.sb, a.SB, 0, p);
  for (int i = threadIdx.x; i < p.T * p.K; i += blockDim.x) { ids[i] = s.ids[i]; w[i] = s.w[i]; }
  if (threadIdx.x == 0) a.ctl[EP_K1] = 0;
}

__global__ void __launch_bounds__(kThreads) k_eps_lists(EpArgs a) {
  extern __shared__ __align__(16) char smem_raw[];
  const Smem s(smem_raw, bucket_params(a));
  build_buckets(a, s);
}

// Block rows: the routed buckets, then (the last NS rows) the shared experts.
template <bool BF>
__global__ void __launch_bounds__(kThreads) k_eps_ffn1(EpArgs a) {
  const int i0 = blockIdx.x * a.p.ti;
  const int sh = (int)blockIdx.y - ((int)gridDim.y - a.p.NS);  // >= 0: shared expert sh
  if (sh >= 0) {
    ffn1_shared<BF>(a, x_of(a.p, a.ctl[EP_ITER]), sh, i0, i0 + a.p.ti);
    return;
  }
  if ((int)blockIdx.y >= a.ctl[EP_NACT]) return;
  const int b = a.p.l_active[blockIdx.y];
  ffn1_bucket<BF>(a, b, i0, min(a.p.I, i0 + a.p.ti));
}

template <bool BF>
__global__ void __launch_bounds__(kThreads) k_eps_down(EpArgs a) {
  extern __shared__ __align__(16) char smem_raw[];
  const Smem s(smem_raw, bucket_params(a));
  const int nact = a.ctl[EP_NACT];
  const int sh = (int)blockIdx.y - ((int)gridDim.y - a.p.NS);  // >= 0: shared expert sh
  if (sh < 0 && (int)blockIdx.y >= nact) return;
  down_segment<BF>(a, s, nact, sh >= 0 ? nact + sh : (int)blockIdx.y, blockIdx.x, blockIdx.x + 1);
}

template <bool BF>
__global__ void __launch_bounds__(kThreads) k_eps_combine(EpArgs a) {
  __shared__ int mask[256];  // T <= 256 (variants.json)
  owner_masks(a, mask);
  __syncthreads();
  combine_range<BF>(a, mask, blockIdx.x * blockDim.x + threadIdx.x, gridDim.x * blockDim.x);
  if (arrive_last(&a.ctl[EP_K5], gridDim.x) && threadIdx.x == 0) {
    a.ctl[EP_K5] = 0;
    a.ctl[EP_ITER] += 1;
  }
}

// ---- ep-persistent: one kernel per device

// Trace spans (--trace; trace.cuh): thread 0 of a block ends the span of `type` that began at t0 and returns
// its end (the next span's start). Other threads return t0 (unused).
__device__ __forceinline__ unsigned long long span(const EpArgs& a, Tracer& tr, int type, unsigned long long t0) {
  if (threadIdx.x != 0) return t0;
  const unsigned long long t1 = gt(a.p);
  tr.add(type, -1, t0, t1);
  return t1;
}

// Every block of the grid: wait until all have arrived at ctl[c] for this launch (target = seq * blocks).
// Traces the block's work since t0 as `work` (up to its last thread's arrival here) and the wait as `wait`;
// returns (thread 0) the time the barrier was passed.
__device__ __forceinline__ unsigned long long grid_sync(const EpArgs& a, Tracer& tr, int c, int target, int code, int work,
                                                        int wait, unsigned long long t0) {
  __syncthreads();
  if (threadIdx.x == 0) {
    t0 = span(a, tr, work, t0);
    __threadfence();
    atomicAdd(&a.ctl[c], 1);
    wait_ge(a, &a.ctl[c], target, false, code);
    __threadfence();
    t0 = span(a, tr, wait, t0);
  }
  __syncthreads();
  return t0;
}

// Every block arrives at ctl[c] after its stores (into the peers' memory and this device's); the last one
// stores `seq` into flag slot `slot` of every device. How the stores are released before the flag is the
// tunable `fence` (variants.json, ep-persistent; a.fence):
//   0  every thread fence.sc.sys (__threadfence_system) after its stores, bar.sync, thread 0's arrival
//      (atom.add: relaxed, gpu scope); the last block's thread 0 fence.sc.sys again, then st.release.sys into
//      each device's flag. The code of the first GPU run (csrc/BENCHMARKS.md).
//   1  bar.sync, then thread 0 alone: fence.acq_rel.sys, the arrival; the last block's thread 0
//      fence.acq_rel.sys, then st.relaxed.sys into each device's flag (one fence for all G flags, where
//      G st.release.sys would each wait for the one before). nvlink_rtt measures this exchange as
//      protocol "block:fence.acq_rel+relaxed".
// Why 1 suffices, by the PTX memory model: let W be a store by thread t of block b into device o's memory
// (a token row or a top-k id/weight before the dispatch signal, a partial-sum row before the return signal).
//   a. W precedes t's arrival at the bar.sync below in program order, and bar.sync synchronizes the block's
//      threads: W precedes thread 0's fence.acq_rel.sys in causality order (base causality order is
//      transitive through program order and barrier synchronization, at any scope).
//   b. Thread 0's fence.acq_rel.sys followed by its atom on ctl[c] is a release pattern. The last block's atom
//      reads target - 1, so every other block's atom precedes it in observation order (a chain of atomic
//      read-modify-writes of one word of this device, morally strong at gpu scope), and the last block's
//      fence.acq_rel.sys after its atom makes an acquire pattern. The fences are both .sys: each block's
//      release synchronizes with the last block's acquire, and W precedes that fence in causality order.
//   c. The same fence followed by st.relaxed.sys of the flag on device o is a release pattern; the receiving
//      thread 0's ld.acquire.sys (wait_ge, sys) that reads `seq` synchronizes with it (both .sys: morally
//      strong). The receiver's bar.sync after its wait orders every one of its threads' later loads of those
//      rows (ld.global.cg, through L2) after W in causality order: they read W, not the poison or a previous
//      launch's value.
//   The same chain orders a receiver's loads of a launch's rows before the sender's stores of the next
//   launch into them (a release pattern orders earlier loads too). fence 0 adds a fence.sc.sys per thread
//   that the model does not ask for; whether the hardware needs it is what `fence` measures. The oracle
//   check runs before any timing (main.cpp: every variant against the fp64 oracle on poisoned outputs and
//   receive blocks, with the same tunable values as the timed launches), so a protocol too weak for the
//   hardware shows as a failed check (exit 1), and such a variant is not timed.
__device__ __forceinline__ void arrive_then_signal(const EpArgs& a, int c, int target, int slot, int seq) {
  if (a.fence == 0) __threadfence_system();
  __syncthreads();
  if (threadIdx.x == 0) {
    if (a.fence != 0) fence_acq_rel_sys();
    if (atomicAdd(&a.ctl[c], 1) == target - 1) {
      if (a.fence == 0) {
        __threadfence_system();
        for (int o = 0; o < a.G; ++o) st_release_sys(a.flags_peer[o] + slot, seq);
      } else {
        fence_acq_rel_sys();
        for (int o = 0; o < a.G; ++o) st_relaxed_sys(a.flags_peer[o] + slot, seq);
      }
    }
  }
}

// One block releases its stores (into the peers' memory and this device's) before its thread 0 stores flags
// (st_flag), as the tunable fence says: arrive_then_signal's protocol with the block's own bar.sync where that has
// the arrival chain (so step a and c of its argument: nothing but this block's stores is released).
__device__ __forceinline__ void release_block(const EpArgs& a) {
  if (a.fence == 0) __threadfence_system();
  __syncthreads();
  if (threadIdx.x == 0) {
    if (a.fence == 0) __threadfence_system(); else fence_acq_rel_sys();
  }
}
__device__ __forceinline__ void st_flag(const EpArgs& a, int* f, int v) {
  if (a.fence == 0) st_release_sys(f, v); else st_relaxed_sys(f, v);
}

// compute=0: the cost of one unit (gate/up) or one column tile (down) of an item of n tokens: 1 for one token, else 2
// per group of 4 (ffn1_rows runs one token with 16 loads in flight a lane, 2-4 with 8; down_rows<BF, 4> makes four
// times the FMAs and the reductions of down_rows<BF, 1>; on DeepSeek-V3's shape at T = 8, H200, gate/up ranges even
// in units took 686 to 1002 us a block, even in this cost 589 to 847).
__device__ __forceinline__ int pair_cost(int n) { return n > 1 ? 2 * ((n + 3) / 4) : 1; }

// compute=0: the first pair (item j, piece i), numbered j * per + i, of block b's share of n items of `per` pieces
// each, the pieces of item j costing c(j): the first pair whose cost starts at or after b / nb of the total (monotonic
// in b, so the blocks' ranges [start(b), start(b + 1)) partition the pairs). The inclusive prefix of c is pre[j] for
// j < nr and, beyond, pre[nr - 1] + (j - nr + 1) * cs (the shared experts, all of one cost; nr = 0, cs = 1: even in
// pieces). One thread.
__device__ int range_start(const int* pre, int nr, int cs, int n, int per, int b, int nb) {
  const auto P = [&](int j) -> long long {
    return j < 0 ? 0 : j < nr ? pre[j] : (nr > 0 ? pre[nr - 1] : 0) + (long long)(j - nr + 1) * cs;
  };
  const long long total = n > 0 ? P(n - 1) * per : 0, x = (long long)b * total / nb;
  if (x >= total) return n * per;
  int lo = 0, hi = n - 1;  // the item j with P(j - 1) * per <= x < P(j) * per
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (P(mid) * per <= x) lo = mid + 1; else hi = mid;
  }
  const long long p0 = P(lo - 1), c = P(lo) - p0;
  return lo * per + (int)((x - p0 * per + c - 1) / c);
}

// compute=0, block 0 after build_buckets: every block's range of both phases into a.ranges (k_epp, 5 and 6): [0, nb]
// the gate/up pairs (active bucket j, unit i) of the nact routed buckets, [nb + 1, 2 nb + 1] the down pairs (item j,
// column tile) of the nact buckets and the NS shared experts. Tunable balance: 0 both even in pieces; 1 gate/up even
// in cost (pair_cost), down in tiles; 2 both even in cost. Computed once here rather than by every block: the range
// code in every block made the bucket kernels spill (112 bytes at sm_90a). s.fill is free once the lists are built.
__device__ void block_ranges(const EpArgs& a, const Smem& s, int nact) {
  const Params& p = a.p;
  const int lane = threadIdx.x & 31, nb = gridDim.x;
  int* pre = s.fill;  // inclusive prefix of the routed buckets' costs
  for (int j = threadIdx.x; j < nact; j += blockDim.x) pre[j] = a.balance > 0 ? pair_cost(s.cnt[s.active[j]]) : 1;
  __syncthreads();
  if (threadIdx.x < 32) {
    int carry = 0;
    for (int j0 = 0; j0 < nact; j0 += 32) {
      int v = j0 + lane < nact ? pre[j0 + lane] : 0;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int u = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += u;
      }
      if (j0 + lane < nact) pre[j0 + lane] = v + carry;
      carry += __shfl_sync(0xffffffffu, v, 31);
    }
  }
  __syncthreads();
  const bool down_cost = a.balance > 1;
  for (int b = threadIdx.x; b <= nb; b += blockDim.x) {
    a.ranges[b] = range_start(pre, nact, 1, nact, p.I, b, nb);
    a.ranges[nb + 1 + b] = range_start(pre, down_cost ? nact : 0, down_cost ? pair_cost(p.T) : 1, nact + p.NS, p.H / p.nh, b, nb);
  }
}

// compute=1, the units of the unit stream (unit_stream.cuh's Unit). Routed: unit u = (local slot u / I, intermediate
// unit u % I) of local_slots' list, row source * T + t of the partial sums. Shared: unit u = (own token t, shared
// expert n, unit i), row t (of part[d]).
__device__ __forceinline__ Unit routed_unit(const Params& p, const Smem& s, int u) {
  const int I = p.I, j = u / I, i = u - j * I, g = s.slots[j], el = s.ids[g];
  Unit r;
  r.g = p.w13 + ((size_t)el * 2 * I + 2 * (size_t)i) * p.H;
  r.d = p.w2t + ((size_t)el * I + i) * p.H;
  r.wt = s.w[g];
  r.tok = g / p.K;  // = src * T + t
  return r;
}
__device__ __forceinline__ Unit shared_unit(const Params& p, int u) {
  const int NS = p.NS, IS = p.IS, t = u / (NS * IS), r = u - t * NS * IS, n = r / IS, i = r - n * IS;
  Unit un;
  un.g = p.ws13 + ((size_t)n * 2 * IS + 2 * (size_t)i) * p.H;
  un.d = p.ws2t + ((size_t)n * IS + i) * p.H;
  un.wt = 1.f;
  un.tok = t;
  return un;
}

// compute=1: the unit stream over the routed units of every source's local slots (local_slots), a contiguous
// range per block, into the partial sums part[source][t]. A row's input: this device's own tokens from this
// launch's input x (read-only: the same bytes as the rows it dispatched to itself), a peer's from the receive
// block, where the peer stored it in this launch (coherent loads). Traced as ep:slots and ep:gate-up stream;
// returns thread 0's time at the end.
template <bool BF>
__device__ __forceinline__ unsigned long long stream_local(const EpArgs& a, const Smem& s, Tracer& tr, float (&s_a)[2][kChunk],
                                                           const uint16_t* x, int& nloc, unsigned long long t0) {
  const Params& p = a.p;
  nloc = local_slots(a, s);
  t0 = span(a, tr, TR_EP_SLOTS, t0);
  const int T = p.T, H = p.H, nb = gridDim.x, row0 = a.d * T, U = nloc * p.I;
  const int u0 = (int)((long long)blockIdx.x * U / nb), u1 = (int)((long long)(blockIdx.x + 1) * U / nb);
  stream_units_h2048<BF, false, true>(
      p, tr, TR_EP_STREAM, s_a, u0, u1, [&](int u) { return routed_unit(p, s, u); },
      [&](int row, int c) {
        if (row - row0 >= 0 && row - row0 < T) return ld_ro(x + (size_t)(row - row0) * H + (size_t)c * 8);
        const int src = row / T;
        return __ldcg(reinterpret_cast<const uint4*>(blk_x(a.rb, a.SB, src) + (size_t)(row - src * T) * H) + c);
      },
      a.part, [](int) {});
  return threadIdx.x == 0 ? gt(p) : t0;
}

// The block of a stream of n units split as stream_local and the shared stream (3b) split them (block b: units
// [b n / nb, (b + 1) n / nb)) that holds unit u.
__device__ __forceinline__ int unit_block(long long u, long long n, int nb) { return (int)(((u + 1) * nb - 1) / n); }

// compute=1, tunable returns=1: each row (source, token) of the partial sums goes home as soon as it is complete,
// instead of a grid barrier, then a return phase and one signal per device. A row's units are contiguous in each
// stream (the routed units of its local slots [j0, j1) are [j0 I, j1 I); an own token t's shared units [t NS IS,
// (t + 1) NS IS)), so the blocks that add into it are the blocks of those ranges. Each of them, after its stream
// (the bar.sync orders its down threads' red.adds before thread r's release: fence then atom), counts itself in on
// the row's counter; the last sends the row home (ret[d][t] on device src, zeroing it here for the next launch),
// releases it (release_block: tunable fence) and stores this launch's number into the home's rflags[d T + t]
// (st_flag). Rows are taken kThreads at a time, thread r of a pass owning row r.
// Whole block.
__device__ __forceinline__ void return_rows(const EpArgs& a, const Smem& s, int nloc, int seq) {
  const Params& p = a.p;
  const int T = p.T, K = p.K, H = p.H, d = a.d, nb = gridDim.x, b = blockIdx.x, rows = a.G * T;
  const long long U = (long long)nloc * p.I, US = (long long)T * p.NS * p.IS;
  int* fin = reinterpret_cast<int*>(s.red);  // the rows this block sends in this pass
  __shared__ int s_nf;
  for (int r0 = 0; r0 < rows; r0 += blockDim.x) {
    if (threadIdx.x == 0) s_nf = 0;
    __syncthreads();  // also: every thread's stream done before the first arrival
    const int r = r0 + threadIdx.x;
    if (r < rows) {
      const int src = r / T;
      int lo = 0, hi = nloc;  // s.slots ascending; the row of slot g is g / K
      while (lo < hi) { const int m = (lo + hi) / 2; if (s.slots[m] < r * K) lo = m + 1; else hi = m; }
      int j1 = lo;
      hi = nloc;
      while (j1 < hi) { const int m = (j1 + hi) / 2; if (s.slots[m] < (r + 1) * K) j1 = m + 1; else hi = m; }
      int f0 = 1, l0 = 0, f1 = 1, l1 = 0;  // the blocks [f, l] of the routed and of the shared units (empty: f > l)
      if (j1 > lo) { f0 = unit_block((long long)lo * p.I, U, nb); l0 = unit_block((long long)j1 * p.I - 1, U, nb); }
      if (src == d && p.NS > 0) {
        const long long w0 = (long long)(r - src * T) * p.NS * p.IS;
        f1 = unit_block(w0, US, nb);
        l1 = unit_block(w0 + p.NS * p.IS - 1, US, nb);
      }
      const int both = max(0, min(l0, l1) - max(f0, f1) + 1);
      const int blocks = max(0, l0 - f0 + 1) + max(0, l1 - f1 + 1) - both;
      if ((f0 <= b && b <= l0) || (f1 <= b && b <= l1)) {
        __threadfence();
        if (atomicAdd(a.rowcnt + r, 1) == blocks - 1) {
          __threadfence();
          a.rowcnt[r] = 0;
          fin[atomicAdd(&s_nf, 1)] = r;
        }
      }
    }
    __syncthreads();
    const int nf = s_nf;
    for (int i = 0; i < nf; ++i) {
      const int rr = fin[i], src = rr / T;
      float4* part = reinterpret_cast<float4*>(a.part + (size_t)rr * H);
      float4* dst = reinterpret_cast<float4*>(a.ret_peer[src] + ((size_t)d * T + (rr - src * T)) * H);
      for (int c = threadIdx.x; c < H / 4; c += blockDim.x) {
        dst[c] = __ldcg(part + c);
        part[c] = make_float4(0.f, 0.f, 0.f, 0.f);
      }
    }
    if (nf > 0) {
      release_block(a);
      if (threadIdx.x == 0)
        for (int i = 0; i < nf; ++i) {
          const int rr = fin[i], src = rr / T;
          st_flag(a, a.rflags_peer[src] + d * T + (rr - src * T), seq);
        }
    }
    __syncthreads();  // fin and s_nf are the next pass's
  }
}

// The persistent kernel, one per device. Trace spans per block (thread 0; --trace, and `waits` for device 0):
// router, wait:router-barrier, ep:topk (topk=1: every block; topk=0: block 0, whose ids/weights are stored into
// every device either way) or wait:ep-topk (topk=0: the other blocks), ep:dispatch (this thread 0's token-row
// stores issued), ep:dispatch-release (the block's other stores, the fence(s), the arrival, the last block's
// flags), wait:ep-peer-tokens,
// ep:buckets (block 0) or wait:ep-buckets, ep:ffn1, wait:ep-ffn1-barrier, ep:down, wait:ep-down-barrier,
// ep:return, ep:return-release, wait:ep-peer-sums, ep:combine.
//
// STREAM (tunable compute=1; hidden 2048, inter >= 8): instead of the buckets, the ffn1 and down phases and their
// two grid barriers, every block lists the local slots itself (ep:slots) and runs persistent-flat's one-token unit
// stream (unit_stream.cuh) over units (local slot, intermediate unit), a contiguous range per block, the rows
// being the (source, token) rows of the receive blocks, into the partial sums (ep:gate-up stream, ep:down tail);
// one grid barrier (wait:ep-down-barrier) before the return. An expert's weights are streamed once per slot
// that picked it (the T = 1 design; with many tokens per expert the buckets read them once per bucket).
template <bool BF, bool STREAM>
__global__ void __launch_bounds__(kThreads, 1) k_epp(EpArgs a) {
  extern __shared__ __align__(16) char smem_raw[];
  const Params& p = a.p;
  const int G = a.G, d = a.d, T = p.T, K = p.K, H = p.H, nb = gridDim.x;
  const Smem s(smem_raw, bucket_params(a));
  __shared__ float s_a[2][kChunk];  // STREAM: the unit stream's hand-over
  Tracer tr;
  if (threadIdx.x == 0) tr.init(p);
  const int iter = __ldcg(&a.ctl[EP_ITER]);
  const int seq = iter + 1, all = seq * nb;
  unsigned long long t0 = gt(p);
  // 1. router logits of this device's tokens, experts spread over the grid. Tunable route=1 (T = 1, topk=1, E a
  //    multiple of 4): each logit published as one tagged 64-bit word that every block waits for directly, as
  //    persistent-flat's t1path=3 does (no grid barrier), then the rank top-k in every block.
  const uint16_t* x = x_of(p, iter);
  if (a.route_tag) {
    for (int e = blockIdx.x; e < p.E; e += nb) router_expert<BF, true>(p, x, e, (unsigned)seq);
    t0 = span(a, tr, TR_ROUTER, t0);
    tagged_logits(p.logit_tags, p.E, (unsigned)seq, s.red, [&] { ep_fail(a, 109); });
    __syncthreads();
    t0 = span(a, tr, TR_BARRIER, t0);
    rank_topk_t1(s.red, p.E, p.K, s.ids, s.w);
  } else {
    for (int e = blockIdx.x; e < p.E; e += nb) router_expert<BF>(p, x, e);
    t0 = grid_sync(a, tr, EP_R, all, 101, TR_ROUTER, TR_BARRIER, t0);
    // 2. top-k (route=1: done above). Tunable topk=1: in every block (the same code on the same logits: the same
    //    picks everywhere), T = 1 by rank over the logits in shared memory (as persistent-flat), else a warp per
    //    token; topk=0: block 0 alone (topk_softmax) while the other blocks wait for it (EP_TOPK, gpu scope).
    //    Block 0 stores the picks into this source's block on every device; the peers read them after the
    //    dispatch signal, which block 0's own release covers (arrive_then_signal or, dispatch=1, release_block),
    //    and so does this device (local_slots, buckets).
    if (a.topk_all) {
      if (T == 1 && p.E % 4 == 0) {
        for (int e = threadIdx.x; e < p.E; e += blockDim.x) s.red[e] = __ldcg(p.logits + e);
        __syncthreads();
        rank_topk_t1(s.red, p.E, p.K, s.ids, s.w);
      } else {
        topk_warp_regs(p, s.ids, s.w);
        __syncthreads();
      }
    } else if (blockIdx.x == 0) {
      topk_softmax(p, s.ids, s.w, s.red);
      __syncthreads();
    }
  }
  if (blockIdx.x == 0) {
    for (int o = 0; o < G; ++o) {
      int* ids = blk_ids(a.rb_peer[o], a.SB, d, p);
      float* w = blk_w(a.rb_peer[o], a.SB, d, p);
      for (int i = threadIdx.x; i < T * K; i += blockDim.x) { ids[i] = s.ids[i]; w[i] = s.w[i]; }
    }
  }
  if (a.topk_all || a.route_tag) {
    t0 = span(a, tr, TR_EP_TOPK, t0);
  } else if (blockIdx.x == 0) {
    if (a.fence == 0) __threadfence_system();  // fence 1: bar.sync + st.release.gpu (this device's readers)
    __syncthreads();
    if (threadIdx.x == 0) {
      st_release(&a.ctl[EP_TOPK], seq);
      t0 = span(a, tr, TR_EP_TOPK, t0);
    }
  } else if (threadIdx.x == 0) {
    wait_ge(a, &a.ctl[EP_TOPK], seq, false, 102);
    t0 = span(a, tr, TR_EP_WAIT_TOPK, t0);
  }
  __syncthreads();
  // 3. dispatch: token row t to every device that owns one of its experts (only those). Row (t, o) by block r of
  //    the grid, every block arriving on the counter (arrive_then_signal); tunable dispatch=1 (the rows small:
  //    plan) by block 0 alone, which then releases its stores itself and stores the flags (no arrival chain; the
  //    other blocks go straight to the wait).
  const int* my_ids = blk_ids(a.rb, a.SB, d, p);  // topk=0: block 0's picks, here since EP_TOPK
  const bool own = a.topk_all || a.route_tag || blockIdx.x == 0;  // s.ids holds the picks
  if (!a.solo || blockIdx.x == 0) {
    for (int r = a.solo ? 0 : blockIdx.x; r < T * G; r += a.solo ? 1 : nb) {
      const int t = r / G, o = r % G;
      bool need = false;
      for (int k = 0; k < K; ++k) need |= (own ? s.ids[t * K + k] : __ldcg(my_ids + t * K + k)) / a.EL == o;
      if (!need) continue;
      const uint16_t* src = x + (size_t)t * H;
      uint4* dst = reinterpret_cast<uint4*>(const_cast<uint16_t*>(blk_x(a.rb_peer[o], a.SB, d)) + (size_t)t * H);
      for (int c = threadIdx.x; c < H / 8; c += blockDim.x) dst[c] = ld_ro(src + (size_t)c * 8);
    }
    t0 = span(a, tr, TR_EP_DISPATCH, t0);
    if (a.solo) {
      release_block(a);
      if (threadIdx.x == 0)
        for (int o = 0; o < G; ++o) st_flag(a, a.flags_peer[o] + d, seq);
    } else {
      arrive_then_signal(a, EP_DISP, all, d, seq);
    }
    t0 = span(a, tr, TR_EP_DISP_REL, t0);
  }
  // 3b. the shared experts on this device's own tokens, while the peers' tokens are on their way
  if (p.NS > 0) {
    const int NS = p.NS, IS = p.IS;
    if constexpr (STREAM) {  // units (token, shared expert, unit), rows = own tokens, into part[d]; no barrier
      const int U = T * NS * IS;
      const int u0 = (int)((long long)blockIdx.x * U / nb), u1 = (int)((long long)(blockIdx.x + 1) * U / nb);
      stream_units_h2048<BF, false, true>(
          p, tr, TR_EP_SHARED, s_a, u0, u1, [&](int u) { return shared_unit(p, u); },
          [&](int row, int c) { return ld_ro(x + (size_t)row * H + (size_t)c * 8); }, a.part + (size_t)d * T * H,
          [](int) {});
      if (threadIdx.x == 0) t0 = gt(p);
    } else {  // gate/up tasks (shared expert, slice of its units), about one per block; their down after ffn1
      const int tiles = max(1, min(IS / 8, (nb + NS - 1) / NS));
      for (int j = blockIdx.x; j < NS * tiles; j += nb) {
        const int n = j / tiles, tile = j % tiles;
        ffn1_shared<BF>(a, x, n, tile * IS / tiles, (tile + 1) * IS / tiles);
      }
      t0 = span(a, tr, TR_EP_SHARED, t0);
    }
  }
  // 4. every source's tokens here
  if (threadIdx.x == 0) {
    for (int src = 0; src < G; ++src) wait_ge(a, a.flags + src, seq, true, 103);
    t0 = span(a, tr, TR_EP_WAIT_TOKENS, t0);
  }
  __syncthreads();
  bool returned = false;  // returns=1: every row sent home already (return_rows)
  if constexpr (STREAM) {
    // 5-6. the unit stream: unit u = (local slot u / I, intermediate unit u % I), rows src * T + t
    int nloc;
    t0 = stream_local<BF>(a, s, tr, s_a, x, nloc, t0);
    if (a.returns) {
      __syncthreads();
      t0 = span(a, tr, TR_EP_DOWN_TAIL, t0);
      return_rows(a, s, nloc, seq);
      t0 = span(a, tr, TR_EP_RETURN, t0);
      returned = true;
    } else {
      t0 = grid_sync(a, tr, EP_D, all, 106, TR_EP_DOWN_TAIL, TR_EP_DOWN_BAR, t0);
    }
  } else {
    // 4b. block 0 builds the buckets
    if (blockIdx.x == 0) {
      block_ranges(a, s, build_buckets(a, s));
      __threadfence();
      __syncthreads();
      if (threadIdx.x == 0) {
        st_release(&a.ctl[EP_LISTS], seq);
        t0 = span(a, tr, TR_EP_BUCKETS, t0);
      }
    } else if (threadIdx.x == 0) {
      wait_ge(a, &a.ctl[EP_LISTS], seq, false, 104);
      t0 = span(a, tr, TR_EP_WAIT_LISTS, t0);
    }
    __syncthreads();
    const int nact = __ldcg(&a.ctl[EP_NACT]);
    // 5. gate/up + SiLU: the nact x I (bucket, intermediate unit) pairs, one contiguous range per block, even in
    //    cost (block_ranges; the phase ends with the grid barrier, so the costliest range sets its time)
    {
      const int I = p.I;
      int w = __ldcg(a.ranges + blockIdx.x);
      const int w1 = __ldcg(a.ranges + blockIdx.x + 1);
      while (w < w1) {
        const int j = w / I, i0 = w - j * I, i1 = min(I, i0 + (w1 - w));
        ffn1_bucket<BF>(a, __ldcg(p.l_active + j), i0, i1);
        w += i1 - i0;
      }
    }
    t0 = grid_sync(a, tr, EP_F, all, 105, TR_EP_FFN1, TR_EP_FFN1_BAR, t0);
    // 6. down projection into the partial sums over the (nact + NS) x H / nh (bucket or shared expert, column tile)
    //    pairs, one contiguous range per block as in 5 (block_ranges; even in cost with balance=2); a block's
    //    consecutive tiles of one expert are one task of their joint width (down_rows takes up to kMaxDownCols
    //    columns), so a fine tile (tunable down_tile) balances the blocks without more reductions
    {
      const int ht = H / p.nh, merge = kMaxDownCols / p.nh;
      for (int w = __ldcg(a.ranges + nb + 1 + blockIdx.x), w1 = __ldcg(a.ranges + nb + 2 + blockIdx.x); w < w1;) {
        const int b = w / ht, c0 = w - b * ht, c1 = min(min(ht, c0 + merge), c0 + (w1 - w));
        w += c1 - c0;
        down_segment<BF>(a, s, nact, b, c0, c1);
      }
    }
    t0 = grid_sync(a, tr, EP_D, all, 106, TR_EP_DOWN, TR_EP_DOWN_BAR, t0);
  }
  // 7. partial sums home: row t of source src goes to ret[d] on device src (only rows that were sent here, and
  //    with shared experts every own row)
  for (int r = blockIdx.x; r < G * T && !returned; r += nb) {
    const int src = r / T, t = r % T;
    const int* ids = blk_ids(a.rb, a.SB, src, p);
    bool need = src == d && p.NS > 0;
    for (int k = 0; k < K; ++k) need |= __ldcg(ids + t * K + k) / a.EL == d;
    if (!need) continue;
    float4* part = reinterpret_cast<float4*>(a.part + ((size_t)src * T + t) * H);
    float4* dst = reinterpret_cast<float4*>(a.ret_peer[src] + ((size_t)d * T + t) * H);
    for (int c = threadIdx.x; c < H / 4; c += blockDim.x) {
      dst[c] = __ldcg(part + c);
      part[c] = make_float4(0.f, 0.f, 0.f, 0.f);  // zero for the next launch's reductions
    }
  }
  if (!returned) {
    t0 = span(a, tr, TR_EP_RETURN, t0);
    arrive_then_signal(a, EP_RET, all, G + d, seq);
    t0 = span(a, tr, TR_EP_RET_REL, t0);
  }
  // 8. combine: every owner's partial sums of this device's tokens (returns=1: thread i waits for owner i / T's
  //    row of token i % T where that owner holds one of its experts)
  owner_masks(a, s.misc);
  if (returned) {
    __syncthreads();
    for (int i = threadIdx.x; i < G * T; i += blockDim.x)
      if ((s.misc[i % T] >> (i / T)) & 1) wait_ge(a, a.rflags + i, seq, true, 108);
  } else if (threadIdx.x == 0) {
    for (int o = 0; o < G; ++o) wait_ge(a, a.flags + G + o, seq, true, 107);
  }
  __syncthreads();
  t0 = span(a, tr, TR_EP_WAIT_SUMS, t0);
  combine_range<BF>(a, s.misc, blockIdx.x * blockDim.x + threadIdx.x, nb * blockDim.x);
  __syncthreads();
  if (threadIdx.x == 0) {
    span(a, tr, TR_EP_COMBINE, t0);
    tr.finish(p);
    if (atomicAdd(&a.ctl[EP_END], 1) == all - 1) a.ctl[EP_ITER] = seq;
  }
}

// The k_epp instantiation of a dtype (bf16 or fp16) and compute mode (the unit stream or the buckets).
using EppFn = void (*)(EpArgs);
EppFn epp_fn(bool bf, bool stream) {
  if (stream) return bf ? k_epp<true, true> : k_epp<false, true>;
  return bf ? k_epp<true, false> : k_epp<false, false>;
}
const void* epp_kernel(bool bf, bool stream) { return (const void*)epp_fn(bf, stream); }
void launch_epp(bool bf, bool stream, int grid, size_t smem, cudaStream_t st, const EpArgs& a) {
  epp_fn(bf, stream)<<<grid, kThreads, smem, st>>>(a);
  CUDA_CHECK_LAUNCH("k_epp");
}

// ---------------------------------------------------------------- NCCL, opened at run time

struct Nccl {
  using Comm = void*;
  void* lib = nullptr;
  std::string why;  // why it is not available ("" once loaded)
  int version = 0;
  int (*comm_init_all)(Comm*, int, const int*) = nullptr;
  int (*comm_destroy)(Comm) = nullptr;
  int (*group_start)() = nullptr;
  int (*group_end)() = nullptr;
  int (*send)(const void*, size_t, int, int, Comm, cudaStream_t) = nullptr;
  int (*recv)(void*, size_t, int, int, Comm, cudaStream_t) = nullptr;
  const char* (*error_string)(int) = nullptr;
  std::vector<Comm> comms;
  bool tried = false;
  static constexpr int kBytes = 0;  // ncclInt8: every transfer counted in bytes

  bool load() {
    if (tried) return lib != nullptr;
    tried = true;
    for (const char* name : {"libnccl.so.2", "libnccl.so"}) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
      const char* e = dlerror();
      why += std::string(why.empty() ? "" : "; ") + "dlopen(" + name + "): " + (e ? e : "failed");
    }
    if (!lib) return false;
    auto sym = [&](const char* n) { return dlsym(lib, n); };
    comm_init_all = reinterpret_cast<decltype(comm_init_all)>(sym("ncclCommInitAll"));
    comm_destroy = reinterpret_cast<decltype(comm_destroy)>(sym("ncclCommDestroy"));
    group_start = reinterpret_cast<decltype(group_start)>(sym("ncclGroupStart"));
    group_end = reinterpret_cast<decltype(group_end)>(sym("ncclGroupEnd"));
    send = reinterpret_cast<decltype(send)>(sym("ncclSend"));
    recv = reinterpret_cast<decltype(recv)>(sym("ncclRecv"));
    error_string = reinterpret_cast<decltype(error_string)>(sym("ncclGetErrorString"));
    auto get_version = reinterpret_cast<int (*)(int*)>(sym("ncclGetVersion"));
    if (!comm_init_all || !comm_destroy || !group_start || !group_end || !send || !recv || !error_string || !get_version) {
      why = "NCCL too old: lacks ncclSend/ncclRecv/ncclCommInitAll (needs 2.7 or later)";
      dlclose(lib);
      lib = nullptr;
      return false;
    }
    get_version(&version);
    why.clear();
    return true;
  }
  void check(int rc, const char* what) const {
    if (rc != 0) die_runtime(std::string("NCCL error: ") + what + " -> " + error_string(rc));
  }
  std::string version_string() const {
    return std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." + std::to_string(version % 100);
  }
  ~Nccl() {
    for (Comm c : comms) if (c) comm_destroy(c);
    if (lib) dlclose(lib);
  }
};

// ---------------------------------------------------------------- host side

struct EpPlan {
  int strategy = EP_SEPARATE;
  int comm = 1;        // separate: 1 peer copies, 2 NCCL (G == 1: local copies)
  int ti = 16, nh = 128;
  int grid = 0;        // persistent: blocks per device
  int fence = 0;       // persistent: tunable fence (arrive_then_signal)
  bool stream = false; // persistent: tunable compute=1 where it applies (hidden 2048, inter >= kChunk): k_epp's unit stream
  bool topk_all = false;  // persistent: tunable topk=1 (every block computes the top-k)
  int balance = 0;        // persistent: tunable balance (block_ranges)
  bool returns = false;   // persistent: tunable returns=1 where the stream runs (return_rows)
  bool route_tag = false; // persistent: tunable route=1 where it applies (T = 1, topk=1, E % 4 == 0)
  bool solo = false;      // persistent: tunable dispatch=1 where it applies (the rows <= kSoloBytes)
  SmemLayout sl;
};

struct EpStats {
  std::vector<std::vector<double>> per_gpu;  // [device][sample] us
  std::vector<double> spread;                // per sample: slowest - fastest device, us
  long long checked = 0;
  std::vector<long long> tokens, slots;      // [home * G + owner], summed over checked forwards
};

double median_of(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

class EpEngineImpl : public EpEngine {
 public:
  explicit EpEngineImpl(int gpus) : G_(gpus) {}
  ~EpEngineImpl() override {
    for (auto& dv : dev_) {
      cudaSetDevice(dv.id);
      if (dv.ev_disp) cudaEventDestroy(dv.ev_disp);
      if (dv.ev_comb) cudaEventDestroy(dv.ev_comb);
      if (dv.st) cudaStreamDestroy(dv.st);
    }
    cudaSetDevice(0);
  }

  std::string plan(int strategy, const PlanCtx& ctx, TunableSet& tun, int& idx) override {
    std::string why = open_devices();
    if (!why.empty()) return why;
    const Shape& s = ctx.s;
    if (G_ > kMaxG) return "gpus (" + std::to_string(G_) + ") must be <= " + std::to_string(kMaxG);
    if (s.experts % G_) return "experts must be a multiple of gpus";
    EpPlan pl;
    pl.strategy = strategy;
    pl.sl = SmemLayout{G_ * ctx.T * s.topk, s.experts + 1, kNT * std::min(std::max(s.inter, s.shared_inter), kDownIC), ctx.T};
    why = shared_memory_reason(ctx, pl.sl);
    if (!why.empty()) return why;
    // ep-persistent splits its down work into balanced ranges of tiles and joins a block's neighbours (k_epp, 6):
    // the finest tile balances best
    if (strategy == EP_PERSISTENT && tun.is_auto("down_tile")) tun.set_heuristic("down_tile", 64);
    why = plan_down_tile(ctx, tun, pl.nh);
    if (!why.empty()) return why;
    for (int d = 0; d < G_; ++d) {  // the kernels' shared-memory limit, on every device
      CUDA_CHECK(cudaSetDevice(d));
      for (const void* f : {(const void*)k_eps_route<true>, (const void*)k_eps_route<false>, (const void*)k_eps_lists,
                            (const void*)k_eps_down<true>, (const void*)k_eps_down<false>, epp_kernel(true, false),
                            epp_kernel(false, false), epp_kernel(true, true), epp_kernel(false, true)})
        CUDA_CHECK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)pl.sl.bytes()));
    }
    CUDA_CHECK(cudaSetDevice(0));
    if (strategy == EP_SEPARATE) {
      pl.ti = (int)tun.get("ffn1_tile");
      if (tun.is_auto("comm")) tun.set_heuristic("comm", G_ > 1 && nccl_.load() ? 2 : 1);
      pl.comm = (int)tun.get("comm");
      if (pl.comm == 2 && G_ > 1 && !nccl_.load())
        return "tunable " + tun.describe("comm") + ": NCCL is not available: " + nccl_.why +
               " (install NCCL or put libnccl.so.2 on LD_LIBRARY_PATH; comm=1 uses peer copies)";
    } else {
      for (int d = 0; d < G_; ++d)
        for (int o = 0; o < G_; ++o)
          if (d != o && !peer_[d * G_ + o])
            return "GPU " + std::to_string(d) + " cannot access GPU " + std::to_string(o) +
                   "'s memory (cudaDeviceCanAccessPeer): ep-persistent stores into its peers' memory";
      CUDA_CHECK(cudaSetDevice(0));
      // compute=1 applies where the unit stream can run (hidden 2048, inter >= its 8-unit chunk); elsewhere the
      // buckets, as persistent-flat's t1path applies at T = 1 and hidden 2048 only. The JSON says which ran.
      // With shared experts their own unit stream needs the same of shared_inter.
      // auto: the stream up to 16 tokens per GPU, the buckets beyond (Qwen3-30B-A3B on one H200, 2026-11-28, the
      // buckets with balance=1: the stream faster at T = 1 .. 8, a tie at 16, the buckets faster at 32 and 64;
      // csrc/BENCHMARKS.md)
      if (tun.is_auto("compute")) tun.set_heuristic("compute", ctx.T <= kStreamMaxT ? 1 : 0);
      pl.stream = tun.get("compute") == 1 && s.hidden == kColsPerGroup && s.inter >= kChunk &&
                  (s.shared_experts == 0 || s.shared_inter >= kChunk);
      pl.topk_all = tun.get("topk") == 1;
      pl.balance = (int)tun.get("balance");
      pl.returns = pl.stream && tun.get("returns") == 1;
      pl.route_tag = tun.get("route") == 1 && ctx.T == 1 && pl.topk_all && s.experts % 4 == 0;
      pl.solo = tun.get("dispatch") == 1 && (size_t)ctx.T * G_ * s.hidden * 2 <= kSoloBytes;
      const int per_sm = blocks_per_sm(epp_kernel(ctx.bf, pl.stream), kThreads, pl.sl.bytes());
      if (per_sm < 1) return "the persistent kernel does not fit one block of " + std::to_string(kThreads) + " threads per SM";
      pl.fence = (int)tun.get("fence");
      pl.grid = dev_[0].prop.multiProcessorCount;
      for (auto& dv : dev_) pl.grid = std::min(pl.grid, dv.prop.multiProcessorCount);
    }
    plans_.push_back(pl);
    stats_.emplace_back();
    idx = (int)plans_.size() - 1;
    return "";
  }

  void launch_json(int i, JsonWriter& j) override {
    const EpPlan& pl = plans_[i];
    j.begin_obj();
    j.kv("family", "ep");
    j.kv("persistent", pl.strategy == EP_PERSISTENT);
    j.kv("blocks", pl.strategy == EP_PERSISTENT ? pl.grid : m_ ? m_->s.experts : 0);  // separate: the router's grid
    j.kv("threads", kThreads);
    j.kv("smem_bytes", (long long)pl.sl.bytes());
    j.kv("gpus", G_);
    j.end_obj();
  }

  void upload(const Model& m, const Config& cfg) override {
    m_ = &m;
    cfg_ = &cfg;
    bf_ = m.dt == DType::BF16;
    const int T = cfg.tokens, H = m.s.hidden, I = m.s.inter, E = m.s.experts, K = m.s.topk, EL = E / G_;
    SB_ = ((size_t)T * H * 2 + (size_t)T * K * 8 + 255) / 256 * 256;
    for (int d = 0; d < G_; ++d) {
      Dev& dv = dev_[d];
      CUDA_CHECK(cudaSetDevice(d));
      dv.wr.alloc(m.wr.n);
      CUDA_CHECK(cudaMemcpy(dv.wr.p, m.wr.bytes.data(), m.wr.nbytes(), cudaMemcpyHostToDevice));
      const size_t n13 = (size_t)EL * 2 * I * H, n2 = (size_t)EL * I * H;
      dv.w13.alloc(n13);
      dv.w2t.alloc(n2);
      CUDA_CHECK(cudaMemcpy(dv.w13.p, m.w13.q.h16() + d * n13, n13 * 2, cudaMemcpyHostToDevice));
      CUDA_CHECK(cudaMemcpy(dv.w2t.p, m.w2t.q.h16() + d * n2, n2 * 2, cudaMemcpyHostToDevice));
      // shared experts: every device a whole copy (replicated), their activations and token lists
      const int NS = m.s.shared_experts, IS = m.s.shared_inter;
      dv.ws13.alloc(std::max<size_t>(1, m.ws13.q.n));
      dv.ws2t.alloc(std::max<size_t>(1, m.ws2t.q.n));
      if (m.ws13.q.n) CUDA_CHECK(cudaMemcpy(dv.ws13.p, m.ws13.q.h16(), m.ws13.q.nbytes(), cudaMemcpyHostToDevice));
      if (m.ws2t.q.n) CUDA_CHECK(cudaMemcpy(dv.ws2t.p, m.ws2t.q.h16(), m.ws2t.q.nbytes(), cudaMemcpyHostToDevice));
      dv.act_s.alloc((size_t)std::max(1, NS * T * IS));
      std::vector<int> iota(T);
      for (int t = 0; t < T; ++t) iota[t] = t;
      const std::vector<float> ones(T, 1.f);
      dv.iota.alloc(T);
      dv.ones.alloc(T);
      CUDA_CHECK(cudaMemcpy(dv.iota.p, iota.data(), T * sizeof(int), cudaMemcpyHostToDevice));
      CUDA_CHECK(cudaMemcpy(dv.ones.p, ones.data(), T * sizeof(float), cudaMemcpyHostToDevice));
      dv.out.alloc((size_t)T * H);
      dv.x_check.alloc((size_t)T * H);
      dv.logits.alloc((size_t)T * E);
      dv.logit_tags.alloc(E);
      dv.act.alloc((size_t)G_ * T * K * I);
      dv.part.alloc((size_t)G_ * T * H);
      dv.ret.alloc((size_t)G_ * T * H);
      dv.l_cnt.alloc(E + 1); dv.l_off.alloc(E + 1); dv.l_active.alloc(E + 1); dv.l_slots.alloc((size_t)G_ * T * K);
      dv.ctl.alloc(EP_N);
      dv.ranges.alloc(2 * ((size_t)dv.prop.multiProcessorCount + 1));
      dv.flags.alloc(2 * G_);
      dv.rowcnt.alloc((size_t)G_ * T);
      dv.rflags.alloc((size_t)G_ * T);
      dv.sb.alloc(SB_);
      dv.rb.alloc(G_ * SB_);
      dv.dummy.alloc(1);
      CUDA_CHECK(cudaMemset(dv.part.p, 0, dv.part.bytes()));
      CUDA_CHECK(cudaMemset(dv.ret.p, 0, dv.ret.bytes()));
      CUDA_CHECK(cudaMemset(dv.ctl.p, 0, dv.ctl.bytes()));
      CUDA_CHECK(cudaMemset(dv.flags.p, 0, dv.flags.bytes()));
      CUDA_CHECK(cudaMemset(dv.rowcnt.p, 0, dv.rowcnt.bytes()));
      CUDA_CHECK(cudaMemset(dv.rflags.p, 0, dv.rflags.bytes()));
      CUDA_CHECK(cudaMemset(dv.logit_tags.p, 0, dv.logit_tags.bytes()));
      CUDA_CHECK(cudaEventCreateWithFlags(&dv.ev_disp, cudaEventDisableTiming));
      CUDA_CHECK(cudaEventCreateWithFlags(&dv.ev_comb, cudaEventDisableTiming));
    }
    bool want_nccl = false;
    for (auto& pl : plans_) want_nccl = want_nccl || (pl.strategy == EP_SEPARATE && pl.comm == 2 && G_ > 1);
    if (want_nccl && nccl_.comms.empty()) {
      nccl_.comms.assign(G_, nullptr);
      std::vector<int> devs(G_);
      for (int d = 0; d < G_; ++d) devs[d] = d;
      nccl_.check(nccl_.comm_init_all(nccl_.comms.data(), G_, devs.data()), "ncclCommInitAll");
    }
    CUDA_CHECK(cudaSetDevice(0));
  }

  void run_once(int i, const HostTensor& x, int TL, std::vector<float>& out, std::vector<int>& ids) override {
    const int T = TL / G_, H = m_->s.hidden, K = m_->s.topk, EL = m_->s.experts / G_;
    const size_t n = (size_t)T * H;
    if (last_ != i) clear_ctl();
    for (int d = 0; d < G_; ++d) {
      Dev& dv = dev_[d];
      CUDA_CHECK(cudaSetDevice(d));
      CUDA_CHECK(cudaMemcpyAsync(dv.x_check.p, x.bytes.data() + (size_t)d * n * 2, n * 2, cudaMemcpyHostToDevice, dv.st));
      CUDA_CHECK(cudaMemsetAsync(dv.out.p, 0xff, dv.out.bytes(), dv.st));  // poison: 0xffff is NaN in bf16 and fp16
      CUDA_CHECK(cudaMemsetAsync(dv.rb.p, 0xff, dv.rb.bytes(), dv.st));
    }
    // Host barrier: a device's poison must land before any peer's forward stores into its rb (the streams
    // of different devices are not ordered; without it a fast peer's tokens and ids could be overwritten
    // with 0xff, seen on a 4-GPU H100 host as one failed check in 24 jobs).
    sync_all();
    std::vector<const uint16_t*> xb(G_);
    for (int d = 0; d < G_; ++d) xb[d] = dev_[d].x_check.p;
    enqueue(i, xb, 1, nullptr);
    sync_all();
    out.resize((size_t)TL * H);
    ids.assign((size_t)TL * K, -1);
    std::vector<uint16_t> o(n);
    for (int d = 0; d < G_; ++d) {
      Dev& dv = dev_[d];
      CUDA_CHECK(cudaSetDevice(d));
      CUDA_CHECK(cudaMemcpy(o.data(), dv.out.p, n * 2, cudaMemcpyDeviceToHost));
      for (size_t k = 0; k < n; ++k) out[(size_t)d * n + k] = bf_ ? bf16_to_f32(o[k]) : fp16_to_f32(o[k]);
      CUDA_CHECK(cudaMemcpy(ids.data() + (size_t)d * T * K, dv.rb.p + (size_t)d * SB_ + n * 2, (size_t)T * K * 4, cudaMemcpyDeviceToHost));
    }
    CUDA_CHECK(cudaSetDevice(0));
    // who sent what to whom (the routing of the checked forwards)
    EpStats& st = stats_[i];
    if (st.tokens.empty()) { st.tokens.assign((size_t)G_ * G_, 0); st.slots.assign((size_t)G_ * G_, 0); }
    ++st.checked;
    for (int d = 0; d < G_; ++d)
      for (int t = 0; t < T; ++t) {
        int mask = 0;
        for (int k = 0; k < K; ++k) {
          const int e = ids[((size_t)d * T + t) * K + k];
          if (e < 0 || e / EL >= G_) continue;
          mask |= 1 << (e / EL);
          ++st.slots[(size_t)d * G_ + e / EL];
        }
        for (int o2 = 0; o2 < G_; ++o2) if ((mask >> o2) & 1) ++st.tokens[(size_t)d * G_ + o2];
      }
  }

  void set_rotation(const std::vector<HostTensor>& xs, int TL) override {
    const int T = TL / G_;
    const size_t per = (size_t)T * m_->s.hidden;
    rotate_ = (int)xs.size();
    for (int d = 0; d < G_; ++d) {
      Dev& dv = dev_[d];
      CUDA_CHECK(cudaSetDevice(d));
      dv.x_rot.alloc(per * xs.size());
      for (size_t r = 0; r < xs.size(); ++r)
        CUDA_CHECK(cudaMemcpy(dv.x_rot.p + r * per, xs[r].bytes.data() + (size_t)d * per * 2, per * 2, cudaMemcpyHostToDevice));
    }
    CUDA_CHECK(cudaSetDevice(0));
  }

  void time_iters(int i, int warmup, int iters, std::vector<double>& us) override {
    clear_ctl();  // also the host barrier: every device idle before the first launch
    const int R = cfg_->repeat_work;
    std::vector<std::vector<cudaEvent_t>> ev(G_, std::vector<cudaEvent_t>((size_t)iters + 1));
    for (int d = 0; d < G_; ++d) {
      CUDA_CHECK(cudaSetDevice(d));
      for (auto& e : ev[d]) CUDA_CHECK(cudaEventCreate(&e));
    }
    std::vector<const uint16_t*> xb(G_);
    for (int d = 0; d < G_; ++d) xb[d] = dev_[d].x_rot.p;
    std::vector<cudaEvent_t> marks(G_);
    for (int it = -warmup; it < iters; ++it)
      for (int r = 0; r < R; ++r) {
        const bool mark = it >= 0 && r == 0;
        if (mark) for (int d = 0; d < G_; ++d) marks[d] = ev[d][it];
        enqueue(i, xb, rotate_, mark ? &marks : nullptr);
      }
    for (int d = 0; d < G_; ++d) {
      CUDA_CHECK(cudaSetDevice(d));
      CUDA_CHECK(cudaEventRecord(ev[d][iters], dev_[d].st));
    }
    sync_all();
    EpStats& st = stats_[i];
    st.per_gpu.resize(G_);
    for (int it = 0; it < iters; ++it) {
      double lo = INFINITY, hi = 0;
      for (int d = 0; d < G_; ++d) {
        CUDA_CHECK(cudaSetDevice(d));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, ev[d][it], ev[d][it + 1]));
        const double u = ms * 1000.0;
        st.per_gpu[d].push_back(u);
        lo = std::min(lo, u);
        hi = std::max(hi, u);
      }
      us.push_back(hi);
      st.spread.push_back(hi - lo);
    }
    for (int d = 0; d < G_; ++d) {
      CUDA_CHECK(cudaSetDevice(d));
      for (auto& e : ev[d]) CUDA_CHECK(cudaEventDestroy(e));
    }
    CUDA_CHECK(cudaSetDevice(0));
  }

  void ep_json(int i, JsonWriter& j) const override {
    const EpPlan& pl = plans_[i];
    const EpStats& st = stats_[i];
    const int T = cfg_->tokens, H = m_->s.hidden, K = m_->s.topk;
    j.begin_obj();
    j.kv("gpus", G_);
    j.kv("experts_per_gpu", m_->s.experts / G_);
    j.kv("tokens_per_gpu", T);
    std::string comm;
    if (G_ == 1) comm = "local";
    else if (pl.strategy == EP_PERSISTENT) comm = "peer-stores";
    else comm = pl.comm == 2 ? "nccl" : "peer";
    j.kv("comm", comm);
    if (comm == "nccl") j.kv("nccl_version", nccl_.version_string()); else j.kv_null("nccl_version");
    j.kv("comm_detail", pl.strategy == EP_PERSISTENT
                            ? (pl.fence == 0
                                   ? "16-byte stores into the peer's memory from the persistent kernel, only the rows needed; a flag stored after them (fence 0: every thread __threadfence_system after its stores, then st.release.sys)"
                                   : "16-byte stores into the peer's memory from the persistent kernel, only the rows needed; a flag stored after them (fence 1: bar.sync, thread 0 fence.acq_rel.sys, then st.relaxed.sys)")
                            : pl.comm == 2 ? "ncclSend/ncclRecv in one group per all-to-all, fixed capacity per pair (the whole token block; the whole partial-sum block back)"
                                           : "cudaMemcpyPeerAsync per pair with cross-device events, fixed capacity per pair (the whole token block; the whole partial-sum block back)");
    j.kv("launch", pl.strategy == EP_PERSISTENT ? "one persistent kernel per GPU per forward" : "7 operations per GPU per forward enqueued from the host (no CUDA graph)");
    if (pl.strategy == EP_PERSISTENT)
      j.kv("compute", pl.stream ? "stream: persistent-flat's unit stream over (local slot, intermediate unit), one grid barrier"
                                : "buckets: (local expert, source) buckets, gate/up then down, two grid barriers");
    else j.kv_null("compute");
    if (pl.strategy == EP_PERSISTENT)
      j.kv("returns", pl.returns ? "rows: each partial-sum row sent home by the last block that adds into it, no grid barrier"
                                 : "phase: a grid barrier, then every row sent home and one signal per GPU");
    else j.kv_null("returns");
    if (pl.strategy == EP_PERSISTENT) {
      j.kv("route", pl.route_tag ? "tagged: each logit a tagged word every block waits for, no grid barrier"
                                 : "barrier: a block per expert, then a grid barrier");
      j.kv("dispatch", pl.solo ? "block 0: block 0 stores every row and releases the flags itself"
                               : "grid: the rows spread over the blocks, every block arriving on a counter, the last storing the flags");
    } else {
      j.kv_null("route");
      j.kv_null("dispatch");
    }
    j.kv("shared_experts", m_->s.shared_experts > 0 ? "replicated: every GPU holds them and runs them for its own tokens, into its own partial sums" : "none");
    j.kv("timing", "each GPU records a CUDA event on its own stream at every iteration boundary, after a host barrier "
                   "(every GPU synchronized) and the warm-up; a sample is the slowest GPU's time for that iteration "
                   "(no two GPUs' events are subtracted)");
    j.key("per_gpu_median_us");
    j.begin_arr();
    for (auto& v : st.per_gpu) j.val(median_of(v));
    j.end_arr();
    j.key("spread_us");
    j.begin_obj();
    j.kv("median", median_of(st.spread));
    j.kv("max", st.spread.empty() ? NAN : *std::max_element(st.spread.begin(), st.spread.end()));
    j.end_obj();
    auto matrix = [&](const char* key, const std::vector<long long>& c) {
      j.key(key);
      j.begin_arr();
      for (int d = 0; d < G_; ++d) {
        j.begin_arr();
        for (int o = 0; o < G_; ++o) j.val(st.checked && !c.empty() ? (double)c[(size_t)d * G_ + o] / st.checked : 0.0);
        j.end_arr();
      }
      j.end_arr();
    };
    matrix("tokens_sent", st.tokens);
    matrix("slots_computed", st.slots);
    j.kv("counts_from", "the checked forwards (routing read back from the GPUs)");
    long long all = 0, remote = 0;
    for (int d = 0; d < G_ && !st.tokens.empty(); ++d)
      for (int o = 0; o < G_; ++o) { all += st.tokens[(size_t)d * G_ + o]; if (o != d) remote += st.tokens[(size_t)d * G_ + o]; }
    j.kv("remote_token_share", all ? (double)remote / all : 0.0);
    // bytes between GPUs per forward, every pair summed
    const double remote_tokens = st.checked ? (double)remote / st.checked : 0.0;
    const double pairs = (double)G_ * (G_ - 1);
    if (pl.strategy == EP_PERSISTENT) {
      j.kv("dispatch_bytes", remote_tokens * H * 2 + pairs * T * K * 8);
      j.kv("combine_bytes", remote_tokens * H * 4);
    } else {
      j.kv("dispatch_bytes", pairs * (double)SB_);
      j.kv("combine_bytes", pairs * (double)T * H * 4);
    }
    j.kv("timed_forwards", st.per_gpu.empty() ? 0 : (long long)st.per_gpu[0].size() * cfg_->repeat_work);
    j.kv_null("single_device");
    j.kv("single_device_note", "not compared bit for bit: the down projection's fp32 reductions add in launch-dependent order; "
                               "the fp64 oracle checked every GPU's tokens");
    j.key("devices");
    j.begin_arr();
    for (auto& dv : dev_) j.val(dv.prop.name);
    j.end_arr();
    j.kv("cold_l2", "not applied");
    j.end_obj();
  }

  Waits trace_waits(int i, int pid, const std::string& name, JsonWriter* tj) override {
    Waits w;
    const EpPlan& pl = plans_[i];
    if (pl.strategy != EP_PERSISTENT) return w;
    const int nb = pl.grid, L = 5;  // 5 launches, as the single-GPU persistent variants (backend.cu)
    for (auto& dv : dev_) {
      CUDA_CHECK(cudaSetDevice(dv.id));
      if (dv.trace.n < (size_t)nb * kMaxEv) {
        dv.trace.alloc((size_t)nb * kMaxEv);
        dv.trace_n.alloc(nb);
      }
    }
    clear_ctl();  // launch counters and flags from 0, every device idle (as before the timed launches)
    std::vector<const uint16_t*> xb(G_);
    for (int d = 0; d < G_; ++d) xb[d] = dev_[d].x_rot.p;
    std::vector<TraceEv> ev((size_t)nb * kMaxEv);
    std::vector<int> cnt(nb);
    w.present = true;
    w.per_block_us.assign(nb, 0.0);
    for (int l = 0; l < L; ++l) {
      for (int d = 0; d < G_; ++d) {
        CUDA_CHECK(cudaSetDevice(d));
        CUDA_CHECK(cudaMemsetAsync(dev_[d].trace_n.p, 0, dev_[d].trace_n.bytes(), dev_[d].st));
      }
      enqueue(i, xb, rotate_, nullptr, true);
      sync_all();
      const bool write = tj && l == L - 1;
      for (int d = 0; d < (write ? G_ : 1); ++d) {
        CUDA_CHECK(cudaSetDevice(d));
        CUDA_CHECK(cudaMemcpy(cnt.data(), dev_[d].trace_n.p, nb * sizeof(int), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(ev.data(), dev_[d].trace.p, ev.size() * sizeof(TraceEv), cudaMemcpyDeviceToHost));
        if (d == 0) add_trace_waits(w, nb, cnt, ev, L);
        // Each device's events from its own first one: the devices' timers are not compared.
        if (write) write_trace_events(*tj, pid + 100 * d, name + " GPU " + std::to_string(d), nb, cnt, ev, trace_first_ts(nb, cnt, ev));
      }
    }
    CUDA_CHECK(cudaSetDevice(0));
    finish_trace_waits(w, nb, L);
    return w;
  }

 private:
  struct Dev {
    int id = 0;
    cudaDeviceProp prop{};
    cudaStream_t st{};
    cudaEvent_t ev_disp{}, ev_comb{};
    DevBuf<uint16_t> wr, w13, w2t, ws13, ws2t, x_rot, x_check, out;
    DevBuf<float> logits, act, act_s, ones, part, ret;
    DevBuf<int> l_cnt, l_off, l_active, l_slots, iota, ctl, flags, ranges, rowcnt, rflags, dummy;
    DevBuf<unsigned char> sb, rb;
    DevBuf<unsigned long long> logit_tags;  // route=1: [E] (launch << 32 | logit bits)
    DevBuf<TraceEv> trace;  // ep-persistent's traced launches: [grid][kMaxEv]
    DevBuf<int> trace_n;    // [grid]
  };

  std::string open_devices() {
    if (!dev_.empty()) return "";
    int n = 0;
    CUDA_CHECK(cudaGetDeviceCount(&n));
    if (n < G_)
      return "needs " + std::to_string(G_) + " GPUs (--gpus " + std::to_string(G_) + "), this process sees " + std::to_string(n) +
             " (CUDA_VISIBLE_DEVICES)";
    dev_ = std::vector<Dev>(G_);
    peer_.assign((size_t)G_ * G_, 0);
    for (int d = 0; d < G_; ++d) {
      dev_[d].id = d;
      CUDA_CHECK(cudaSetDevice(d));
      CUDA_CHECK(cudaGetDeviceProperties(&dev_[d].prop, d));
      CUDA_CHECK(cudaStreamCreateWithFlags(&dev_[d].st, cudaStreamNonBlocking));
      for (int o = 0; o < G_; ++o) {
        if (o == d) continue;
        int can = 0;
        CUDA_CHECK(cudaDeviceCanAccessPeer(&can, d, o));
        if (!can) continue;
        const cudaError_t e = cudaDeviceEnablePeerAccess(o, 0);
        if (e == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError();
        else CUDA_CHECK(e);
        peer_[(size_t)d * G_ + o] = 1;
      }
    }
    CUDA_CHECK(cudaSetDevice(0));
    return "";
  }

  EpArgs args(int d, const EpPlan& pl, const uint16_t* xb, int rotate, bool trace) {
    Dev& dv = dev_[d];
    const Shape& s = m_->s;
    EpArgs a{};
    Params& p = a.p;
    p.wr = dv.wr.p; p.w13 = dv.w13.p; p.w2t = dv.w2t.p;
    p.x_base = xb; p.rotate = rotate;
    p.out = dv.out.p; p.logits = dv.logits.p; p.act = dv.act.p;
    p.l_cnt = dv.l_cnt.p; p.l_off = dv.l_off.p; p.l_slots = dv.l_slots.p; p.l_active = dv.l_active.p;
    p.ws13 = dv.ws13.p; p.ws2t = dv.ws2t.p; p.NS = s.shared_experts; p.IS = s.shared_inter;
    p.act_s = dv.act_s.p; p.iota = dv.iota.p; p.ones = dv.ones.p;
    p.ctrl = dv.dummy.p;
    p.trace = trace ? dv.trace.p : nullptr; p.trace_n = dv.trace_n.p;
    p.T = cfg_->tokens; p.H = s.hidden; p.I = s.inter; p.E = s.experts; p.K = s.topk;
    p.ti = pl.ti; p.nh = pl.nh; p.nb = pl.grid; p.sl = pl.sl;
    a.G = G_; a.d = d; a.EL = s.experts / G_; a.SB = SB_;
    a.sb = dv.sb.p; a.rb = dv.rb.p; a.part = dv.part.p;
    a.ret = G_ == 1 && pl.strategy == EP_SEPARATE ? dv.part.p : dv.ret.p;  // one GPU, separate: read the sums in place
    a.ctl = dv.ctl.p; a.flags = dv.flags.p;
    a.fence = pl.fence;
    a.topk_all = pl.topk_all ? 1 : 0;
    a.balance = pl.balance;
    a.ranges = dv.ranges.p;
    a.returns = pl.returns ? 1 : 0;
    a.route_tag = pl.route_tag ? 1 : 0;
    a.solo = pl.solo ? 1 : 0;
    p.logit_tags = dv.logit_tags.p;
    a.rowcnt = dv.rowcnt.p; a.rflags = dv.rflags.p;
    for (int o = 0; o < G_; ++o) {
      a.rb_peer[o] = dev_[o].rb.p; a.ret_peer[o] = dev_[o].ret.p; a.flags_peer[o] = dev_[o].flags.p;
      a.rflags_peer[o] = dev_[o].rflags.p;
    }
    return a;
  }

  void clear_ctl() {
    for (int d = 0; d < G_; ++d) {
      Dev& dv = dev_[d];
      CUDA_CHECK(cudaSetDevice(d));
      CUDA_CHECK(cudaMemsetAsync(dv.ctl.p, 0, dv.ctl.bytes(), dv.st));
      CUDA_CHECK(cudaMemsetAsync(dv.flags.p, 0, dv.flags.bytes(), dv.st));
      CUDA_CHECK(cudaMemsetAsync(dv.rowcnt.p, 0, dv.rowcnt.bytes(), dv.st));
      CUDA_CHECK(cudaMemsetAsync(dv.rflags.p, 0, dv.rflags.bytes(), dv.st));
      CUDA_CHECK(cudaMemsetAsync(dv.logit_tags.p, 0, dv.logit_tags.bytes(), dv.st));  // tags: launches since this
      CUDA_CHECK(cudaMemsetAsync(dv.part.p, 0, dv.part.bytes(), dv.st));
    }
    sync_all();
    last_ = -1;
  }

  void sync_all() {
    for (int d = 0; d < G_; ++d) {
      CUDA_CHECK(cudaSetDevice(d));
      const cudaError_t e = cudaStreamSynchronize(dev_[d].st);
      if (e != cudaSuccess) {
        int code = 0;
        (void)cudaMemcpy(&code, dev_[d].ctl.p + EP_ERR, sizeof code, cudaMemcpyDeviceToHost);
        die_runtime(std::string("CUDA error on GPU ") + std::to_string(d) + ": cudaStreamSynchronize -> " + cudaGetErrorName(e) +
                    " (" + cudaGetErrorString(e) + ") at " + __FILE__ + ":" + std::to_string(__LINE__) +
                    " (an ep kernel traps when a spin wait exceeds its bound; code " + std::to_string(code) + ")");
      }
    }
    CUDA_CHECK(cudaSetDevice(0));
  }

  // One forward on every device. marks: an event per device recorded on its stream first (timing). trace:
  // the persistent kernel records its spans into each device's trace buffer (trace_waits).
  void enqueue(int i, const std::vector<const uint16_t*>& xb, int rotate, const std::vector<cudaEvent_t>* marks,
               bool trace = false) {
    const EpPlan& pl = plans_[i];
    last_ = i;
    std::vector<EpArgs> a(G_);
    for (int d = 0; d < G_; ++d) a[d] = args(d, pl, xb[d], rotate, trace);
    const size_t smem = pl.sl.bytes();
    if (pl.strategy == EP_PERSISTENT) {
      for (int d = 0; d < G_; ++d) {
        CUDA_CHECK(cudaSetDevice(d));
        if (marks) CUDA_CHECK(cudaEventRecord((*marks)[d], dev_[d].st));
        launch_epp(bf_, pl.stream, pl.grid, smem, dev_[d].st, a[d]);
      }
      CUDA_CHECK(cudaSetDevice(0));
      return;
    }
    const Shape& s = m_->s;
    const int T = cfg_->tokens, K = s.topk, H = s.hidden;
    const size_t TH = (size_t)T * H;
    const bool nccl = pl.comm == 2 && G_ > 1;
    // 1. route, outgoing block; peer copies: dispatch
    for (int d = 0; d < G_; ++d) {
      Dev& dv = dev_[d];
      CUDA_CHECK(cudaSetDevice(d));
      if (marks) CUDA_CHECK(cudaEventRecord((*marks)[d], dv.st));
      if (bf_) k_eps_route<true><<<s.experts, kThreads, smem, dv.st>>>(a[d]);
      else k_eps_route<false><<<s.experts, kThreads, smem, dv.st>>>(a[d]);
      CUDA_CHECK_LAUNCH("k_eps_route");
      if (!nccl) {
        for (int o = 0; o < G_; ++o) {
          if (o == d) continue;
          CUDA_CHECK(cudaStreamWaitEvent(dv.st, dev_[o].ev_comb, 0));  // o is done with the previous block
          CUDA_CHECK(cudaMemcpyPeerAsync(dev_[o].rb.p + (size_t)d * SB_, o, dv.sb.p, d, SB_, dv.st));
        }
      }
      CUDA_CHECK(cudaMemcpyAsync(dv.rb.p + (size_t)d * SB_, dv.sb.p, SB_, cudaMemcpyDeviceToDevice, dv.st));
      if (!nccl) CUDA_CHECK(cudaEventRecord(dv.ev_disp, dv.st));
    }
    if (nccl) {
      nccl_.check(nccl_.group_start(), "ncclGroupStart");
      for (int d = 0; d < G_; ++d)
        for (int o = 0; o < G_; ++o) {
          if (o == d) continue;
          nccl_.check(nccl_.send(dev_[d].sb.p, SB_, Nccl::kBytes, o, nccl_.comms[d], dev_[d].st), "ncclSend (dispatch)");
          nccl_.check(nccl_.recv(dev_[d].rb.p + (size_t)o * SB_, SB_, Nccl::kBytes, o, nccl_.comms[d], dev_[d].st), "ncclRecv (dispatch)");
        }
      nccl_.check(nccl_.group_end(), "ncclGroupEnd");
    }
    // 2. owners: buckets, gate/up, down
    const int maxb = std::min(s.experts, G_ * T * K);
    for (int o = 0; o < G_; ++o) {
      Dev& dv = dev_[o];
      CUDA_CHECK(cudaSetDevice(o));
      if (!nccl)
        for (int d = 0; d < G_; ++d) if (d != o) CUDA_CHECK(cudaStreamWaitEvent(dv.st, dev_[d].ev_disp, 0));
      k_eps_lists<<<1, kThreads, smem, dv.st>>>(a[o]);
      CUDA_CHECK_LAUNCH("k_eps_lists");
      // the last NS block rows: the shared experts (k_eps_ffn1, k_eps_down)
      const int NS = s.shared_experts;
      const dim3 g2((std::max(s.inter, s.shared_inter) + pl.ti - 1) / pl.ti, maxb + NS), g3(H / pl.nh, maxb + NS);
      if (bf_) k_eps_ffn1<true><<<g2, kThreads, 0, dv.st>>>(a[o]); else k_eps_ffn1<false><<<g2, kThreads, 0, dv.st>>>(a[o]);
      CUDA_CHECK_LAUNCH("k_eps_ffn1");
      if (bf_) k_eps_down<true><<<g3, kThreads, smem, dv.st>>>(a[o]); else k_eps_down<false><<<g3, kThreads, smem, dv.st>>>(a[o]);
      CUDA_CHECK_LAUNCH("k_eps_down");
      if (G_ > 1 && !nccl) {  // 3. combine: partial sums to their homes
        for (int h = 0; h < G_; ++h) {
          if (h == o) continue;
          CUDA_CHECK(cudaMemcpyPeerAsync(dev_[h].ret.p + (size_t)o * TH, h, dv.part.p + (size_t)h * TH, o, TH * 4, dv.st));
        }
      }
      if (G_ > 1) CUDA_CHECK(cudaMemcpyAsync(dv.ret.p + (size_t)o * TH, dv.part.p + (size_t)o * TH, TH * 4, cudaMemcpyDeviceToDevice, dv.st));
      if (!nccl) CUDA_CHECK(cudaEventRecord(dv.ev_comb, dv.st));
    }
    if (nccl) {
      nccl_.check(nccl_.group_start(), "ncclGroupStart");
      for (int o = 0; o < G_; ++o)
        for (int h = 0; h < G_; ++h) {
          if (h == o) continue;
          nccl_.check(nccl_.send(dev_[o].part.p + (size_t)h * TH, TH * 4, Nccl::kBytes, h, nccl_.comms[o], dev_[o].st), "ncclSend (combine)");
          nccl_.check(nccl_.recv(dev_[o].ret.p + (size_t)h * TH, TH * 4, Nccl::kBytes, h, nccl_.comms[o], dev_[o].st), "ncclRecv (combine)");
        }
      nccl_.check(nccl_.group_end(), "ncclGroupEnd");
    }
    // 4. homes: add the owners' partial sums; clear this device's partial sums for the next forward
    const int cblocks = (int)std::min<size_t>(dev_[0].prop.multiProcessorCount, (TH / 4 + kThreads - 1) / kThreads);
    for (int d = 0; d < G_; ++d) {
      Dev& dv = dev_[d];
      CUDA_CHECK(cudaSetDevice(d));
      if (!nccl)
        for (int o = 0; o < G_; ++o) if (o != d) CUDA_CHECK(cudaStreamWaitEvent(dv.st, dev_[o].ev_comb, 0));
      if (bf_) k_eps_combine<true><<<cblocks, kThreads, 0, dv.st>>>(a[d]); else k_eps_combine<false><<<cblocks, kThreads, 0, dv.st>>>(a[d]);
      CUDA_CHECK_LAUNCH("k_eps_combine");
      CUDA_CHECK(cudaMemsetAsync(dv.part.p, 0, dv.part.bytes(), dv.st));
    }
    CUDA_CHECK(cudaSetDevice(0));
  }

  int G_;
  std::vector<Dev> dev_;
  std::vector<char> peer_;  // [d * G + o]: d can access o's memory (enabled)
  std::vector<EpPlan> plans_;
  std::vector<EpStats> stats_;
  Nccl nccl_;
  const Model* m_ = nullptr;
  const Config* cfg_ = nullptr;
  bool bf_ = true;
  size_t SB_ = 0;
  int rotate_ = 1, last_ = -1;
};

}  // namespace

std::unique_ptr<EpEngine> make_ep_engine(int gpus) { return std::make_unique<EpEngineImpl>(gpus); }

const Family kEpFamily = {"ep", nullptr, nullptr};

}  // namespace moe
