// os_block.cu — family "os": one persistent kernel, one block per SM
// (occupancy API); router rows spread over all blocks; block 0 is the OS: it
// routes, then dispatches every FFN1 tile to a worker's doorbell; workers count
// FFN1 completions per expert (fan-in) and the last one pushes that expert's
// down tiles to a queue the OS dispatches in turn. The OS's dispatch loop is
// the strategy, one device function each:
//   simple      schedule_simple: ONE thread dispatches, lowest ready worker first
//   multiwarp   schedule_multiwarp: sched_warps warps share the dispatch (each owns
//               every sched_warps-th worker, polls 32 acks per load round, tasks
//               claimed through a shared counter)
//   roundrobin  schedule_roundrobin: one thread, next_w round-robin search for a
//               ready worker, initial order spread across SMs
//   batched     schedule_batched: one warp; every worker has a ring of tasks in its
//               own mailbox line and up to `batch` tasks outstanding, so a worker
//               finds its next task already there when it finishes one; one round
//               of loads reads every worker's completed count and 128 queue flags,
//               then hands out what is ready, fewest outstanding first: slots, one
//               fence per lane, the touched workers' tails (doorbells) as relaxed
//               stores. Not yet run on a GPU (BENCHMARKS.md).
//               Its workers and drain are its own (worker_batched: the exit is a
//               task in the ring); the fan-in and the tasks are shared.
// Shared experts (p.NS > 0; the SHARED kernel instantiation): each is one more expert of the task list, id E + n,
// every token with weight 1 (run_task runs it on its shared_view): its FFN1 tiles (of ffn1_tile of its IS units)
// come first in the order, their fan-in pushes its down tiles to the same queue, and the last down tile of the
// launch is the last of (active + NS) experts'. They need no routing, so the OS block hands the first of them
// out before it routes, before its own router rows (hand_out_shared_first: one to each worker from the last one
// down, every worker being idle at the start of a launch); the strategy then starts after them with those
// workers busy. The shared experts' down tiles go out after routing, with the routed ones, in queue order.
// Compiled, NOT yet run on a GPU (csrc/BENCHMARKS.md, "Shared experts in the os and splitk families").
// Tunables: ffn1_tile (auto: about one FFN1 task per worker), down_tile (auto
// 128/64), sched_warps (multiwarp, 4), batch and prefetch (batched: 4, 1).
// Measured (H100 SXM, Qwen3-30B-A3B T=1 bf16; csrc/BENCHMARKS.md): simple 209-213 us
// (225 before its dispatch loop was specialised per strategy), multiwarp 95-97 us,
// roundrobin 214-219 us: each dispatch costs ~0.6 us of OS time and workers spend
// 67-85% of the kernel polling their doorbells.
#include "../backend.h"
#include "cuda_check.cuh"
#include "epilogue.cuh"
#include "families.h"
#include "routing.cuh"
#include "shared_experts.cuh"

namespace moe {

namespace {

// The OS block's dispatch state (shared memory) and the two operations every
// strategy is made of: take the next task, send it to a worker. SHARED: the layer has shared experts (its own
// kernel instantiation, so that the one without them keeps its code).
template <bool SHARED>
struct OsCtx {
  const Params& p;
  Smem& s;
  Tracer& tr;
  int nact, n1, ntot, nw;  // active experts, FFN1 tasks, all tasks, workers (blocks 1..nw)
  int* seq;    // [nb] last seq sent to each worker
  int* idle;   // [nb] locally known idle
  int* order;  // [nb] dispatch order of the workers (roundrobin: spread over SMs)
  int* head;   // shared task counter (multiwarp)
  int n1s = 0;  // SHARED: FFN1 tasks of the shared experts, first among the n1
  int k0 = 0;   // SHARED: tasks handed out before routing (hand_out_shared_first), the strategy starts after them

