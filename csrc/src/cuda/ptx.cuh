// ptx.cuh — memory-order and cache-policy primitives of the kernels.
#pragma once
#include <cuda_runtime.h>

#include "params.cuh"

namespace moe {

// Streamed weights: read once per launch, so no L1 allocation, and marked
// evict-first in L2 so they do not push out what is reused (code, x, logits,
// control words, the fp32 output). Measured: -3 us at T=1 (BENCHMARKS.md #5).
__device__ __forceinline__ uint4 ld_stream(const uint16_t* p) {
  uint4 v;
  asm volatile("{\n .reg .b64 pol;\n createpolicy.fractional.L2::evict_first.b64 pol, 1.0;\n"
               " ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], pol;\n}"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
// The same for fp8 weights: 16 e4m3 values a load.
__device__ __forceinline__ uint4 ld_stream(const uint8_t* p) {
  return ld_stream(reinterpret_cast<const uint16_t*>(p));
}
// 8 e4m3 values (8 bytes), streamed as ld_stream.
__device__ __forceinline__ uint2 ld_stream8(const uint8_t* p) {
  uint2 v;
  asm volatile("{\n .reg .b64 pol;\n createpolicy.fractional.L2::evict_first.b64 pol, 1.0;\n"
               " ld.global.nc.L1::no_allocate.L2::cache_hint.v2.u32 {%0,%1}, [%2], pol;\n}"
               : "=r"(v.x), "=r"(v.y) : "l"(p));
  return v;
}
// Weights read by every launch and small enough to stay in L2 (the router's): evict-last.
__device__ __forceinline__ uint4 ld_keep(const uint16_t* p) {
  uint4 v;
  asm volatile("{\n .reg .b64 pol;\n createpolicy.fractional.L2::evict_last.b64 pol, 1.0;\n"
               " ld.global.nc.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], pol;\n}"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
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
// A poll: relaxed at gpu scope and no compiler barrier, so several can be in flight and the value
// used later; a __threadfence() after the load that saw a release store makes it an acquire (PTX's
// acquire pattern: a strong load, then a fence), and only then may what that store published be read.
__device__ __forceinline__ int ld_relaxed(const int* p) {
  int v;
  asm volatile("ld.relaxed.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}
// The other half: after a __threadfence(), a relaxed store publishes what came before the fence
// (PTX's release pattern). Several in a row do not wait for each other, where each st.release waits
// for the one before it to reach L2 (a round trip each).
__device__ __forceinline__ void st_relaxed(int* p, int v) {
  asm volatile("st.relaxed.gpu.global.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
// One 64-bit word, single-copy atomic: a value and its tag seen together (flat's tagged logits).
__device__ __forceinline__ unsigned long long ld_relaxed64(const unsigned long long* p) {
  unsigned long long v;
  asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ void st_relaxed64(unsigned long long* p, unsigned long long v) {
  asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
// System scope: words stored into, or read from, another GPU's memory (the ep family; tools/nvlink_rtt
// measures these same instructions between GPUs).
__device__ __forceinline__ int ld_acquire_sys(const int* p) {
  int v;
  asm volatile("ld.acquire.sys.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_release_sys(int* p, int v) {
  asm volatile("st.release.sys.global.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ void st_relaxed_sys(int* p, int v) {
  asm volatile("st.relaxed.sys.global.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ void fence_acq_rel_sys() { asm volatile("fence.acq_rel.sys;" ::: "memory"); }
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
__device__ __forceinline__ int get_smid() {
  int s;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
  return s;
}
// A spin wait that exceeded kSpinLimit: record the code, then trap (the host
// reports the failed synchronize, exit 3).
__device__ __forceinline__ void spin_fail(const Params& p, int code) {
  atomicExch(&p.ctrl[C_ERR], code);
  __threadfence();
  __trap();
}
// One 128-byte line into L2.
__device__ __forceinline__ void prefetch_l2(const void* a) { asm volatile("prefetch.global.L2 [%0];" ::"l"(a)); }
// `bytes` from `base` into L2, the whole block: thread i takes lines i, i + blockDim, ...
__device__ __forceinline__ void prefetch_l2(const void* base, size_t bytes) {
  for (size_t off = (size_t)threadIdx.x * 128; off < bytes; off += (size_t)blockDim.x * 128) prefetch_l2((const char*)base + off);
}

// Sum over the 32 lanes of a warp; every lane gets it.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace moe
