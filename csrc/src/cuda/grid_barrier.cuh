// grid_barrier.cuh — the router of a persistent launch: logits for every
// expert spread over the grid, then a grid-wide barrier on a control word.
#pragma once
#include "gemv.cuh"
#include "trace.cuh"

namespace moe {

// Router logits for every expert, spread over the grid, then a grid-wide barrier so that every
// block sees all logits before its own top-k (the split-K kernels). A persistent grid only: every block must be resident.
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

}  // namespace moe
