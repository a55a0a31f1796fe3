// cpu/variants.cpp — the CPU backend: its timed variants (fp32 accumulation,
// output rounded to the storage dtype), and its registry rows.
//
// Variants (family "cpu"):
//   reference — per token, per picked expert: straightforward dot products.
//   fused     — tokens grouped by expert; gate+up of up to `group` of an
//               expert's tokens in one pass over each weight row pair; down
//               projection as row-wise axpy over w2t (each weight row read once
//               per group). Tunable `group` (1, 2, 4, 8, 16; default 8): with
//               group=1 every token re-reads its experts' weights.
#include <chrono>

#include "../backend.h"
#include "oracle.h"

namespace moe {

namespace {

struct LdBF16 { const uint16_t* p; float operator()(size_t i) const { return bf16_to_f32(p[i]); } };
struct LdFP16 { const uint16_t* p; float operator()(size_t i) const { return fp16_to_f32(p[i]); } };
struct LdF32 { const float* p; float operator()(size_t i) const { return p[i]; } };

inline float silu(float g) { return g / (1.0f + std::exp(-g)); }

template <class LD>
void route_typed(const Model& m, LD wr, LD xl, int T, int* ids, float* wts, std::vector<float>& lg) {
  const int H = m.s.hidden, E = m.s.experts, K = m.s.topk;
  lg.resize(E);
  for (int t = 0; t < T; ++t) {
    for (int e = 0; e < E; ++e) {
      float acc = 0.f;
      for (int h = 0; h < H; ++h) acc += wr((size_t)e * H + h) * xl((size_t)t * H + h);
      lg[e] = acc;
    }
    topk_ids(lg.data(), E, K, ids + (size_t)t * K);
    float mx = lg[ids[(size_t)t * K]], s = 0.f;
    for (int k = 0; k < K; ++k) s += std::exp(lg[ids[(size_t)t * K + k]] - mx);
    for (int k = 0; k < K; ++k) wts[(size_t)t * K + k] = std::exp(lg[ids[(size_t)t * K + k]] - mx) / s;
  }
}

// reference: per token, per expert, plain loops.
template <class LD>
void forward_reference(const Model& m, LD wr, LD w13, LD w2t, LD xl, int T, float* out, int* ids) {
  const int H = m.s.hidden, I = m.s.inter, K = m.s.topk;
  std::vector<float> lg, wts((size_t)T * K), a(I), acc(H);
  route_typed(m, wr, xl, T, ids, wts.data(), lg);
  for (int t = 0; t < T; ++t) {
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int k = 0; k < K; ++k) {
      const int e = ids[(size_t)t * K + k];
      const float w = wts[(size_t)t * K + k];
      for (int i = 0; i < I; ++i) {
        float g = 0.f, u = 0.f;
        const size_t g0 = ((size_t)e * 2 * I + 2 * i) * H, u0 = g0 + H;
        for (int h = 0; h < H; ++h) g += w13(g0 + h) * xl((size_t)t * H + h);
        for (int h = 0; h < H; ++h) u += w13(u0 + h) * xl((size_t)t * H + h);
        a[i] = silu(g) * u;
      }
      for (int i = 0; i < I; ++i) {
        const float c = w * a[i];
        for (int h = 0; h < H; ++h) acc[h] += c * w2t(((size_t)e * I + i) * H + h);
      }
    }
    for (int h = 0; h < H; ++h) out[(size_t)t * H + h] = acc[h];
  }
}

// fused: group tokens by expert, one pass per gate/up row pair for up to G
// tokens at a time, down projection as axpy over contiguous w2t rows.
constexpr int kMaxGroup = 16;  // the largest value of the tunable `group` (variants.json)
template <class LD>
void forward_fused(int G, const Model& m, LD wr, LD w13, LD w2t, LD xl, int T, float* out, int* ids) {
  const int H = m.s.hidden, I = m.s.inter, E = m.s.experts, K = m.s.topk;
  std::vector<float> lg, wts((size_t)T * K);
  route_typed(m, wr, xl, T, ids, wts.data(), lg);
  std::vector<std::vector<int>> slots(E);
  for (int s = 0; s < T * K; ++s) slots[ids[s]].push_back(s);
  std::vector<float> acc((size_t)T * H, 0.f), xf((size_t)T * H), rowg(H), rowu(H);
  for (size_t i = 0; i < (size_t)T * H; ++i) xf[i] = xl(i);
  std::vector<float> a((size_t)G * I);
  for (int e = 0; e < E; ++e) {
    const auto& sl = slots[e];
    for (size_t g0 = 0; g0 < sl.size(); g0 += G) {
      const int n = (int)std::min<size_t>(G, sl.size() - g0);
      const float* xs[kMaxGroup];
      for (int j = 0; j < n; ++j) xs[j] = &xf[(size_t)(sl[g0 + j] / K) * H];
      for (int i = 0; i < I; ++i) {
        const size_t r0 = ((size_t)e * 2 * I + 2 * i) * H;
        for (int h = 0; h < H; ++h) { rowg[h] = w13(r0 + h); rowu[h] = w13(r0 + H + h); }
        for (int j = 0; j < n; ++j) {
          float g = 0.f, u = 0.f;
          const float* xv = xs[j];
          for (int h = 0; h < H; ++h) { g += rowg[h] * xv[h]; u += rowu[h] * xv[h]; }
          a[(size_t)j * I + i] = silu(g) * u;
        }
      }
      for (int i = 0; i < I; ++i) {
        const size_t r0 = ((size_t)e * I + i) * H;
        for (int h = 0; h < H; ++h) rowg[h] = w2t(r0 + h);
        for (int j = 0; j < n; ++j) {
          const int s = sl[g0 + j];
          const float c = wts[s] * a[(size_t)j * I + i];
          float* o = &acc[(size_t)(s / K) * H];
          for (int h = 0; h < H; ++h) o[h] += c * rowg[h];
        }
      }
    }
  }
  std::copy(acc.begin(), acc.end(), out);
}

// One forward of a planned variant, for one storage type.
template <class LD>
void forward(int strategy, int group, const Model& m, LD wr, LD w13, LD w2t, LD xl, int T, float* out, int* ids) {
  if (strategy == 0) {
    forward_reference(m, wr, w13, w2t, xl, T, out, ids);
    return;
  }
  forward_fused(std::min(group, kMaxGroup), m, wr, w13, w2t, xl, T, out, ids);
}

// The registry: (family, strategy) of variants.json -> the code that runs it.
struct CpuRow { const char* family; const char* strategy; int id; };
const CpuRow kCpuRegistry[] = {
    {"cpu", "reference", 0},
    {"cpu", "fused", 1},
};

const CpuRow* find_row(const VariantSpec& v) {
  for (auto& r : kCpuRegistry)
    if (v.family == r.family && v.strategy && *v.strategy == r.strategy) return &r;
  return nullptr;
}

class CpuBackend : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  std::string device_name() const override {
    std::string model = "unknown";
    if (FILE* f = std::fopen("/proc/cpuinfo", "r")) {
      char line[512];
      while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, "model name", 10) == 0) {
          const char* p = std::strchr(line, ':');
          if (p) { model = p + 1; while (!model.empty() && (model[0] == ' ')) model.erase(0, 1); }
          while (!model.empty() && (model.back() == '\n' || model.back() == ' ')) model.pop_back();
          break;
        }
      }
      std::fclose(f);
    }
    return model;
  }
  int default_rotate() const override { return 4; }
  void device_json(JsonWriter& j) override {
    j.kv("kind", "cpu");
    j.kv("name", device_name());
    j.kv_null("sm_count");
    j.kv_null("compute_capability");
    j.kv_null("driver");
    j.kv_null("l2_bytes");
    j.kv_null("mem_bytes");
    j.kv("cores", (int)std::thread::hardware_concurrency());
  }
  std::string plan(const VariantSpec& spec, const Shape&, int, DType, TunableSet& tun) override {
    const CpuRow* row = find_row(spec);
    if (!row) return "no CPU code for family " + spec.family + " strategy " + spec.strategy.value_or("null");
    Planned p;
    p.strategy = row->id;
    if (row->id == 1) p.group = (int)tun.get("group");
    plans_.push_back(p);
    return "";
  }
  void upload(const Model& m, const Config& cfg) override { m_ = &m; repeat_ = cfg.repeat_work; }
  void run_once(int v, const HostTensor& x, int T, std::vector<float>& out, std::vector<int>& ids) override {
    out.assign((size_t)T * m_->s.hidden, std::nanf(""));
    ids.assign((size_t)T * m_->s.topk, -1);
    forward_any(v, x, T, out.data(), ids.data());
    // output stored in the dtype: round-trip through it
    HostTensor t;
    t.alloc(m_->dt, out.size());
    for (size_t i = 0; i < out.size(); ++i) t.set(i, out[i]);
    for (size_t i = 0; i < out.size(); ++i) out[i] = t.get(i);
  }
  void set_rotation(const std::vector<HostTensor>& xs, int T) override { xs_ = &xs; T_ = T; }
  void time_iters(int v, int warmup, int iters, std::vector<double>& us, std::vector<double>& mhz) override {
    mhz.clear();
    const size_t H = m_->s.hidden;
    std::vector<float> out((size_t)T_ * H);
    std::vector<int> ids((size_t)T_ * m_->s.topk);
    HostTensor ot;
    ot.alloc(m_->dt, (size_t)T_ * H);
    for (int it = -warmup; it < iters; ++it) {
      const HostTensor& x = (*xs_)[pos_++ % xs_->size()];
      auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < repeat_; ++r) {
        forward_any(v, x, T_, out.data(), ids.data());
        for (size_t i = 0; i < out.size(); ++i) ot.set(i, out[i]);
      }
      auto t1 = std::chrono::steady_clock::now();
      if (it >= 0) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
  }
  EnergyResult energy(int, int, double) override {
    return EnergyResult::unavailable("cpu backend: no energy counter is read (NVML measures GPUs only)");
  }

 private:
  struct Planned { int strategy = 0, group = 8; };
  void forward_any(int v, const HostTensor& x, int T, float* out, int* ids) {
    const Model& m = *m_;
    const Planned& p = plans_[v];
    switch (m.dt) {
      case DType::BF16: forward(p.strategy, p.group, m, LdBF16{m.wr.h16()}, LdBF16{m.w13.h16()}, LdBF16{m.w2t.h16()}, LdBF16{x.h16()}, T, out, ids); break;
      case DType::FP16: forward(p.strategy, p.group, m, LdFP16{m.wr.h16()}, LdFP16{m.w13.h16()}, LdFP16{m.w2t.h16()}, LdFP16{x.h16()}, T, out, ids); break;
      default: forward(p.strategy, p.group, m, LdF32{m.wr.f32()}, LdF32{m.w13.f32()}, LdF32{m.w2t.f32()}, LdF32{x.f32()}, T, out, ids);
    }
  }
  const Model* m_ = nullptr;
  const std::vector<HostTensor>* xs_ = nullptr;
  std::vector<Planned> plans_;
  int T_ = 1, repeat_ = 1;
  size_t pos_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

std::string cpu_registry_mismatch(const VariantTable& t) {
  for (auto& v : t.variants)
    if (v.backend == "cpu" && !find_row(v))
      return "variants.json: cpu variant " + v.name + " (family " + v.family + ", strategy " + v.strategy.value_or("null") +
             ") has no code in this build (csrc/src/cpu/variants.cpp, kCpuRegistry)";
  for (auto& r : kCpuRegistry) {
    bool found = false;
    for (auto& v : t.variants) found = found || (v.backend == "cpu" && v.family == r.family && v.strategy && *v.strategy == r.strategy);
    if (!found)
      return std::string("csrc/src/cpu/variants.cpp: kCpuRegistry row (") + r.family + ", " + r.strategy + ") has no row in variants.json";
  }
  return "";
}

}  // namespace moe
