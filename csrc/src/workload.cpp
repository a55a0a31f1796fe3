// workload.cpp — rotated inputs, their distinct experts (fp32 routing, the
// variants' rule) and the bytes per timed iteration.
#include "workload.h"

namespace moe {

Workload make_workload(const Model& m, const Config& c) {
  Workload w;
  w.xs.resize(c.rotate);
  const int H = m.s.hidden, E = m.s.experts, K = m.s.topk, T = c.layer_tokens();
  std::vector<float> wr((size_t)E * H);
  for (size_t i = 0; i < wr.size(); ++i) wr[i] = m.wr.get(i);
  const int G = c.gpus, EL = E / G;  // devices and experts per device (E % G == 0: checked with --gpus)
  std::vector<std::vector<int>> nd_dev(c.rotate, std::vector<int>(G, 0));  // distinct experts per owning device
  for (int r = 0; r < c.rotate; ++r) make_input(w.xs[r], T, H, m.dt, c.seed, 100000 + r);
  parallel_for(c.rotate, [&](int r) {
    std::vector<float> xf(H), lg(E);
    std::vector<char> used(E, 0);
    std::vector<int> idx(E);
    for (int t = 0; t < T; ++t) {
      for (int h = 0; h < H; ++h) xf[h] = w.xs[r].get((size_t)t * H + h);
      for (int e = 0; e < E; ++e) {
        float a = 0;
        const float* row = &wr[(size_t)e * H];
        for (int h = 0; h < H; ++h) a += row[h] * xf[h];
        lg[e] = a;
        idx[e] = e;
      }
      std::partial_sort(idx.begin(), idx.begin() + K, idx.end(),
                        [&](int a, int b) { return lg[a] > lg[b] || (lg[a] == lg[b] && a < b); });
      for (int k = 0; k < K; ++k) used[idx[k]] = 1;
    }
    for (int e = 0; e < E; ++e) nd_dev[r][e / EL] += used[e];
  });
  for (const auto& row : nd_dev)
    for (int n : row) w.distinct_experts += n;
  w.distinct_experts /= c.rotate;
  // Router, inputs and output in act_dtype; experts in dtype (fp8: 1 byte plus 4 per fp32 scale, as many as
  // --fp8-scales gives an expert: 2I + H per channel, 2 per tensor, 3 x ceil(I/128) x ceil(H/128) per block);
  // shared experts read every iteration. With --gpus N: the router and the shared experts are read on every
  // device, each routed expert on its owner only, every token in and out once.
  const double da = (double)dtype_size(act_dtype(m.dt)), dw = (double)dtype_size(m.dt);
  const double Hd = H, I = m.s.inter, Ed = E, NS = m.s.shared_experts, IS = m.s.shared_inter;
  const bool q8 = m.dt == DType::FP8;
  const double sc_e = q8 ? 4.0 * fp8_scales_per_expert(m.scales, m.s.inter, H) : 0.0;
  const double sc_s = q8 && IS > 0 ? 4.0 * fp8_scales_per_expert(m.scales, m.s.shared_inter, H) : 0.0;
  const double expert = 3.0 * I * Hd * dw + sc_e, shared = 3.0 * IS * Hd * dw + sc_s;
  // One device: the router and shared experts, n of its own experts, its own c.tokens tokens in and out; the
  // layer is G devices of the mean.
  auto device_bytes = [&](double n) { return c.repeat_work * (Ed * Hd * da + NS * shared + n * expert + 2.0 * c.tokens * Hd * da); };
  w.bytes_per_gpu_mean = device_bytes(w.distinct_experts / G);
  w.bytes_per_iter = G * w.bytes_per_gpu_mean;
  for (int r = 0; r < c.rotate; ++r) w.bytes_per_gpu_max += device_bytes(*std::max_element(nd_dev[r].begin(), nd_dev[r].end()));
  w.bytes_per_gpu_max /= c.rotate;
  return w;
}

}  // namespace moe
