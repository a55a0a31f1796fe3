// families.h — the host's view of the kernel families: how a variant's
// tunables become a Plan (grid, threads, shared memory, tiles), and the
// registry that maps (family, strategy) of csrc/variants.json to the code.
//
// Adding a scheduler: csrc/README.md ("Add a scheduler").
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../tunables.h"
#include "params.cuh"

namespace moe {

// Strategy ids of the families that have several (Params::strategy).
enum OsStrategy : int { OS_SIMPLE = 0, OS_MULTIWARP = 1, OS_ROUNDROBIN = 2, OS_BATCHED = 3 };
enum SplitkStrategy : int { SK_STATIC = 0, SK_DYNAMIC = 1 };

// How one variant runs this shape on this device.
struct Plan {
  const struct Family* family = nullptr;
  int strategy = 0;
  bool persistent = false;  // one grid that co-resides (grid barriers, doorbells)
  int grid = 0;             // blocks of the main kernel (persistent: the whole grid)
  int threads = kThreads;
  SmemLayout sl;            // dynamic shared memory of the main kernel(s)
  int ti = 0, nh = 0, down_chunk = 0, prefetch = 1, tail_split = 1, sched_warps = 4, batch = 1, order = 0;
  int path = 0;             // flat: which kernel (its t1path)
  bool fp8 = false;         // e4m3 expert weights (Params q13.., s13..), bf16 activations
  bool q8blk = false;       // fp8 with 128 x 128 block scales (Params::q8blk)
  size_t smem() const { return sl.bytes(); }
};

struct PlanCtx {
  const cudaDeviceProp& prop;
  Shape s;
  int T;
  bool bf;   // activations (router, inputs, output) in bf16 (fp8 runs too), else fp16
  bool fp8;  // expert weights in e4m3 with fp32 scales
  // What an fp8 scale covers (--fp8-scales). Tensor runs as Channel (the backend uploads each expert's scale
  // repeated per channel); Block has kernels of its own (Params::q8blk).
  Fp8Scales scales = Fp8Scales::Channel;
};

struct Family {
  const char* name;
  // Fills the "auto" tunables (TunableSet::set_heuristic) and checks the values
  // against the shape and the device: "" or the failure, naming the tunable
  // and where its value came from (TunableSet::describe).
  std::string (*plan)(const PlanCtx& ctx, TunableSet& tun, Plan& plan);
  void (*launch)(const Plan& plan, const Params& p, bool bf, cudaStream_t st);
};
extern const Family kSeparateFamily, kOsFamily, kSplitkFamily, kFlatFamily, kGroupedFamily;
// Expert parallelism over several devices (ep.cu): planned and run by the EpEngine (ep.h), not through
// plan/launch (both null).
extern const Family kEpFamily;

struct RegistryRow { const char* family; const char* strategy; const Family* fam; int strategy_id; };
const RegistryRow* find_cuda_row(const std::string& family, const char* strategy);

// Shared by the plans.
// The layout's bytes fit the device's opt-in limit per block: "" or why not.
std::string shared_memory_reason(const PlanCtx& ctx, const SmemLayout& sl);
// Blocks of `threads` that co-reside on one SM with `smem` bytes each (sets the kernel's smem limit first).
int blocks_per_sm(const void* kernel, int threads, size_t smem);
// down_tile: 128 columns when that divides hidden, else 64 (hidden is a multiple of 64); a value
// given must divide hidden.
std::string plan_down_tile(const PlanCtx& ctx, TunableSet& tun, int& nh);

}  // namespace moe
