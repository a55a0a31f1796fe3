// backend.h — what main.cpp needs from a backend (CPU or CUDA).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace moe {

struct Waits {             // persistent CUDA variants only
  bool present = false;
  double total_us = 0;     // summed over blocks
  std::vector<double> per_block_us;
  double share = 0;        // total wait / (blocks * kernel span)
  double kernel_us = 0;    // span of the traced launch(es), mean
  int launches = 0;        // traced launches averaged
  double tail_us = 0;      // summed over blocks: time from a block's last event to the kernel's end
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual std::vector<std::string> variants() const = 0;
  // "" if the variant can run this shape, else the failed constraint.
  virtual std::string unsupported(const std::string& v, const Shape& s, int T, DType dt) const = 0;
  virtual int default_rotate() const = 0;
  virtual void device_json(Json& j) = 0;
  virtual void upload(const Model& m, const Config& cfg) = 0;
  // One forward of variant v on x (T tokens). out: [T][H] floats (converted from
  // the stored dtype; the backend poisons its output buffer with NaN first).
  // ids: [T][K] experts the variant routed each token to.
  virtual void run_once(const std::string& v, const HostTensor& x, int T,
                        std::vector<float>& out, std::vector<int>& ids) = 0;
  virtual void set_rotation(const std::vector<HostTensor>& xs, int T) = 0;
  // Warm up, then time `iters` iterations; samples in microseconds, plus the
  // in-kernel SM clock per sample (empty on CPU).
  virtual void time_iters(const std::string& v, int warmup, int iters,
                          std::vector<double>& us, std::vector<double>& mhz) = 0;
  // Persistent variants: traced launch(es) -> waits, and Chrome trace events
  // appended to `trace` (pid = variant index). Default: none.
  virtual Waits trace_waits(const std::string& /*v*/, int /*pid*/, Json* /*trace*/) { return Waits{}; }
};

std::unique_ptr<Backend> make_cpu_backend();
#ifdef MOE_WITH_CUDA
std::unique_ptr<Backend> make_cuda_backend();
std::vector<std::string> cuda_variant_names();
#endif

// CPU math shared by the CPU backend and the checker.
void route_f32(const Model& m, const HostTensor& x, int T, Routing& r);
void route_f64(const Model& m, const HostTensor& x, int T, Routing& r, std::vector<double>* logits);
// fp64 oracle for the given routing (r.ids/r.wts used as-is; wts recomputed in fp64 from logits).
void oracle_forward(const Model& m, const HostTensor& x, int T, const Routing& r,
                    const std::vector<double>& logits, std::vector<double>& out);
// Same, tokens [t0, t1) only, into out (sized T*H by the caller).
void oracle_tokens(const Model& m, const HostTensor& x, const Routing& r, const std::vector<double>& logits,
                   double* out, int t0, int t1);

}  // namespace moe