  // FFN1 task k < n1, tile-major (experts interleaved): SHARED: the shared experts' first (expert id E + n, see
  // run_task), then the routed experts'.
  __device__ int ffn1_task(int k) const {
    if constexpr (SHARED) {
      if (k < n1s) return task_make(1, p.E + k % p.NS, k / p.NS);
      k -= n1s;
    }
    return task_make(1, s.active[k % nact], k / nact);
  }
  // Task k: FFN1 tasks are generated here; down tasks arrive in the queue, pushed
  // by the last FFN1 tile of their expert.
  __device__ int task_at(int k, unsigned long long& t_wait) const {
    if (k < n1) return ffn1_task(k);
    const int q = k - n1;
    unsigned long long t0 = gt(p);
    long long spins = 0;
    while (ld_acquire(&p.qflag[q]) == 0)
      if (++spins > kSpinLimit) spin_fail(p, 10);
    t_wait += gt(p) - t0;
    const int task = __ldcg(&p.queue[q]);
    p.qflag[q] = 0;  // self-clean
    return task;
  }
  __device__ void send(int w, int task) const {
    seq[w] += 1;
    idle[w] = 0;
    unsigned long long v = ((unsigned long long)(unsigned)task << 32) | (unsigned)seq[w];
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(&p.db[w]), "l"(v) : "memory");
  }
};

// One thread: ready workers as a bitmap over positions in order[]. Known-idle
// bits are set locally; when none is set, one pass reads every ack with 16-byte
// loads (8 in flight). cyclic: search from the position after the last pick
// (roundrobin), else from 0 (simple). SHARED: the workers given a task before routing start busy.
template <bool SHARED>
__device__ void dispatch_bitmap(const OsCtx<SHARED>& c, bool cyclic) {
  const Params& p = c.p;
  unsigned* rdy = reinterpret_cast<unsigned*>(c.order + p.nb);  // [32]
  int* pos_of = reinterpret_cast<int*>(rdy + 32);                // [nb]
  const int nw = c.nw, nwords = (nw + 31) / 32;
  for (int i = 0; i < 32; ++i) rdy[i] = 0;
  for (int q = 0; q < nw; ++q) {
    pos_of[c.order[q]] = q;
    if (!SHARED || c.idle[c.order[q]]) rdy[q >> 5] |= 1u << (q & 31);
  }
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
        for (int k = 0; k < 4; ++k) {
          const int w = w0 + 4 * u + k;
          if (w >= 1 && w <= nw && !c.idle[w] && v4[k] == c.seq[w]) {
            c.idle[w] = 1;
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
  for (int k = SHARED ? c.k0 : 0; k < c.ntot; ++k) {
    unsigned long long tq = 0;
    const unsigned long long t0 = gt(p);
    const int task = c.task_at(k, tq);
    if (tq > 0) c.tr.add(TR_OS_QUEUE, k, t0, t0 + tq);
    const unsigned long long t1 = gt(p);
    int q = -1;
    long long spins = 0;
    while ((q = pick(cyclic ? next : 0)) < 0) {
      refresh();
      if (++spins > kSpinLimit / 64) spin_fail(p, 11);
    }
    rdy[q >> 5] &= ~(1u << (q & 31));
    next = (q + 1) % nw;
    const unsigned long long t2 = gt(p);
    if (t2 - t1 > 500) c.tr.add(TR_OS_WORKER, k, t1, t2);
    c.send(c.order[q], task);
  }
}

// ---- the strategies (whole block calls; the OS block's dispatch loop)
template <bool SHARED>
__device__ void schedule_simple(OsCtx<SHARED>& c) {
  if (threadIdx.x == 0) dispatch_bitmap(c, false);
}

template <bool SHARED>
__device__ void schedule_roundrobin(OsCtx<SHARED>& c) {
  // spread across SMs: order workers by (index among the workers of its SM, smid)
  const Params& p = c.p;
  int* sm_of = reinterpret_cast<int*>(c.s.red);  // scratch: smid per block, then keys
  for (int w = threadIdx.x; w < p.nb; w += blockDim.x) sm_of[w] = __ldcg(&p.smid[w]);
  __syncthreads();
  for (int w = 1 + threadIdx.x; w <= c.nw; w += blockDim.x) {
    const int sm = sm_of[w];
    int r = 0;
    for (int v = 1; v < w; ++v) r += sm_of[v] == sm;
    sm_of[p.nb + w] = r * 4096 + sm;  // key
  }
  __syncthreads();
  for (int w = 1 + threadIdx.x; w <= c.nw; w += blockDim.x) {
    const int key = sm_of[p.nb + w];
    int pos = 0;
    for (int v = 1; v <= c.nw; ++v) {
      const int kv = sm_of[p.nb + v];
      pos += kv < key || (kv == key && v < w);
    }
    c.order[pos] = w;
  }
  __syncthreads();
  if (threadIdx.x == 0) dispatch_bitmap(c, true);
}

template <bool SHARED>
__device__ void schedule_multiwarp(OsCtx<SHARED>& c) {
  // warp m < sched_warps owns workers w with (w-1) % sched_warps == m
  const Params& p = c.p;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, NM = p.sched_warps;
  if (warp >= NM) return;
  unsigned long long tq = 0, tw = 0;
  while (true) {
    int k = 0;
    if (lane == 0) k = atomicAdd(c.head, 1);
    k = __shfl_sync(0xffffffffu, k, 0);
    if (k >= c.ntot) break;
    int task = 0;
    if (lane == 0) task = c.task_at(k, tq);
    task = __shfl_sync(0xffffffffu, task, 0);
    const unsigned long long t1 = gt(p);
    int w = -1;
    long long spins = 0;
    while (w < 0) {
      for (int b = 0; b < c.nw && w < 0; b += 32 * NM) {
        const int v = 1 + b + lane * NM + warp;
        const bool ok = v <= c.nw && (c.idle[v] || ld_acquire(&p.ack[v]) == c.seq[v]);
        const unsigned m = __ballot_sync(0xffffffffu, ok);
        if (m) w = 1 + b + (__ffs(m) - 1) * NM + warp;
      }
      if (w < 0 && ++spins > kSpinLimit / 64) spin_fail(p, 12);
    }
    if (lane == 0) c.send(w, task);
    __syncwarp();
    tw += gt(p) - t1;
  }
  // per-warp waits are summed into the block's trace as one span
  if (lane == 0 && warp == 0 && (tq + tw) > 0) c.tr.add(TR_OS_WORKER, -1, gt(p) - tw - tq, gt(p));
}

// batched: warp 0 alone. Lane l owns the workers w = 4 * (l + 32 r) + k (k < 4): it reads their
// completed counts (p.ack) with one 16-byte load per r, writes their rings and releases their tails.
// Each round also reads the queue flags qa + 32 j + l (j < kQScan), all loads in flight at once.
// Per worker (shared memory): sent[w] = tasks written to its ring (the exit included), out[w] = sent
// minus the completed count last read. Tasks k < n1 are FFN1 tiles (known after routing); task n1 + q
// is queue position q, usable once qflag[0 .. q] have been seen set (the fan-in sets them).
constexpr int kBatchedV4 = 2;  // 16-byte ack loads per lane per round: workers up to 32 * 4 * 2 - 1 (4: spills)
constexpr int kQScan = 4;      // queue flags read per lane per round: up to 128 down tasks become ready per round
template <bool SHARED>
__device__ void schedule_batched(OsCtx<SHARED>& c) {
  const Params& p = c.p;
  if (threadIdx.x >= 32) return;
  const unsigned FULL = 0xffffffffu;
  const int lane = threadIdx.x, nw = c.nw, B = p.batch, ndown = c.ntot - c.n1;
  int* sent = c.seq;
  int* out = c.idle;
  if constexpr (SHARED)  // a worker given a task before routing has it in its ring (sent = seq: 1)
    for (int w = lane; w < p.nb; w += 32) out[w] = sent[w];
  else
    for (int w = lane; w < p.nb; w += 32) { sent[w] = 0; out[w] = 0; }
  // The routing lists were written by the whole block before the __syncthreads that led here; each
  // lane's fence (cumulative over them) comes before any of its releases, so a worker that acquires
  // a tail sees the lists.
  __threadfence();
  __syncwarp();
  auto mine = [&](int r, int k) { return 4 * (lane + 32 * r) + k; };
  auto owned = [&](int w) { return w >= 1 && w <= nw; };
  int next = 0, qa = 0;  // tasks handed out; queue positions seen ready
  if constexpr (SHARED) next = c.k0;
  long long spins = 0;
  const unsigned long long t_begin = gt(p);
  unsigned long long t_wait = 0;
  bool fin = false, first = true;
  while (!fin) {
    const unsigned long long t0 = gt(p);
    // one round of loads in flight: every worker's completed count, the next 32 * kQScan queue flags (none
    // in the first round: every worker is idle and no down task can exist before an FFN1 tile ran; SHARED: the
    // workers given a shared task before routing count as busy, and queued shared down tiles wait, one round)
    int4 a[kBatchedV4];
#pragma unroll
    for (int r = 0; r < kBatchedV4; ++r)
      a[r] = !first && mine(r, 0) < p.nb ? ld_volatile_v4(p.ack + mine(r, 0)) : make_int4(0, 0, 0, 0);
    int fl[kQScan];
#pragma unroll
    for (int j = 0; j < kQScan; ++j) {
      const int q = qa + 32 * j + lane;
      fl[j] = !first && q < ndown ? ld_relaxed(&p.qflag[q]) : 0;
    }
    first = false;
    bool moved = false;
#pragma unroll
    for (int r = 0; r < kBatchedV4; ++r) {
      const int v4[4] = {a[r].x, a[r].y, a[r].z, a[r].w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int w = mine(r, k);
        if (owned(w) && sent[w] - v4[k] != out[w]) { out[w] = sent[w] - v4[k]; moved = true; }
      }
    }
    int nready = 0;  // consecutive set flags from qa
#pragma unroll
    for (int j = 0; j < kQScan; ++j) {
      const unsigned set = __ballot_sync(FULL, fl[j] != 0);
      if (nready == 32 * j) nready += set == FULL ? 32 : __ffs(~set) - 1;
    }
#pragma unroll
    for (int j = 0; j < kQScan; ++j)
      if (32 * j + lane < nready) p.qflag[qa + 32 * j + lane] = 0;  // self-clean (read again only next launch)
    qa += nready;
    // acquire: a completed count read before this lane rewrites that worker's ring slots; a flag read
    // (by any lane) before any lane reads its queue entry (the __syncwarp orders the lanes)
    if (moved || nready > 0) __threadfence();
    __syncwarp();
    // hand out the ready tasks: level by level, the workers with the fewest outstanding first
    unsigned touched = 0;  // bit 4r+k: this lane wrote worker mine(r, k)'s ring
    int A = c.n1 + qa - next;
    for (int lv = 0; lv < B && A > 0; ++lv) {
      int cnt = 0;
#pragma unroll
      for (int r = 0; r < kBatchedV4; ++r)
#pragma unroll
        for (int k = 0; k < 4; ++k) cnt += owned(mine(r, k)) && out[mine(r, k)] == lv;
      int incl = cnt;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int t = __shfl_up_sync(FULL, incl, o);
        if (lane >= o) incl += t;
      }
      const int give = min(__shfl_sync(FULL, incl, 31), A);
      int rank = incl - cnt;
#pragma unroll
      for (int r = 0; r < kBatchedV4; ++r)
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int w = mine(r, k);
          if (owned(w) && out[w] == lv && rank < give) {
            const int kk = next + rank;
            const int task = kk < c.n1 ? c.ffn1_task(kk) : __ldcg(&p.queue[kk - c.n1]);
            p.mb[(size_t)w * kMbInts + 1 + sent[w] % kMbCap] = task;
            sent[w] += 1;
            out[w] = lv + 1;
            touched |= 1u << (4 * r + k);
            ++rank;
          }
        }
      next += give;
      A -= give;
    }
    if (next == c.ntot) {  // every task handed out: the exit goes behind each worker's last task
#pragma unroll
      for (int r = 0; r < kBatchedV4; ++r)
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int w = mine(r, k);
          if (owned(w)) {
            p.mb[(size_t)w * kMbInts + 1 + sent[w] % kMbCap] = -1;
            sent[w] += 1;
            touched |= 1u << (4 * r + k);
          }
        }
      fin = true;
    }
    // the doorbells: one fence after this lane's slots, then every touched worker's tail (relaxed stores
    // that do not wait for each other; a st.release each would cost a round trip each)
    if (touched) __threadfence();
#pragma unroll
    for (int r = 0; r < kBatchedV4; ++r)
#pragma unroll
      for (int k = 0; k < 4; ++k)
        if (touched >> (4 * r + k) & 1u) st_relaxed(&p.mb[(size_t)mine(r, k) * kMbInts], sent[mine(r, k)]);
    __syncwarp();
    if (__any_sync(FULL, touched != 0) || nready > 0) spins = 0;
    else {
      t_wait += gt(p) - t0;
      if (++spins > kSpinLimit) spin_fail(p, 14);
    }
  }
  // rounds that handed out nothing (waiting for the fan-in or for room), summed into one span
  if (lane == 0 && t_wait > 0) c.tr.add(TR_OS_QUEUE, -1, t_begin, t_begin + t_wait);
}

