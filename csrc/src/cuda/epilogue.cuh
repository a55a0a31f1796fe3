// epilogue.cuh — the end of a launch: the fp32 output (accumulated with
// vector reductions by every block) converted to the storage dtype by the block
// that finishes last, which also leaves the control words clean for the next
// launch (every launch leaves the state as it found it).
#pragma once
#include "gemv.cuh"
#include "trace.cuh"

namespace moe {

// The block that finishes last: out = dtype(out_acc); out_acc = 0.
template <bool BF>
__device__ inline void convert_out(const Params& p) {
  const int n = p.T * p.H;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float v = __ldcg(p.out_acc + i);
    p.out[i] = to_store<BF>(v);
    p.out_acc[i] = 0.f;
  }
}

// Am I the last of `total` arrivals on ctrl[c]? Whole block calls; returns to all.
__device__ inline bool arrive_last(int* ctr, int total) {
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

// The last block to finish converts the fp32 output and resets the counters for the next launch
// (the split-K task counters too; SHARED: its shared-slice counter); then the clock and trace records are closed.
template <bool BF, bool SHARED = false>
__device__ __forceinline__ void finish_launch(const Params& p, Tracer& tr, int iter, const long long (&clk)[2]) {
  if (arrive_last(&p.ctrl[C_DONE], gridDim.x)) {
    const unsigned long long t0 = gt(p);
    convert_out<BF>(p);
    __syncthreads();
    if (threadIdx.x == 0) {
      p.ctrl[C_DONE] = 0;
      p.ctrl[C_ROUTER] = 0;
      p.ctrl[C_TASK] = 0;
      if constexpr (SHARED) p.ctrl[C_STASK] = 0;
      p.ctrl[C_ITER] = iter + 1;
      tr.add(TR_CONVERT, -1, t0, gt(p));
    }
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) clock_end(p, iter, clk);
  if (threadIdx.x == 0) tr.finish(p);
}

}  // namespace moe
