// ep.h — expert parallelism on several CUDA devices of one process (--gpus N): the engine behind the
// variants of family "ep" (ep-separate, ep-persistent). The CUDA backend (backend.cu) hands every call
// for such a variant to it; single-device variants never touch it. ep.cu says how the layer is split.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../backend.h"
#include "../common.h"
#include "../json.h"
#include "families.h"

namespace moe {

enum EpStrategy : int { EP_SEPARATE = 0, EP_PERSISTENT = 1 };

class EpEngine {
 public:
  virtual ~EpEngine() = default;
  // Plans one more ep variant (its index in the engine goes to `idx`): devices, peer access, NCCL, tunables,
  // shared memory. "" or why not (exit 2 in main).
  virtual std::string plan(int strategy, const PlanCtx& ctx, TunableSet& tun, int& idx) = 0;
  virtual void launch_json(int i, JsonWriter& j) = 0;
  virtual void upload(const Model& m, const Config& cfg) = 0;
  // One forward of the whole layer (T_layer = gpus x T tokens, device d holds rows [d*T, (d+1)*T)).
  virtual void run_once(int i, const HostTensor& x, int T_layer, std::vector<float>& out, std::vector<int>& ids) = 0;
  virtual void set_rotation(const std::vector<HostTensor>& xs, int T_layer) = 0;
  // Samples: per iteration the slowest device's time (ep.cu, "Timing").
  virtual void time_iters(int i, int warmup, int iters, std::vector<double>& us) = 0;
  virtual void ep_json(int i, JsonWriter& j) const = 0;
  // ep-persistent: traced launches on every device after the timing (backend.h trace_waits): `waits` of device
  // 0's blocks; with tj, every device's events (process `pid` for device 0, pid + 100 d for device d, named
  // "<name> GPU d"). ep-separate: none (waits null; its kernels do not trace).
  virtual Waits trace_waits(int i, int pid, const std::string& name, JsonWriter* tj) = 0;
};

std::unique_ptr<EpEngine> make_ep_engine(int gpus);

}  // namespace moe
