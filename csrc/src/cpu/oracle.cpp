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
struct LdB { const uint16_t* p; double operator()(size_t i) const { return bf16_to_f32(p[i]); } };
struct LdH { const uint16_t* p; double operator()(size_t i) const { return fp16_to_f32(p[i]); } };
struct LdF { const float* p; double operator()(size_t i) const { return p[i]; } };
// FP8 weights (common.h): e4m3 value times its scale, in fp64 (exact); Idx says which scale (Fp8RowIdx ..).
template <class Idx>
struct LdQ {
  const uint8_t* q; const float* s; Idx idx;
  double operator()(size_t i) const { return (double)e4m3_to_f32(q[i]) * s[idx(i)]; }
};
template <class Idx>
LdQ<Idx> ldq(const WeightTensor& w) { return {w.q.u8(), w.scale.data(), Idx::of(w)}; }

// out += w * sum_i silu(gate_i . x) * (up_i . x) * down[e][i][:], every sum in fp64.
template <class L1, class L2>
void expert_f64(L1 w13, L2 w2t, int e, int I, int H, const std::vector<double>& xv, double w, std::vector<double>& a, double* o) {
  a.resize(I);
  for (int i = 0; i < I; ++i) {
    const size_t g0 = ((size_t)e * 2 * I + 2 * i) * H, u0 = g0 + H;
    double g = 0, u = 0;
    for (int h = 0; h < H; ++h) { g += w13(g0 + h) * xv[h]; u += w13(u0 + h) * xv[h]; }
    a[i] = g / (1.0 + std::exp(-g)) * u;
  }
  for (int i = 0; i < I; ++i) {
    const size_t r0 = ((size_t)e * I + i) * H;
    const double wa = w * a[i];
    for (int h = 0; h < H; ++h) o[h] += wa * w2t(r0 + h);
  }
}

template <class L1, class L2>
void oracle_typed(const Model& m, L1 w13, L2 w2t, L1 ws13, L2 ws2t, const HostTensor& x, const Routing& r,
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
      expert_f64(w13, w2t, e, I, H, xv, std::exp(lg[(size_t)t * E + e] - mx) / s, a, o);
    }
    for (int n = 0; n < m.s.shared_experts; ++n) expert_f64(ws13, ws2t, n, m.s.shared_inter, H, xv, 1.0, a, o);
  }
}
}  // namespace

void oracle_tokens(const Model& m, const HostTensor& x, const Routing& r, const std::vector<double>& lg,
                   double* out, int t0, int t1) {
  switch (m.dt) {
    case DType::BF16:
      oracle_typed(m, LdB{m.w13.q.h16()}, LdB{m.w2t.q.h16()}, LdB{m.ws13.q.h16()}, LdB{m.ws2t.q.h16()}, x, r, lg, out, t0, t1);
      break;
    case DType::FP16:
      oracle_typed(m, LdH{m.w13.q.h16()}, LdH{m.w2t.q.h16()}, LdH{m.ws13.q.h16()}, LdH{m.ws2t.q.h16()}, x, r, lg, out, t0, t1);
      break;
    case DType::FP8:  // the scales of m.scales (channel, tensor or 128 x 128 blocks)
      with_fp8_index(m.scales, [&](auto i13, auto i2t) {
        using I13 = decltype(i13);
        using I2t = decltype(i2t);
        oracle_typed(m, ldq<I13>(m.w13), ldq<I2t>(m.w2t), ldq<I13>(m.ws13), ldq<I2t>(m.ws2t), x, r, lg, out, t0, t1);
      });
      break;
    default:
      oracle_typed(m, LdF{m.w13.q.f32()}, LdF{m.w2t.q.f32()}, LdF{m.ws13.q.f32()}, LdF{m.ws2t.q.f32()}, x, r, lg, out, t0, t1);
  }
}

void oracle_forward(const Model& m, const HostTensor& x, int T, const Routing& r,
                    const std::vector<double>& lg, std::vector<double>& out) {
  out.assign((size_t)T * m.s.hidden, 0.0);
  oracle_tokens(m, x, r, lg, out.data(), 0, T);
}

}  // namespace moe
