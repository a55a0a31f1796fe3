// check.cpp — see check.h.
#include "check.h"

#include <set>

#include "cpu/oracle.h"

namespace moe {

// fp8: the oracle uses the same e4m3 weights and scales (in fp64), so what is measured is the variant's arithmetic
// on bf16 inputs, as for bf16: the same tolerance.
double tol_for(DType d) { return d == DType::FP32 ? 1e-5 : d == DType::FP16 ? 5e-3 : 2e-2; }

void make_cases(const Model& m, const Config& c, std::vector<CheckCase>& cases, int& hit) {
  const int E = m.s.experts;
  std::vector<char> seen(E, 0);
  hit = 0;
  for (int k = 0; k < 1024; ++k) {
    if (hit == E && k >= 3) break;
    cases.emplace_back();
    CheckCase& cs = cases.back();
    make_input(cs.x, c.layer_tokens(), m.s.hidden, m.dt, c.seed, 5000 + k);
    route_f64(m, cs.x, c.layer_tokens(), cs.r, &cs.lg);
    for (int id : cs.r.ids) if (!seen[id]) { seen[id] = 1; ++hit; }
  }
  // With --gpus N every device's tokens are checked: the oracle runs the whole layer on one device.
  const int T = c.layer_tokens();
  for (auto& cs : cases) cs.out.assign((size_t)T * m.s.hidden, 0.0);
  parallel_for((int)cases.size() * T, [&](int i) {
    CheckCase& cs = cases[i / T];
    oracle_tokens(m, cs.x, cs.r, cs.lg, cs.out.data(), i % T, i % T + 1);
  });
}

CheckResult check_variant(Backend& be, int v, const Model& m, const Config& c, std::vector<CheckCase>& cases, int hit) {
  CheckResult cr;
  cr.tol = tol_for(m.dt);
  cr.cases = (int)cases.size();
  cr.experts = m.s.experts;
  cr.experts_hit = hit;
  const int T = c.layer_tokens(), K = m.s.topk, E = m.s.experts;
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

}  // namespace moe