// SHARED: the FFN1 tasks of the shared experts (tiles of ffn1_tile of their IS units).
__device__ __forceinline__ int shared_ffn1_tasks(const Params& p) { return p.NS * ((p.IS + p.ti - 1) / p.ti); }

// SHARED, the OS block before routing (before its own router rows): the worker state, then the first shared FFN1
// tasks (router-independent), one per worker, from the last worker down (the first blocks have the router rows:
// block b takes rows b, b + grid, ..), so that they start while the router runs. Every worker is idle when a
// launch starts, so no acknowledgement is read; the strategy then starts at task k0 with those workers busy.
// BATCHED: the task goes into slot 0 of the worker's ring, then its tail (1), as schedule_batched writes them.
template <bool BATCHED>
__device__ void hand_out_shared_first(const Params& p, Smem& s, Tracer& tr) {
  const int n1s = shared_ffn1_tasks(p), nw = p.nb - 1, npre = min(n1s, nw);
  OsCtx<true> c{p, s, tr, 0, n1s, n1s, nw, s.misc, s.misc + p.nb, s.misc + 2 * p.nb, nullptr, n1s, npre};
  for (int w = threadIdx.x; w < p.nb; w += blockDim.x) { c.seq[w] = 0; c.idle[w] = 1; c.order[w] = w + 1; }
  __syncthreads();
  for (int k = threadIdx.x; k < npre; k += blockDim.x) {
    const int w = nw - k, task = c.ffn1_task(k);
    if constexpr (BATCHED) {
      c.seq[w] = 1;  // sent (schedule_batched's name for seq)
      c.idle[w] = 0;
      p.mb[(size_t)w * kMbInts + 1] = task;
      __threadfence();
      st_relaxed(&p.mb[(size_t)w * kMbInts], 1);
    } else {
      c.send(w, task);
    }
  }
  __syncthreads();
}

