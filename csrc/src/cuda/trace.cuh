// trace.cuh — per-block timelines of the persistent kernels (--trace, and the
// waits in the output), and the in-kernel SM clock of block 0. Timed launches
// run with p.trace == null and never read the timer for tracing.
#pragma once
#include "ptx.cuh"

namespace moe {

enum TraceType : int {
  TR_ROUTER = 0, TR_BARRIER = 1, TR_FFN1 = 2, TR_FFN2 = 3, TR_DOORBELL = 4, TR_OS_QUEUE = 5,
  TR_OS_WORKER = 6, TR_CONVERT = 7, TR_TOPK = 8, TR_SPLITK = 9, TR_OS_DRAIN = 10, TR_TOPK_ONLY = 11,
  TR_SK_FFN1 = 12, TR_SK_DOWN = 13, TR_FLAT_GU = 14, TR_NUM = 15
};
inline const char* const kTraceNames[TR_NUM] = {
    "router", "wait:router-barrier", "ffn1", "ffn2", "wait:doorbell", "wait:os-queue(fan-in)", "wait:os-free-worker",
    "convert", "topk+lists", "splitk-task", "wait:os-drain", "topk-only", "splitk:gate-up", "splitk:down+atomics", "flat:gate-up stream"};
inline bool trace_is_wait(int t) {
  return t == TR_BARRIER || t == TR_DOORBELL || t == TR_OS_QUEUE || t == TR_OS_WORKER || t == TR_OS_DRAIN;
}

// Trace timestamps only when tracing: timed launches do not read the timer.
#define gt(p) ((p).trace ? gtimer() : 0ull)

// Task ids in the trace: type (1 FFN1, 2 down, 3 split-K), expert, tile.
__device__ __forceinline__ int task_make(int type, int e, int tile) { return (type << 28) | (e << 16) | tile; }

// Thread 0 of a block only.
struct Tracer {
  TraceEv* buf = nullptr;
  int n = 0;
  __device__ void init(const Params& p) { buf = p.trace ? p.trace + (size_t)blockIdx.x * kMaxEv : nullptr; n = 0; }
  __device__ void add(int type, int task, unsigned long long t0, unsigned long long t1) {
    if (buf && n < kMaxEv) { buf[n] = TraceEv{type, task, t0, t1}; ++n; }
  }
  __device__ void finish(const Params& p) { if (buf) p.trace_n[blockIdx.x] = n; }
};

// SM clock of a launch: clock64 against %globaltimer (block 0), one slot per launch.
__device__ __forceinline__ void clock_begin(long long (&c)[2]) { c[0] = clock64(); c[1] = (long long)gtimer(); }
__device__ __forceinline__ void clock_end(const Params& p, int iter, const long long (&c)[2]) {
  if (iter < p.clk_cap) {
    long long* d = p.clk + (size_t)iter * 4;
    d[0] = c[0]; d[1] = clock64(); d[2] = c[1]; d[3] = (long long)gtimer();
  }
}

}  // namespace moe
