// json.h — the binary's own small JSON: a writer for its output and a reader
// for the tables it embeds (variants.json, tuning/*.json). No third-party code:
// the documents are small and written by this project, and a reader that keeps
// object keys in file order lets --list print the table as it was written.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace moe {

// ---------------------------------------------------------------- writer
class JsonWriter {
 public:
  std::string s;
  void key(const char* k) { comma(); str_(k); s += ':'; need_comma_ = false; }
  void begin_obj() { comma(); s += '{'; need_comma_ = false; }
  void end_obj() { s += '}'; need_comma_ = true; }
  void begin_arr() { comma(); s += '['; need_comma_ = false; }
  void end_arr() { s += ']'; need_comma_ = true; }
  void val(const std::string& v) { comma(); str_(v.c_str()); need_comma_ = true; }
  void val(const char* v) { if (!v) { null(); return; } comma(); str_(v); need_comma_ = true; }
  void val(bool b) { comma(); s += b ? "true" : "false"; need_comma_ = true; }
  void val(int v) { comma(); s += std::to_string(v); need_comma_ = true; }
  void val(long long v) { comma(); s += std::to_string(v); need_comma_ = true; }
  void val(uint64_t v) { comma(); s += std::to_string(v); need_comma_ = true; }
  void val(double v) {  // never NaN/Infinity literals: those become null
    comma();
    if (!std::isfinite(v)) s += "null";
    else { char b[40]; std::snprintf(b, sizeof b, "%.9g", v); s += b; }
    need_comma_ = true;
  }
  void null() { comma(); s += "null"; need_comma_ = true; }
  template <class T> void kv(const char* k, T v) { key(k); val(v); }
  void kv_null(const char* k) { key(k); null(); }
 private:
  bool need_comma_ = false;
  void comma() { if (need_comma_) s += ','; }
  void str_(const char* v);
};

// ---------------------------------------------------------------- reader
struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<JsonValue> arr;
  std::vector<std::pair<std::string, JsonValue>> obj;  // file order

  bool is(Kind k) const { return kind == k; }
  // An integer that a double holds exactly (|x| <= 2^53).
  bool is_int() const { return kind == Kind::Number && std::floor(num) == num && std::fabs(num) <= 9007199254740992.0; }
  const JsonValue* find(const std::string& k) const {
    for (auto& kv : obj) if (kv.first == k) return &kv.second;
    return nullptr;
  }
};
const char* json_kind_name(JsonValue::Kind k);

// Parses one whole document. On error returns false and sets err to
// "line L, column C: what was expected".
bool parse_json(const std::string& text, JsonValue& out, std::string& err);

}  // namespace moe