template <bool BF, bool BATCHED, bool SHARED>
__device__ void os_block(const Params& p, Smem& s, Tracer& tr, int nact) {
  const int tiles1 = (p.I + p.ti - 1) / p.ti, tiles2 = p.H / p.nh;
  // SHARED: n1s shared FFN1 tasks first (npre of them handed out before routing), NS more experts' down tiles
  const int n1s = SHARED ? shared_ffn1_tasks(p) : 0, npre = SHARED ? min(n1s, p.nb - 1) : 0;
  const int nexp = SHARED ? nact + p.NS : nact;
  __shared__ int s_head;
  OsCtx<SHARED> c{p, s, tr, nact, n1s + nact * tiles1, n1s + nact * tiles1 + nexp * tiles2, p.nb - 1,
                  s.misc, s.misc + p.nb, s.misc + 2 * p.nb, &s_head, n1s, npre};
  if constexpr (!SHARED)  // SHARED: set before routing (hand_out_shared_first)
    for (int w = threadIdx.x; w < p.nb; w += blockDim.x) { c.seq[w] = 0; c.idle[w] = 1; c.order[w] = w + 1; }
  if (threadIdx.x == 0) s_head = npre;
  __syncthreads();
  if constexpr (BATCHED) {  // its own instantiation; its exits go through the rings (no drain)
    schedule_batched(c);
    __syncthreads();
    return;
  }
  switch (p.strategy) {  // one case per strategy (families.h OsStrategy, registry.cu)
    case OS_SIMPLE: schedule_simple(c); break;
    case OS_MULTIWARP: schedule_multiwarp(c); break;
    case OS_ROUNDROBIN: schedule_roundrobin(c); break;
  }
  __syncthreads();
  // drain: every worker idle (its last ack), then tell them to exit
  const unsigned long long t0 = gt(p);
  for (int w = 1 + threadIdx.x; w <= c.nw; w += blockDim.x) {
    long long spins = 0;
    while (!c.idle[w] && ld_acquire(&p.ack[w]) != c.seq[w])
      if (++spins > kSpinLimit) spin_fail(p, 13);
    c.seq[w] += 1;
    unsigned long long v = ((unsigned long long)0xffffffffu << 32) | (unsigned)c.seq[w];
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(&p.db[w]), "l"(v) : "memory");
  }
  __syncthreads();
  if (threadIdx.x == 0) tr.add(TR_OS_DRAIN, -1, t0, gt(p));
}

