// check.h — correctness before timing: every variant against the fp64 oracle
// (cpu/oracle.h) on fresh random inputs, until every expert was routed to.
#pragma once
#include <vector>

#include "backend.h"
#include "common.h"

namespace moe {

struct CheckResult {
  bool pass = false, nan = false;
  double rel_err = 0, max_abs = 0, tol = 0;
  int cases = 0, experts_hit = 0, experts = 0, tie_reroutes = 0;
};

struct CheckCase {
  HostTensor x;
  Routing r;
  std::vector<double> lg, out;
};

// Tolerances of ||out - ref||2 / ||ref||2: fp32 1e-5, fp16 5e-3, bf16 2e-2, fp8 2e-2 (check.cpp says why).
double tol_for(DType d);
// Fresh random inputs until every expert was routed to (min 3 cases, cap 1024),
// and the oracle's output for each. hit: experts routed to.
void make_cases(const Model& m, const Config& c, std::vector<CheckCase>& cases, int& hit);
// Runs variant v on every case (output poisoned by the backend first).
CheckResult check_variant(Backend& be, int v, const Model& m, const Config& c, std::vector<CheckCase>& cases, int hit);

}  // namespace moe
