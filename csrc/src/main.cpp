// main.cpp — moe-bench: flags, correctness check, timing loop and JSON output
// (contract: csrc/CONTRACT.md, schema moefarm.bench/1). Backends: cpu
// (moe_cpu.cpp) and, when built with nvcc, cuda (moe_cuda.cu).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <set>
#include <thread>

#include "backend.h"

#ifndef MOE_SOURCE_HASH
#define MOE_SOURCE_HASH "unknown"
#endif
#ifndef MOE_BUILD_FLAGS
#define MOE_BUILD_FLAGS "unknown"
#endif
#ifndef MOE_BUILD_ARCH
#define MOE_BUILD_ARCH "x86_64"
#endif
#ifndef MOE_COMPILER
#define MOE_COMPILER "g++ " __VERSION__
#endif

using namespace moe;

namespace {

const char* kSchema = "moefarm.bench/1";

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

std::vector<std::string> cpu_variants() { return {"reference", "fused"}; }

void print_list() {
  Json j;
  j.begin_obj();
  j.kv("schema", kSchema);
  j.key("backends");
  j.begin_arr();
  j.val("cpu");
#ifdef MOE_WITH_CUDA
  j.val("cuda");
#endif
  j.end_arr();
  j.key("variants");
  j.begin_obj();
  j.key("cpu");
  j.begin_arr();
  for (auto& v : cpu_variants()) j.val(v);
  j.end_arr();
#ifdef MOE_WITH_CUDA
  j.key("cuda");
  j.begin_arr();
  for (auto& v : cuda_variant_names()) j.val(v);
  j.end_arr();
#endif
  j.end_obj();
  j.key("presets");
  j.begin_arr();
  for (int i = 0; i < kNumPresets; ++i) {
    j.begin_obj();
    j.kv("name", kPresets[i].name);
    j.kv("hidden", kPresets[i].s.hidden);
    j.kv("inter", kPresets[i].s.inter);
    j.kv("experts", kPresets[i].s.experts);
    j.kv("topk", kPresets[i].s.topk);
    j.end_obj();
  }
  j.end_arr();
  j.key("dtypes");
  j.begin_arr(); j.val("bf16"); j.val("fp16"); j.val("fp32"); j.end_arr();
  j.end_obj();
  std::printf("%s\n", j.s.c_str());
}

Config parse(int argc, char** argv, bool& list) {
  Config c;
  list = false;
  int hidden = 0, inter = 0, experts = 0, topk = 0;
  std::string variant_arg;
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
      bool ok = false;
      for (int p = 0; p < kNumPresets; ++p) if (c.model == kPresets[p].name) { c.shape = kPresets[p].s; ok = true; }
      if (!ok) {
        std::string names;
        for (int p = 0; p < kNumPresets; ++p) names += std::string(p ? ", " : "") + kPresets[p].name;
        die_usage("--model: expected one of " + names + ", got \"" + c.model + "\"");
      }
    }
    else if (a == "--hidden") hidden = (int)parse_int(a, need(), 1, 65536);
    else if (a == "--inter") inter = (int)parse_int(a, need(), 1, 65536);
    else if (a == "--experts") experts = (int)parse_int(a, need(), 1, 1024);
    else if (a == "--topk") topk = (int)parse_int(a, need(), 1, 64);
    else if (a == "--tokens") c.tokens = (int)parse_int(a, need(), 1, 4096);
    else if (a == "--dtype") {
      std::string d = need();
      if (d == "bf16") c.dtype = DType::BF16;
      else if (d == "fp16") c.dtype = DType::FP16;
      else if (d == "fp32") c.dtype = DType::FP32;
      else die_usage("--dtype: expected fp16, bf16 or fp32, got \"" + d + "\"");
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
  if (hidden) c.shape.hidden = hidden;
  if (inter) c.shape.inter = inter;
  if (experts) c.shape.experts = experts;
  if (topk) c.shape.topk = topk;
  if (!c.shape.hidden) die_usage("--hidden: no shape given (use --model NAME or --hidden/--inter/--experts/--topk)");
  if (!c.shape.inter) die_usage("--inter: no shape given (use --model NAME or --hidden/--inter/--experts/--topk)");
  if (!c.shape.experts) die_usage("--experts: no shape given (use --model NAME or --hidden/--inter/--experts/--topk)");
  if (!c.shape.topk) die_usage("--topk: no shape given (use --model NAME or --hidden/--inter/--experts/--topk)");
  if (c.shape.topk > c.shape.experts)
    die_usage("--topk: must be <= experts (" + std::to_string(c.shape.experts) + "), got " + std::to_string(c.shape.topk));
#ifndef MOE_WITH_CUDA
  if (c.backend == "cuda") die_usage("--backend: cuda is not available in this build (built without CUDA; use make cuda)");
#endif
  if (!c.trace.empty() && c.backend != "cuda") die_usage("--trace: only the cuda backend writes traces");
  if (c.cold_l2 && c.backend != "cuda") die_usage("--cold-l2: only meaningful with --backend cuda");
  if (variant_arg.empty()) variant_arg = c.backend == "cpu" ? "reference" : "separate";
  c.variants = split(variant_arg, ',');
  std::set<std::string> seen;
  for (auto& v : c.variants) {
    if (v.empty()) die_usage("--variant: empty name in \"" + variant_arg + "\"");
    if (!seen.insert(v).second) die_usage("--variant: \"" + v + "\" listed twice");
  }
  return c;
}

double tol_for(DType d) { return d == DType::FP32 ? 1e-5 : d == DType::FP16 ? 5e-3 : 2e-2; }

struct CheckResult {
  bool pass = false, nan = false;
  double rel_err = 0, max_abs = 0, tol = 0;
  int cases = 0, experts_hit = 0, experts = 0, tie_reroutes = 0;
};

struct Case {
  HostTensor x;
  Routing r;
  std::vector<double> lg, out;
};

template <class F>
void parallel_for(int n, F f) {
  unsigned nt = std::max(1u, std::min<unsigned>(16, std::thread::hardware_concurrency()));
  std::vector<std::thread> th;
  std::atomic<int> next{0};
  for (unsigned k = 0; k < nt; ++k)
    th.emplace_back([&] { for (int i; (i = next++) < n;) f(i); });
  for (auto& t : th) t.join();
}

// Fresh random inputs until every expert was routed to (min 3 cases, cap 1024).
void make_cases(const Model& m, const Config& c, std::vector<Case>& cases, int& hit) {
  const int E = m.s.experts;
  std::vector<char> seen(E, 0);
  hit = 0;
  for (int k = 0; k < 1024; ++k) {
    if (hit == E && k >= 3) break;
    cases.emplace_back();
    Case& cs = cases.back();
    make_input(cs.x, c.tokens, m.s.hidden, m.dt, c.seed, 5000 + k);
    route_f64(m, cs.x, c.tokens, cs.r, &cs.lg);
    for (int id : cs.r.ids) if (!seen[id]) { seen[id] = 1; ++hit; }
  }
  for (auto& cs : cases) cs.out.assign((size_t)c.tokens * m.s.hidden, 0.0);
  const int T = c.tokens;
  parallel_for((int)cases.size() * T, [&](int i) {
    Case& cs = cases[i / T];
    oracle_tokens(m, cs.x, cs.r, cs.lg, cs.out.data(), i % T, i % T + 1);
  });
}

CheckResult check_variant(Backend& be, const std::string& v, const Model& m, const Config& c,
                          std::vector<Case>& cases, int hit) {
  CheckResult cr;
  cr.tol = tol_for(m.dt);
  cr.cases = (int)cases.size();
  cr.experts = m.s.experts;
  cr.experts_hit = hit;
  const int T = c.tokens, K = m.s.topk, E = m.s.experts;
  std::vector<float> out;
  std::vector<int> ids;
  double worst = 0;
  for (auto& cs : cases) {
    be.run_once(v, cs.x, T, out, ids);
    // Near-ties in the router (fp32 vs fp64 order of summation) may pick a
    // different expert; accept only if the logits are within 1e-3 of the k-th.
    const std::vector<double>* ref = &cs.out;
    std::vector<double> alt;
    Routing r2 = cs.r;
    bool reroute = false;
    for (int t = 0; t < T; ++t) {
      std::set<int> a(cs.r.ids.begin() + t * K, cs.r.ids.begin() + (t + 1) * K);
      std::set<int> b(ids.begin() + t * K, ids.begin() + (t + 1) * K);
      if (a == b) continue;
      double kth = 1e300;
      for (int e : a) kth = std::min(kth, cs.lg[(size_t)t * E + e]);
      bool tie = b.size() == (size_t)K;
      for (int e : b) {
        if (e < 0 || e >= E) { tie = false; break; }
        if (!a.count(e) && kth - cs.lg[(size_t)t * E + e] > 1e-3 * (1.0 + std::fabs(kth))) tie = false;
      }
      if (!tie) continue;  // genuine routing error: shows up as a large error
      std::copy(ids.begin() + t * K, ids.begin() + (t + 1) * K, r2.ids.begin() + t * K);
      reroute = true;
      ++cr.tie_reroutes;
    }
    if (reroute) { oracle_forward(m, cs.x, T, r2, cs.lg, alt); ref = &alt; }
    double se = 0, sr = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      double o = out[i], r = (*ref)[i];
      if (!std::isfinite(o)) { cr.nan = true; continue; }
      se += (o - r) * (o - r);
      sr += r * r;
      cr.max_abs = std::max(cr.max_abs, std::fabs(o - r));
    }
    double rel = sr > 0 ? std::sqrt(se / sr) : std::sqrt(se);
    worst = std::max(worst, rel);
  }
  cr.rel_err = worst;
  cr.pass = !cr.nan && worst <= cr.tol && cr.experts_hit == cr.experts;
  return cr;
}

