// oracle.h — the fp64 CPU oracle every variant is checked against (check.cpp),
// kept apart from the CPU variants that are timed (cpu/variants.cpp).
//
// Computes, per token t: logits = Wr x_t; pick the top-k logits (ties: lower
// expert id first); softmax over those k only; for each picked expert e with
// weight w: a_i = silu(gate_i . x) * (up_i . x) (gate/up rows interleaved in
// w13), out_t += w * sum_i a_i w2t[e][i][:]; then each shared expert the same way with weight 1
// (router-independent); FP8 weights as e4m3 value x its scale (per channel, per tensor or per 128 x 128 block:
// common.h, Fp8Scales); every sum in fp64.
#pragma once
#include <vector>

#include "../common.h"

namespace moe {

// Top-k by value descending, ties to the lower index (the rule of every variant).
template <class V>
void topk_ids(const V* logits, int E, int K, int* ids) {
  std::vector<int> idx(E);
  for (int e = 0; e < E; ++e) idx[e] = e;
  std::partial_sort(idx.begin(), idx.begin() + K, idx.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int k = 0; k < K; ++k) ids[k] = idx[k];
}

// fp64 router logits [T][E] and the top-k ids (r.wts left 0: the oracle
// recomputes the softmax from the logits for whatever ids it is given).
void route_f64(const Model& m, const HostTensor& x, int T, Routing& r, std::vector<double>* logits);
// fp64 forward of tokens [t0, t1) with the routing r, into out (sized T*H by the caller).
void oracle_tokens(const Model& m, const HostTensor& x, const Routing& r, const std::vector<double>& logits,
                   double* out, int t0, int t1);
// The same for every token, into out (resized).
void oracle_forward(const Model& m, const HostTensor& x, int T, const Routing& r,
                    const std::vector<double>& logits, std::vector<double>& out);

}  // namespace moe
