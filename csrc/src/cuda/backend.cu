// backend.cu — the CUDA backend: device, buffers, plans of the requested
// variants (families.h), the correctness run, timing with CUDA events over a
// CUDA graph per variant, the energy window, and traced launches. Variants of
// family "ep" (expert parallelism over --gpus devices) are handed to the
// EpEngine (ep.h) call by call; the single-device buffers are not allocated
// when only those run.
#include <map>

#include "../backend.h"
#include "cuda_check.cuh"
#include "ep.h"
#include "families.h"
#include "trace.cuh"

namespace moe {

namespace {

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int gpus) : gpus_(gpus) {
    CUDA_CHECK(cudaGetDevice(&dev_));
    CUDA_CHECK(cudaGetDeviceProperties(&prop_, dev_));
    CUDA_CHECK(cudaDriverGetVersion(&driver_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~CudaBackend() override {
    for (auto& g : graphs_) cudaGraphExecDestroy(g.second);
    cudaStreamDestroy(stream_);
  }
  const char* name() const override { return "cuda"; }
  std::string device_name() const override { return prop_.name; }
  std::string capability_reason(const std::string& min_cc) const override {
    const int want_major = std::atoi(min_cc.c_str()), want_minor = std::atoi(min_cc.c_str() + min_cc.find('.') + 1);
    if (prop_.major > want_major || (prop_.major == want_major && prop_.minor >= want_minor)) return "";
    return "needs compute capability >= " + min_cc + ", device is " + std::to_string(prop_.major) + "." + std::to_string(prop_.minor);
  }
  int default_rotate() const override { return 64; }
  void device_json(JsonWriter& j) override {
    j.kv("kind", "cuda");
    j.kv("name", prop_.name);
    j.kv("sm_count", prop_.multiProcessorCount);
    j.kv("compute_capability", std::to_string(prop_.major) + "." + std::to_string(prop_.minor));
    j.kv("driver", std::to_string(driver_));
    j.kv("l2_bytes", (long long)prop_.l2CacheSize);
    j.kv("mem_bytes", (long long)prop_.totalGlobalMem);
    j.kv("cores", (int)std::thread::hardware_concurrency());
    int rt = 0;
    CUDA_CHECK(cudaRuntimeGetVersion(&rt));
    j.kv("runtime", std::to_string(rt));
    j.kv("persistent_blocks", max_grid_);
  }

  std::string plan(const VariantSpec& spec, const Shape& s, int T, DType dt, Fp8Scales scales, TunableSet& tun) override {
    const RegistryRow* row = find_cuda_row(spec.family, spec.strategy ? spec.strategy->c_str() : nullptr);
    if (!row) return "no CUDA code for family " + spec.family + " strategy " + spec.strategy.value_or("null");
    // The table refuses these first (dtypes, "shared_experts"); a guard for a table edited past the code.
    if (dt == DType::FP32) return std::string("no CUDA code for dtype ") + dtype_name(dt);
    if (dt == DType::FP8 && row->fam != &kFlatFamily && row->fam != &kSeparateFamily) return "no CUDA code for dtype fp8 in family " + spec.family;
    const bool runs_shared = row->fam == &kFlatFamily || row->fam == &kSeparateFamily || row->fam == &kOsFamily || row->fam == &kSplitkFamily ||
                            row->fam == &kGroupedFamily || row->fam == &kEpFamily;
    if (s.shared_experts > 0 && !runs_shared) return "no CUDA code for shared experts in family " + spec.family;
    Plan pl;
    pl.family = row->fam;
    pl.strategy = row->strategy_id;
    pl.fp8 = dt == DType::FP8;
    pl.q8blk = pl.fp8 && scales == Fp8Scales::Block;
    const PlanCtx ctx{prop_, s, T, act_dtype(dt) == DType::BF16, pl.fp8, pl.fp8 ? scales : Fp8Scales::Channel};
    if (row->fam == &kEpFamily) {  // pl.path: the variant's index in the engine
      if (!ep_) ep_ = make_ep_engine(gpus_);
      std::string why = ep_->plan(row->strategy_id, ctx, tun, pl.path);
      if (!why.empty()) return why;
      plans_.push_back(pl);
      return "";
    }
    std::string why = row->fam->plan(ctx, tun, pl);
    if (!why.empty()) return why;
    if (pl.persistent) max_grid_ = std::max(max_grid_, pl.grid);
    plans_.push_back(pl);
    return "";
  }
  bool is_ep(int v) const { return plans_[v].family == &kEpFamily; }
  bool has_single() const {
    for (auto& pl : plans_) if (pl.family != &kEpFamily) return true;
    return false;
  }

  void launch_json(int v, JsonWriter& j) override {
    if (is_ep(v)) { ep_->launch_json(plans_[v].path, j); return; }
    const Plan& pl = plans_[v];
    j.begin_obj();
    j.kv("family", pl.family->name);
    j.kv("persistent", pl.persistent);
    j.kv("blocks", pl.grid);
    j.kv("threads", pl.threads);
    j.kv("smem_bytes", (long long)pl.smem());
    j.end_obj();
  }

  void upload(const Model& m, const Config& cfg) override {
    m_ = &m;
    cfg_ = &cfg;
    bf_ = act_dtype(m.dt) == DType::BF16;  // fp8: bf16 router, inputs and output
    if (ep_) ep_->upload(m, cfg);
    if (!has_single()) return;
    const int T = cfg.tokens, H = m.s.hidden, I = m.s.inter, E = m.s.experts, K = m.s.topk;
    auto up = [&](DevBuf<uint16_t>& d, const HostTensor& h) {
      d.alloc(h.n);
      if (h.n) CUDA_CHECK(cudaMemcpy(d.p, h.bytes.data(), h.nbytes(), cudaMemcpyHostToDevice));
    };
    // fp8: the e4m3 bytes and the fp32 scales the CPU backend and the oracle use (common.cpp), as they are, except
    // --fp8-scales tensor: each expert's one scale per matrix repeated per output channel (channel_scales), so
    // that the per-channel kernels run it (the same products: every channel of an expert has the same scale).
    auto upq = [&](DevBuf<uint8_t>& d, DevBuf<float>& sc, const WeightTensor& w) {
      d.alloc(w.q.n);
      if (w.q.n) CUDA_CHECK(cudaMemcpy(d.p, w.q.bytes.data(), w.q.nbytes(), cudaMemcpyHostToDevice));
      const std::vector<float> s = w.channel_scales();
      sc.alloc(s.size());
      if (!s.empty()) CUDA_CHECK(cudaMemcpy(sc.p, s.data(), s.size() * sizeof(float), cudaMemcpyHostToDevice));
    };
    up(wr_, m.wr);
    if (m.dt == DType::FP8) {
      upq(q13_, s13_, m.w13);
      upq(q2t_, s2_, m.w2t);
      upq(qs13_, ss13_, m.ws13);
      upq(qs2t_, ss2_, m.ws2t);
    } else {
      up(w13_, m.w13.q);
      up(w2t_, m.w2t.q);
      up(ws13_, m.ws13.q);
      up(ws2t_, m.ws2t.q);
    }
    out_.alloc((size_t)T * H);
    out_acc_.alloc((size_t)T * H);
    CUDA_CHECK(cudaMemset(out_acc_.p, 0, out_acc_.bytes()));
    logits_.alloc((size_t)T * E);
    logit_tags_.alloc(E);
    topk_ids_.alloc((size_t)T * K);
    topk_w_.alloc((size_t)T * K);
    act_.alloc((size_t)T * K * I);
    l_cnt_.alloc(E); l_off_.alloc(E); l_slots_.alloc((size_t)T * K); l_active_.alloc(E);
    const int NS = m.s.shared_experts, IS = m.s.shared_inter;
    ctrl_.alloc(C_N);
    fanin_.alloc(E + NS);  // OS family: a shared expert n counts its FFN1 tiles at E + n
    x_check_.alloc((size_t)T * H);
    act_s_.alloc((size_t)std::max(1, NS * T * IS));
    std::vector<int> iota(T);
    std::vector<float> ones(T, 1.f);
    for (int t = 0; t < T; ++t) iota[t] = t;
    iota_.alloc(T);
    ones_.alloc(T);
    CUDA_CHECK(cudaMemcpy(iota_.p, iota.data(), T * sizeof(int), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(ones_.p, ones.data(), T * sizeof(float), cudaMemcpyHostToDevice));
    size_t queue = 1;  // OS family: (E + NS) x (hidden / down_tile) down tasks
    for (auto& pl : plans_) if (pl.family == &kOsFamily) queue = std::max(queue, (size_t)(E + NS) * (H / pl.nh));
    queue_.alloc(queue);
    qflag_.alloc(queue);
    const int nb = std::max(1, max_grid_);
    db_.alloc(nb);
    ack_.alloc(nb + 8);
    mb_.alloc((size_t)nb * kMbInts);
    smid_.alloc(nb);
    trace_.alloc((size_t)nb * kMaxEv);
    trace_n_.alloc(nb);
    clear_ctrl();
    if (cfg.cold_l2) flush_.alloc((size_t)prop_.l2CacheSize * 2 / 4 + 1024);
  }

  void clear_ctrl() {
    CUDA_CHECK(cudaMemsetAsync(ctrl_.p, 0, ctrl_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(fanin_.p, 0, fanin_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(db_.p, 0, db_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(ack_.p, 0, ack_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(mb_.p, 0, mb_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(qflag_.p, 0, qflag_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(out_acc_.p, 0, out_acc_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(logit_tags_.p, 0, logit_tags_.bytes(), stream_));  // tags name launches since this reset
  }

  Params params(int v, const uint16_t* xb, int rotate, bool trace) {
    const Plan& pl = plans_[v];
    Params p{};
    p.wr = wr_.p; p.w13 = w13_.p; p.w2t = w2t_.p;
    p.ws13 = ws13_.p; p.ws2t = ws2t_.p; p.NS = m_->s.shared_experts; p.IS = m_->s.shared_inter;
    p.act_s = act_s_.p; p.iota = iota_.p; p.ones = ones_.p;
    p.q13 = q13_.p; p.q2t = q2t_.p; p.qs13 = qs13_.p; p.qs2t = qs2t_.p;
    p.s13 = s13_.p; p.s2 = s2_.p; p.ss13 = ss13_.p; p.ss2 = ss2_.p;
    p.q8blk = pl.q8blk ? 1 : 0;
    p.x_base = xb; p.rotate = rotate;
    p.out = out_.p; p.out_acc = out_acc_.p; p.logits = logits_.p; p.logit_tags = logit_tags_.p;
    p.topk_ids = topk_ids_.p; p.topk_w = topk_w_.p; p.act = act_.p;
    p.l_cnt = l_cnt_.p; p.l_off = l_off_.p; p.l_slots = l_slots_.p; p.l_active = l_active_.p;
    p.ctrl = ctrl_.p; p.fanin = fanin_.p; p.db = db_.p; p.ack = ack_.p; p.mb = mb_.p; p.queue = queue_.p; p.qflag = qflag_.p;
    p.smid = smid_.p;
    p.clk = clk_.p; p.clk_cap = (int)(clk_.n / 4);
    p.trace = trace ? trace_.p : nullptr; p.trace_n = trace_n_.p;
    p.T = cfg_->tokens; p.H = m_->s.hidden; p.I = m_->s.inter; p.E = m_->s.experts; p.K = m_->s.topk;
    p.ti = pl.ti; p.nh = pl.nh; p.strategy = pl.strategy; p.nb = pl.persistent ? pl.grid : 0;
    p.down_chunk = pl.down_chunk; p.prefetch = pl.prefetch; p.tail_split = pl.tail_split; p.sched_warps = pl.sched_warps;
    p.batch = pl.batch; p.order = pl.order;
    p.sl = pl.sl;
    return p;
  }

  void launch(int v, const Params& p, cudaStream_t st) { plans_[v].family->launch(plans_[v], p, bf_, st); }

  void sync() {
    cudaError_t e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess)
      die_runtime(std::string("CUDA error: cudaStreamSynchronize -> ") + cudaGetErrorName(e) + " (" +
                  cudaGetErrorString(e) + ") at " + __FILE__ + ":" + std::to_string(__LINE__) +
                  " (a persistent kernel traps when a spin wait exceeds its bound)");
  }

  void run_once(int v, const HostTensor& x, int T, std::vector<float>& out, std::vector<int>& ids) override {
    if (is_ep(v)) { ep_->run_once(plans_[v].path, x, T, out, ids); return; }
    const size_t n = (size_t)T * m_->s.hidden;
    CUDA_CHECK(cudaMemcpyAsync(x_check_.p, x.bytes.data(), x.nbytes(), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemsetAsync(out_.p, 0xff, out_.bytes(), stream_));  // poison: 0xffff is NaN in bf16 and fp16
    CUDA_CHECK(cudaMemsetAsync(topk_ids_.p, 0xff, topk_ids_.bytes(), stream_));
    if (!checked_[v]) { clear_ctrl(); checked_[v] = true; }
    launch(v, params(v, x_check_.p, 1, false), stream_);
    std::vector<uint16_t> o(n);
    ids.assign((size_t)T * m_->s.topk, -1);
    CUDA_CHECK(cudaMemcpyAsync(o.data(), out_.p, n * 2, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemcpyAsync(ids.data(), topk_ids_.p, ids.size() * 4, cudaMemcpyDeviceToHost, stream_));
    sync();
    out.resize(n);
    for (size_t i = 0; i < n; ++i) out[i] = bf_ ? bf16_to_f32(o[i]) : fp16_to_f32(o[i]);
  }

  void set_rotation(const std::vector<HostTensor>& xs, int T) override {
    if (ep_) ep_->set_rotation(xs, T);
    if (!has_single()) return;
    const size_t per = (size_t)T * m_->s.hidden;
    x_rot_.alloc(per * xs.size());
    for (size_t r = 0; r < xs.size(); ++r)
      CUDA_CHECK(cudaMemcpy(x_rot_.p + r * per, xs[r].bytes.data(), xs[r].nbytes(), cudaMemcpyHostToDevice));
    rotate_ = (int)xs.size();
    const size_t cap = (size_t)(cfg_->warmup + cfg_->iters) * cfg_->repeat_work + 64;
    clk_.alloc(cap * 4);
    for (auto& g : graphs_) CUDA_CHECK(cudaGraphExecDestroy(g.second));
    graphs_.clear();
  }

  cudaGraphExec_t graph_for(int v) {
    auto it = graphs_.find(v);
    if (it != graphs_.end()) return it->second;
    cudaStream_t cap;
    CUDA_CHECK(cudaStreamCreateWithFlags(&cap, cudaStreamNonBlocking));
    cudaGraph_t g;
    CUDA_CHECK(cudaStreamBeginCapture(cap, cudaStreamCaptureModeThreadLocal));
    launch(v, params(v, x_rot_.p, rotate_, false), cap);
    CUDA_CHECK(cudaStreamEndCapture(cap, &g));
    cudaGraphExec_t ge;
    CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
    CUDA_CHECK(cudaGraphDestroy(g));
    CUDA_CHECK(cudaStreamDestroy(cap));
    graphs_[v] = ge;
    return ge;
  }

  void time_iters(int v, int warmup, int iters, std::vector<double>& us, std::vector<double>& mhz) override {
    if (is_ep(v)) { mhz.clear(); ep_->time_iters(plans_[v].path, warmup, iters, us); return; }
    cudaGraphExec_t ge = graph_for(v);
    clear_ctrl();  // also sets the launch counter (input rotation, clock slot) to 0
    const int R = cfg_->repeat_work;
    std::vector<cudaEvent_t> ev(2 * (size_t)iters);
    for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
    for (int it = -warmup; it < iters; ++it) {
      if (cfg_->cold_l2) CUDA_CHECK(cudaMemsetAsync(flush_.p, it & 0xff, flush_.bytes(), stream_));
      if (it >= 0) CUDA_CHECK(cudaEventRecord(ev[2 * it], stream_));
      for (int r = 0; r < R; ++r) CUDA_CHECK(cudaGraphLaunch(ge, stream_));
      if (it >= 0) CUDA_CHECK(cudaEventRecord(ev[2 * it + 1], stream_));
    }
    sync();
    std::vector<long long> clk(clk_.n);
    CUDA_CHECK(cudaMemcpy(clk.data(), clk_.p, clk_.bytes(), cudaMemcpyDeviceToHost));
    for (int it = 0; it < iters; ++it) {
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, ev[2 * it], ev[2 * it + 1]));
      us.push_back(ms * 1000.0);
      const size_t L = (size_t)(warmup + it) * R + (R - 1);
      double mz = NAN;
      if (L * 4 + 3 < clk.size()) {
        const long long dc = clk[L * 4 + 1] - clk[L * 4], dt = clk[L * 4 + 3] - clk[L * 4 + 2];
        if (dt > 0 && dc > 0) mz = (double)dc / (double)dt * 1000.0;
      }
      mhz.push_back(mz);
    }
    for (auto& e : ev) CUDA_CHECK(cudaEventDestroy(e));
  }

  EnergyResult energy(int v, int min_ms, double median_us) override {
    if (min_ms <= 0) return EnergyResult::unavailable("energy window disabled (--energy-ms 0)");
    if (is_ep(v)) return EnergyResult::unavailable("expert-parallel variant: the energy of several GPUs is not measured yet");
    if (!energy_opened_) {
      energy_opened_ = true;
      char bus[32] = {0};
      CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, dev_));
      counter_.open(bus);
    }
    if (!counter_.ok()) return EnergyResult::unavailable(counter_.reason());
    cudaGraphExec_t ge = graph_for(v);
    clear_ctrl();
    const int R = cfg_->repeat_work;
    // Batches of about 10 ms of GPU work, 3 in flight: one counter read takes 3-6 ms (H100, measured in
    // BENCHMARKS.md), so the queue never runs dry while the host polls; the window's forward_us, close to the
    // timed median, shows it did not.
    const long long per_batch = std::min(1024LL, std::max(1LL, (long long)std::ceil(10000.0 / std::max(1.0, median_us))));
    std::vector<cudaEvent_t> done;  // end of each batch in flight, oldest first
    cudaEvent_t first = nullptr, last = nullptr;
    CUDA_CHECK(cudaEventCreate(&first));
    CUDA_CHECK(cudaEventRecord(first, stream_));
    EnergyWork work;
    work.forwards_per_batch = per_batch;
    work.launch_batch = [&]() {
      for (long long i = 0; i < per_batch; ++i)
        for (int r = 0; r < R; ++r) CUDA_CHECK(cudaGraphLaunch(ge, stream_));
      cudaEvent_t e;
      CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDefault));
      CUDA_CHECK(cudaEventRecord(e, stream_));
      done.push_back(e);
    };
    work.oldest_done = [&]() {
      if (done.empty()) return false;
      const cudaError_t q = cudaEventQuery(done.front());
      if (q == cudaErrorNotReady) {
        (void)cudaGetLastError();  // not an error: keep it from reaching the next launch check
        return false;
      }
      CUDA_CHECK(q);
      if (last) CUDA_CHECK(cudaEventDestroy(last));
      last = done.front();
      done.erase(done.begin());
      return true;
    };
    work.drain = [&]() {
      sync();
      while (!done.empty()) {
        if (last) CUDA_CHECK(cudaEventDestroy(last));
        last = done.front();
        done.erase(done.begin());
      }
      float ms = 0;
      if (last) CUDA_CHECK(cudaEventElapsedTime(&ms, first, last));
      return (double)ms;
    };
    EnergyResult r = measure_energy(counter_, work, min_ms);
    if (first) CUDA_CHECK(cudaEventDestroy(first));
    if (last) CUDA_CHECK(cudaEventDestroy(last));
    return r;
  }

  void ep_json(int v, JsonWriter& j) const override {
    if (plans_[v].family == &kEpFamily) ep_->ep_json(plans_[v].path, j);
    else j.null();
  }

  Waits trace_waits(int v, int pid, JsonWriter* tj) override {
    if (is_ep(v)) return ep_->trace_waits(plans_[v].path, pid, cfg_->variants[v], tj);
    Waits w;
    if (!plans_[v].persistent) return w;
    const Params p = params(v, x_rot_.p, rotate_, true);
    const int nb = p.nb, L = 5;
    std::vector<TraceEv> ev((size_t)nb * kMaxEv);
    std::vector<int> cnt(nb);
    w.present = true;
    w.per_block_us.assign(nb, 0.0);
    for (int l = 0; l < L; ++l) {
      CUDA_CHECK(cudaMemsetAsync(trace_n_.p, 0, trace_n_.bytes(), stream_));
      launch(v, p, stream_);
      sync();
      CUDA_CHECK(cudaMemcpy(cnt.data(), trace_n_.p, nb * sizeof(int), cudaMemcpyDeviceToHost));
      CUDA_CHECK(cudaMemcpy(ev.data(), trace_.p, ev.size() * sizeof(TraceEv), cudaMemcpyDeviceToHost));
      add_trace_waits(w, nb, cnt, ev, L);
      if (tj && l == L - 1) write_trace_events(*tj, pid, cfg_->variants[v], nb, cnt, ev, trace_first_ts(nb, cnt, ev));
    }
    finish_trace_waits(w, nb, L);
    return w;
  }

 private:
  int gpus_ = 1;
  std::unique_ptr<EpEngine> ep_;
  int dev_ = 0;
  cudaDeviceProp prop_{};
  int driver_ = 0;
  cudaStream_t stream_{};
  const Model* m_ = nullptr;
  const Config* cfg_ = nullptr;
  bool bf_ = true;
  std::vector<Plan> plans_;  // one per requested variant, in --variant order
  int max_grid_ = 0;
  DevBuf<uint16_t> wr_, w13_, w2t_, ws13_, ws2t_, out_, x_check_, x_rot_;
  DevBuf<float> out_acc_, logits_, topk_w_, act_, act_s_, ones_;
  DevBuf<uint8_t> q13_, q2t_, qs13_, qs2t_;  // fp8 expert weights (e4m3)
  DevBuf<float> s13_, s2_, ss13_, ss2_;       // and their scales (Params: per channel, or per 128 x 128 block)
  DevBuf<int> iota_, topk_ids_, l_cnt_, l_off_, l_slots_, l_active_, ctrl_, fanin_, ack_, mb_, queue_, qflag_, smid_, trace_n_;
  DevBuf<unsigned long long> db_, logit_tags_;
  DevBuf<long long> clk_;
  DevBuf<TraceEv> trace_;
  DevBuf<float> flush_;
  int rotate_ = 1;
  std::map<int, cudaGraphExec_t> graphs_;
  std::map<int, bool> checked_;
  EnergyCounter counter_;
  bool energy_opened_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int gpus) { return std::make_unique<CudaBackend>(gpus); }

}  // namespace moe