struct VariantOut {
  std::string name;
  CheckResult check;
  std::vector<double> us, mhz;
  std::vector<int> rounds;
  Waits waits;
  // Wall-clock bounds (ms since the Unix epoch) of this variant's timed iterations, warm-up included:
  // the worker cuts its GPU telemetry to this window.
  double window_start_ms = 0, window_end_ms = 0;
};

static double unix_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  init_tables();
  bool list = false;
  Config c = parse(argc, argv, list);
  if (list) { print_list(); return 0; }

  std::unique_ptr<Backend> be;
#ifdef MOE_WITH_CUDA
  if (c.backend == "cuda") be = make_cuda_backend();
#endif
  if (!be) be = make_cpu_backend();
  {
    auto known = be->variants();
    for (auto& v : c.variants) {
      if (std::find(known.begin(), known.end(), v) == known.end()) {
        std::string names;
        for (size_t i = 0; i < known.size(); ++i) names += (i ? ", " : "") + known[i];
        die_usage("--variant: \"" + v + "\" is not a " + c.backend + " variant (expected " + names + ")");
      }
      std::string why = be->unsupported(v, c.shape, c.tokens, c.dtype);
      if (!why.empty()) die_usage("variant " + v + ": " + why);
    }
  }
  if (c.rotate == 0) c.rotate = be->default_rotate();
  if (c.test_output == TestOut::Exit3) {
    std::fprintf(stderr, "moe-bench: --test-output exit3: simulated runtime error (main.cpp:%d)\n", __LINE__);
    return 3;
  }

  Model m;
  build_model(m, c.shape, c.dtype, c.seed);
  be->upload(m, c);

  // ---- correctness, before any timing
  std::vector<Case> cases;
  int hit = 0;
  make_cases(m, c, cases, hit);
  std::vector<VariantOut> res(c.variants.size());
  bool all_pass = true;
  double worst = 0;
  for (size_t i = 0; i < c.variants.size(); ++i) {
    res[i].name = c.variants[i];
    res[i].check = check_variant(*be, c.variants[i], m, c, cases, hit);
    all_pass = all_pass && res[i].check.pass;
    worst = std::max(worst, res[i].check.nan ? INFINITY : res[i].check.rel_err);
  }
  cases.clear();

  // ---- rotated inputs and bytes per iteration
  std::vector<HostTensor> xs(c.rotate);
  double distinct = 0;
  {
    const int H = m.s.hidden, E = m.s.experts, K = m.s.topk, T = c.tokens;
    std::vector<float> wr((size_t)E * H);
    for (size_t i = 0; i < wr.size(); ++i) wr[i] = m.wr.get(i);
    std::vector<int> nd(c.rotate);
    for (int r = 0; r < c.rotate; ++r) make_input(xs[r], T, H, m.dt, c.seed, 100000 + r);
    parallel_for(c.rotate, [&](int r) {
      std::vector<float> xf(H), lg(E);
      std::vector<char> used(E, 0);
      std::vector<int> idx(E);
      for (int t = 0; t < T; ++t) {
        for (int h = 0; h < H; ++h) xf[h] = xs[r].get((size_t)t * H + h);
        for (int e = 0; e < E; ++e) {
          float a = 0;
          const float* w = &wr[(size_t)e * H];
          for (int h = 0; h < H; ++h) a += w[h] * xf[h];
          lg[e] = a;
          idx[e] = e;
        }
        std::partial_sort(idx.begin(), idx.begin() + K, idx.end(),
                          [&](int a, int b) { return lg[a] > lg[b] || (lg[a] == lg[b] && a < b); });
        for (int k = 0; k < K; ++k) used[idx[k]] = 1;
      }
      int n = 0;
      for (char u : used) n += u;
      nd[r] = n;
    });
    for (int n : nd) distinct += n;
    distinct /= c.rotate;
  }
  const double ds = (double)dtype_size(m.dt);
  const double H = m.s.hidden, I = m.s.inter, E = m.s.experts;
  const double bytes_per_iter =
      c.repeat_work * (E * H * ds + distinct * 3.0 * I * H * ds + 2.0 * c.tokens * H * ds);

  // ---- timing
  Json trace;
  trace.begin_obj();
  trace.key("traceEvents");
  trace.begin_arr();
  if (c.test_sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(c.test_sleep_ms));
  be->set_rotation(xs, c.tokens);
  const int nv = (int)c.variants.size();
  for (int r = 0; r < c.rounds; ++r) {
    for (int k = 0; k < nv; ++k) {
      VariantOut& vo = res[(k + r) % nv];
      if (!vo.check.pass) continue;
      std::vector<double> us, mhz;
      const double t0 = unix_ms();
      be->time_iters(vo.name, c.warmup, c.iters, us, mhz);
      if (vo.window_start_ms == 0) vo.window_start_ms = t0;
      vo.window_end_ms = unix_ms();
      for (size_t i = 0; i < us.size(); ++i) {
        vo.us.push_back(us[i]);
        vo.rounds.push_back(r);
        if (i < mhz.size()) vo.mhz.push_back(mhz[i]);
      }
    }
  }
  for (int i = 0; i < nv; ++i)
    if (res[i].check.pass) res[i].waits = be->trace_waits(res[i].name, i, c.trace.empty() ? nullptr : &trace);
  trace.end_arr();
  trace.kv("displayTimeUnit", "ns");
  trace.end_obj();
  if (!c.trace.empty()) {
    FILE* f = std::fopen(c.trace.c_str(), "w");
    if (!f) die_runtime("--trace: cannot write \"" + c.trace + "\": " + std::strerror(errno));
    std::fputs(trace.s.c_str(), f);
    std::fputc('\n', f);
    std::fclose(f);
  }
  if (c.test_output == TestOut::NaN)
    for (auto& vo : res)
      for (size_t i = 0; i < vo.us.size(); i += 2) vo.us[i] = NAN;

  // ---- JSON
  Json j;
  j.begin_obj();
  j.kv("schema", kSchema);
  j.key("config");
  j.begin_obj();
  j.kv("backend", c.backend);
  j.key("variants");
  j.begin_arr();
  for (auto& v : c.variants) j.val(v);
  j.end_arr();
  if (c.model.empty()) j.kv_null("model"); else j.kv("model", c.model);
  j.kv("hidden", m.s.hidden);
  j.kv("inter", m.s.inter);
  j.kv("experts", m.s.experts);
  j.kv("topk", m.s.topk);
  j.kv("tokens", c.tokens);
  j.kv("dtype", dtype_name(c.dtype));
  j.kv("warmup", c.warmup);
  j.kv("iters", c.iters);
  j.kv("rounds", c.rounds);
  j.kv("seed", (uint64_t)c.seed);
  j.kv("rotate", c.rotate);
  j.kv("cold_l2", c.cold_l2);
  j.kv("repeat_work", c.repeat_work);
  j.end_obj();
  j.key("device");
  j.begin_obj();
  be->device_json(j);
  j.end_obj();
  j.key("build");
  j.begin_obj();
  j.kv("source_hash", MOE_SOURCE_HASH);