// One task on a worker block (whole block calls). FFN1: the tile's activations, then the fan-in (the
// last tile of an expert pushes its down tiles to the queue); down: the tile, and the last down tile of
// the launch converts the output. Ends with thread 0 after a __threadfence(): the caller's
// acknowledgement (a st.release, or a relaxed store after this fence) comes after the task. BATCHED: prefetch (p.prefetch) the tile's down rows into L2 once
// its gate/up rows are done, so that they stream during the fan-in's wait; and the pushed tiles' flags
// are relaxed stores after the fence (the seed's strategies keep a st.release each: a round trip each).
// The task's expert id eg (task bits 16..27) names its fan-in counter and its down tasks; the weights, activations
// and sizes are those of p, in which the expert is e: eg for a routed expert (e_view < 0), e_view on a shared
// expert's view. lists(e, n) gives its tokens: their slots, n of them. (Written so that the routed path compiles
// as it did before shared experts: same SASS at sm_90a and sm_80, compared.)
template <bool BF, bool BATCHED, bool SHARED, class Lists>
__device__ __forceinline__ void run_expert_task(const Params& p, Smem& s, Tracer& tr, const uint16_t* x, int task,
                                                int e_view, Lists lists) {
  const int tiles1 = (p.I + p.ti - 1) / p.ti, tiles2 = p.H / p.nh;
  const int type = task >> 28, eg = (task >> 16) & 0xfff, tile = task & 0xffff;
  const int e = e_view < 0 ? eg : e_view;
  int n;
  const int* slots = lists(e, n);
  const unsigned long long t0 = gt(p);
  if (type == 1) {
    const int i0 = tile * p.ti, i1 = min(p.I, i0 + p.ti);
    float* act = p.act;
    const int I = p.I;
    ffn1_rows<BF>(p, x, e, i0, i1, slots, n, [&](int j, int i, float v) { act[(size_t)__ldcg(slots + j) * I + i] = v; });
    if constexpr (BATCHED)
      if (p.prefetch) prefetch_l2(p.w2t + ((size_t)e * p.I + i0) * p.H, (size_t)(i1 - i0) * p.H * 2);
    __syncthreads();
    if (threadIdx.x == 0) {
      tr.add(TR_FFN1, task, t0, gt(p));
      __threadfence();
      if (atomicAdd(&p.fanin[eg], 1) == tiles1 - 1) {  // last FFN1 tile of e: push its down tiles
        p.fanin[eg] = 0;
        const int pos = atomicAdd(&p.ctrl[C_QTAIL], tiles2);
        for (int k = 0; k < tiles2; ++k) p.queue[pos + k] = task_make(2, eg, k);
        __threadfence();
        if constexpr (BATCHED)
          for (int k = 0; k < tiles2; ++k) st_relaxed(&p.qflag[pos + k], 1);
        else
          for (int k = 0; k < tiles2; ++k) st_release(&p.qflag[pos + k], 1);
      }
    }
  } else {
    down_tile<BF>(p, s.sa, s.red, e, slots, n, tile * p.nh);
    if (threadIdx.x == 0) tr.add(TR_FFN2, task, t0, gt(p));
    const int nact = __ldcg(&p.ctrl[C_NACT]);  // SHARED: and the NS shared experts' down tiles
    if (arrive_last(&p.ctrl[C_DONE], (SHARED ? nact + p.NS : nact) * tiles2)) {
      const unsigned long long tc = gt(p);
      convert_out<BF>(p);
      __syncthreads();
      if (threadIdx.x == 0) {
        p.ctrl[C_DONE] = 0;
        tr.add(TR_CONVERT, -1, tc, gt(p));
      }
    }
    if (threadIdx.x == 0) __threadfence();
  }
}

