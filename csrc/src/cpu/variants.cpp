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
// Both take shared experts (after the routed ones, weight 1, every token) and
// fp8 weights (e4m3 x scale, dequantized as they are read; the scales per
// output channel, per tensor or per 128 x 128 block: --fp8-scales, common.h).
//
// Expert parallelism (--gpus N, both variants): the layer of N devices, run on
// the CPU one device after another (forward_ep). Device d holds its own T
// tokens (as after data-parallel attention) and owns experts [d*E/N, (d+1)*E/N).
// Each device routes its tokens (the router is replicated); dispatch copies a
// token once to every device that owns one of its picked experts; each owner
// computes w * FFN_e(x) for what it received (the variant's way: one slot at a
// time, or grouped per expert); the results are copied back and combined on the
// token's home device in the order of its top-k slots. Shared experts are
// replicated: every device runs them for its own tokens, added after the routed
// slots. fp8 weights are read through the same loaders as on one device. Every
// partial result is computed by the same operations whichever device owns the
// expert, so the split cannot change a bit: run_once checks every checked
// forward against the same code on one device (ep_mismatch), besides the fp64
// oracle's check.
#include <chrono>

#include "../backend.h"
#include "oracle.h"

namespace moe {

namespace {

struct LdBF16 { const uint16_t* p; float operator()(size_t i) const { return bf16_to_f32(p[i]); } };
struct LdFP16 { const uint16_t* p; float operator()(size_t i) const { return fp16_to_f32(p[i]); } };
struct LdF32 { const float* p; float operator()(size_t i) const { return p[i]; } };
// FP8 weights (common.h): e4m3 value times its fp32 scale; Idx says which scale (Fp8RowIdx, Fp8ColIdx: per
// channel; Fp8TensorIdx; Fp8BlockIdx: per 128 x 128 block).
template <class Idx>
struct LdQ {
  const uint8_t* q; const float* s; Idx idx;
  float operator()(size_t i) const { return e4m3_to_f32(q[i]) * s[idx(i)]; }
};
template <class Idx>
LdQ<Idx> ldq(const WeightTensor& w) { return {w.q.u8(), w.scale.data(), Idx::of(w)}; }

// The loaders of one forward: router and token inputs (LA), gate/up weights (L1), down weights (L2), the routed
// experts' and the shared experts'.
template <class LA, class L1, class L2>
struct Loaders { LA wr, x; L1 w13, ws13; L2 w2t, ws2t; };

inline float silu(float g) { return g / (1.0f + std::exp(-g)); }

template <class LA, class LX>
void route_typed(const Model& m, LA wr, LX xl, int T, int* ids, float* wts, std::vector<float>& lg) {
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

// reference: one expert (I units) for one token: acc += w * down(silu(gate . x) * (up . x)).
template <class L1, class L2, class LA>
void expert_reference(L1 w13, L2 w2t, int e, int I, int H, LA xl, int t, float w, std::vector<float>& a, std::vector<float>& acc) {
  a.resize(I);
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

// reference: per token, per expert (the routed ones, then the shared ones), plain loops.
template <class LA, class L1, class L2>
void forward_reference(const Model& m, const Loaders<LA, L1, L2>& L, int T, float* out, int* ids) {
  const int H = m.s.hidden, I = m.s.inter, K = m.s.topk;
  std::vector<float> lg, wts((size_t)T * K), a(I), acc(H);
  route_typed(m, L.wr, L.x, T, ids, wts.data(), lg);
  for (int t = 0; t < T; ++t) {
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int k = 0; k < K; ++k)
      expert_reference(L.w13, L.w2t, ids[(size_t)t * K + k], I, H, L.x, t, wts[(size_t)t * K + k], a, acc);
    for (int n = 0; n < m.s.shared_experts; ++n) expert_reference(L.ws13, L.ws2t, n, m.s.shared_inter, H, L.x, t, 1.f, a, acc);
    for (int h = 0; h < H; ++h) out[(size_t)t * H + h] = acc[h];
  }
}

// fused: group tokens by expert, one pass per gate/up row pair for up to G
// tokens at a time, down projection as axpy over contiguous w2t rows.
constexpr int kMaxGroup = 16;  // the largest value of the tunable `group` (variants.json)

// Scratch of expert_fused, allocated once per forward.
struct FusedScratch { std::vector<float> a, rowg, rowu; };

// One expert (I units) for its tokens: toks[j] (token index), wts[j] (its weight), n of them.
template <class L1, class L2>
void expert_fused(int G, L1 w13, L2 w2t, int e, int I, int H, const std::vector<int>& toks, const std::vector<float>& wts,
                  const std::vector<float>& xf, std::vector<float>& acc, FusedScratch& sc) {
  sc.a.resize((size_t)G * I);
  sc.rowg.resize(H);
  sc.rowu.resize(H);
  float* a = sc.a.data();
  float* rowg = sc.rowg.data();
  float* rowu = sc.rowu.data();
  for (size_t g0 = 0; g0 < toks.size(); g0 += G) {
    const int n = (int)std::min<size_t>(G, toks.size() - g0);
    const float* xs[kMaxGroup];
    for (int j = 0; j < n; ++j) xs[j] = &xf[(size_t)toks[g0 + j] * H];
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
        const float c = wts[g0 + j] * a[(size_t)j * I + i];
        float* o = &acc[(size_t)toks[g0 + j] * H];
        for (int h = 0; h < H; ++h) o[h] += c * rowg[h];
      }
    }
  }
}

template <class LA, class L1, class L2>
void forward_fused(int G, const Model& m, const Loaders<LA, L1, L2>& L, int T, float* out, int* ids) {
  const int H = m.s.hidden, I = m.s.inter, E = m.s.experts, K = m.s.topk;
  std::vector<float> lg, wts((size_t)T * K);
  route_typed(m, L.wr, L.x, T, ids, wts.data(), lg);
  std::vector<std::vector<int>> toks(E);
  std::vector<std::vector<float>> tw(E);
  for (int s = 0; s < T * K; ++s) { toks[ids[s]].push_back(s / K); tw[ids[s]].push_back(wts[s]); }
  std::vector<float> acc((size_t)T * H, 0.f), xf((size_t)T * H);
  for (size_t i = 0; i < (size_t)T * H; ++i) xf[i] = L.x(i);
  FusedScratch sc;
  for (int e = 0; e < E; ++e)
    if (!toks[e].empty()) expert_fused(G, L.w13, L.w2t, e, I, H, toks[e], tw[e], xf, acc, sc);
  if (m.s.shared_experts > 0) {  // every token, weight 1
    std::vector<int> all(T);
    for (int t = 0; t < T; ++t) all[t] = t;
    const std::vector<float> ones(T, 1.f);
    for (int n = 0; n < m.s.shared_experts; ++n) expert_fused(G, L.ws13, L.ws2t, n, m.s.shared_inter, H, all, ones, xf, acc, sc);
  }
  std::copy(acc.begin(), acc.end(), out);
}

// A view of a tensor from element `off` on: device d's tokens are x[d*T*H ...].
template <class LD>
struct Offset {
  LD ld;
  size_t off;
  float operator()(size_t i) const { return ld(off + i); }
};

// Token and result movements of the simulated devices, summed over forwards.
struct EpCounts {
  long long forwards = 0;
  std::vector<long long> tokens;  // [home * G + owner]: token copies sent from home to owner
  std::vector<long long> slots;   // [home * G + owner]: (token, expert) results computed by owner for home
};

// One (token, picked expert) entry as its owner computes it.
struct EpEntry { int home, t, k, e; float w; int xrow; };

// forward_ep: the layer over G devices (see the comment at the top). T: tokens of the whole layer (G x per-device).
template <class LA, class L1, class L2>
void forward_ep(int G, int strategy, int group, const Model& m, const Loaders<LA, L1, L2>& L, int T, float* out, int* ids,
                EpCounts* counts) {
  const int H = m.s.hidden, I = m.s.inter, E = m.s.experts, K = m.s.topk;
  const int Td = T / G, EL = E / G;
  std::vector<float> wts((size_t)T * K), lg;
  // 1. route: every device its own tokens, with its copy of the router.
  for (int d = 0; d < G; ++d)
    route_typed(m, L.wr, Offset<LA>{L.x, (size_t)d * Td * H}, Td, ids + (size_t)d * Td * K, wts.data() + (size_t)d * Td * K, lg);
  // 2. dispatch: a token goes once to each device that owns one of its experts; recv[o] holds the copies.
  std::vector<std::vector<float>> recv(G);
  std::vector<std::vector<EpEntry>> work(G);
  std::vector<int> row_of(G);
  for (int d = 0; d < G; ++d) {
    for (int t = 0; t < Td; ++t) {
      std::fill(row_of.begin(), row_of.end(), -1);
      const size_t tg = (size_t)d * Td + t;
      for (int k = 0; k < K; ++k) {
        const int e = ids[tg * K + k], o = e / EL;
        if (row_of[o] < 0) {
          row_of[o] = (int)(recv[o].size() / H);
          for (int h = 0; h < H; ++h) recv[o].push_back(L.x(tg * H + h));
          if (counts) ++counts->tokens[(size_t)d * G + o];
        }
        work[o].push_back(EpEntry{d, t, k, e, wts[tg * K + k], row_of[o]});
        if (counts) ++counts->slots[(size_t)d * G + o];
      }
    }
  }
  // 3. compute: each owner, over its own experts only, y = w * FFN_e(x) per entry.
  std::vector<std::vector<float>> y(G);
  std::vector<float> a((size_t)kMaxGroup * I), rowg(H), rowu(H);
  for (int o = 0; o < G; ++o) {
    const auto& wk = work[o];
    y[o].assign(wk.size() * H, 0.f);
    std::vector<std::vector<int>> by_expert(EL);
    for (size_t s = 0; s < wk.size(); ++s) {
      const int el = wk[s].e - o * EL;
      if (el < 0 || el >= EL) die_runtime("internal: forward_ep: device " + std::to_string(o) + " was sent expert " + std::to_string(wk[s].e) + ", which it does not own");
      by_expert[el].push_back((int)s);
    }
    // reference: one entry at a time; fused: up to `group` entries of an expert per pass over its rows.
    const int Gp = strategy == 0 ? 1 : std::min(group, kMaxGroup);
    for (int el = 0; el < EL; ++el) {
      const auto& sl = by_expert[el];
      const int e = o * EL + el;
      for (size_t g0 = 0; g0 < sl.size(); g0 += Gp) {
        const int n = (int)std::min<size_t>(Gp, sl.size() - g0);
        for (int i = 0; i < I; ++i) {
          const size_t r0 = ((size_t)e * 2 * I + 2 * i) * H;
          for (int h = 0; h < H; ++h) { rowg[h] = L.w13(r0 + h); rowu[h] = L.w13(r0 + H + h); }
          for (int j = 0; j < n; ++j) {
            const float* xv = &recv[o][(size_t)wk[sl[g0 + j]].xrow * H];
            float gs = 0.f, us = 0.f;
            for (int h = 0; h < H; ++h) gs += rowg[h] * xv[h];
            for (int h = 0; h < H; ++h) us += rowu[h] * xv[h];
            a[(size_t)j * I + i] = silu(gs) * us;
          }
        }
        for (int i = 0; i < I; ++i) {
          const size_t r0 = ((size_t)e * I + i) * H;
          for (int h = 0; h < H; ++h) rowg[h] = L.w2t(r0 + h);
          for (int j = 0; j < n; ++j) {
            const int s = sl[g0 + j];
            const float c = wk[s].w * a[(size_t)j * I + i];
            float* yo = &y[o][(size_t)s * H];
            for (int h = 0; h < H; ++h) yo[h] += c * rowg[h];
          }
        }
      }
    }
  }
  // 3b. shared experts, replicated: each device runs them for its own tokens (weight 1, the variant's grouping).
  const int NS = m.s.shared_experts;
  std::vector<std::vector<float>> ys(NS > 0 ? G : 0);
  if (NS > 0) {
    const int Gp = strategy == 0 ? 1 : std::min(group, kMaxGroup);
    std::vector<int> mine(Td);
    for (int t = 0; t < Td; ++t) mine[t] = t;
    const std::vector<float> ones(Td, 1.f);
    std::vector<float> xd((size_t)Td * H);
    FusedScratch sc;
    for (int d = 0; d < G; ++d) {
      for (size_t i = 0; i < xd.size(); ++i) xd[i] = L.x((size_t)d * Td * H + i);
      ys[d].assign((size_t)Td * H, 0.f);
      for (int n = 0; n < NS; ++n) expert_fused(Gp, L.ws13, L.ws2t, n, m.s.shared_inter, H, mine, ones, xd, ys[d], sc);
    }
  }
  // 4. return and combine: each result goes back to its token's home, summed there in top-k slot order, then the
  // home device's shared-expert result.
  std::vector<const float*> part((size_t)T * K, nullptr);
  for (int o = 0; o < G; ++o)
    for (size_t s = 0; s < work[o].size(); ++s) {
      const EpEntry& en = work[o][s];
      part[((size_t)en.home * Td + en.t) * K + en.k] = &y[o][s * H];
    }
  for (size_t t = 0; t < (size_t)T; ++t) {
    float* ot = out + t * H;
    std::fill(ot, ot + H, 0.f);
    for (int k = 0; k < K; ++k) {
      const float* p = part[t * K + k];
      for (int h = 0; h < H; ++h) ot[h] += p[h];
    }
    if (NS > 0) {
      const float* sp = &ys[t / Td][(t % Td) * H];
      for (int h = 0; h < H; ++h) ot[h] += sp[h];
    }
  }
  if (counts) ++counts->forwards;
}

// One forward of a planned variant, for one storage type.
template <class LA, class L1, class L2>
void forward(int strategy, int group, const Model& m, const Loaders<LA, L1, L2>& L, int T, float* out, int* ids) {
  if (strategy == 0) {
    forward_reference(m, L, T, out, ids);
    return;
  }
  forward_fused(std::min(group, kMaxGroup), m, L, T, out, ids);
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
  std::string plan(const VariantSpec& spec, const Shape&, int, DType, Fp8Scales, TunableSet& tun) override {
    const CpuRow* row = find_row(spec);
    if (!row) return "no CPU code for family " + spec.family + " strategy " + spec.strategy.value_or("null");
    Planned p;
    p.strategy = row->id;
    if (row->id == 1) p.group = (int)tun.get("group");
    plans_.push_back(p);
    return "";
  }
  void upload(const Model& m, const Config& cfg) override {
    m_ = &m;
    repeat_ = cfg.repeat_work;
    gpus_ = cfg.gpus;
    ep_.assign(plans_.size(), EpState{});
    for (auto& s : ep_) s.timed.tokens.assign((size_t)gpus_ * gpus_, 0), s.timed.slots.assign((size_t)gpus_ * gpus_, 0);
  }
  void run_once(int v, const HostTensor& x, int T, std::vector<float>& out, std::vector<int>& ids) override {
    out.assign((size_t)T * m_->s.hidden, std::nanf(""));
    ids.assign((size_t)T * m_->s.topk, -1);
    forward_any(v, x, T, out.data(), ids.data(), gpus_, nullptr);
    if (gpus_ > 1) {  // the same layer on one device: must agree bit for bit (ep_mismatch)
      std::vector<float> one((size_t)T * m_->s.hidden, std::nanf(""));
      std::vector<int> ids1((size_t)T * m_->s.topk, -1);
      forward_any(v, x, T, one.data(), ids1.data(), 1, nullptr);
      EpState& s = ep_[v];
      ++s.compared;
      if (ids1 != ids) ++s.routing_differs;
      for (size_t i = 0; i < out.size(); ++i) {
        if (std::memcmp(&out[i], &one[i], sizeof(float)) != 0) ++s.differing;
        const double d = std::fabs((double)out[i] - (double)one[i]);
        if (d > s.max_abs_diff || d != d) s.max_abs_diff = d;
      }
      s.values += (long long)out.size();
    }
    // output stored in the dtype: round-trip through it
    HostTensor t;
    t.alloc(act_dtype(m_->dt), out.size());
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
    ot.alloc(act_dtype(m_->dt), (size_t)T_ * H);
    for (int it = -warmup; it < iters; ++it) {
      const HostTensor& x = (*xs_)[pos_++ % xs_->size()];
      auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < repeat_; ++r) {
        forward_any(v, x, T_, out.data(), ids.data(), gpus_, it >= 0 && r == 0 ? &ep_[v].timed : nullptr);
        for (size_t i = 0; i < out.size(); ++i) ot.set(i, out[i]);
      }
      auto t1 = std::chrono::steady_clock::now();
      if (it >= 0) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
  }
  EnergyResult energy(int, int, double) override {
    return EnergyResult::unavailable("cpu backend: no energy counter is read (NVML measures GPUs only)");
  }

  std::string ep_mismatch(int v) const override {
    if (gpus_ == 1) return "";
    const EpState& s = ep_[v];
    if (s.compared == 0) return "expert parallelism over " + std::to_string(gpus_) + " devices was never compared with one device";
    if (s.differing == 0 && s.routing_differs == 0) return "";
    char buf[256];
    std::snprintf(buf, sizeof buf, "expert parallelism over %d devices differs from the same layer on one device: %lld of %lld values (max abs diff %.3g), routing differed in %lld of %lld forwards",
                  gpus_, s.differing, s.values, s.max_abs_diff, s.routing_differs, s.compared);
    return buf;
  }
  void ep_json(int v, JsonWriter& j) const override {
    if (gpus_ == 1) { j.null(); return; }
    const EpState& s = ep_[v];
    const int G = gpus_;
    j.begin_obj();
    j.kv("gpus", G);
    j.kv("experts_per_gpu", m_->s.experts / G);
    j.kv("tokens_per_gpu", T_ / G);
    j.kv("comm", "memcpy");
    j.kv("shared_experts", m_->s.shared_experts > 0 ? "replicated: every device runs them for its own tokens" : "none");
    j.kv("timing", "one CPU runs every device in turn: a sample is the whole layer (all devices), not the slowest device");
    // Mean per timed forward: token copies and (token, expert) results, [home][owner].
    auto matrix = [&](const char* key, const std::vector<long long>& c) {
      j.key(key);
      j.begin_arr();
      for (int d = 0; d < G; ++d) {
        j.begin_arr();
        for (int o = 0; o < G; ++o) j.val(s.timed.forwards ? (double)c[(size_t)d * G + o] / s.timed.forwards : 0.0);
        j.end_arr();
      }
      j.end_arr();
    };
    matrix("tokens_sent", s.timed.tokens);
    matrix("slots_computed", s.timed.slots);
    long long all = 0, remote = 0;
    for (int d = 0; d < G; ++d)
      for (int o = 0; o < G; ++o) { all += s.timed.tokens[(size_t)d * G + o]; if (o != d) remote += s.timed.tokens[(size_t)d * G + o]; }
    j.kv("remote_token_share", all ? (double)remote / all : 0.0);
    j.kv("timed_forwards", s.timed.forwards);
    j.key("single_device");
    j.begin_obj();
    j.kv("compared_forwards", s.compared);
    j.kv("equal", s.compared > 0 && s.differing == 0 && s.routing_differs == 0);
    j.kv("differing_values", s.differing);
    j.kv("max_abs_diff", s.max_abs_diff);
    j.end_obj();
    j.end_obj();
  }

 private:
  struct Planned { int strategy = 0, group = 8; };
  struct EpState {
    EpCounts timed;
    long long compared = 0, differing = 0, values = 0, routing_differs = 0;
    double max_abs_diff = 0;
  };
  void forward_any(int v, const HostTensor& x, int T, float* out, int* ids, int G, EpCounts* counts) {
    const Model& m = *m_;
    const Planned& p = plans_[v];
    switch (m.dt) {
      case DType::BF16: {
        auto ld = [](const HostTensor& t) { return LdBF16{t.h16()}; };
        run(G, counts, p, m, Loaders<LdBF16, LdBF16, LdBF16>{ld(m.wr), ld(x), ld(m.w13.q), ld(m.ws13.q), ld(m.w2t.q), ld(m.ws2t.q)}, T, out, ids);
        break;
      }
      case DType::FP16: {
        auto ld = [](const HostTensor& t) { return LdFP16{t.h16()}; };
        run(G, counts, p, m, Loaders<LdFP16, LdFP16, LdFP16>{ld(m.wr), ld(x), ld(m.w13.q), ld(m.ws13.q), ld(m.w2t.q), ld(m.ws2t.q)}, T, out, ids);
        break;
      }
      case DType::FP8: {  // bf16 router and inputs, e4m3 experts with their scales (m.scales' layout)
        with_fp8_index(m.scales, [&](auto i13, auto i2t) {
          using I13 = decltype(i13);
          using I2t = decltype(i2t);
          run(G, counts, p, m,
              Loaders<LdBF16, LdQ<I13>, LdQ<I2t>>{LdBF16{m.wr.h16()}, LdBF16{x.h16()}, ldq<I13>(m.w13), ldq<I13>(m.ws13),
                                                  ldq<I2t>(m.w2t), ldq<I2t>(m.ws2t)},
              T, out, ids);
        });
        break;
      }
      default: {
        auto ld = [](const HostTensor& t) { return LdF32{t.f32()}; };
        run(G, counts, p, m, Loaders<LdF32, LdF32, LdF32>{ld(m.wr), ld(x), ld(m.w13.q), ld(m.ws13.q), ld(m.w2t.q), ld(m.ws2t.q)}, T, out, ids);
      }
    }
  }
  // Without --gpus the variant's own single-device code; with it, the layer over G devices (G = 1 for the comparison).
  template <class LA, class L1, class L2>
  void run(int G, EpCounts* counts, const Planned& p, const Model& m, const Loaders<LA, L1, L2>& L, int T, float* out, int* ids) {
    if (gpus_ == 1) forward(p.strategy, p.group, m, L, T, out, ids);
    else forward_ep(G, p.strategy, p.group, m, L, T, out, ids, counts);
  }
  std::vector<EpState> ep_;
  int gpus_ = 1;
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
