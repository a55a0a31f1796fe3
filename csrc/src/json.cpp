// json.cpp — writer escapes and a recursive-descent reader (RFC 8259 grammar,
// depth-limited, duplicate keys refused, positions in every error).
#include "json.h"

#include <cctype>
#include <cstdlib>

namespace moe {

void JsonWriter::str_(const char* v) {
  s += '"';
  for (const char* p = v; *p; ++p) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\') { s += '\\'; s += (char)c; }
    else if (c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); s += b; }
    else s += (char)c;
  }
  s += '"';
}

const char* json_kind_name(JsonValue::Kind k) {
  switch (k) {
    case JsonValue::Kind::Null: return "null";
    case JsonValue::Kind::Bool: return "a boolean";
    case JsonValue::Kind::Number: return "a number";
    case JsonValue::Kind::String: return "a string";
    case JsonValue::Kind::Array: return "an array";
    default: return "an object";
  }
}

namespace {

constexpr int kMaxDepth = 64;

struct Reader {
  explicit Reader(const std::string& text) : t(text) {}
  const std::string& t;
  size_t i = 0;
  std::string err;

  bool fail(const std::string& what) {
    if (!err.empty()) return false;
    int line = 1, col = 1;
    for (size_t k = 0; k < i && k < t.size(); ++k) {
      if (t[k] == '\n') { ++line; col = 1; } else ++col;
    }
    err = "line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what;
    return false;
  }
  void ws() { while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i; }
  bool lit(const char* w) {
    size_t n = std::char_traits<char>::length(w);
    if (t.compare(i, n, w) != 0) return false;
    i += n;
    return true;
  }

  static void put_utf8(std::string& o, uint32_t cp) {
    if (cp < 0x80) o += (char)cp;
    else if (cp < 0x800) { o += (char)(0xc0 | (cp >> 6)); o += (char)(0x80 | (cp & 0x3f)); }
    else if (cp < 0x10000) { o += (char)(0xe0 | (cp >> 12)); o += (char)(0x80 | ((cp >> 6) & 0x3f)); o += (char)(0x80 | (cp & 0x3f)); }
    else { o += (char)(0xf0 | (cp >> 18)); o += (char)(0x80 | ((cp >> 12) & 0x3f)); o += (char)(0x80 | ((cp >> 6) & 0x3f)); o += (char)(0x80 | (cp & 0x3f)); }
  }
  bool hex4(uint32_t& v) {
    if (i + 4 > t.size()) return fail("expected 4 hex digits after \\u");
    v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = t[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return fail("expected a hex digit in \\u escape");
    }
    return true;
  }
  bool string(std::string& o) {
    ++i;  // opening quote
    while (true) {
      if (i >= t.size()) return fail("unterminated string");
      char c = t[i];
      if (c == '"') { ++i; return true; }
      if ((unsigned char)c < 0x20) return fail("control character in string");
      if (c != '\\') { o += c; ++i; continue; }
      if (++i >= t.size()) return fail("unterminated escape");
      char e = t[i++];
      switch (e) {
        case '"': o += '"'; break;
        case '\\': o += '\\'; break;
        case '/': o += '/'; break;
        case 'b': o += '\b'; break;
        case 'f': o += '\f'; break;
        case 'n': o += '\n'; break;
        case 'r': o += '\r'; break;
        case 't': o += '\t'; break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00) {
            uint32_t lo = 0;
            if (!lit("\\u") || !hex4(lo) || lo < 0xdc00 || lo >= 0xe000) return fail("unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          put_utf8(o, cp);
          break;
        }
        default: return fail(std::string("unknown escape \\") + e);
      }
    }
  }
  bool number(double& v) {
    const size_t b = i;
    if (t[i] == '-') ++i;
    if (i >= t.size() || !std::isdigit((unsigned char)t[i])) return fail("expected a digit");
    if (t[i] == '0') ++i;
    else while (i < t.size() && std::isdigit((unsigned char)t[i])) ++i;
    if (i < t.size() && t[i] == '.') {
      ++i;
      if (i >= t.size() || !std::isdigit((unsigned char)t[i])) return fail("expected a digit after '.'");
      while (i < t.size() && std::isdigit((unsigned char)t[i])) ++i;
    }
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
      ++i;
      if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
      if (i >= t.size() || !std::isdigit((unsigned char)t[i])) return fail("expected a digit in the exponent");
      while (i < t.size() && std::isdigit((unsigned char)t[i])) ++i;
    }
    v = std::strtod(t.substr(b, i - b).c_str(), nullptr);
    if (!std::isfinite(v)) return fail("number out of range");
    return true;
  }
  bool value(JsonValue& v, int depth) {
    if (depth > kMaxDepth) return fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    ws();
    if (i >= t.size()) return fail("unexpected end of input");
    const char c = t[i];
    if (c == '{') {
      v.kind = JsonValue::Kind::Object;
      ++i;
      ws();
      if (i < t.size() && t[i] == '}') { ++i; return true; }
      while (true) {
        ws();
        if (i >= t.size() || t[i] != '"') return fail("expected a string key");
        std::string k;
        if (!string(k)) return false;
        if (v.find(k)) return fail("key \"" + k + "\" appears twice");
        ws();
        if (i >= t.size() || t[i] != ':') return fail("expected ':' after a key");
        ++i;
        v.obj.emplace_back(k, JsonValue{});
        if (!value(v.obj.back().second, depth + 1)) return false;
        ws();
        if (i < t.size() && t[i] == ',') { ++i; continue; }
        if (i < t.size() && t[i] == '}') { ++i; return true; }
        return fail("expected ',' or '}' in an object");
      }
    }
    if (c == '[') {
      v.kind = JsonValue::Kind::Array;
      ++i;
      ws();
      if (i < t.size() && t[i] == ']') { ++i; return true; }
      while (true) {
        v.arr.emplace_back();
        if (!value(v.arr.back(), depth + 1)) return false;
        ws();
        if (i < t.size() && t[i] == ',') { ++i; continue; }
        if (i < t.size() && t[i] == ']') { ++i; return true; }
        return fail("expected ',' or ']' in an array");
      }
    }
    if (c == '"') { v.kind = JsonValue::Kind::String; return string(v.str); }
    if (c == '-' || std::isdigit((unsigned char)c)) { v.kind = JsonValue::Kind::Number; return number(v.num); }
    if (lit("true")) { v.kind = JsonValue::Kind::Bool; v.b = true; return true; }
    if (lit("false")) { v.kind = JsonValue::Kind::Bool; v.b = false; return true; }
    if (lit("null")) { v.kind = JsonValue::Kind::Null; return true; }
    return fail(std::string("unexpected character '") + c + "'");
  }
};

}  // namespace

bool parse_json(const std::string& text, JsonValue& out, std::string& err) {
  Reader r(text);
  out = JsonValue{};
  if (!r.value(out, 0)) { err = r.err; return false; }
  r.ws();
  if (r.i != text.size()) { r.fail("unexpected text after the document"); err = r.err; return false; }
  return true;
}

}  // namespace moe
