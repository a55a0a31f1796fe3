// nvlink_rtt.cu — the floor of an expert-parallel layer's dispatch and combine between the GPUs of one host.
//
// ep-persistent (csrc/src/cuda/ep.cu) moves tokens and partial results by stores into a peer GPU's memory and
// tells the peer with a flag it stores after them; ep-separate moves them with copies (or NCCL). This tool
// measures those pieces for every ordered pair of GPUs (i, j) this process sees, one JSON object per line:
//
//   pingpong    one block on GPU i stores a flag into GPU j's memory and spins on its own flag
//               (ld.acquire.sys, thread 0); one block on GPU j spins on its flag and answers the same way.
//               Round trip per exchange (%globaltimer of GPU i over `iters` exchanges). The latency of a
//               doorbell.
//   store-flag  as pingpong, but each side first stores a payload of B bytes (one block of 512 threads, 16-byte
//               stores) into the peer, then releases them and stores the flag (`protocol` below); the other
//               side waits for the flag (thread 0, ld.acquire.sys, then bar.sync), every thread reads back its
//               16-byte words of the payload from its own memory (ld.global.cv) and counts each word that is
//               not this exchange's in payload_errors, then answers in the same way. B = 4 KB (one Qwen3 token,
//               bf16) and 14 KB (one DeepSeek-V3 token). The round trip of a one-token dispatch plus its
//               combine, without the expert in between.
//   copy        cudaMemcpyPeerAsync of B bytes i -> j through the copy engine, CUDA events on GPU i: GB/s of
//               256 MB, and the end-to-end time of 64 KB (the smallest dispatch ep-separate makes).
//   kstore      a kernel on GPU i (every SM, 16-byte stores) writes 256 MB into GPU j: GB/s.
//
// pingpong and store-flag run once per `protocol`: how the block releases its stores before the flag
// (the receiver's acquire is always thread 0's ld.acquire.sys, then bar.sync):
//   fence.sc+release            every thread fence.sc.sys (__threadfence_system) after its stores, bar.sync,
//                               thread 0 st.release.sys of the flag. ep-persistent's `fence=0`; the only
//                               protocol of this tool's first run (8.7-8.8 us per pingpong on 4 H100s).
//   release                     bar.sync, thread 0 st.release.sys of the flag (no separate fence: the release
//                               store orders thread 0's earlier stores, and the others' through the barrier).
//   fence.acq_rel+relaxed       every thread fence.acq_rel.sys after its stores, bar.sync, thread 0
//                               st.relaxed.sys of the flag.
//   block:fence.acq_rel+relaxed bar.sync, then thread 0 alone fence.acq_rel.sys and st.relaxed.sys of the flag:
//                               what a block needs (ep-persistent's `fence=1`). By the PTX memory model the
//                               barrier makes every thread's stores precede thread 0's fence in causality order,
//                               so the fence and the flag release them all.
// With payload 0 the last three differ only in who fences. A protocol too weak for the hardware shows as
// payload_errors > 0 (the run's latency then measures nothing useful), not as a lower rtt_us alone.
// Measured before (2-GPU H100 host, NV18, 2026-11-27, csrc/BENCHMARKS.md): copy 391 GB/s, kstore 367 GB/s,
// 64 KB copy 10.4 us, pingpong 1.87 us (a lighter protocol than fence.sc+release). The new protocols have
// only been compiled (sm_90a, sm_89, sm_80), not run.
//
// Build: nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -o nvlink_rtt nvlink_rtt.cu
//        (sm_80: -gencode arch=compute_80,code=sm_80)
// Usage: nvlink_rtt [iters=10000]      exit 3 on a CUDA error, 2 with fewer than 2 GPUs or no peer access.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../src/cuda/ptx.cuh"