#ifdef MOE_GIT_COMMIT
  j.kv("git_commit", MOE_GIT_COMMIT);
#else
  j.kv_null("git_commit");
#endif
  j.kv("compiler", MOE_COMPILER);
  j.kv("flags", MOE_BUILD_FLAGS);
  j.kv("arch", c.backend == "cuda" ? MOE_BUILD_ARCH : "x86_64");
  j.end_obj();
  j.kv("bytes_per_iter", (long long)std::llround(bytes_per_iter));
  j.kv("distinct_experts_per_iter", distinct / c.repeat_work * c.repeat_work);
  j.key("check");
  j.begin_obj();
  j.kv("pass", all_pass);
  j.kv("worst_rel_err", worst);
  j.kv("tol", tol_for(c.dtype));
  j.end_obj();
  j.key("results");
  j.begin_arr();
  for (auto& vo : res) {
    j.begin_obj();
    j.kv("variant", vo.name);
    j.key("check");
    j.begin_obj();
    j.kv("pass", vo.check.pass);
    j.kv("rel_err", vo.check.nan ? NAN : vo.check.rel_err);
    j.kv("tol", vo.check.tol);
    j.kv("max_abs_err", vo.check.max_abs);
    j.kv("nan", vo.check.nan);
    j.kv("cases", vo.check.cases);
    j.kv("experts_hit", vo.check.experts_hit);
    j.kv("experts", vo.check.experts);
    j.kv("tie_reroutes", vo.check.tie_reroutes);
    j.end_obj();
    j.key("samples_us");
    j.begin_arr();
    for (double d : vo.us) j.val(d);
    j.end_arr();
    j.key("rounds");
    j.begin_arr();
    for (int r : vo.rounds) j.val(r);
    j.end_arr();
    if (vo.window_end_ms > 0) {
      j.key("timed_window_unix_ms");
      j.begin_arr();
      j.val((long long)std::floor(vo.window_start_ms));
      j.val((long long)std::ceil(vo.window_end_ms));
      j.end_arr();
    } else {
      j.kv_null("timed_window_unix_ms");
    }
    if (c.backend == "cuda" && !vo.mhz.empty()) {
      j.key("sm_clock_mhz");
      j.begin_arr();
      for (double d : vo.mhz) j.val(d);
      j.end_arr();
    } else {
      j.kv_null("sm_clock_mhz");
    }
    Stats st = compute_stats(vo.us);
    if (st.n == 0) {
      j.kv_null("stats");
      j.kv_null("bandwidth_gbps");
    } else {
      j.key("stats");
      j.begin_obj();
      j.kv("n", st.n);
      j.kv("min", st.min);
      j.kv("p10", st.p10);
      j.kv("median", st.median);
      j.kv("mean", st.mean);
      j.kv("p90", st.p90);
      j.kv("p99", st.p99);
      j.kv("max", st.max);
      j.kv("stdev", st.stdev);
      j.end_obj();
      j.kv("bandwidth_gbps", bytes_per_iter / (st.median * 1e-6) / 1e9);
    }
    if (vo.waits.present) {
      j.key("waits");
      j.begin_obj();
      j.kv("total_us", vo.waits.total_us);
      j.key("per_block_us");
      j.begin_arr();
      for (double d : vo.waits.per_block_us) j.val(d);
      j.end_arr();
      j.kv("share", vo.waits.share);
      j.kv("kernel_us", vo.waits.kernel_us);
      j.kv("traced_launches", vo.waits.launches);
      j.kv("tail_us", vo.waits.tail_us);
      j.kv("tail_share", vo.waits.kernel_us > 0 && !vo.waits.per_block_us.empty()
                             ? vo.waits.tail_us / (vo.waits.per_block_us.size() * vo.waits.kernel_us) : 0.0);
      j.end_obj();
    } else {
      j.kv_null("waits");
    }
    j.end_obj();
  }
  j.end_arr();
  if (c.test_any) {
    j.key("test");
    j.begin_obj();
    j.kv("sleep_ms", c.test_sleep_ms);
    const char* mode = c.test_output == TestOut::Garbage ? "garbage" : c.test_output == TestOut::Partial ? "partial"
                     : c.test_output == TestOut::NaN ? "nan" : nullptr;
    j.kv("output", mode);
    j.kv("nan", c.test_output == TestOut::NaN);
    j.end_obj();
  } else {
    j.kv_null("test");
  }
  j.end_obj();

  if (c.test_output == TestOut::Garbage) {
    std::printf("this is not JSON: moe-bench --test-output garbage\n<<<%zu bytes withheld>>>\n", j.s.size());
  } else if (c.test_output == TestOut::Partial) {
    std::fwrite(j.s.data(), 1, j.s.size() / 2, stdout);
    std::fflush(stdout);
  } else {
    std::printf("%s\n", j.s.c_str());
  }
  return all_pass ? 0 : 1;
}
