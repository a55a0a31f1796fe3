// copy_bw.cu — device-to-device copy bandwidth (bytes read + written / time),
// the memory floor of csrc/BENCHMARKS.md. Usage: copy_bw [GiB=4] [reps=20]
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <vector>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { fprintf(stderr, "copy_bw: %s -> %s at %s:%d\n", #x, cudaGetErrorString(e), __FILE__, __LINE__); exit(3); } } while (0)
// Read-only stream: every thread 8 x 16-byte loads in flight, grid-stride.
__global__ void read_kernel(const uint4* __restrict__ a, size_t n16, unsigned* sink) {
  unsigned acc = 0;
  const size_t stride = (size_t)gridDim.x * blockDim.x * 8;
  for (size_t i = (size_t)blockIdx.x * blockDim.x * 8 + threadIdx.x; i < n16; i += stride) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = (i + (size_t)u * blockDim.x < n16) ? __ldcs(a + i + (size_t)u * blockDim.x) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < 8; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x12345678u) *sink = acc;
}
int main(int argc, char** argv) {
  double gib = argc > 1 ? atof(argv[1]) : 4.0;
  int reps = argc > 2 ? atoi(argv[2]) : 20;
  size_t n = (size_t)(gib * (1ull << 30));
  void *a, *b;
  CK(cudaMalloc(&a, n)); CK(cudaMalloc(&b, n));
  CK(cudaMemset(a, 1, n)); CK(cudaMemset(b, 0, n));
  cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int i = 0; i < reps + 2; ++i) {
    CK(cudaEventRecord(e0)); CK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice)); CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1)); float t; CK(cudaEventElapsedTime(&t, e0, e1)); if (i >= 2) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  double med = ms[ms.size() / 2], best = ms[0];
  cudaDeviceProp p; CK(cudaGetDeviceProperties(&p, 0));
  printf("{\"device\":\"%s\",\"bytes\":%zu,\"median_ms\":%.4f,\"copy_tbps_median\":%.4f,\"copy_tbps_best\":%.4f}\n", p.name, n,
         med, 2.0 * n / (med * 1e-3) / 1e12, 2.0 * n / (best * 1e-3) / 1e12);
  // read-only bandwidth: whole buffer, and 76 MB windows (one Qwen3 T=1 layer) at moving offsets
  unsigned* sink; CK(cudaMalloc(&sink, 4));
  int sms = p.multiProcessorCount;
  for (int bps : {1, 2, 4}) {
    std::vector<float> rm;
    for (int i = 0; i < reps + 2; ++i) {
      CK(cudaEventRecord(e0)); read_kernel<<<sms * bps, 512>>>((const uint4*)a, n / 16, sink); CK(cudaGetLastError()); CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1)); float t; CK(cudaEventElapsedTime(&t, e0, e1)); if (i >= 2) rm.push_back(t);
    }
    std::sort(rm.begin(), rm.end());
    printf("{\"read_full_blocks_per_sm\":%d,\"read_tbps_median\":%.4f}\n", bps, n / (rm[rm.size() / 2] * 1e-3) / 1e12);
  }
  size_t w = 76u << 20;
  std::vector<float> rw;
  for (int i = 0; i < 200; ++i) {
    size_t off = ((size_t)i * w) % (n - w);
    off &= ~(size_t)255;
    CK(cudaEventRecord(e0)); read_kernel<<<sms, 512>>>((const uint4*)((const char*)a + off), w / 16, sink); CK(cudaGetLastError()); CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1)); float t; CK(cudaEventElapsedTime(&t, e0, e1)); rw.push_back(t);
  }
  std::sort(rw.begin(), rw.end());
  printf("{\"read_76MB_median_us\":%.2f,\"read_76MB_tbps\":%.4f}\n", rw[rw.size() / 2] * 1e3, w / (rw[rw.size() / 2] * 1e-3) / 1e12);
  return 0;
}
