// shared_experts.cuh — a shared expert (router-independent, every token, weight 1) run by the routed experts'
// device code: shared_view gives the Params of shared expert n as if it were routed expert 0 of a layer whose
// token list is every token (K = 1, so a slot is its token: the lists are Params::iota) with weight 1
// (Params::ones). separate (its NS more block rows), splitk (shared slices) and os (shared FFN1 and down tasks)
// use it; flat has its own unit layout.
#pragma once
#include "gemv_fp8.cuh"

namespace moe {

// The Params a shared expert's work runs with: its weights and size; token lists of every token (K = 1, so a
// slot is its token) with weight 1; its activations [T][IS] in act_s. The expert index is then 0. BLK: fp8 with
// block scales (Params::q8blk).
template <bool BLK>
__device__ __forceinline__ Params shared_view(const Params& p, int n) {
  Params q = p;
  q.w13 = p.ws13 + (size_t)n * 2 * p.IS * p.H;
  q.w2t = p.ws2t + (size_t)n * p.IS * p.H;
  if (p.qs13) {  // fp8: its bytes and scales (the scales of expert 0 are then this shared expert's)
    q.q13 = p.qs13 + (size_t)n * 2 * p.IS * p.H;
    q.q2t = p.qs2t + (size_t)n * p.IS * p.H;
    if constexpr (BLK) {  // [NS][2][nISb][nHb] and [NS][nHb][nISb]
      const size_t blocks = (size_t)nblk128(p.IS) * nblk128(p.H);
      q.s13 = p.ss13 + (size_t)n * 2 * blocks;
      q.s2 = p.ss2 + (size_t)n * blocks;
    } else {
      q.s13 = p.ss13 + (size_t)n * 2 * p.IS;
      q.s2 = p.ss2 + (size_t)n * p.H;
    }
  }
  q.I = p.IS;
  q.K = 1;
  q.act = p.act_s + (size_t)n * p.T * p.IS;
  q.topk_w = p.ones;
  return q;
}

// The NS shared experts as routed experts 0 .. NS-1 of IS units with K = 1 (a slot is its token; every token
// goes to each, Params::iota): their bf16/fp16 weights and size only (not fp8, not the activations), for code that
// indexes the expert itself (split-K's shared slices: expert n, its slice's offsets as a routed task's).
__device__ __forceinline__ Params shared_as_routed(const Params& p) {
  Params q = p;
  q.w13 = p.ws13;
  q.w2t = p.ws2t;
  q.I = p.IS;
  q.K = 1;
  return q;
}

}  // namespace moe
