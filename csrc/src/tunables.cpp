// tunables.cpp — tuning tables and the resolution of tunable values.
#include "tunables.h"

#include <climits>

namespace moe {

const char* tune_source_name(TuneSource s) {
  switch (s) {
    case TuneSource::Flag: return "flag";
    case TuneSource::TuningTable: return "tuning_table";
    case TuneSource::Default: return "default";
    default: return "heuristic";
  }
}

std::string TunableValue::describe() const {
  const std::string head = name + "=" + std::to_string(value);
  switch (source) {
    case TuneSource::Flag: return head + " (from --tune)";
    case TuneSource::TuningTable: return head + " (from the tuning table, " + origin + ")";
    case TuneSource::Default: return head + " (the variant table's default)";
    default: return head + " (heuristic)";
  }
}

const TunableValue* TunableSet::find(const std::string& name) const {
  for (auto& t : items) if (t.name == name) return &t;
  return nullptr;
}
long long TunableSet::get(const std::string& name) const {
  const TunableValue* t = find(name);
  if (!t || !t->resolved) die_runtime("internal: tunable '" + name + "' asked for but " + (t ? "not resolved" : "not in the variant table"));
  return t->value;
}
bool TunableSet::is_auto(const std::string& name) const {
  const TunableValue* t = find(name);
  return t && !t->resolved;
}
void TunableSet::set_heuristic(const std::string& name, long long value) {
  for (auto& t : items)
    if (t.name == name && !t.resolved) { t.value = value; t.source = TuneSource::Heuristic; t.resolved = true; }
}
std::string TunableSet::describe(const std::string& name) const {
  const TunableValue* t = find(name);
  return t ? t->describe() : name;
}
bool TunableSet::all_resolved(std::string& missing) const {
  for (auto& t : items)
    if (!t.resolved) { missing = t.name; return false; }
  return true;
}
void TunableSet::write_json(JsonWriter& j) const {
  j.begin_obj();
  for (auto& t : items) {
    j.key(t.name.c_str());
    j.begin_obj();
    j.kv("value", t.value);
    j.kv("source", tune_source_name(t.source));
    if (t.source == TuneSource::TuningTable) j.kv("origin", t.origin);
    j.end_obj();
  }
  j.end_obj();
}

TunableSet resolve_tunables(const VariantSpec& spec, const std::vector<std::pair<std::string, long long>>& flags,
                            const TuningEntry* entry) {
  TunableSet set;
  for (auto& ts : spec.tunables) {
    TunableValue v;
    v.name = ts.name;
    bool done = false;
    for (auto& f : flags)
      if (f.first == ts.name) { v.value = f.second; v.source = TuneSource::Flag; v.resolved = done = true; }
    if (!done && entry)
      for (auto& e : entry->tunables)
        if (e.first == ts.name) {
          v.value = e.second; v.source = TuneSource::TuningTable; v.origin = entry->where(); v.resolved = done = true;
        }
    if (!done && !ts.default_auto) { v.value = ts.default_value; v.source = TuneSource::Default; v.resolved = true; }
    set.items.push_back(v);
  }
  return set;
}

// ---------------------------------------------------------------- tuning tables
namespace {

// The request an entry is for, beyond device and variant: shape, tokens, dtype, GPUs, shared experts, fp8 scales.
bool same_request(const ShapeRequest& a, const ShapeRequest& b) {
  for (int f = 0; f < kNumShapeFields; ++f) if (a.f[f] != b.f[f]) return false;
  return a.dtype == b.dtype && a.gpus == b.gpus && a.shared_experts == b.shared_experts && a.shared_inter == b.shared_inter &&
         a.fp8_scales == b.fp8_scales;
}

bool same_key(const TuningEntry& a, const TuningEntry& b) {
  return a.device == b.device && a.variant == b.variant && same_request(a.req, b.req);
}

bool read_entry(const JsonValue& v, const std::string& file, int index, const VariantTable& table, TuningEntry& e,
                std::string& err) {
  e.file = file;
  e.index = index;
  std::string sub;
  ObjectReader r(v, "entries." + std::to_string(index), sub);
  auto dev = r.str("device", true);
  auto var = r.str("variant", true);
  for (int f = 0; f < kNumShapeFields; ++f)
    if (auto x = r.integer(kShapeFieldNames[f], true, 1, INT_MAX)) e.req.f[f] = *x;
  auto dt = r.str("dtype", true);
  // Absent at their defaults, as in a sweep point: one GPU, no shared experts, fp8 scales per channel.
  if (auto g = r.integer("gpus", false, 2, kMaxGpus)) e.req.gpus = *g;
  if (auto n = r.integer("shared_experts", false, 1, INT_MAX)) e.req.shared_experts = *n;
  if (auto i = r.integer("shared_inter", false, 1, INT_MAX)) e.req.shared_inter = *i;
  if (auto sc = r.str("fp8_scales", false)) {
    if (*sc != "tensor" && *sc != "block") r.fail("fp8_scales", "expected \"tensor\" or \"block\" (absent: per channel)");
    else e.req.fp8_scales = *sc;
  }
  const JsonValue* tu = r.get("tunables", JsonValue::Kind::Object, true);
  if (auto m = r.str("measured", false)) e.measured = *m;
  r.finish();
  if (!sub.empty()) { err = file + ": " + sub; return false; }
  e.device = *dev;
  e.variant = *var;
  e.dtype = e.req.dtype = *dt;
  if (e.device.empty()) { err = e.where() + ".device: expected a device name or \"*\""; return false; }
  if ((e.req.shared_experts > 0) != (e.req.shared_inter > 0)) {
    err = e.where() + ": shared_experts and shared_inter go together (both absent: no shared experts)";
    return false;
  }
  if (e.req.fp8_scales != "channel" && e.dtype != "fp8") {
    err = e.where() + ".fp8_scales: only for dtype fp8 (this entry's dtype is " + e.dtype + ")";
    return false;
  }
  const VariantSpec* spec = table.find(e.variant);
  if (!spec) { err = e.where() + ".variant: '" + e.variant + "' is not in variants.json"; return false; }
  for (auto& kv : tu->obj) {
    if (!kv.second.is_int()) { err = e.where() + ".tunables." + kv.first + ": expected an integer"; return false; }
    const long long x = (long long)kv.second.num;
    std::string why = tunable_reason(*spec, kv.first, x);
    if (!why.empty()) { err = e.where() + ": variant " + e.variant + ": " + why; return false; }
    e.tunables.emplace_back(kv.first, x);
  }
  return true;
}

}  // namespace

bool load_tuning_tables(const std::vector<std::pair<std::string, std::string>>& files, const VariantTable& table,
                        TuningTables& out, std::string& err) {
  out = TuningTables{};
  for (auto& f : files) {
    out.files.push_back(f.first);
    JsonValue doc;
    std::string perr;
    if (!parse_json(f.second, doc, perr)) { err = f.first + ": not JSON (" + perr + ")"; return false; }
    std::string sub;
    ObjectReader r(doc, "", sub);
    auto schema = r.str("schema", true);
    if (schema && *schema != "moefarm.tuning/1") r.fail("schema", "expected \"moefarm.tuning/1\", got \"" + *schema + "\"");
    r.str("about", false);
    const JsonValue* entries = r.get("entries", JsonValue::Kind::Array, true);
    r.finish();
    if (!sub.empty()) { err = f.first + ": " + sub; return false; }
    for (size_t i = 0; i < entries->arr.size(); ++i) {
      TuningEntry e;
      if (!read_entry(entries->arr[i], f.first, (int)i, table, e, err)) return false;
      for (auto& o : out.entries)
        if (same_key(o, e)) { err = e.where() + ": the same key as " + o.where(); return false; }
      out.entries.push_back(e);
    }
  }
  return true;
}

const TuningEntry* find_tuning(const TuningTables& t, const std::string& device, const std::string& variant,
                               const ShapeRequest& r) {
  const TuningEntry* wild = nullptr;
  for (auto& e : t.entries) {
    if (e.variant != variant || !same_request(e.req, r)) continue;
    if (e.device == device) return &e;
    if (e.device == "*") wild = &e;
  }
  return wild;
}

void write_tuning_tables(JsonWriter& j, const TuningTables& t) {
  j.begin_obj();
  j.key("files");
  j.begin_arr();
  for (auto& f : t.files) j.val(f);
  j.end_arr();
  j.key("entries");
  j.begin_arr();
  for (auto& e : t.entries) {
    j.begin_obj();
    j.kv("file", e.file);
    j.kv("device", e.device);
    j.kv("variant", e.variant);
    for (int f = 0; f < kNumShapeFields; ++f) j.kv(kShapeFieldNames[f], e.req.f[f]);
    j.kv("dtype", e.dtype);
    if (e.req.gpus != 1) j.kv("gpus", e.req.gpus);
    if (e.req.shared_experts) { j.kv("shared_experts", e.req.shared_experts); j.kv("shared_inter", e.req.shared_inter); }
    if (e.req.fp8_scales != "channel") j.kv("fp8_scales", e.req.fp8_scales);
    j.key("tunables");
    j.begin_obj();
    for (auto& kv : e.tunables) j.kv(kv.first.c_str(), kv.second);
    j.end_obj();
    if (!e.measured.empty()) j.kv("measured", e.measured);
    j.end_obj();
  }
  j.end_arr();
  j.end_obj();
}

}  // namespace moe
