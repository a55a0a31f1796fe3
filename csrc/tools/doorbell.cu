// doorbell.cu — what one doorbell round trip and one dispatch cost on this GPU.
//
// The seed's OS-block schedulers (persistent-simple/-multiwarp/-roundrobin)
// hand every task to a worker block through a doorbell word in global memory
// and learn that the worker is free again from an acknowledgement word; on the
// H100 they spend about 0.6 us per dispatch. This tool measures the pieces, one
// persistent launch each, times from %globaltimer inside the kernel:
//
//   rtt        block 0 thread 0 rings a doorbell, a worker block on another SM
//              spins on it (ld.acquire.gpu) and acknowledges; block 0 spins on
//              the acknowledgement. Round trips per second, averaged over N.
//   atomic     one thread's atomicAdd round trip on a global counter (the
//              price of self-dispatch: a worker taking its next task itself).
//   dispatch-1 the OS thread dispatches M empty tasks to W workers: it scans
//              the acknowledgement words one at a time for a free worker and
//              rings its doorbell (the simple strategy). Time per task.
//   dispatch-w as dispatch-1, but a whole warp scans 32 acknowledgements per
//              load round and the lowest free worker wins (ballot).
//   batch-B    as dispatch-w, B tasks per doorbell ring (the worker runs B
//              tasks, then acknowledges once).
//   pull       no OS: every worker takes tasks from an atomic counter.
// Each line of output is one JSON object.
//
// Build: nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -o doorbell doorbell.cu
// Usage: doorbell [tasks=20000]
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define CK(x)                                                                                         \
  do {                                                                                                \
    cudaError_t e_ = (x);                                                                             \
    if (e_ != cudaSuccess) {                                                                          \
      std::fprintf(stderr, "doorbell: %s -> %s at %s:%d\n", #x, cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(3);                                                                                   \
    }                                                                                                 \
  } while (0)

__device__ __forceinline__ unsigned long long gtimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ int ld_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ int ld_relaxed(const int* p) {
  int v;
  asm volatile("ld.relaxed.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_release(int* p, int v) {
  asm volatile("st.release.gpu.global.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Doorbell words: db[w] = task sequence number rung for worker w (0: none); ack[w] = last sequence done;
// stop: set by the OS when every task is handed out and done.
struct Ctl {
  int* db;
  int* ack;
  int* counter;
  int* stop;
  unsigned long long* out;  // [0] start, [1] end (ns)
};

__global__ void k_rtt(Ctl c, int n) {
  if (threadIdx.x != 0) return;
  if (blockIdx.x == 0) {
    const unsigned long long t0 = gtimer();
    for (int s = 1; s <= n; ++s) {
      st_release(&c.db[1], s);
      while (ld_acquire(&c.ack[1]) != s) {
      }
    }
    c.out[0] = t0;
    c.out[1] = gtimer();
  } else if (blockIdx.x == 1) {
    for (int s = 1; s <= n; ++s) {
      while (ld_acquire(&c.db[1]) != s) {
      }
      st_release(&c.ack[1], s);
    }
  }
}

__global__ void k_atomic(Ctl c, int n) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  const unsigned long long t0 = gtimer();
  int v = 0;
  for (int s = 0; s < n; ++s) v += atomicAdd(c.counter, 1) & 1;  // each waits for the last: a round trip each
  c.out[0] = t0;
  c.out[1] = gtimer() + (v == -1);
}

// Workers: wait for a ring, run `batch` empty tasks, acknowledge with the ring's sequence number.
__device__ void worker_loop(const Ctl& c) {
  if (threadIdx.x != 0) return;
  const int w = blockIdx.x;
  int last = 0;
  for (;;) {
    int s;
    while ((s = ld_acquire(&c.db[w])) == last) {
      if (ld_relaxed(c.stop)) return;
    }
    last = s;
    st_release(&c.ack[w], s);
  }
}

// OS = block 0. mode 0: one thread scans; mode 1: warp scans 32 words per round. batch: tasks per ring.
__global__ void k_dispatch(Ctl c, int tasks, int mode, int batch) {
  if (blockIdx.x != 0) {
    worker_loop(c);
    return;
  }
  const int nw = gridDim.x;  // workers 1..nw-1
  const int lane = threadIdx.x;
  if (threadIdx.x >= 32) return;
  __shared__ int seq_of[1024];
  for (int w = lane; w < nw; w += 32) seq_of[w] = 0;
  __syncwarp();
  const unsigned long long t0 = gtimer();
  int handed = 0, next_seq = 1, start = 1;
  while (handed < tasks) {
    int free_w = -1;
    if (mode == 0) {
      if (lane == 0) {
        for (int k = 0; k < nw - 1 && free_w < 0; ++k) {
          const int w = 1 + (start - 1 + k) % (nw - 1);
          if (ld_acquire(&c.ack[w]) == seq_of[w]) free_w = w;
        }
      }
      free_w = __shfl_sync(0xffffffffu, free_w, 0);
    } else {
      for (int base = 1; base < nw && free_w < 0; base += 32) {
        const int w = base + lane;
        const bool ok = w < nw && ld_acquire(&c.ack[w]) == seq_of[w];
        const unsigned m = __ballot_sync(0xffffffffu, ok);
        if (m) free_w = base + __ffs(m) - 1;
      }
    }
    if (free_w < 0) continue;
    if (lane == 0) {
      seq_of[free_w] = next_seq;
      st_release(&c.db[free_w], next_seq);
    }
    __syncwarp();
    ++next_seq;
    handed += batch;
    start = free_w + 1;
  }
  // drain: every worker acknowledged its last ring
  for (int w = 1 + lane; w < nw; w += 32)
    while (ld_acquire(&c.ack[w]) != seq_of[w]) {
    }
  __syncwarp();
  if (lane == 0) {
    c.out[0] = t0;
    c.out[1] = gtimer();
    st_release(c.stop, 1);
  }
}

__global__ void k_pull(Ctl c, int tasks) {
  if (threadIdx.x != 0) return;
  __shared__ unsigned long long t0;
  if (blockIdx.x == 0) t0 = gtimer();
  int mine = 0;
  while (atomicAdd(c.counter, 1) < tasks) ++mine;
  if (atomicAdd(c.counter + 1, 1) == (int)gridDim.x - 1) c.out[1] = gtimer();
  if (blockIdx.x == 0) c.out[0] = t0 + (mine == -1);
}

int main(int argc, char** argv) {
  const int tasks = argc > 1 ? std::atoi(argv[1]) : 20000;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int nb = prop.multiProcessorCount;
  Ctl c{};
  CK(cudaMalloc(&c.db, 4096 * 4));
  CK(cudaMalloc(&c.ack, 4096 * 4));
  CK(cudaMalloc(&c.counter, 64));
  CK(cudaMalloc(&c.stop, 64));
  CK(cudaMalloc(&c.out, 16));
  auto reset = [&]() {
    CK(cudaMemset(c.db, 0, 4096 * 4));
    CK(cudaMemset(c.ack, 0, 4096 * 4));
    CK(cudaMemset(c.counter, 0, 64));
    CK(cudaMemset(c.stop, 0, 64));
  };
  auto span_ns = [&]() {
    CK(cudaDeviceSynchronize());
    unsigned long long t[2];
    CK(cudaMemcpy(t, c.out, 16, cudaMemcpyDeviceToHost));
    return (double)(t[1] - t[0]);
  };
  std::printf("{\"device\":\"%s\",\"sms\":%d,\"tasks\":%d}\n", prop.name, nb, tasks);
  const int n = 20000;
  reset();
  k_rtt<<<2, 32>>>(c, n);
  CK(cudaGetLastError());
  std::printf("{\"probe\":\"rtt\",\"ns_per_round_trip\":%.1f}\n", span_ns() / n);
  reset();
  k_atomic<<<1, 32>>>(c, n);
  CK(cudaGetLastError());
  std::printf("{\"probe\":\"atomic\",\"ns_per_atomic_round_trip\":%.1f}\n", span_ns() / n);
  for (int mode = 0; mode < 2; ++mode) {
    for (int batch : {1, 4, 16}) {
      if (mode == 0 && batch != 1) continue;
      reset();
      k_dispatch<<<nb, 32>>>(c, tasks, mode, batch);
      CK(cudaGetLastError());
      const double ns = span_ns();
      std::printf("{\"probe\":\"dispatch\",\"scan\":\"%s\",\"tasks_per_ring\":%d,\"workers\":%d,\"ns_per_task\":%.1f,\"ns_per_ring\":%.1f}\n",
                  mode == 0 ? "thread" : "warp", batch, nb - 1, ns / tasks, ns / ((tasks + batch - 1) / batch));
    }
  }
  reset();
  k_pull<<<nb, 32>>>(c, tasks);
  CK(cudaGetLastError());
  std::printf("{\"probe\":\"pull\",\"workers\":%d,\"ns_per_task\":%.1f}\n", nb, span_ns() / tasks);
  return 0;
}
