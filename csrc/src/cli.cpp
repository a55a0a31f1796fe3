// cli.cpp — flags to a Config. Limits on the shape and the token count are not
// checked here: they are the variant table's (main.cpp checks every variant).
#include "cli.h"

#include <cerrno>
#include <climits>
#include <set>

namespace moe {

namespace {

long long parse_int(const std::string& flag, const std::string& v, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || x < lo || x > hi)
    die_usage(flag + ": expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got \"" + v + "\"");
  return x;
}

std::vector<std::string> split(const std::string& s, char c) {
  std::vector<std::string> out;
  size_t b = 0;
  while (true) {
    size_t e = s.find(c, b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return out;
}

// --tune [VARIANT:]name=value[,name=value...]
void parse_tune(const std::string& arg, std::vector<TuneFlag>& out) {
  const std::string usage = "--tune: expected [VARIANT:]NAME=VALUE[,NAME=VALUE...], got \"" + arg + "\"";
  std::string variant, list = arg;
  const size_t colon = arg.find(':');
  if (colon != std::string::npos) {
    variant = arg.substr(0, colon);
    list = arg.substr(colon + 1);
    if (variant.empty()) die_usage(usage);
  }
  for (auto& item : split(list, ',')) {
    const size_t eq = item.find('=');
    if (item.empty() || eq == std::string::npos || eq == 0) die_usage(usage);
    TuneFlag f;
    f.variant = variant;
    f.name = item.substr(0, eq);
    const std::string v = item.substr(eq + 1);
    char* end = nullptr;
    errno = 0;
    f.value = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || errno)
      die_usage("--tune: " + f.name + ": expected an integer, got \"" + v + "\"");
    for (auto& o : out)
      if (o.name == f.name && o.variant == f.variant)
        die_usage("--tune: " + (variant.empty() ? "" : variant + ":") + f.name + " given twice");
    out.push_back(f);
  }
}

}  // namespace

Config parse_command_line(int argc, char** argv, const VariantTable& table, bool& list) {
  Config c;
  list = false;
  int hidden = 0, inter = 0, experts = 0, topk = 0, shared_experts = -1, shared_inter = 0;
  std::string variant_arg, fp8_scales_arg;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    bool has_eq = false;
    if (a.rfind("--", 0) == 0) {
      size_t eq = a.find('=');
      if (eq != std::string::npos) { v = a.substr(eq + 1); a = a.substr(0, eq); has_eq = true; }
    }
    auto need = [&]() -> std::string {
      if (has_eq) return v;
      if (i + 1 >= argc) die_usage(a + ": expected a value");
      return argv[++i];
    };
    auto no_value = [&]() { if (has_eq) die_usage(a + ": takes no value"); };
    if (a == "--list") { no_value(); list = true; }
    else if (a == "--backend") {
      c.backend = need();
      if (c.backend != "cpu" && c.backend != "cuda") die_usage("--backend: expected cpu or cuda, got \"" + c.backend + "\"");
    }
    else if (a == "--variant") variant_arg = need();
    else if (a == "--model") {
      c.model = need();
      if (const PresetSpec* p = table.preset(c.model)) {
        c.shape = Shape{p->hidden, p->inter, p->experts, p->topk, p->shared_experts, p->shared_inter};
      } else {
        std::string names;
        for (size_t p = 0; p < table.presets.size(); ++p) names += (p ? ", " : "") + table.presets[p].name;
        die_usage("--model: expected one of " + names + ", got \"" + c.model + "\"");
      }
    }
    else if (a == "--hidden") hidden = (int)parse_int(a, need(), 1, INT_MAX);
    else if (a == "--inter") inter = (int)parse_int(a, need(), 1, INT_MAX);
    else if (a == "--experts") experts = (int)parse_int(a, need(), 1, INT_MAX);
    else if (a == "--topk") topk = (int)parse_int(a, need(), 1, INT_MAX);
    else if (a == "--shared-experts") shared_experts = (int)parse_int(a, need(), 0, 64);
    else if (a == "--shared-inter") shared_inter = (int)parse_int(a, need(), 8, 65536);
    else if (a == "--tokens") c.tokens = (int)parse_int(a, need(), 1, INT_MAX);
    else if (a == "--gpus") c.gpus = (int)parse_int(a, need(), 1, kMaxGpus);
    else if (a == "--dtype") {
      std::string d = need();
      if (d == "bf16") c.dtype = DType::BF16;
      else if (d == "fp16") c.dtype = DType::FP16;
      else if (d == "fp32") c.dtype = DType::FP32;
      else if (d == "fp8") c.dtype = DType::FP8;
      else die_usage("--dtype: expected fp16, bf16, fp32 or fp8, got \"" + d + "\"");
    }
    else if (a == "--fp8-scales") {
      fp8_scales_arg = need();
      if (fp8_scales_arg == "channel") c.fp8_scales = Fp8Scales::Channel;
      else if (fp8_scales_arg == "tensor") c.fp8_scales = Fp8Scales::Tensor;
      else if (fp8_scales_arg == "block") c.fp8_scales = Fp8Scales::Block;
      else die_usage("--fp8-scales: expected channel, tensor or block, got \"" + fp8_scales_arg + "\"");
    }
    else if (a == "--warmup") c.warmup = (int)parse_int(a, need(), 0, 1000000);
    else if (a == "--iters") c.iters = (int)parse_int(a, need(), 1, 10000000);
    else if (a == "--rounds") c.rounds = (int)parse_int(a, need(), 1, 10000);
    else if (a == "--seed") {
      std::string s = need();
      char* end = nullptr;
      errno = 0;
      unsigned long long x = std::strtoull(s.c_str(), &end, 10);
      if (s.empty() || *end || errno || s[0] == '-') die_usage("--seed: expected an unsigned 64-bit integer, got \"" + s + "\"");
      c.seed = x;
    }
    else if (a == "--rotate") c.rotate = (int)parse_int(a, need(), 1, 4096);
    else if (a == "--cold-l2") { no_value(); c.cold_l2 = true; }
    else if (a == "--repeat-work") c.repeat_work = (int)parse_int(a, need(), 1, 1000);
    else if (a == "--trace") { c.trace = need(); if (c.trace.empty()) die_usage("--trace: expected a file name"); }
    else if (a == "--tune") parse_tune(need(), c.tune);
    else if (a == "--no-tuning-table") { no_value(); c.use_tuning_table = false; }
    else if (a == "--energy-ms") c.energy_ms = (int)parse_int(a, need(), 0, 600000);
    else if (a == "--test-sleep-ms") { c.test_sleep_ms = (int)parse_int(a, need(), 0, 86400000); c.test_any = true; }
    else if (a == "--test-output") {
      std::string m = need();
      if (m == "garbage") c.test_output = TestOut::Garbage;
      else if (m == "partial") c.test_output = TestOut::Partial;
      else if (m == "nan") c.test_output = TestOut::NaN;
      else if (m == "exit3") c.test_output = TestOut::Exit3;
      else die_usage("--test-output: expected garbage, partial, nan or exit3, got \"" + m + "\"");
      c.test_any = true;
    }
    else die_usage(a + ": unknown flag");
  }
  if (list) return c;
  if (!fp8_scales_arg.empty() && c.dtype != DType::FP8)
    die_usage("--fp8-scales: only with --dtype fp8 (the scales of e4m3 expert weights), got --dtype " + std::string(dtype_name(c.dtype)));
  if (hidden) c.shape.hidden = hidden;
  if (inter) c.shape.inter = inter;
  if (experts) c.shape.experts = experts;
  if (topk) c.shape.topk = topk;
  if (shared_experts >= 0) c.shape.shared_experts = shared_experts;
  if (shared_inter) c.shape.shared_inter = shared_inter;
  if (c.shape.shared_experts > 0 && !c.shape.shared_inter)
    die_usage("--shared-inter: expected with --shared-experts " + std::to_string(c.shape.shared_experts) + " (the shared experts' intermediate size)");
  if (c.shape.shared_experts == 0 && shared_inter) die_usage("--shared-inter: given without --shared-experts N (N > 0)");
  if (c.shape.shared_experts == 0) c.shape.shared_inter = 0;
  const char* no_shape = ": no shape given (use --model NAME or --hidden/--inter/--experts/--topk)";
  if (!c.shape.hidden) die_usage(std::string("--hidden") + no_shape);
  if (!c.shape.inter) die_usage(std::string("--inter") + no_shape);
  if (!c.shape.experts) die_usage(std::string("--experts") + no_shape);
  if (!c.shape.topk) die_usage(std::string("--topk") + no_shape);
#ifndef MOE_WITH_CUDA
  if (c.backend == "cuda") die_usage("--backend: cuda is not available in this build (built without CUDA; use make cuda)");
#endif
  if (!c.trace.empty() && c.backend != "cuda") die_usage("--trace: only the cuda backend writes traces");
  if (c.cold_l2 && c.backend != "cuda") die_usage("--cold-l2: only meaningful with --backend cuda");
  if (variant_arg.empty()) {  // the backend's first variant in the table
    auto names = table.names_of(c.backend);
    if (names.empty()) die_usage("--variant: the variant table has no " + c.backend + " variant");
    variant_arg = names.front();
  }
  c.variants = split(variant_arg, ',');
  std::set<std::string> seen;
  for (auto& v : c.variants) {
    if (v.empty()) die_usage("--variant: empty name in \"" + variant_arg + "\"");
    if (!seen.insert(v).second) die_usage("--variant: \"" + v + "\" listed twice");
  }
  for (auto& t : c.tune)
    if (!t.variant.empty() && !seen.count(t.variant))
      die_usage("--tune: " + t.variant + ": not one of the listed variants (" + variant_arg + ")");
  return c;
}

}  // namespace moe
