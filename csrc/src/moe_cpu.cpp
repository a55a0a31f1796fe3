// moe_cpu.cpp — CPU MoE layer: fp64 oracle, and the CPU variants.
//
// Computes, per token t: logits = Wr x_t; pick the top-k logits (ties: lower
// expert id first); softmax over those k only; for each picked expert e with
// weight w: a_i = silu(gate_i . x) * (up_i . x) (gate/up rows interleaved in
// w13), out_t += w * sum_i a_i w2t[e][i][:]. fp32 accumulation (oracle: fp64),
// output rounded to the storage dtype.
//
// Variants:
//   reference — per token, per picked expert: straightforward dot products.
//   fused     — tokens grouped by expert; gate+up of all of an expert's
//               tokens in one pass over each weight row pair; down projection
//               as row-wise axpy over w2t (each weight read once per expert).
#include <algorithm>
#include <chrono>
#include <thread>

#include "backend.h"

namespace moe {

namespace {

struct LdBF16 { const uint16_t* p; float operator()(size_t i) const { return bf16_to_f32(p[i]); } };
struct LdFP16 { const uint16_t* p; float operator()(size_t i) const { return fp16_to_f32(p[i]); } };
struct LdF32 { const float* p; float operator()(size_t i) const { return p[i]; } };

inline float silu(float g) { return g / (1.0f + std::exp(-g)); }

// top-k by value descending, ties to the lower index
template <class V>
void topk_ids(const V* logits, int E, int K, int* ids) {
  std::vector<int> idx(E);
  for (int e = 0; e < E; ++e) idx[e] = e;
  std::partial_sort(idx.begin(), idx.begin() + K, idx.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int k = 0; k < K; ++k) ids[k] = idx[k];
}

}  // namespace

void route_f32(const Model& m, const HostTensor& x, int T, Routing& r) {
  const int H = m.s.hidden, E = m.s.experts, K = m.s.topk;
  r.T = T; r.K = K;
  r.ids.assign((size_t)T * K, 0);
  r.wts.assign((size_t)T * K, 0.f);
  std::vector<float> lg(E);
  for (int t = 0; t < T; ++t) {
    for (int e = 0; e < E; ++e) {
      float acc = 0.f;
      for (int h = 0; h < H; ++h) acc += m.wr.get((size_t)e * H + h) * x.get((size_t)t * H + h);
      lg[e] = acc;
    }
    int* ids = &r.ids[(size_t)t * K];
    topk_ids(lg.data(), E, K, ids);
    float mx = lg[ids[0]], s = 0.f;
    for (int k = 0; k < K; ++k) s += std::exp(lg[ids[k]] - mx);
    for (int k = 0; k < K; ++k) r.wts[(size_t)t * K + k] = std::exp(lg[ids[k]] - mx) / s;
  }
}

void route_f64(const Model& m, const HostTensor& x, int T, Routing& r, std::vector<double>* logits) {
  const int H = m.s.hidden, E = m.s.experts, K = m.s.topk;
  r.T = T; r.K = K;
  r.ids.assign((size_t)T * K, 0);
  r.wts.assign((size_t)T * K, 0.f);
  std::vector<double> lg((size_t)T * E);
  for (int t = 0; t < T; ++t) {
    for (int e = 0; e < E; ++e) {
      double acc = 0;
      for (int h = 0; h < H; ++h) acc += (double)m.wr.get((size_t)e * H + h) * x.get((size_t)t * H + h);
      lg[(size_t)t * E + e] = acc;
    }
    int* ids = &r.ids[(size_t)t * K];
    topk_ids(&lg[(size_t)t * E], E, K, ids);
  }
  if (logits) *logits = lg;
}

namespace {
template <class LD>
void oracle_tokens(const Model& m, LD wr, LD w13, LD w2t, const HostTensor& x, const Routing& r,
                   const std::vector<double>& lg, double* out_all, int t0, int t1) {
  (void)wr;
  const int H = m.s.hidden, I = m.s.inter, E = m.s.experts, K = m.s.topk;
  std::vector<double> xv(H), a(I);
  for (int t = t0; t < t1; ++t) {
    double* o = out_all + (size_t)t * H;
    for (int h = 0; h < H; ++h) { xv[h] = x.get((size_t)t * H + h); o[h] = 0.0; }
    const int* ids = &r.ids[(size_t)t * K];
    double mx = -1e300;
    for (int k = 0; k < K; ++k) mx = std::max(mx, lg[(size_t)t * E + ids[k]]);
    double s = 0;
    for (int k = 0; k < K; ++k) s += std::exp(lg[(size_t)t * E + ids[k]] - mx);
    for (int k = 0; k < K; ++k) {
      const int e = ids[k];
      const double w = std::exp(lg[(size_t)t * E + e] - mx) / s;
      for (int i = 0; i < I; ++i) {
        const size_t g0 = ((size_t)e * 2 * I + 2 * i) * H, u0 = g0 + H;
        double g = 0, u = 0;
        for (int h = 0; h < H; ++h) { g += (double)w13(g0 + h) * xv[h]; u += (double)w13(u0 + h) * xv[h]; }
        a[i] = g / (1.0 + std::exp(-g)) * u;
      }
      for (int i = 0; i < I; ++i) {
        const size_t r0 = ((size_t)e * I + i) * H;
        const double wa = w * a[i];
        for (int h = 0; h < H; ++h) o[h] += wa * (double)w2t(r0 + h);
      }
    }
  }
}
struct LdB { const uint16_t* p; float operator()(size_t i) const { return bf16_to_f32(p[i]); } };
struct LdH { const uint16_t* p; float operator()(size_t i) const { return fp16_to_f32(p[i]); } };
struct LdF { const float* p; float operator()(size_t i) const { return p[i]; } };
}  // namespace

void oracle_tokens(const Model& m, const HostTensor& x, const Routing& r, const std::vector<double>& lg,
                   double* out, int t0, int t1) {
  switch (m.dt) {
    case DType::BF16: oracle_tokens(m, LdB{m.wr.h16()}, LdB{m.w13.h16()}, LdB{m.w2t.h16()}, x, r, lg, out, t0, t1); break;
    case DType::FP16: oracle_tokens(m, LdH{m.wr.h16()}, LdH{m.w13.h16()}, LdH{m.w2t.h16()}, x, r, lg, out, t0, t1); break;
    default: oracle_tokens(m, LdF{m.wr.f32()}, LdF{m.w13.f32()}, LdF{m.w2t.f32()}, x, r, lg, out, t0, t1);
  }
}

void oracle_forward(const Model& m, const HostTensor& x, int T, const Routing& r,
                    const std::vector<double>& lg, std::vector<double>& out) {
  out.assign((size_t)T * m.s.hidden, 0.0);
  oracle_tokens(m, x, r, lg, out.data(), 0, T);
}

namespace {

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

// fused: group tokens by expert, one pass per gate/up row pair for up to 8
// tokens at a time, down projection as axpy over contiguous w2t rows.
template <class LD>
void forward_fused(const Model& m, LD wr, LD w13, LD w2t, LD xl, int T, float* out, int* ids) {
  const int H = m.s.hidden, I = m.s.inter, E = m.s.experts, K = m.s.topk;
  std::vector<float> lg, wts((size_t)T * K);
  route_typed(m, wr, xl, T, ids, wts.data(), lg);
  std::vector<std::vector<int>> slots(E);
  for (int s = 0; s < T * K; ++s) slots[ids[s]].push_back(s);
  std::vector<float> acc((size_t)T * H, 0.f), xf((size_t)T * H), rowg(H), rowu(H);
  for (size_t i = 0; i < (size_t)T * H; ++i) xf[i] = xl(i);
  constexpr int G = 8;
  std::vector<float> a((size_t)G * I);
  for (int e = 0; e < E; ++e) {
    const auto& sl = slots[e];
    for (size_t g0 = 0; g0 < sl.size(); g0 += G) {
      const int n = (int)std::min<size_t>(G, sl.size() - g0);
      const float* xs[G];
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

class CpuBackend : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  std::vector<std::string> variants() const override { return {"reference", "fused"}; }
  std::string unsupported(const std::string&, const Shape&, int, DType) const override { return ""; }
  int default_rotate() const override { return 4; }
  void device_json(Json& j) override {
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
    j.kv("kind", "cpu");
    j.kv("name", model);
    j.kv_null("sm_count");
    j.kv_null("compute_capability");
    j.kv_null("driver");
    j.kv_null("l2_bytes");
    j.kv_null("mem_bytes");
    j.kv("cores", (int)std::thread::hardware_concurrency());
  }
  void upload(const Model& m, const Config& cfg) override { m_ = &m; repeat_ = cfg.repeat_work; }
  void forward(const std::string& v, const HostTensor& x, int T, float* out, int* ids) {
    const Model& m = *m_;
    auto go = [&](auto wr, auto w13, auto w2t, auto xl) {
      if (v == "reference") forward_reference(m, wr, w13, w2t, xl, T, out, ids);
      else forward_fused(m, wr, w13, w2t, xl, T, out, ids);
    };
    switch (m.dt) {
      case DType::BF16: go(LdBF16{m.wr.h16()}, LdBF16{m.w13.h16()}, LdBF16{m.w2t.h16()}, LdBF16{x.h16()}); break;
      case DType::FP16: go(LdFP16{m.wr.h16()}, LdFP16{m.w13.h16()}, LdFP16{m.w2t.h16()}, LdFP16{x.h16()}); break;
      default: go(LdF32{m.wr.f32()}, LdF32{m.w13.f32()}, LdF32{m.w2t.f32()}, LdF32{x.f32()});
    }
  }
  // output stored in the dtype: round-trip through it
  void store(int T, std::vector<float>& o) {
    HostTensor t;
    t.alloc(m_->dt, (size_t)T * m_->s.hidden);
    for (size_t i = 0; i < o.size(); ++i) t.set(i, o[i]);
    for (size_t i = 0; i < o.size(); ++i) o[i] = t.get(i);
  }
  void run_once(const std::string& v, const HostTensor& x, int T, std::vector<float>& out,
                std::vector<int>& ids) override {
    out.assign((size_t)T * m_->s.hidden, std::nanf(""));
    ids.assign((size_t)T * m_->s.topk, -1);
    forward(v, x, T, out.data(), ids.data());
    store(T, out);
  }
  void set_rotation(const std::vector<HostTensor>& xs, int T) override { xs_ = &xs; T_ = T; }
  void time_iters(const std::string& v, int warmup, int iters, std::vector<double>& us,
                  std::vector<double>& mhz) override {
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
        forward(v, x, T_, out.data(), ids.data());
        for (size_t i = 0; i < out.size(); ++i) ot.set(i, out[i]);
      }
      auto t1 = std::chrono::steady_clock::now();
      if (it >= 0) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
  }

 private:
  const Model* m_ = nullptr;
  const std::vector<HostTensor>* xs_ = nullptr;
  int T_ = 1, repeat_ = 1;
  size_t pos_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace moe