// Task ids: expert e < E routed (its lists from the OS block's routing); E + n shared expert n (SHARED only), run on
// its view (shared_view: expert 0, every token, weight 1, activations in act_s).
template <bool BF, bool BATCHED, bool SHARED>
__device__ __forceinline__ void run_task(const Params& p, Smem& s, Tracer& tr, const uint16_t* x, int task) {
  if constexpr (SHARED) {
    const int e = (task >> 16) & 0xfff;
    if (e >= p.E) {
      const Params q = shared_view<false>(p, e - p.E);
      run_expert_task<BF, BATCHED, SHARED>(q, s, tr, x, task, 0, [&](int, int& n) { n = q.T; return q.iota; });
      return;
    }
  }
  run_expert_task<BF, BATCHED, SHARED>(p, s, tr, x, task, -1, [&](int e, int& n) {
    n = __ldcg(&p.l_cnt[e]);
    return p.l_slots + __ldcg(&p.l_off[e]);
  });
}

// simple, multiwarp, roundrobin: one task per doorbell ring, acknowledged with the ring's sequence number.
template <bool BF, bool SHARED>
__device__ void worker_block(const Params& p, Smem& s, Tracer& tr, const uint16_t* x) {
  const int w = blockIdx.x;
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
    run_task<BF, false, SHARED>(p, s, tr, x, task);
    if (threadIdx.x == 0) st_release(&p.ack[w], my_seq);
  }
  if (threadIdx.x == 0) { p.db[w] = 0; p.ack[w] = 0; }  // self-clean for the next launch
}

