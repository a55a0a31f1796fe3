// grid_barrier.cuh — the router of a persistent launch: logits for every
// expert spread over the grid, then a grid-wide barrier on a control word.
#pragma once
#include "gemv.cuh"
#include "trace.cuh"

namespace moe {

// The grid-wide barrier that ends a persistent launch's router phase: every block counts itself in on
// ctrl[C_ROUTER] and waits for the whole grid, so every block sees all logits before its own top-k. Traces
// TR_ROUTER from `t0` and TR_BARRIER. A persistent grid only: every block must be resident. `fail_code` tells
// which kernel's barrier spun out. Returns, in thread 0, the time the barrier ended (the start of what follows
// in the trace); `t0` in the other threads.
__device__ __forceinline__ unsigned long long router_barrier(const Params& p, Tracer& tr, unsigned long long t0, int fail_code) {
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
    t0 = gt(p);
    tr.add(TR_BARRIER, -1, t1, t0);
  }
  __syncthreads();
  return t0;
}

// router_barrier in two halves, for work that does not need the logits (split-K's shared-expert slices): the
// whole block calls router_arrive after its router rows (traces TR_ROUTER from `t0`; the block's logits are
// published by the arrival), does that work, then router_wait (traces TR_BARRIER: only what is left of the wait).
__device__ __forceinline__ void router_arrive(const Params& p, Tracer& tr, unsigned long long t0) {
  __syncthreads();
  if (threadIdx.x == 0) {
    tr.add(TR_ROUTER, -1, t0, gt(p));
    __threadfence();
    atomicAdd(&p.ctrl[C_ROUTER], 1);
  }
}
__device__ __forceinline__ void router_wait(const Params& p, Tracer& tr, int fail_code) {
  if (threadIdx.x == 0) {
    const unsigned long long t1 = gt(p);
    long long spins = 0;
    while (ld_acquire(&p.ctrl[C_ROUTER]) < (int)gridDim.x)
      if (++spins > kSpinLimit) spin_fail(p, fail_code);
    __threadfence();
    tr.add(TR_BARRIER, -1, t1, gt(p));
  }
  __syncthreads();
}

// Router logits for every expert, spread over the grid, then the router barrier (the split-K kernels).
template <bool BF>
__device__ __forceinline__ void route_all_then_barrier(const Params& p, const uint16_t* x, Tracer& tr, int fail_code) {
  const unsigned long long t0 = gt(p);
  for (int e = blockIdx.x; e < p.E; e += gridDim.x) router_expert<BF>(p, x, e);
  router_barrier(p, tr, t0, fail_code);
}

}  // namespace moe
