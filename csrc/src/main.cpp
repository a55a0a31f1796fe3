// main.cpp — moe-bench: read the embedded tables, parse the command line,
// check every requested variant against the table, plan it, check it against
// the fp64 oracle, time it (interleaved rounds), measure its energy, print one
// JSON document (csrc/CONTRACT.md). Exit codes: 0 ok, 1 check failed, 2 usage
// or unsupported, 3 runtime error.
#include <chrono>
#include <climits>

#include "backend.h"
#include "check.h"
#include "cli.h"
#include "embedded.h"
#include "output.h"
#include "tunables.h"
#include "variant_table.h"
#include "workload.h"

using namespace moe;

namespace {

double unix_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void load_tables(VariantTable& table, TuningTables& tuning) {
  std::string err;
  if (!parse_variant_table(embedded_variants_json(), "variants.json", table, err)) die_usage(err + " (embedded at build time)");
  if (!load_tuning_tables(embedded_tuning_files(), table, tuning, err)) die_usage(err + " (embedded at build time)");
  std::string why = cpu_registry_mismatch(table);
#ifdef MOE_WITH_CUDA
  if (why.empty()) why = cuda_registry_mismatch(table);
#endif
  if (!why.empty()) die_usage(why);
}

// The table's rules for every listed variant, and its --tune values: before any device is touched.
std::vector<const VariantSpec*> check_variants(const VariantTable& table, const Config& c, const ShapeRequest& req,
                                               std::vector<std::vector<std::pair<std::string, long long>>>& flags) {
  std::vector<const VariantSpec*> specs;
  const auto known = table.names_of(c.backend);
  for (auto& v : c.variants) {
    const VariantSpec* spec = table.find(v);
    if (!spec || spec->backend != c.backend) {
      std::string names;
      for (size_t i = 0; i < known.size(); ++i) names += (i ? ", " : "") + known[i];
      die_usage("--variant: \"" + v + "\" is not a " + c.backend + " variant (expected " + names + ")");
    }
    std::string why = unsupported_reason(table, *spec, req);
    if (!why.empty()) die_usage("variant " + v + ": " + why);
    std::vector<std::pair<std::string, long long>> mine;
    for (auto& t : c.tune) {
      if (!t.variant.empty() && t.variant != v) continue;
      why = tunable_reason(*spec, t.name, t.value);
      if (!why.empty()) die_usage("variant " + v + ": " + why);
      bool replaced = false;  // VARIANT:name wins over a bare name
      for (auto& m : mine) if (m.first == t.name) { if (!t.variant.empty()) m.second = t.value; replaced = true; }
      if (!replaced) mine.emplace_back(t.name, t.value);
    }
    flags.push_back(mine);
    specs.push_back(spec);
  }
  return specs;
}

}  // namespace