#define CK(x)                                                                                              \
  do {                                                                                                     \
    cudaError_t e_ = (x);                                                                                  \
    if (e_ != cudaSuccess) {                                                                               \
      std::fprintf(stderr, "nvlink_rtt: %s -> %s at %s:%d\n", #x, cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(3);                                                                                        \
    }                                                                                                      \
  } while (0)

// The kernels' own primitives (src/cuda/ptx.cuh), so that the link is measured with the instructions the ep
// kernels issue.
using moe::fence_acq_rel_sys;
using moe::gtimer;
using moe::ld_acquire_sys;
using moe::st_release_sys;
using moe::st_relaxed_sys;

constexpr long long kSpin = 1ll << 26;

// How a block releases its payload stores before the flag (the header's `protocol`).
enum Proto : int { P_SC_RELEASE = 0, P_RELEASE = 1, P_ACQREL_RELAXED = 2, P_BLOCK_ACQREL = 3, P_NUM = 4 };
const char* const kProtoNames[P_NUM] = {"fence.sc+release", "release", "fence.acq_rel+relaxed", "block:fence.acq_rel+relaxed"};

// Thread 0 waits for the other side's exchange `it`; then every thread checks its words of the payload
// (each must hold `it`) and counts the others into *bad.
__device__ __forceinline__ void wait_and_check(int it, const int* my_flag, const uint4* my_buf, int n16, int* bad) {
  if (threadIdx.x == 0) {
    long long s = 0;
    while (ld_acquire_sys(my_flag) < it)
      if (++s > kSpin) { atomicExch(bad, -1); __trap(); }
  }
  __syncthreads();
  int wrong = 0;
  for (int i = threadIdx.x; i < n16; i += blockDim.x) {
    const uint4 v = __ldcv(&my_buf[i]);
    wrong += (int)v.x != it || (int)v.y != it || (int)v.z != it || (int)v.w != it;
  }
  if (wrong) atomicAdd(bad, wrong);
}

// One side of the exchange. `first`: this side starts. peer_flag/peer_buf live on the other GPU,
// my_flag/my_buf on this one. payload: bytes stored before each flag (0: flag only). Block of 512 threads.
template <int PROTO>
__global__ void k_side(bool first, int iters, int* my_flag, int* peer_flag, uint4* my_buf, uint4* peer_buf, int payload,
                       unsigned long long* out, int* bad) {
  const int n16 = payload / 16;
  unsigned long long t0 = 0;
  for (int it = 1; it <= iters; ++it) {
    if (!first) wait_and_check(it, my_flag, my_buf, n16, bad);  // the other side's exchange `it`
    if (first && it == 1 && threadIdx.x == 0) t0 = gtimer();
    for (int i = threadIdx.x; i < n16; i += blockDim.x) peer_buf[i] = make_uint4(it, it, it, it);
    if (PROTO == P_SC_RELEASE) __threadfence_system();
    if (PROTO == P_ACQREL_RELAXED) fence_acq_rel_sys();
    __syncthreads();
    if (threadIdx.x == 0) {
      if (PROTO == P_SC_RELEASE || PROTO == P_RELEASE) {
        st_release_sys(peer_flag, it);
      } else {
        if (PROTO == P_BLOCK_ACQREL) fence_acq_rel_sys();
        st_relaxed_sys(peer_flag, it);
      }
    }
    if (first) wait_and_check(it, my_flag, my_buf, n16, bad);
  }
  if (first && threadIdx.x == 0) *out = gtimer() - t0;
}

__global__ void k_store(uint4* dst, size_t n16) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n16; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = make_uint4((unsigned)i, 1u, 2u, 3u);
}

void launch_side(int proto, cudaStream_t st, bool first, int iters, int* my_flag, int* peer_flag, uint4* my_buf, uint4* peer_buf,
                 int payload, unsigned long long* out, int* bad) {
  switch (proto) {
    case P_SC_RELEASE: k_side<P_SC_RELEASE><<<1, 512, 0, st>>>(first, iters, my_flag, peer_flag, my_buf, peer_buf, payload, out, bad); break;
    case P_RELEASE: k_side<P_RELEASE><<<1, 512, 0, st>>>(first, iters, my_flag, peer_flag, my_buf, peer_buf, payload, out, bad); break;
    case P_ACQREL_RELAXED: k_side<P_ACQREL_RELAXED><<<1, 512, 0, st>>>(first, iters, my_flag, peer_flag, my_buf, peer_buf, payload, out, bad); break;
    default: k_side<P_BLOCK_ACQREL><<<1, 512, 0, st>>>(first, iters, my_flag, peer_flag, my_buf, peer_buf, payload, out, bad); break;
  }
  CK(cudaGetLastError());
}

