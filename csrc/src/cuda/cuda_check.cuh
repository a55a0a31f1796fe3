// cuda_check.cuh — CUDA error checking and small RAII helpers for moe-bench (host side).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../common.h"

// Every CUDA call goes through CUDA_CHECK: on error, one stderr line naming the
// call, file and line, exit 3 (contract: runtime error).
#define CUDA_CHECK(call)                                                                    \
  do {                                                                                      \
    cudaError_t err_ = (call);                                                              \
    if (err_ != cudaSuccess)                                                                \
      ::moe::die_runtime(std::string("CUDA error: ") + #call + " -> " + cudaGetErrorName(err_) + \
                         " (" + cudaGetErrorString(err_) + ") at " + __FILE__ + ":" + std::to_string(__LINE__)); \
  } while (0)
// After every launch.
#define CUDA_CHECK_LAUNCH(what)                                                             \
  do {                                                                                      \
    cudaError_t err_ = cudaGetLastError();                                                  \
    if (err_ != cudaSuccess)                                                                \
      ::moe::die_runtime(std::string("CUDA error: launch of ") + (what) + " -> " + cudaGetErrorName(err_) + \
                         " (" + cudaGetErrorString(err_) + ") at " + __FILE__ + ":" + std::to_string(__LINE__)); \
  } while (0)

namespace moe {

template <class T>
struct DevBuf {  // owning device allocation
  T* p = nullptr;
  size_t n = 0;
  DevBuf() = default;
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() { if (p) cudaFree(p); }  // non-throwing twin: errors at teardown are ignored
  void alloc(size_t count) {
    if (p) { CUDA_CHECK(cudaFree(p)); p = nullptr; }
    n = count;
    if (count) CUDA_CHECK(cudaMalloc(&p, count * sizeof(T)));
  }
  size_t bytes() const { return n * sizeof(T); }
};

}  // namespace moe
