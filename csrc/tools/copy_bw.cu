// copy_bw.cu — device-to-device copy bandwidth (bytes read + written / time),
// the memory floor of csrc/BENCHMARKS.md. Usage: copy_bw [GiB=4] [reps=20]
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <vector>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { fprintf(stderr, "copy_bw: %s -> %s at %s:%d\n", #x, cudaGetErrorString(e), __FILE__, __LINE__); exit(3); } } while (0)
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
  return 0;
}
