// variant_table.cpp — reading, writing and checking against the variant table.
#include "variant_table.h"

#include <cctype>
#include <climits>

namespace moe {

const char* const kShapeFieldNames[kNumShapeFields] = {"hidden", "inter", "experts", "topk", "tokens"};

// ---------------------------------------------------------------- ObjectReader
ObjectReader::ObjectReader(const JsonValue& v, std::string path, std::string& err) : v_(v), path_(std::move(path)), err_(err) {
  if (!v.is(JsonValue::Kind::Object)) fail("", std::string("expected an object, got ") + json_kind_name(v.kind));
}
bool ObjectReader::fail(const std::string& sub, const std::string& what) {
  if (err_.empty()) {
    const std::string p = sub.empty() ? path_ : path(sub);
    err_ = (p.empty() ? "(top level)" : p) + ": " + what;
  }
  return false;
}
const JsonValue* ObjectReader::any(const char* key, bool required) {
  seen_.push_back(key);
  if (!ok() || !v_.is(JsonValue::Kind::Object)) return nullptr;
  const JsonValue* f = v_.find(key);
  if (!f && required) fail(key, "required");
  return f;
}
const JsonValue* ObjectReader::get(const char* key, JsonValue::Kind kind, bool required) {
  seen_.push_back(key);
  if (!ok() || !v_.is(JsonValue::Kind::Object)) return nullptr;
  const JsonValue* f = v_.find(key);
  if (!f) {
    if (required) fail(key, "required");
    return nullptr;
  }
  if (!f->is(kind)) {
    fail(key, std::string("expected ") + json_kind_name(kind) + ", got " + json_kind_name(f->kind));
    return nullptr;
  }
  return f;
}
std::optional<std::string> ObjectReader::str(const char* key, bool required) {
  const JsonValue* f = get(key, JsonValue::Kind::String, required);
  if (!f) return std::nullopt;
  return f->str;
}
std::optional<long long> ObjectReader::integer(const char* key, bool required, long long lo, long long hi) {
  const JsonValue* f = get(key, JsonValue::Kind::Number, required);
  if (!f) return std::nullopt;
  if (!f->is_int() || f->num < (double)lo || f->num > (double)hi) {
    fail(key, "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    return std::nullopt;
  }
  return (long long)f->num;
}
bool ObjectReader::finish() {
  if (!ok() || !v_.is(JsonValue::Kind::Object)) return ok();
  for (auto& kv : v_.obj) {
    bool known = false;
    for (auto& s : seen_) known = known || s == kv.first;
    if (!known) return fail(kv.first, "unknown key");
  }
  return true;
}

namespace {

constexpr long long kIntMax = 9007199254740991ll;  // what zod's z.int() accepts

bool name_ok(const std::string& s) {  // /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
  if (s.empty() || s.size() > 64 || !std::isalnum((unsigned char)s[0])) return false;
  for (char c : s) if (!std::isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}
bool tunable_name_ok(const std::string& s) {  // /^[a-z][a-z0-9_]{0,31}$/
  if (s.empty() || s.size() > 32 || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  for (char c : s) if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}
bool cc_ok(const std::string& s) {  // /^\d+\.\d+$/
  size_t dot = s.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == s.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) if (i != dot && !std::isdigit((unsigned char)s[i])) return false;
  return true;
}

bool read_name(ObjectReader& r, const char* key, std::string& out) {
  auto s = r.str(key, true);
  if (!s) return false;
  if (!name_ok(*s)) return r.fail(key, "invalid name \"" + *s + "\"");
  out = *s;
  return true;
}

bool read_limit(const JsonValue& v, const std::string& path, Limit& l, std::string& err) {
  ObjectReader r(v, path, err);
  l.min = r.integer("min", false, 1, kIntMax);
  l.max = r.integer("max", false, 1, kIntMax);
  l.multiple_of = r.integer("multiple_of", false, 1, kIntMax);
  if (const JsonValue* p = r.get("power_of_two", JsonValue::Kind::Bool, false)) l.power_of_two = p->b;
  return r.finish();
}

bool read_limits(const JsonValue* v, const std::string& path, Limits& out, std::string& err) {
  ObjectReader r(*v, path, err);
  for (int f = 0; f < kNumShapeFields; ++f) {
    const JsonValue* lv = r.get(kShapeFieldNames[f], JsonValue::Kind::Object, false);
    if (!r.ok()) return false;
    if (lv) {
      Limit l;
      if (!read_limit(*lv, r.path(kShapeFieldNames[f]), l, err)) return false;
      out.f[f] = l;
    }
  }
  return r.finish();
}

bool read_tunable(const std::string& name, const JsonValue& v, const std::string& path, TunableSpec& t, std::string& err) {
  ObjectReader r(v, path, err);
  t.name = name;
  t.summary = r.str("summary", false);
  if (const JsonValue* a = r.get("values", JsonValue::Kind::Array, false)) {
    if (a->arr.empty()) return r.fail("values", "expected at least one value");
    std::vector<long long> vals;
    for (size_t i = 0; i < a->arr.size(); ++i) {
      if (!a->arr[i].is_int()) return r.fail("values." + std::to_string(i), "expected an integer");
      vals.push_back((long long)a->arr[i].num);
    }
    t.values = vals;
  }
  t.min = r.integer("min", false, -kIntMax, kIntMax);
  t.max = r.integer("max", false, -kIntMax, kIntMax);
  t.multiple_of = r.integer("multiple_of", false, 1, kIntMax);
  const JsonValue* d = r.any("default", true);
  if (!r.ok()) return false;
  if (d->is(JsonValue::Kind::String) && d->str == "auto") t.default_auto = true;
  else if (d->is_int()) t.default_value = (long long)d->num;
  else return r.fail("default", "expected an integer or \"auto\"");
  if (!r.finish()) return false;
  // The two rules variant-table.ts adds on top of the shape of a tunable.
  if (!t.values && !(t.min && t.max)) return r.fail("", "expected values, or min and max");
  if (!t.default_auto) {
    std::string why = tunable_value_reason(t, t.default_value);
    if (!why.empty()) return r.fail("default", why);
  }
  return true;
}

bool read_variant(const JsonValue& v, const std::string& path, VariantSpec& s, std::string& err) {
  ObjectReader r(v, path, err);
  if (!read_name(r, "name", s.name)) return false;
  auto be = r.str("backend", true);
  if (!be) return false;
  if (*be != "cpu" && *be != "cuda") return r.fail("backend", "expected \"cpu\" or \"cuda\", got \"" + *be + "\"");
  s.backend = *be;
  if (!read_name(r, "family", s.family)) return false;
  const JsonValue* st = r.any("strategy", true);
  if (!r.ok()) return false;
  if (st->is(JsonValue::Kind::String)) {
    if (!name_ok(st->str)) return r.fail("strategy", "invalid name \"" + st->str + "\"");
    s.strategy = st->str;
  } else if (!st->is(JsonValue::Kind::Null)) {
    return r.fail("strategy", "expected a string or null");
  }
  auto sum = r.str("summary", true);
  if (!sum) return false;
  s.summary = *sum;
  const JsonValue* dt = r.get("dtypes", JsonValue::Kind::Array, true);
  if (!dt) return false;
  if (dt->arr.empty()) return r.fail("dtypes", "expected at least one dtype");
  for (size_t i = 0; i < dt->arr.size(); ++i) {
    if (!dt->arr[i].is(JsonValue::Kind::String)) return r.fail("dtypes." + std::to_string(i), "expected a string");
    s.dtypes.push_back(dt->arr[i].str);
  }
  const JsonValue* lim = r.get("limits", JsonValue::Kind::Object, true);
  if (!lim || !read_limits(lim, r.path("limits"), s.limits, err)) return false;
  s.min_compute_capability = r.str("min_compute_capability", false);
  if (s.min_compute_capability && !cc_ok(*s.min_compute_capability))
    return r.fail("min_compute_capability", "expected MAJOR.MINOR, got \"" + *s.min_compute_capability + "\"");
  s.note = r.str("note", false);
  s.max_gpus = r.integer("max_gpus", false, 1, kMaxGpus);
  if (const JsonValue* se = r.any("shared_experts", false)) {
    if (!se->is(JsonValue::Kind::Bool)) return r.fail("shared_experts", "expected true or false");
    s.shared_experts = se->b;
  }
  if (const JsonValue* fs = r.get("fp8_scales", JsonValue::Kind::Array, false)) {
    if (fs->arr.empty()) return r.fail("fp8_scales", "expected at least one of \"channel\", \"tensor\", \"block\"");
    std::vector<std::string> modes;
    for (size_t i = 0; i < fs->arr.size(); ++i) {
      const JsonValue& m = fs->arr[i];
      if (!m.is(JsonValue::Kind::String) || (m.str != "channel" && m.str != "tensor" && m.str != "block"))
        return r.fail("fp8_scales." + std::to_string(i), "expected \"channel\", \"tensor\" or \"block\"");
      modes.push_back(m.str);
    }
    s.fp8_scales = modes;
  }
  if (!r.ok()) return false;
  const JsonValue* tu = r.get("tunables", JsonValue::Kind::Object, true);
  if (!tu) return false;
  for (auto& kv : tu->obj) {
    const std::string tp = r.path("tunables." + kv.first);
    if (!tunable_name_ok(kv.first)) { err = tp + ": invalid tunable name"; return false; }
    TunableSpec t;
    if (!read_tunable(kv.first, kv.second, tp, t, err)) return false;
    s.tunables.push_back(t);
  }
  return r.finish();
}

void write_limit(JsonWriter& j, const Limit& l) {
  j.begin_obj();
  if (l.min) j.kv("min", *l.min);
  if (l.max) j.kv("max", *l.max);
  if (l.multiple_of) j.kv("multiple_of", *l.multiple_of);
  if (l.power_of_two) j.kv("power_of_two", *l.power_of_two);
  j.end_obj();
}
void write_limits(JsonWriter& j, const Limits& ls) {
  j.begin_obj();
  for (int f = 0; f < kNumShapeFields; ++f)
    if (ls.f[f]) { j.key(kShapeFieldNames[f]); write_limit(j, *ls.f[f]); }
  j.end_obj();
}

std::string limit_failure(int field, long long v, const std::optional<Limit>& l) {
  if (!l) return "";
  const std::string head = std::string(kShapeFieldNames[field]) + " (" + std::to_string(v) + ") must be ";
  if (l->min && v < *l->min) return head + ">= " + std::to_string(*l->min);
  if (l->max && v > *l->max) return head + "<= " + std::to_string(*l->max);
  if (l->multiple_of && v % *l->multiple_of != 0) return head + "a multiple of " + std::to_string(*l->multiple_of);
  if (l->power_of_two && *l->power_of_two && (v & (v - 1)) != 0) return head + "a power of two";
  return "";
}

std::string join(const std::vector<std::string>& xs, const char* sep) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) s += (i ? sep : "") + xs[i];
  return s;
}

}  // namespace

bool parse_variant_table(const std::string& text, const std::string& where, VariantTable& out, std::string& err) {
  out = VariantTable{};
  JsonValue doc;
  std::string perr;
  if (!parse_json(text, doc, perr)) { err = where + ": not JSON (" + perr + ")"; return false; }
  std::string e;
  ObjectReader r(doc, "", e);
  auto schema = r.str("schema", true);
  if (schema && *schema != "moefarm.variants/1") r.fail("schema", "expected \"moefarm.variants/1\", got \"" + *schema + "\"");
  if (schema) out.schema = *schema;
  out.about = r.str("about", false);
  if (const JsonValue* lim = r.get("limits", JsonValue::Kind::Object, true)) read_limits(lim, "limits", out.limits, e);
  if (const JsonValue* pr = r.get("presets", JsonValue::Kind::Array, true)) {
    for (size_t i = 0; i < pr->arr.size() && e.empty(); ++i) {
      ObjectReader pr_r(pr->arr[i], "presets." + std::to_string(i), e);
      PresetSpec p;
      if (!read_name(pr_r, "name", p.name)) break;
      auto h = pr_r.integer("hidden", true, 1, INT_MAX), in = pr_r.integer("inter", true, 1, INT_MAX);
      auto ex = pr_r.integer("experts", true, 1, INT_MAX), k = pr_r.integer("topk", true, 1, INT_MAX);
      auto se = pr_r.integer("shared_experts", false, 0, INT_MAX), si = pr_r.integer("shared_inter", false, 1, INT_MAX);
      if (!pr_r.ok()) break;
      if (se && *se > 0 && !si) { pr_r.fail("shared_inter", "expected shared_inter with shared_experts"); break; }
      if (!pr_r.finish()) break;
      p.hidden = (int)*h; p.inter = (int)*in; p.experts = (int)*ex; p.topk = (int)*k;
      p.shared_experts = se ? (int)*se : 0; p.shared_inter = si ? (int)*si : 0;
      out.presets.push_back(p);
    }
  }
  if (const JsonValue* vs = e.empty() ? r.get("variants", JsonValue::Kind::Array, true) : nullptr) {
    if (vs->arr.empty()) r.fail("variants", "expected at least one variant");
    for (size_t i = 0; i < vs->arr.size() && e.empty(); ++i) {
      VariantSpec s;
      if (read_variant(vs->arr[i], "variants." + std::to_string(i), s, e)) {
        if (out.find(s.name)) e = "variants: '" + s.name + "' listed twice";
        else out.variants.push_back(s);
      }
    }
  }
  if (e.empty()) r.finish();
  if (!e.empty()) { err = where + ": " + e; return false; }
  return true;
}

void write_variant_table(JsonWriter& j, const VariantTable& t) {
  j.begin_obj();
  j.kv("schema", t.schema);
  if (t.about) j.kv("about", *t.about);
  j.key("limits");
  write_limits(j, t.limits);
  j.key("presets");
  j.begin_arr();
  for (auto& p : t.presets) {
    j.begin_obj();
    j.kv("name", p.name); j.kv("hidden", p.hidden); j.kv("inter", p.inter); j.kv("experts", p.experts); j.kv("topk", p.topk);
    if (p.shared_experts) { j.kv("shared_experts", p.shared_experts); j.kv("shared_inter", p.shared_inter); }
    j.end_obj();
  }
  j.end_arr();
  j.key("variants");
  j.begin_arr();
  for (auto& v : t.variants) {
    j.begin_obj();
    j.kv("name", v.name);
    j.kv("backend", v.backend);
    j.kv("family", v.family);
    if (v.strategy) j.kv("strategy", *v.strategy); else j.kv_null("strategy");
    j.kv("summary", v.summary);
    j.key("dtypes");
    j.begin_arr();
    for (auto& d : v.dtypes) j.val(d);
    j.end_arr();
    j.key("limits");
    write_limits(j, v.limits);
    if (v.min_compute_capability) j.kv("min_compute_capability", *v.min_compute_capability);
    if (v.note) j.kv("note", *v.note);
    if (v.max_gpus) j.kv("max_gpus", *v.max_gpus);
    if (v.shared_experts) j.kv("shared_experts", *v.shared_experts);
    if (v.fp8_scales) {
      j.key("fp8_scales");
      j.begin_arr();
      for (auto& m : *v.fp8_scales) j.val(m);
      j.end_arr();
    }
    j.key("tunables");
    j.begin_obj();
    for (auto& tu : v.tunables) {
      j.key(tu.name.c_str());
      j.begin_obj();
      if (tu.summary) j.kv("summary", *tu.summary);
      if (tu.values) {
        j.key("values");
        j.begin_arr();
        for (long long x : *tu.values) j.val(x);
        j.end_arr();
      }
      if (tu.min) j.kv("min", *tu.min);
      if (tu.max) j.kv("max", *tu.max);
      if (tu.multiple_of) j.kv("multiple_of", *tu.multiple_of);
      if (tu.default_auto) j.kv("default", "auto"); else j.kv("default", tu.default_value);
      j.end_obj();
    }
    j.end_obj();
    j.end_obj();
  }
  j.end_arr();
  j.end_obj();
}

std::string unsupported_reason(const VariantTable& t, const VariantSpec& v, const ShapeRequest& r) {
  if (r.f[kTopk] > r.f[kExperts])
    return "topk (" + std::to_string(r.f[kTopk]) + ") must be <= experts (" + std::to_string(r.f[kExperts]) + ")";
  for (int f = 0; f < kNumShapeFields; ++f) {
    std::string why = limit_failure(f, r.f[f], t.limits.f[f]);
    if (why.empty()) why = limit_failure(f, r.f[f], v.limits.f[f]);
    if (!why.empty()) return why + (v.note && v.limits.f[f] ? " (" + *v.note + ")" : "");
  }
  if (r.shared_experts > 0 && !v.shared_experts.value_or(false))
    return "shared_experts (" + std::to_string(r.shared_experts) +
           ") are not supported by this variant (its table row does not say \"shared_experts\": true)";
  bool ok = false;
  for (auto& d : v.dtypes) ok = ok || d == r.dtype;
  if (!ok) return "dtype " + r.dtype + " is not supported (expected " + join(v.dtypes, " or ") + ")";
  if (r.dtype == "fp8") {
    const std::vector<std::string> modes = v.fp8_scales.value_or(std::vector<std::string>{"channel"});
    bool has = false;
    for (auto& m : modes) has = has || m == r.fp8_scales;
    if (!has) return "fp8_scales " + r.fp8_scales + " is not supported (expected " + join(modes, " or ") + ")";
  }
  const long long max_gpus = v.max_gpus.value_or(1);
  if (r.gpus > max_gpus)
    return "gpus (" + std::to_string(r.gpus) + ") must be <= " + std::to_string(max_gpus) +
           (max_gpus == 1 ? " (the variant has no multi-GPU code)" : "");
  if (r.gpus > 1 && r.f[kExperts] % r.gpus != 0)
    return "experts (" + std::to_string(r.f[kExperts]) + ") must be a multiple of gpus (" + std::to_string(r.gpus) +
           "): each GPU owns experts/gpus of them";
  return "";
}

std::string tunable_reason(const VariantSpec& v, const std::string& name, long long value) {
  const TunableSpec* t = v.tunable(name);
  if (!t) {
    std::vector<std::string> names;
    for (auto& x : v.tunables) names.push_back(x.name);
    return "unknown tunable '" + name + "' (" + (names.empty() ? "it has no tunables" : "tunables: " + join(names, ", ")) + ")";
  }
  return tunable_value_reason(*t, value);
}

std::string tunable_value_reason(const TunableSpec& ts, long long value) {
  const TunableSpec* t = &ts;
  const std::string& name = t->name;
  const std::string head = "tunable " + name + "=" + std::to_string(value) + ": ";
  if (t->values) {
    bool in = false;
    std::vector<std::string> vs;
    for (long long x : *t->values) { in = in || x == value; vs.push_back(std::to_string(x)); }
    if (!in) return head + "expected one of " + join(vs, ", ");
  }
  if (t->min && value < *t->min) return head + "must be >= " + std::to_string(*t->min);
  if (t->max && value > *t->max) return head + "must be <= " + std::to_string(*t->max);
  if (t->multiple_of && value % *t->multiple_of != 0) return head + "must be a multiple of " + std::to_string(*t->multiple_of);
  return "";
}

}  // namespace moe
