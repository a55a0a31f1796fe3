// embedded.cpp — the one translation unit that includes the generated tables.
#include "embedded.h"

#include "embedded_tables.h"  // generated: kEmbeddedVariants, kEmbeddedTuning, kEmbeddedTuningCount

namespace moe {

const char* embedded_variants_json() { return kEmbeddedVariants; }

std::vector<std::pair<std::string, std::string>> embedded_tuning_files() {
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; i < kEmbeddedTuningCount; ++i) out.emplace_back(kEmbeddedTuning[i][0], kEmbeddedTuning[i][1]);
  return out;
}

}  // namespace moe
