// embedded.h — the tables compiled into this binary: csrc/variants.json and
// csrc/tuning/*.json, wrapped by the Makefile into $(BUILD)/gen/embedded_tables.h
// (raw string literals; only make and sh on the build host).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace moe {

const char* embedded_variants_json();
// (path relative to csrc/, text), sorted by path.
std::vector<std::pair<std::string, std::string>> embedded_tuning_files();

}  // namespace moe
