// trace.cuh — per-block timelines of the persistent kernels (--trace, and the
// waits in the output), and the in-kernel SM clock of block 0. Timed launches
// run with p.trace == null and never read the timer for tracing.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include "../backend.h"
#include "../json.h"
#include "ptx.cuh"

namespace moe {

enum TraceType : int {
  TR_ROUTER = 0, TR_BARRIER = 1, TR_FFN1 = 2, TR_FFN2 = 3, TR_DOORBELL = 4, TR_OS_QUEUE = 5,
  TR_OS_WORKER = 6, TR_CONVERT = 7, TR_TOPK = 8, TR_SPLITK = 9, TR_OS_DRAIN = 10, TR_TOPK_ONLY = 11,
  TR_SK_FFN1 = 12, TR_SK_DOWN = 13, TR_FLAT_GU = 14,
  // ep-persistent (ep.cu k_epp): one span per block per phase
  TR_EP_TOPK = 15, TR_EP_WAIT_TOPK = 16, TR_EP_DISPATCH = 17, TR_EP_DISP_REL = 18, TR_EP_WAIT_TOKENS = 19,
  TR_EP_BUCKETS = 20, TR_EP_WAIT_LISTS = 21, TR_EP_FFN1 = 22, TR_EP_FFN1_BAR = 23, TR_EP_DOWN = 24,
  TR_EP_DOWN_BAR = 25, TR_EP_RETURN = 26, TR_EP_RET_REL = 27, TR_EP_WAIT_SUMS = 28, TR_EP_COMBINE = 29,
  // ep-persistent with compute=1 (the unit stream of unit_stream.cuh) instead of buckets/ffn1/down
  TR_EP_SLOTS = 30, TR_EP_STREAM = 31, TR_EP_DOWN_TAIL = 32,
  // ep-persistent with shared experts: their gate/up (buckets) or their unit stream (compute=1), on this device's
  // own tokens, while the peers' tokens are on their way
  TR_EP_SHARED = 33,
  TR_NUM = 34
};
inline const char* const kTraceNames[TR_NUM] = {
    "router", "wait:router-barrier", "ffn1", "ffn2", "wait:doorbell", "wait:os-queue(fan-in)", "wait:os-free-worker",
    "convert", "topk+lists", "splitk-task", "wait:os-drain", "topk-only", "splitk:gate-up", "splitk:down+atomics", "flat:gate-up stream",
    "ep:topk", "wait:ep-topk", "ep:dispatch", "ep:dispatch-release", "wait:ep-peer-tokens",
    "ep:buckets", "wait:ep-buckets", "ep:ffn1", "wait:ep-ffn1-barrier", "ep:down",
    "wait:ep-down-barrier", "ep:return", "ep:return-release", "wait:ep-peer-sums", "ep:combine",
    "ep:slots", "ep:gate-up stream", "ep:down tail", "ep:shared"};
inline bool trace_is_wait(int t) {
  return t == TR_BARRIER || t == TR_DOORBELL || t == TR_OS_QUEUE || t == TR_OS_WORKER || t == TR_OS_DRAIN ||
         t == TR_EP_WAIT_TOPK || t == TR_EP_WAIT_TOKENS || t == TR_EP_WAIT_LISTS || t == TR_EP_FFN1_BAR ||
         t == TR_EP_DOWN_BAR || t == TR_EP_WAIT_SUMS;
}

// Trace timestamps only when tracing: timed launches do not read the timer.
#define gt(p) ((p).trace ? gtimer() : 0ull)

// Task ids in the trace: type (1 FFN1, 2 down, 3 split-K), expert (12 bits: routed e < E, shared expert n as E + n),
// tile.
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

// ---- host side: what the traced launches recorded (backend.cu for the single-GPU persistent variants, ep.cu
// for ep-persistent on every device). cnt[b]: events of block b, at ev[b * kMaxEv ...].

// The first timestamp of a launch (the zero of its trace events).
inline unsigned long long trace_first_ts(int nb, const std::vector<int>& cnt, const std::vector<TraceEv>& ev) {
  unsigned long long tmin = ~0ull;
  for (int b = 0; b < nb; ++b)
    for (int i = 0; i < cnt[b]; ++i) tmin = std::min(tmin, ev[(size_t)b * kMaxEv + i].t0);
  return tmin;
}
// One traced launch of nb blocks into w (w.per_block_us sized nb): its span, each block's waits and its tail
// (from the block's last event to the launch's end), each divided by `launches` (the mean over them).
inline void add_trace_waits(Waits& w, int nb, const std::vector<int>& cnt, const std::vector<TraceEv>& ev, int launches) {
  const unsigned long long tmin = trace_first_ts(nb, cnt, ev);
  unsigned long long tmax = 0;
  for (int b = 0; b < nb; ++b)
    for (int i = 0; i < cnt[b]; ++i) tmax = std::max(tmax, ev[(size_t)b * kMaxEv + i].t1);
  const double span = (tmax - tmin) / 1000.0;
  w.kernel_us += span / launches;
  for (int b = 0; b < nb; ++b) {
    unsigned long long last = tmin;
    for (int i = 0; i < cnt[b]; ++i) {
      const TraceEv& e = ev[(size_t)b * kMaxEv + i];
      if (trace_is_wait(e.type)) w.per_block_us[b] += (e.t1 - e.t0) / 1000.0 / launches;
      last = std::max(last, e.t1);
    }
    w.tail_us += (tmax - last) / 1000.0 / launches;  // block done, kernel not: the end-of-kernel bubble
  }
}
// After the last traced launch: the totals.
inline void finish_trace_waits(Waits& w, int nb, int launches) {
  for (double d : w.per_block_us) w.total_us += d;
  w.share = w.kernel_us > 0 ? w.total_us / (nb * w.kernel_us) : 0;
  w.launches = launches;
}
// Chrome trace events of one launch: process `pid` named `name`, one thread per block, times in us from tmin.
inline void write_trace_events(JsonWriter& tj, int pid, const std::string& name, int nb, const std::vector<int>& cnt,
                               const std::vector<TraceEv>& ev, unsigned long long tmin) {
  tj.begin_obj();
  tj.kv("name", "process_name"); tj.kv("ph", "M"); tj.kv("pid", pid);
  tj.key("args"); tj.begin_obj(); tj.kv("name", name); tj.end_obj();
  tj.end_obj();
  for (int b = 0; b < nb; ++b)
    for (int i = 0; i < cnt[b]; ++i) {
      const TraceEv& e = ev[(size_t)b * kMaxEv + i];
      tj.begin_obj();
      tj.kv("name", kTraceNames[e.type < TR_NUM && e.type >= 0 ? e.type : 0]);
      tj.kv("cat", trace_is_wait(e.type) ? "wait" : "work");
      tj.kv("ph", "X");
      tj.kv("pid", pid);
      tj.kv("tid", b);
      tj.kv("ts", (e.t0 - tmin) / 1000.0);
      tj.kv("dur", (e.t1 - e.t0) / 1000.0);
      tj.key("args");
      tj.begin_obj();
      if (e.task >= 0) { tj.kv("task_type", e.task >> 28); tj.kv("expert", (e.task >> 16) & 0xfff); tj.kv("tile", e.task & 0xffff); }
      tj.end_obj();
      tj.end_obj();
    }
}

}  // namespace moe
