// variant_table.h — THE variant table (csrc/variants.json, embedded at build
// time): shape presets, and per variant its backend, family, strategy, dtypes,
// shape limits, minimum compute capability and tunables. --list prints it, every
// constraint check reads it, and the coordinator reads the same file
// (src/schema/variant-table.ts: the same schema, the same rules in the same words).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "json.h"

namespace moe {

// Most GPUs a run may split its experts across (--gpus, a variant's max_gpus, a tuning entry's gpus); the
// coordinator's MAX_GPUS (src/schema/variant-table.ts).
constexpr int kMaxGpus = 64;

enum ShapeField { kHidden, kInter, kExperts, kTopk, kTokens, kNumShapeFields };
extern const char* const kShapeFieldNames[kNumShapeFields];

// A limit on one integer field: every key that is given must hold.
struct Limit {
  std::optional<long long> min, max, multiple_of;
  std::optional<bool> power_of_two;
};
struct Limits { std::optional<Limit> f[kNumShapeFields]; };

// A tunable: a list of allowed values or a range; its default is a value or
// "auto" (the backend's heuristic decides, and says so in the output).
struct TunableSpec {
  std::string name;
  std::optional<std::string> summary;
  std::optional<std::vector<long long>> values;
  std::optional<long long> min, max, multiple_of;
  bool default_auto = false;
  long long default_value = 0;
};

struct VariantSpec {
  std::string name, backend, family;
  std::optional<std::string> strategy;  // null in the file: the family has one way
  std::string summary;
  std::vector<std::string> dtypes;
  Limits limits;
  std::optional<std::string> min_compute_capability;  // "9.0"
  std::optional<std::string> note;
  // Most GPUs (expert-parallel devices, --gpus) one run of this variant may use;
  // absent in the file: 1 (the variant has no multi-device code).
  std::optional<long long> max_gpus;
  std::optional<bool> shared_experts;  // true: runs layers with shared experts; absent/false: refuses them
  // With dtype fp8: what its scales may cover (--fp8-scales: "channel", "tensor", "block"); absent: ["channel"].
  std::optional<std::vector<std::string>> fp8_scales;
  std::vector<TunableSpec> tunables;  // file order
  const TunableSpec* tunable(const std::string& n) const {
    for (auto& t : tunables) if (t.name == n) return &t;
    return nullptr;
  }
};

// shared_experts / shared_inter: optional in the file (absent: 0, no shared experts).
struct PresetSpec { std::string name; int hidden = 0, inter = 0, experts = 0, topk = 0, shared_experts = 0, shared_inter = 0; };

struct VariantTable {
  std::string schema;
  std::optional<std::string> about;
  Limits limits;  // what the command line accepts at all, for every variant
  std::vector<PresetSpec> presets;
  std::vector<VariantSpec> variants;
  const VariantSpec* find(const std::string& name) const {
    for (auto& v : variants) if (v.name == name) return &v;
    return nullptr;
  }
  const PresetSpec* preset(const std::string& name) const {
    for (auto& p : presets) if (p.name == name) return &p;
    return nullptr;
  }
  std::vector<std::string> names_of(const std::string& backend) const {
    std::vector<std::string> out;
    for (auto& v : variants) if (v.backend == backend) out.push_back(v.name);
    return out;
  }
};

// Strict: unknown keys, missing keys and wrong types are errors
// "<where>: <path>: <what>", as parseVariantTable reports them.
bool parse_variant_table(const std::string& text, const std::string& where, VariantTable& out, std::string& err);
// The table as parsed, field for field (what --list prints under "table").
void write_variant_table(JsonWriter& j, const VariantTable& t);

// What a run asks of a variant.
struct ShapeRequest {
  long long f[kNumShapeFields] = {0, 0, 0, 0, 0};
  std::string dtype;
  long long gpus = 1;  // --gpus: devices the experts are split across
  long long shared_experts = 0, shared_inter = 0;
  std::string fp8_scales = "channel";  // --fp8-scales (asked of a variant only with dtype fp8)
};
// Why this variant cannot run the request ("" when it can): the rule and the
// words of unsupportedReason in src/schema/variant-table.ts, in the same order.
std::string unsupported_reason(const VariantTable& t, const VariantSpec& v, const ShapeRequest& r);
// Why `value` is not allowed for tunable `name` of this variant ("" when it is):
// the rule and the words of tunableReason in src/schema/variant-table.ts.
std::string tunable_reason(const VariantSpec& v, const std::string& name, long long value);
std::string tunable_value_reason(const TunableSpec& t, long long value);  // the same, for a known tunable

// Shared by the table and the tuning tables' readers: a JSON object read field
// by field, each error naming its path; keys never asked for are errors.
class ObjectReader {
 public:
  ObjectReader(const JsonValue& v, std::string path, std::string& err);
  bool ok() const { return err_.empty(); }
  const JsonValue* get(const char* key, JsonValue::Kind kind, bool required);
  const JsonValue* any(const char* key, bool required);  // a key of any kind
  std::optional<std::string> str(const char* key, bool required);
  std::optional<long long> integer(const char* key, bool required, long long lo, long long hi);
  bool finish();  // errors on keys that were never asked for
  bool fail(const std::string& sub, const std::string& what);
  std::string path(const std::string& sub) const { return path_.empty() ? sub : path_ + "." + sub; }
 private:
  const JsonValue& v_;
  std::string path_;
  std::string& err_;
  std::vector<std::string> seen_;
};

}  // namespace moe
