// output.cpp — see output.h.
#include "output.h"

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

namespace moe {

const char* const kBenchSchema = "moefarm.bench/1";
const char* const kListSchema = "moefarm.list/1";

namespace {

// Opens the "build" object; the caller adds its own keys and closes it.
void begin_build_json(JsonWriter& j, const char* arch) {
  j.begin_obj();
  j.kv("source_hash", MOE_SOURCE_HASH);
#ifdef MOE_GIT_COMMIT
  j.kv("git_commit", MOE_GIT_COMMIT);
#else
  j.kv_null("git_commit");
#endif
  j.kv("compiler", MOE_COMPILER);
  j.kv("flags", MOE_BUILD_FLAGS);
  j.kv("arch", arch);
}

void stats_json(JsonWriter& j, const Stats& st) {
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
}

void waits_json(JsonWriter& j, const Waits& w) {
  if (!w.present) { j.null(); return; }
  j.begin_obj();
  j.kv("total_us", w.total_us);
  j.key("per_block_us");
  j.begin_arr();
  for (double d : w.per_block_us) j.val(d);
  j.end_arr();
  j.kv("share", w.share);
  j.kv("kernel_us", w.kernel_us);
  j.kv("traced_launches", w.launches);
  j.kv("tail_us", w.tail_us);
  j.kv("tail_share", w.kernel_us > 0 && !w.per_block_us.empty() ? w.tail_us / (w.per_block_us.size() * w.kernel_us) : 0.0);
  j.end_obj();
}

void check_json(JsonWriter& j, const CheckResult& c) {
  j.begin_obj();
  j.kv("pass", c.pass);
  j.kv("rel_err", c.nan ? NAN : c.rel_err);
  j.kv("tol", c.tol);
  j.kv("max_abs_err", c.max_abs);
  j.kv("nan", c.nan);
  j.kv("cases", c.cases);
  j.kv("experts_hit", c.experts_hit);
  j.kv("experts", c.experts);
  j.kv("tie_reroutes", c.tie_reroutes);
  j.end_obj();
}

}  // namespace

std::string list_json(const VariantTable& table, const TuningTables& tuning) {
  JsonWriter j;
  j.begin_obj();
  j.kv("schema", kListSchema);
  j.key("build");
  begin_build_json(j, MOE_BUILD_ARCH);
  j.key("backends");
  j.begin_arr();
  j.val("cpu");
#ifdef MOE_WITH_CUDA
  j.val("cuda");
#endif
  j.end_arr();
  j.kv("energy", "NVML (libnvidia-ml.so.1) opened at run time; cuda backend only");
  j.end_obj();
  j.key("table");
  write_variant_table(j, table);
  j.key("tuning");
  write_tuning_tables(j, tuning);
  j.end_obj();
  return j.s;
}

std::string result_json(const Config& c, const Model& m, Backend& be, const Workload& w,
                        const std::vector<VariantOut>& res, bool all_pass, double worst) {
  JsonWriter j;
  j.begin_obj();
  j.kv("schema", kBenchSchema);
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
  j.kv("shared_experts", m.s.shared_experts);
  j.kv("shared_inter", m.s.shared_inter);
  j.kv("tokens", c.tokens);
  j.kv("gpus", c.gpus);
  j.kv("layer_tokens", c.layer_tokens());
  j.kv("dtype", dtype_name(c.dtype));
  // What one fp8 scale covers (--fp8-scales): "channel", "tensor" or "block"; null for the other dtypes.
  if (c.dtype == DType::FP8) j.kv("fp8_scales", fp8_scales_name(c.fp8_scales)); else j.kv_null("fp8_scales");
  j.kv("warmup", c.warmup);
  j.kv("iters", c.iters);
  j.kv("rounds", c.rounds);
  j.kv("seed", (uint64_t)c.seed);
  j.kv("rotate", c.rotate);
  j.kv("cold_l2", c.cold_l2);
  j.kv("repeat_work", c.repeat_work);
  j.kv("tuning_table", c.use_tuning_table);
  j.kv("energy_ms", c.energy_ms);
  j.end_obj();
  j.key("device");
  j.begin_obj();
  be.device_json(j);
  j.end_obj();
  j.key("build");
  begin_build_json(j, c.backend == "cuda" ? MOE_BUILD_ARCH : "x86_64");
  j.end_obj();
  j.kv("bytes_per_iter", (long long)std::llround(w.bytes_per_iter));
  j.kv("distinct_experts_per_iter", w.distinct_experts);
  j.key("bytes_per_gpu");  // --gpus N: one device's share (mean) and the largest device's (max); N = 1: both the above
  j.begin_obj();
  j.kv("mean", (long long)std::llround(w.bytes_per_gpu_mean));
  j.kv("max", (long long)std::llround(w.bytes_per_gpu_max));
  j.end_obj();
  j.key("check");
  j.begin_obj();
  j.kv("pass", all_pass);
  j.kv("worst_rel_err", worst);
  j.kv("tol", tol_for(c.dtype));
  j.end_obj();
  j.key("results");
  j.begin_arr();
  for (size_t i = 0; i < res.size(); ++i) {
    const VariantOut& vo = res[i];
    j.begin_obj();
    j.kv("variant", vo.name);
    j.key("tunables");
    vo.tunables.write_json(j);
    j.key("launch");
    be.launch_json((int)i, j);
    j.key("check");
    check_json(j, vo.check);
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
      j.kv_null("bandwidth_per_gpu_gbps");
    } else {
      j.key("stats");
      stats_json(j, st);
      j.kv("bandwidth_gbps", w.bytes_per_iter / (st.median * 1e-6) / 1e9);
      // The slowest device's bytes over the layer's time: what one GPU achieved, beside its copy bandwidth.
      j.kv("bandwidth_per_gpu_gbps", w.bytes_per_gpu_max / (st.median * 1e-6) / 1e9);
    }
    j.key("energy");
    if (vo.energy_run) vo.energy.write_json(j); else j.null();
    j.key("waits");
    waits_json(j, vo.waits);
    j.key("ep");
    be.ep_json((int)i, j);
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
  return j.s;
}

}  // namespace moe
