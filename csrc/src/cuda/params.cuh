// params.cuh — what every kernel of the CUDA backend receives: the Params of a
// launch, the control words, the shared-memory layout (one definition, used by
// the host to size a launch and by the kernels to find their arrays), and the
// constants that are compile-time on purpose (template and array sizes).
#pragma once
#include <cstddef>
#include <cstdint>

namespace moe {

constexpr int kThreads = 512;           // launch bound of every kernel (16 warps); blocks may use fewer
constexpr int kWarps = kThreads / 32;
constexpr int kNT = 4;                  // tokens per register group in the GEMVs
constexpr int kMaxEv = 512;             // trace events per block per launch
constexpr int kDownIC = 4096;           // activations staged per down pass (intermediate units): 64 KB for kNT tokens
constexpr long long kSpinLimit = 1ll << 24;  // polls (seconds, far beyond any real wait), then trap
// OS batched: each worker's mailbox is one 128-byte line written by the OS only: [0] the tail (tasks
// written so far, the exit included), [1 .. kMbCap] a ring of task ids (task n in slot 1 + n % kMbCap).
constexpr int kMbInts = 32;
constexpr int kMbCap = kMbInts - 1;
constexpr int kMaxBatch = 16;           // tasks outstanding per worker (< kMbCap: the exit always fits)

// Control words (ints), reset by the kernels themselves at the end of a launch.
enum Ctrl : int {
  C_ROUTER = 0,   // blocks that finished their router rows (grid barrier)
  C_DONE = 1,     // blocks (or down tiles) finished -> last one converts
  C_QTAIL = 2,    // down-tile queue tail (OS family)
  C_TASK = 3,     // dynamic task counter (split-K dynamic)
  C_K1 = 4,       // separate: router blocks done
  C_K3 = 5,       // separate: down blocks done
  C_ITER = 6,     // launch counter (input rotation, clock slots)
  C_ERR = 7,      // error code set before a trap
  C_NACT = 8,     // number of active experts (published lists)
  C_STASK = 9,    // split-K dynamic with shared experts: shared-slice ticket counter
  C_FLAT_COL = 16,  // flat: 8 words, arrivals per down warp's column group (the last one converts those columns)
  C_FLAT_GRP = 24,  // flat: column groups converted (the last one closes the launch)
  C_N = 32
};

struct TraceEv { int type, task; unsigned long long t0, t1; };

// Dynamic shared memory of a block, in this order (4-byte elements; red first, so 16-byte aligned):
//   red    [kThreads*8] floats  block reductions; the top-k's scratch
//   sa     [sa_floats]          activations of up to kNT tokens for a down pass
//   ids, w [tk] each            top-k experts and weights, token-major (tk = T*K)
//   cnt, off, fill [E] each     tokens per expert, their offsets, fill counters
//   slots  [tk]                 token slots grouped by expert
//   active [E]                  active experts, ascending
//   misc   [misc_ints]          family-specific (OS block: worker state)
struct SmemLayout {
  int tk = 0, experts = 0, sa_floats = 0, misc_ints = 0;
  __host__ __device__ size_t floats() const {
    return (size_t)kThreads * 8 + sa_floats + 3 * (size_t)tk + 4 * (size_t)experts + misc_ints;
  }
  __host__ __device__ size_t bytes() const { return floats() * 4; }
};

struct Params {
  const uint16_t* wr;
  const uint16_t* w13;
  const uint16_t* w2t;
  const uint16_t* x_base;
  int rotate;
  uint16_t* out;
  float* out_acc;     // [T][H], zero between launches
  float* logits;      // [T][E]
  int* topk_ids;      // [T][K]
  float* topk_w;      // [T][K]
  float* act;         // [T*K][I]
  int* l_cnt;         // [E] tokens per expert
  int* l_off;         // [E]
  int* l_slots;       // [T*K] slots (t*K+j) grouped by expert
  int* l_active;      // [E] active experts, ascending
  int* ctrl;          // Ctrl words
  int* fanin;         // [E]
  unsigned long long* db;  // [nb] doorbells: (task << 32) | seq
  int* ack;           // [nb] (+8): OS batched: tasks the worker completed
  int* mb;            // [nb][kMbInts] OS batched: mailboxes (kMbInts above)
  int* queue;         // [E * tiles2] down tasks pushed by workers
  int* qflag;         // [E * tiles2]
  int* smid;          // [nb]
  long long* clk;     // [clk_cap][4]: clock64 start/end, globaltimer start/end (block 0)
  int clk_cap;
  TraceEv* trace;     // [nb][kMaxEv] or null
  int* trace_n;       // [nb]
  int T, H, I, E, K;
  // Shared experts (router-independent, weight 1 each): NS experts of IS units; ws13 [NS][2*IS][H] with gate and
  // up rows interleaved as in w13, ws2t [NS][IS][H]. NS = 0: none.
  const uint16_t* ws13;
  const uint16_t* ws2t;
  int NS, IS;
  float* act_s;       // [NS][T][IS] shared experts' activations (separate)
  const int* iota;    // [T] 0, 1, .., T-1: a shared expert's token list (every token, slot = token)
  float* ones;        // [T] 1.0: a shared expert's weights
  // FP8 (--dtype fp8; null otherwise): the experts' weights as e4m3 bytes in the layouts of w13, w2t, ws13, ws2t
  // (which are then null), and their fp32 scales (common.h, Fp8Scales). q8blk 0: per output channel: s13 [E*2I]
  // one per row of q13, s2 [E][H] one per (expert, hidden column) of q2t; ss13 [NS*2*IS] and ss2 [NS][H] the
  // shared experts' (--fp8-scales tensor is uploaded this way too: each expert's scale repeated per channel).
  // q8blk 1 (--fp8-scales block): one per 128 x 128 block, nIb = ceil(I/128), nHb = ceil(H/128): s13
  // [E][2][nIb][nHb] (gate grid, up grid: [e][0][ib][hb] covers gate units 128ib.. x hidden 128hb..), s2
  // [E][nHb][nIb] ([e][hb][ib] covers hidden columns 128hb.. x intermediate rows 128ib.. of q2t); ss13, ss2 the
  // same with IS. The router, the inputs and the output stay bf16.
  const uint8_t* q13;
  const uint8_t* q2t;
  const uint8_t* qs13;
  const uint8_t* qs2t;
  const float* s13;
  const float* s2;
  const float* ss13;
  const float* ss2;
  // Tunables and the plan's decisions (csrc/variants.json names them):
  int ti;             // separate/OS ffn1_tile, split-K slice (intermediate units)
  int nh;             // separate/OS down_tile (hidden columns)
  int strategy;       // OS: OsStrategy; split-K: 0 static, 1 dynamic
  int nb;             // grid size (persistent)
  int down_chunk;     // split-K: hidden columns per down pass
  int prefetch;       // split-K: L2 prefetch of the next slices; OS batched: L2 prefetch of a tile's down rows
  int tail_split;     // split-K dynamic: half-size tail slices
  int sched_warps;    // OS multiwarp: scheduling warps
  int batch;          // OS batched: tasks outstanding per worker (its ring's depth)
  int order;          // grouped: 0 each block a contiguous range of units, 1 round-robin over the grid
  SmemLayout sl;
  int q8blk;          // fp8: 1 block scales, 0 per-channel scales (the FP8 fields above)
  // flat's one-token kernel with t1path=3: [E] router logits published with their launch's tag, (iter + 1) << 32 |
  // float bits, so that a block waits on the logits themselves instead of a grid barrier; zeroed with the
  // control words (the launch counter restarts there).
  unsigned long long* logit_tags;
};

// The device's view of SmemLayout.
struct Smem {
  float* red; float* sa; int* ids; float* w; int* cnt; int* off; int* fill; int* slots; int* active; int* misc;
  __device__ Smem(char* base, const Params& p) {
    red = reinterpret_cast<float*>(base);
    sa = red + kThreads * 8;
    ids = reinterpret_cast<int*>(sa + p.sl.sa_floats);
    w = reinterpret_cast<float*>(ids + p.sl.tk);
    cnt = reinterpret_cast<int*>(w + p.sl.tk);
    off = cnt + p.E;
    fill = off + p.E;
    slots = fill + p.E;
    active = slots + p.sl.tk;
    misc = active + p.E;
  }
};

}  // namespace moe
