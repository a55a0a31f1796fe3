// oracle.cpp — the fp64 reference (see oracle.h).
#include "oracle.h"

namespace moe {

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
    topk_ids(&lg[(size_t)t * E], E, K, &r.ids[(size_t)t * K]);
  }
  if (logits) *logits = lg;
}

namespace {
struct LdB { const uint16_t* p; float operator()(size_t i) const { return bf16_to_f32(p[i]); } };
struct LdH { const uint16_t* p; float operator()(size_t i) const { return fp16_to_f32(p[i]); } };
struct LdF { const float* p; float operator()(size_t i) const { return p[i]; } };

template <class LD>
void oracle_typed(const Model& m, LD w13, LD w2t, const HostTensor& x, const Routing& r,
                  const std::vector<double>& lg, double* out_all, int t0, int t1) {
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
}  // namespace

void oracle_tokens(const Model& m, const HostTensor& x, const Routing& r, const std::vector<double>& lg,
                   double* out, int t0, int t1) {
  switch (m.dt) {
    case DType::BF16: oracle_typed(m, LdB{m.w13.h16()}, LdB{m.w2t.h16()}, x, r, lg, out, t0, t1); break;
    case DType::FP16: oracle_typed(m, LdH{m.w13.h16()}, LdH{m.w2t.h16()}, x, r, lg, out, t0, t1); break;
    default: oracle_typed(m, LdF{m.w13.f32()}, LdF{m.w2t.f32()}, x, r, lg, out, t0, t1);
  }
}

void oracle_forward(const Model& m, const HostTensor& x, int T, const Routing& r,
                    const std::vector<double>& lg, std::vector<double>& out) {
  out.assign((size_t)T * m.s.hidden, 0.0);
  oracle_tokens(m, x, r, lg, out.data(), 0, T);
}

}  // namespace moe
