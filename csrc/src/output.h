// output.h — the JSON moe-bench prints (csrc/CONTRACT.md; zod schema in
// src/schema/bench-output.ts): the run's document, and --list.
#pragma once
#include <string>
#include <vector>

#include "backend.h"
#include "check.h"
#include "tunables.h"
#include "workload.h"

namespace moe {

extern const char* const kBenchSchema;  // "moefarm.bench/1"
extern const char* const kListSchema;   // "moefarm.list/1"

struct VariantOut {
  std::string name;
  TunableSet tunables;
  CheckResult check;
  std::vector<double> us, mhz;
  std::vector<int> rounds;
  Waits waits;
  bool energy_run = false;  // false: not timed, "energy": null
  EnergyResult energy;
  // Wall-clock bounds (ms since the Unix epoch) of this variant's timed iterations, warm-up included:
  // the worker cuts its GPU telemetry to this window.
  double window_start_ms = 0, window_end_ms = 0;
};

// --list: the variant table as this binary read it, the tuning tables, and what this build was compiled with.
std::string list_json(const VariantTable& table, const TuningTables& tuning);
// The run's document.
std::string result_json(const Config& c, const Model& m, Backend& be, const Workload& w,
                        const std::vector<VariantOut>& res, bool all_pass, double worst);

}  // namespace moe
