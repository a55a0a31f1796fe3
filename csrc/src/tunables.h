// tunables.h — where each tunable's value comes from, in this order:
//   1. --tune (source "flag"),
//   2. the tuning table (csrc/tuning/*.json, embedded at build time; source
//      "tuning_table"), an entry for this device, variant, shape, tokens and
//      dtype; --no-tuning-table skips it,
//   3. the variant table's default: a number (source "default") or "auto",
//      which the backend's plan for the variant fills in (source "heuristic").
// Every value is echoed per variant in the output JSON with its source.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "json.h"
#include "variant_table.h"

namespace moe {

// ---------------------------------------------------------------- tuning tables
// One entry: device name (exact, as the output's device.name reports it, or
// "*" for any device) + variant + shape + tokens + dtype -> tunable values.
struct TuningEntry {
  std::string file;  // e.g. "tuning/h100.json"
  int index = 0;     // position in its file's "entries"
  std::string device, variant, dtype;
  ShapeRequest req;  // shape, tokens, GPUs, shared experts, fp8 scales (req.dtype = dtype): the key with device, variant
  std::vector<std::pair<std::string, long long>> tunables;
  std::string measured;  // free text: how the values were chosen
  std::string where() const { return file + ": entries." + std::to_string(index); }
};

struct TuningTables {
  std::vector<std::string> files;
  std::vector<TuningEntry> entries;
};

// Reads every embedded tuning file against the variant table: unknown
// variants, unknown or out-of-range tunables and two entries for one key are
// errors naming the file and the entry.
bool load_tuning_tables(const std::vector<std::pair<std::string, std::string>>& files, const VariantTable& table,
                        TuningTables& out, std::string& err);
// The entry for this run: an exact device match first, then "*"; null if none.
const TuningEntry* find_tuning(const TuningTables& t, const std::string& device, const std::string& variant,
                               const ShapeRequest& r);
void write_tuning_tables(JsonWriter& j, const TuningTables& t);

// ---------------------------------------------------------------- resolved values
enum class TuneSource { Flag, TuningTable, Default, Heuristic };
const char* tune_source_name(TuneSource s);

struct TunableValue {
  std::string name;
  long long value = 0;
  TuneSource source = TuneSource::Default;
  bool resolved = false;  // false: "auto", waiting for the backend's heuristic
  std::string origin;     // tuning table: "tuning/h100.json: entries.3"
  std::string describe() const;  // "slice=32 (from --tune)" etc., for error messages
};

class TunableSet {
 public:
  std::vector<TunableValue> items;  // the variant's tunables, in table order
  const TunableValue* find(const std::string& name) const;
  // The value of a resolved tunable (a backend asking for one it does not
  // have, or before resolving it, is a programming error: exit 3).
  long long get(const std::string& name) const;
  // True when `name` is still "auto": the backend then calls set_heuristic.
  bool is_auto(const std::string& name) const;
  void set_heuristic(const std::string& name, long long value);
  std::string describe(const std::string& name) const;
  bool all_resolved(std::string& missing) const;
  void write_json(JsonWriter& j) const;  // {"name": {"value": v, "source": s}, ...}
};

// Steps 1-3 above, except the heuristics. flags: this variant's --tune values,
// already checked with tunable_reason.
TunableSet resolve_tunables(const VariantSpec& spec, const std::vector<std::pair<std::string, long long>>& flags,
                            const TuningEntry* entry);

}  // namespace moe
