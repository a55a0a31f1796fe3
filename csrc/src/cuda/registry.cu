// registry.cu — THE map from csrc/variants.json's (family, strategy) to the
// code: one row per CUDA variant. A table row without code, or code without a
// table row, stops the binary before it runs anything (--list included).
// Also the small helpers every family's plan shares (families.h).
#include "../backend.h"
#include "cuda_check.cuh"
#include "ep.h"
#include "families.h"

namespace moe {

namespace {

const RegistryRow kCudaRegistry[] = {
    {"separate", nullptr, &kSeparateFamily, 0},
    {"os", "simple", &kOsFamily, OS_SIMPLE},
    {"os", "multiwarp", &kOsFamily, OS_MULTIWARP},
    {"os", "roundrobin", &kOsFamily, OS_ROUNDROBIN},
    {"os", "batched", &kOsFamily, OS_BATCHED},
    {"splitk", "static", &kSplitkFamily, SK_STATIC},
    {"splitk", "dynamic", &kSplitkFamily, SK_DYNAMIC},
    {"flat", nullptr, &kFlatFamily, 0},
    {"grouped", nullptr, &kGroupedFamily, 0},
    {"ep", "separate", &kEpFamily, EP_SEPARATE},
    {"ep", "persistent", &kEpFamily, EP_PERSISTENT},
};

bool same_strategy(const char* a, const char* b) {
  if (!a || !b) return a == b;
  return std::strcmp(a, b) == 0;
}

}  // namespace

const RegistryRow* find_cuda_row(const std::string& family, const char* strategy) {
  for (auto& r : kCudaRegistry)
    if (family == r.family && same_strategy(strategy, r.strategy)) return &r;
  return nullptr;
}

std::string cuda_registry_mismatch(const VariantTable& t) {
  for (auto& v : t.variants)
    if (v.backend == "cuda" && !find_cuda_row(v.family, v.strategy ? v.strategy->c_str() : nullptr))
      return "variants.json: cuda variant " + v.name + " (family " + v.family + ", strategy " + v.strategy.value_or("null") +
             ") has no code in this build (csrc/src/cuda/registry.cu)";
  for (auto& r : kCudaRegistry) {
    bool found = false;
    for (auto& v : t.variants)
      found = found || (v.backend == "cuda" && v.family == r.family && same_strategy(v.strategy ? v.strategy->c_str() : nullptr, r.strategy));
    if (!found)
      return std::string("csrc/src/cuda/registry.cu: row (") + r.family + ", " + (r.strategy ? r.strategy : "null") +
             ") has no row in variants.json";
  }
  return "";
}

std::string shared_memory_reason(const PlanCtx& ctx, const SmemLayout& sl) {
  if (sl.bytes() <= ctx.prop.sharedMemPerBlockOptin) return "";
  return "needs " + std::to_string(sl.bytes()) + " bytes of shared memory per block (tokens x topk = " +
         std::to_string(sl.tk) + ", experts " + std::to_string(sl.experts) + "); the device allows " +
         std::to_string(ctx.prop.sharedMemPerBlockOptin);
}

int blocks_per_sm(const void* kernel, int threads, size_t smem) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  int b = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, threads, smem));
  return b;
}

std::string plan_down_tile(const PlanCtx& ctx, TunableSet& tun, int& nh) {
  if (tun.is_auto("down_tile")) tun.set_heuristic("down_tile", ctx.s.hidden % 128 == 0 ? 128 : 64);
  nh = (int)tun.get("down_tile");
  if (ctx.s.hidden % nh != 0)
    return "tunable " + tun.describe("down_tile") + ": must divide hidden (" + std::to_string(ctx.s.hidden) + ")";
  return "";
}

}  // namespace moe