// batched: tasks from this worker's ring (p.mb); the completed count is its acknowledgement. Thread 0
// reads the tail again when a task starts, in flight while the task runs, so that a task the OS wrote
// meanwhile is taken without a wait; it waits on the tail only when the ring is empty.
template <bool BF, bool SHARED>
__device__ void worker_batched(const Params& p, Smem& s, Tracer& tr, const uint16_t* x) {
  const int w = blockIdx.x;
  int* mb = p.mb + (size_t)w * kMbInts;
  __shared__ int s_task;
  int taken = 0, known = 0, peek = 0;  // thread 0: tasks taken from the ring; the tail seen; its early read
  while (true) {
    if (threadIdx.x == 0) {
      known = max(known, peek);
      if (taken == known) {
        const unsigned long long t0 = gt(p);
        long long spins = 0;
        while ((known = ld_relaxed(mb)) == taken)
          if (++spins > kSpinLimit) spin_fail(p, 21);
        tr.add(TR_DOORBELL, -1, t0, gt(p));
      }
      __threadfence();  // acquire (the tail above or the early read): the slot, and all the OS released
      s_task = __ldcg(mb + 1 + taken % kMbCap);
      ++taken;
      peek = ld_relaxed(mb);
    }
    __syncthreads();
    const int task = s_task;
    if (task == -1) break;
    run_task<BF, true, SHARED>(p, s, tr, x, task);
    // after run_task's fence; the count publishes no data (the OS only learns the ring has room)
    if (threadIdx.x == 0) st_relaxed(&p.ack[w], taken);
  }
  // self-clean for the next launch: the exit was the OS's last write to this mailbox, and it no longer
  // reads this worker's count
  if (threadIdx.x == 0) { mb[0] = 0; p.ack[w] = 0; }
}