struct Side {
  int* flag = nullptr;
  uint4* buf = nullptr;
};

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 10000;
  if (iters < 1) { std::fprintf(stderr, "nvlink_rtt: iters must be >= 1 (got %s)\n", argv[1]); return 2; }
  int n = 0;
  CK(cudaGetDeviceCount(&n));
  if (n < 2) { std::fprintf(stderr, "nvlink_rtt: needs 2 GPUs, this process sees %d (CUDA_VISIBLE_DEVICES)\n", n); return 2; }
  constexpr int kMaxPayload = 16384;
  constexpr size_t kBig = 256ull << 20, kSmall = 64ull << 10;
  std::vector<Side> side(n);
  std::vector<void*> big(n);
  std::vector<cudaStream_t> st(n);
  std::vector<unsigned long long*> out(n);
  std::vector<int*> bad(n);
  std::vector<cudaDeviceProp> prop(n);
  for (int d = 0; d < n; ++d) {
    CK(cudaSetDevice(d));
    CK(cudaGetDeviceProperties(&prop[d], d));
    CK(cudaMalloc(&side[d].flag, 256));
    CK(cudaMalloc(&side[d].buf, kMaxPayload));
    CK(cudaMalloc(&big[d], kBig));
    CK(cudaMallocManaged(&out[d], sizeof(unsigned long long)));
    CK(cudaMallocManaged(&bad[d], sizeof(int)));
    CK(cudaStreamCreateWithFlags(&st[d], cudaStreamNonBlocking));
    for (int o = 0; o < n; ++o) {
      if (o == d) continue;
      int can = 0;
      CK(cudaDeviceCanAccessPeer(&can, d, o));
      if (!can) { std::fprintf(stderr, "nvlink_rtt: GPU %d cannot access GPU %d's memory (cudaDeviceCanAccessPeer)\n", d, o); return 2; }
      CK(cudaDeviceEnablePeerAccess(o, 0));
    }
  }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      const char* pair_fmt = "{\"tool\":\"nvlink_rtt\",\"from\":%d,\"to\":%d,\"from_name\":\"%s\",";
      for (int proto = 0; proto < P_NUM; ++proto)
        for (int payload : {0, 4096, 14336}) {
          for (int d : {i, j}) {
            CK(cudaSetDevice(d));
            CK(cudaMemset(side[d].flag, 0, 256));
            CK(cudaMemset(side[d].buf, 0, kMaxPayload));
            *bad[d] = 0;
            CK(cudaDeviceSynchronize());
          }
          CK(cudaSetDevice(j));
          launch_side(proto, st[j], false, iters, side[j].flag, side[i].flag, side[j].buf, side[i].buf, payload, out[j], bad[j]);
          CK(cudaSetDevice(i));
          launch_side(proto, st[i], true, iters, side[i].flag, side[j].flag, side[i].buf, side[j].buf, payload, out[i], bad[i]);
          CK(cudaStreamSynchronize(st[i]));
          CK(cudaSetDevice(j));
          CK(cudaStreamSynchronize(st[j]));
          std::printf(pair_fmt, i, j, prop[i].name);
          std::printf("\"test\":\"%s\",\"protocol\":\"%s\",\"payload_bytes\":%d,\"iters\":%d,\"rtt_us\":%.4f,\"payload_errors\":%d}\n",
                      payload ? "store-flag" : "pingpong", kProtoNames[proto], payload, iters, *out[i] / 1000.0 / iters,
                      *bad[i] + *bad[j]);
        }
      // copies through the copy engine, timed on GPU i
      CK(cudaSetDevice(i));
      cudaEvent_t e0, e1;
      CK(cudaEventCreate(&e0));
      CK(cudaEventCreate(&e1));
      for (size_t bytes : {kBig, kSmall}) {
        const int reps = bytes == kBig ? 10 : 1000;
        CK(cudaMemcpyPeerAsync(big[j], j, big[i], i, bytes, st[i]));  // warm
        CK(cudaEventRecord(e0, st[i]));
        for (int r = 0; r < reps; ++r) CK(cudaMemcpyPeerAsync(big[j], j, big[i], i, bytes, st[i]));
        CK(cudaEventRecord(e1, st[i]));
        CK(cudaEventSynchronize(e1));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        const double us = ms * 1000.0 / reps;
        std::printf(pair_fmt, i, j, prop[i].name);
        std::printf("\"test\":\"copy\",\"bytes\":%zu,\"reps\":%d,\"us\":%.3f,\"gbps\":%.1f}\n", bytes, reps, us, bytes / us / 1e3);
      }
      // a kernel's peer stores
      const int grid = prop[i].multiProcessorCount * 4;
      k_store<<<grid, 512, 0, st[i]>>>((uint4*)big[j], kBig / 16);  // warm
      CK(cudaGetLastError());
      CK(cudaEventRecord(e0, st[i]));
      for (int r = 0; r < 10; ++r) k_store<<<grid, 512, 0, st[i]>>>((uint4*)big[j], kBig / 16);
      CK(cudaGetLastError());
      CK(cudaEventRecord(e1, st[i]));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      std::printf(pair_fmt, i, j, prop[i].name);
      std::printf("\"test\":\"kstore\",\"bytes\":%zu,\"reps\":10,\"us\":%.3f,\"gbps\":%.1f}\n", kBig, ms * 100.0, kBig / (ms * 100.0) / 1e3);
      CK(cudaEventDestroy(e0));
      CK(cudaEventDestroy(e1));
    }
  return 0;
}
