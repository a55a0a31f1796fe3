// workload.h — the timed inputs and what one iteration must move.
#pragma once
#include <vector>

#include "common.h"

namespace moe {

struct Workload {
  std::vector<HostTensor> xs;  // --rotate token inputs (every device's tokens), cycled through while timing
  double distinct_experts = 0; // mean distinct experts routed to per input
  double bytes_per_iter = 0;   // router + distinct experts' weights + activations in/out, x --repeat-work
  // --gpus N: one device's share of bytes_per_iter (the router and shared experts, the distinct experts it owns,
  // its own tokens in and out): the mean over devices (bytes_per_iter / N) and the mean over inputs of the
  // largest device's, the bytes the slowest device reads (the layer waits for it). N = 1: both bytes_per_iter.
  double bytes_per_gpu_mean = 0, bytes_per_gpu_max = 0;
};

Workload make_workload(const Model& m, const Config& c);

}  // namespace moe