// BATCHED: the batched strategy's instantiation (its workers), so that the other three keep their code. SHARED: the
// layer's shared experts (p.NS > 0), likewise.
template <bool BF, bool BATCHED, bool SHARED>
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
  if constexpr (SHARED)
    if (blockIdx.x == 0) hand_out_shared_first<BATCHED>(p, s, tr);
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
    os_block<BF, BATCHED, SHARED>(p, s, tr, s_nact);
    if (threadIdx.x == 0) {
      p.ctrl[C_QTAIL] = 0;
      p.ctrl[C_ITER] = iter + 1;
      clock_end(p, iter, clk);
    }
  } else if constexpr (BATCHED) {
    worker_batched<BF, SHARED>(p, s, tr, x);
  } else {
    worker_block<BF, SHARED>(p, s, tr, x);
  }
  if (threadIdx.x == 0) tr.finish(p);
}

using KernelFn = void (*)(Params);
template <bool BF>
KernelFn kernel_of(bool batched, bool shared) {
  if (shared) return batched ? k_persistent_os<BF, true, true> : k_persistent_os<BF, false, true>;
  return batched ? k_persistent_os<BF, true, false> : k_persistent_os<BF, false, false>;
}
KernelFn kernel_of(bool bf, bool batched, bool shared) {
  return bf ? kernel_of<true>(batched, shared) : kernel_of<false>(batched, shared);
}

std::string plan(const PlanCtx& ctx, TunableSet& tun, Plan& pl) {
  const Shape& s = ctx.s;
  const int SMs = ctx.prop.multiProcessorCount;
  pl.persistent = true;
  std::string why = plan_down_tile(ctx, tun, pl.nh);
  if (!why.empty()) return why;
  if (tun.find("sched_warps")) pl.sched_warps = (int)tun.get("sched_warps");
  const bool batched = pl.strategy == OS_BATCHED;
  if (batched) {
    pl.batch = (int)tun.get("batch");
    pl.prefetch = (int)tun.get("prefetch");
    if (pl.batch < 1 || pl.batch > kMaxBatch)
      return "tunable " + tun.describe("batch") + ": must be 1 to " + std::to_string(kMaxBatch);
  }
  // The worker state needs 4 ints per block: size it for up to 4 blocks per SM, then ask the occupancy.
  const int nb_max = 4 * SMs;
  pl.sl = SmemLayout{ctx.T * s.topk, s.experts, kNT * std::min(std::max(s.inter, s.shared_inter), kDownIC), 4 * nb_max + 32};
  why = shared_memory_reason(ctx, pl.sl);
  if (!why.empty()) return why;
  const int occ = blocks_per_sm((const void*)kernel_of(ctx.bf, batched, s.shared_experts > 0), kThreads, pl.smem());
  if (occ < 1) return "no block of " + std::to_string(kThreads) + " threads with " + std::to_string(pl.smem()) + " bytes of shared memory fits on an SM";
  pl.grid = std::min(occ, 4) * SMs;
  if (pl.grid < 2) return "needs at least 2 blocks (an OS block and a worker)";
  if (batched && pl.grid > 32 * 4 * kBatchedV4)
    return "needs at most " + std::to_string(32 * 4 * kBatchedV4) + " blocks (the batched OS warp reads 4 x " +
           std::to_string(kBatchedV4) + " workers per lane); this device gives " + std::to_string(pl.grid);
  if (tun.is_auto("ffn1_tile")) {  // about one FFN1 task per worker for the expected active experts (and shared ones)
    const int nact_est = std::min(s.experts, ctx.T * s.topk) + s.shared_experts, nw = pl.grid - 1;
    const int tpe1 = std::max(1, (nw + nact_est - 1) / nact_est);
    tun.set_heuristic("ffn1_tile", std::max(16, ((s.inter + tpe1 - 1) / tpe1 + 15) / 16 * 16));
  }
  pl.ti = (int)tun.get("ffn1_tile");
  return "";
}

void launch(const Plan& pl, const Params& p, bool bf, cudaStream_t st) {
  kernel_of(bf, pl.strategy == OS_BATCHED, p.NS > 0)<<<pl.grid, kThreads, pl.smem(), st>>>(p);
  CUDA_CHECK_LAUNCH("k_persistent_os");
}

}  // namespace

const Family kOsFamily = {"os", plan, launch};

}  // namespace moe
