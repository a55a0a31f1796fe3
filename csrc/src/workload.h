// workload.h — the timed inputs and what one iteration must move.
#pragma once
#include <vector>

#include "common.h"

namespace moe {

struct Workload {
  std::vector<HostTensor> xs;  // --rotate token inputs (every device's tokens), cycled through while timing
  double distinct_experts = 0; // mean distinct experts routed to per input
  double bytes_per_iter = 0;   // router + distinct experts' weights + activations in/out, x --repeat-work
};

Workload make_workload(const Model& m, const Config& c);

}  // namespace moe
