// backend.h — what main.cpp needs from a backend (CPU or CUDA). A variant is
// addressed by its index in the run's --variant list, after plan() accepted it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "energy.h"
#include "json.h"
#include "tunables.h"
#include "variant_table.h"

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
  // As the output's device.name reports it: the key of the tuning tables.
  virtual std::string device_name() const = 0;
  // "" when the device can run a variant needing this compute capability ("9.0"), else why not.
  virtual std::string capability_reason(const std::string& /*min_cc*/) const { return ""; }
  virtual int default_rotate() const = 0;
  virtual void device_json(JsonWriter& j) = 0;
  // Adds the next variant of the run: maps its family/strategy to the code that
  // runs it, fills its "auto" tunables (source heuristic) and checks the values
  // that depend on the shape or the device. "" on success, else the failure,
  // naming the tunable and where its value came from. Call before upload().
  // scales: what an fp8 scale covers (--fp8-scales; meaningful with dt FP8 only).
  virtual std::string plan(const VariantSpec& spec, const Shape& s, int T, DType dt, Fp8Scales scales, TunableSet& tunables) = 0;
  // How the planned variant launches (cuda: blocks, threads, shared memory); null on cpu.
  virtual void launch_json(int /*v*/, JsonWriter& j) { j.null(); }
  virtual void upload(const Model& m, const Config& cfg) = 0;
  // One forward of variant v on x (T tokens). out: [T][H] floats (converted from
  // the stored dtype; the backend poisons its output buffer with NaN first).
  // ids: [T][K] experts the variant routed each token to.
  virtual void run_once(int v, const HostTensor& x, int T, std::vector<float>& out, std::vector<int>& ids) = 0;
  virtual void set_rotation(const std::vector<HostTensor>& xs, int T) = 0;
  // Warm up, then time `iters` iterations; samples in microseconds, plus the
  // in-kernel SM clock per sample (empty on CPU).
  virtual void time_iters(int v, int warmup, int iters, std::vector<double>& us, std::vector<double>& mhz) = 0;
  // Energy per forward of variant v over its own window (energy.h); the CPU
  // backend has no counter and says so.
  virtual EnergyResult energy(int v, int min_ms, double median_us) = 0;
  // Persistent variants: traced launch(es) -> waits, and Chrome trace events
  // appended to `trace` (pid = variant index). Default: none.
  virtual Waits trace_waits(int /*v*/, int /*pid*/, JsonWriter* /*trace*/) { return Waits{}; }
  // Expert parallelism (--gpus N > 1): "" when every checked forward of variant v over N devices
  // equalled, bit for bit, the same code on one device; else what differed (the check then fails).
  virtual std::string ep_mismatch(int /*v*/) const { return ""; }
  // The "ep" object of variant v's result (dispatch counts, the single-device comparison); null without --gpus.
  virtual void ep_json(int /*v*/, JsonWriter& j) const { j.null(); }
};

std::unique_ptr<Backend> make_cpu_backend();
#ifdef MOE_WITH_CUDA
// gpus: --gpus (the family "ep" variants split the layer over that many devices; the others use device 0).
std::unique_ptr<Backend> make_cuda_backend(int gpus);
// Every cuda row of the table has code in this build, and all code has a row:
// "" or the mismatch (checked before anything runs, --list included).
std::string cuda_registry_mismatch(const VariantTable& t);
#endif
std::string cpu_registry_mismatch(const VariantTable& t);

}  // namespace moe