int main(int argc, char** argv) {
  init_tables();
  VariantTable table;
  TuningTables tuning;
  load_tables(table, tuning);
  bool list = false;
  Config c = parse_command_line(argc, argv, table, list);
  if (list) { std::printf("%s\n", list_json(table, tuning).c_str()); return 0; }

  ShapeRequest req;
  req.f[kHidden] = c.shape.hidden; req.f[kInter] = c.shape.inter; req.f[kExperts] = c.shape.experts;
  req.f[kTopk] = c.shape.topk; req.f[kTokens] = c.tokens;
  req.dtype = dtype_name(c.dtype);
  req.fp8_scales = fp8_scales_name(c.fp8_scales);
  req.gpus = c.gpus;
  req.shared_experts = c.shape.shared_experts; req.shared_inter = c.shape.shared_inter;
  std::vector<std::vector<std::pair<std::string, long long>>> flags;
  const std::vector<const VariantSpec*> specs = check_variants(table, c, req, flags);

  std::unique_ptr<Backend> be;
#ifdef MOE_WITH_CUDA
  if (c.backend == "cuda") be = make_cuda_backend(c.gpus);
#endif
  if (!be) be = make_cpu_backend();
  const std::string device = be->device_name();
  std::vector<VariantOut> res(c.variants.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const VariantSpec& spec = *specs[i];
    if (spec.min_compute_capability) {
      std::string why = be->capability_reason(*spec.min_compute_capability);
      if (!why.empty()) die_usage("variant " + spec.name + ": " + why);
    }
    const TuningEntry* entry = c.use_tuning_table ? find_tuning(tuning, device, spec.name, req) : nullptr;
    res[i].name = spec.name;
    res[i].tunables = resolve_tunables(spec, flags[i], entry);
    std::string why = be->plan(spec, c.shape, c.tokens, c.dtype, c.fp8_scales, res[i].tunables);
    if (!why.empty()) die_usage("variant " + spec.name + ": " + why);
    std::string missing;
    if (!res[i].tunables.all_resolved(missing))
      die_runtime("internal: variant " + spec.name + ": the backend left tunable '" + missing + "' at \"auto\"");
  }
  if (c.rotate == 0) c.rotate = be->default_rotate();
  if (c.test_output == TestOut::Exit3) {
    std::fprintf(stderr, "moe-bench: --test-output exit3: simulated runtime error (main.cpp:%d)\n", __LINE__);
    return 3;
  }

  Model m;
  build_model(m, c.shape, c.dtype, c.seed, c.fp8_scales);
  be->upload(m, c);

  // ---- correctness, before any timing
  bool all_pass = true;
  double worst = 0;
  {
    std::vector<CheckCase> cases;
    int hit = 0;
    make_cases(m, c, cases, hit);
    for (size_t i = 0; i < res.size(); ++i) {
      res[i].check = check_variant(*be, (int)i, m, c, cases, hit);
      // Expert parallelism: the split must not change the arithmetic (backend.h ep_mismatch).
      const std::string ep = be->ep_mismatch((int)i);
      if (!ep.empty()) {
        std::fprintf(stderr, "moe-bench: variant %s: %s\n", res[i].name.c_str(), ep.c_str());
        res[i].check.pass = false;
      }
      all_pass = all_pass && res[i].check.pass;
      worst = std::max(worst, res[i].check.nan ? INFINITY : res[i].check.rel_err);
    }
  }
  const Workload w = make_workload(m, c);

  // ---- timing: every round runs every variant, the order rotated per round
  if (c.test_sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(c.test_sleep_ms));
  be->set_rotation(w.xs, c.layer_tokens());
  const int nv = (int)res.size();
  for (int r = 0; r < c.rounds; ++r) {
    for (int k = 0; k < nv; ++k) {
      const int vi = (k + r) % nv;
      VariantOut& vo = res[vi];
      if (!vo.check.pass) continue;
      std::vector<double> us, mhz;
      const double t0 = unix_ms();
      be->time_iters(vi, c.warmup, c.iters, us, mhz);
      if (vo.window_start_ms == 0) vo.window_start_ms = t0;
      vo.window_end_ms = unix_ms();
      for (size_t i = 0; i < us.size(); ++i) {
        vo.us.push_back(us[i]);
        vo.rounds.push_back(r);
        if (i < mhz.size()) vo.mhz.push_back(mhz[i]);
      }
    }
  }
  // ---- energy: a window of its own per variant, after all timing (energy.h says why)
  for (int i = 0; i < nv; ++i) {
    if (!res[i].check.pass) continue;
    res[i].energy = be->energy(i, c.energy_ms, compute_stats(res[i].us).median);
    res[i].energy_run = true;
  }
  // ---- traced launches (not timed)
  JsonWriter trace;
  trace.begin_obj();
  trace.key("traceEvents");
  trace.begin_arr();
  for (int i = 0; i < nv; ++i)
    if (res[i].check.pass) res[i].waits = be->trace_waits(i, i, c.trace.empty() ? nullptr : &trace);
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

  const std::string doc = result_json(c, m, *be, w, res, all_pass, worst);
  if (c.test_output == TestOut::Garbage) {
    std::printf("this is not JSON: moe-bench --test-output garbage\n<<<%zu bytes withheld>>>\n", doc.size());
  } else if (c.test_output == TestOut::Partial) {
    std::fwrite(doc.data(), 1, doc.size() / 2, stdout);
    std::fflush(stdout);
  } else {
    std::printf("%s\n", doc.c_str());
  }
  return all_pass ? 0 : 1;
}
