// energy.h — energy per forward from the GPU's own energy counter (NVML
// nvmlDeviceGetTotalEnergyConsumption, millijoules since the driver loaded).
// libnvidia-ml.so.1 is opened at run time with dlopen: no build dependency, and
// a machine without it reports null energy with the reason.
//
// The counter is coarse (H100, csrc/BENCHMARKS.md "Energy per forward"): it
// changes every ~100 ms, in steps of 7-23 J, and one read takes 3-6 ms. A timed
// window of 200 decode forwards (~10 ms) sees no update at all, so the energy
// is NOT read around the timed iterations. After a variant's timing the backend
// runs the same forward back to back in an energy window of its own (at least
// --energy-ms, default 500, and at least kMinUpdates counter updates, from one
// update of the counter to a later one, the GPU kept busy throughout):
//   mean power = (counter at the last update - at the first) / (host time between them),
//   joules per forward = mean power x mean GPU time per forward in that window.
// Each end of the window is known to within half a read (~3 ms): ~1% of 500 ms.
#pragma once
#include <functional>
#include <string>

#include "json.h"

namespace moe {

constexpr int kMinUpdates = 4;  // counter updates inside the window, at least

struct EnergyResult {
  bool measured = false;
  std::string reason;                       // why joules_per_forward is null
  double joules_per_forward = NAN, mean_power_w = NAN;
  double window_ms = 0;                     // first to last counter update used
  double forward_us = NAN;                  // mean GPU time per forward in the window
  long long forwards = 0;                   // forwards run for the window (ramp included)
  int updates = 0;                          // counter updates inside the window
  double update_ms_median = NAN, update_ms_min = NAN, update_ms_max = NAN;  // the counter's period, as seen
  long long step_mj_min = 0;                // smallest non-zero counter increase seen
  double unix_ms[2] = {0, 0};               // wall clock of the window
  void write_json(JsonWriter& j) const;
  static EnergyResult unavailable(const std::string& why) { EnergyResult r; r.reason = why; return r; }
};

// One GPU's NVML energy counter.
class EnergyCounter {
 public:
  EnergyCounter() = default;
  EnergyCounter(const EnergyCounter&) = delete;
  EnergyCounter& operator=(const EnergyCounter&) = delete;
  ~EnergyCounter();
  // Loads NVML and finds the GPU with this PCI bus id ("0000:18:00.0"); "" or why not.
  std::string open(const std::string& pci_bus_id);
  bool ok() const { return dev_ != nullptr; }
  const std::string& reason() const { return reason_; }
  bool read_mj(unsigned long long& mj, std::string& err);
 private:
  void* lib_ = nullptr;
  void* dev_ = nullptr;
  bool inited_ = false;
  std::string reason_ = "NVML not opened";
  int (*get_energy_)(void*, unsigned long long*) = nullptr;
  const char* (*error_string_)(int) = nullptr;
  int (*shutdown_)() = nullptr;
};

// What a backend gives the energy window: batches of forwards launched without
// waiting, a poll for the oldest batch in flight, and a drain that returns the
// GPU milliseconds from the first batch's start to the last one's end.
struct EnergyWork {
  long long forwards_per_batch = 1;
  std::function<void()> launch_batch;
  std::function<bool()> oldest_done;  // true (and forgets it) when the oldest batch in flight has finished
  std::function<double()> drain;
};

EnergyResult measure_energy(EnergyCounter& counter, const EnergyWork& work, int min_ms);

}  // namespace moe
