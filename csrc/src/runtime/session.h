// A session: a validated model (runtime/model-file.h) with its weights
// prepared for the kernels of one KernelConfig (runtime/kernel-config.h),
// its activation memory planned once (an arena sized for max_batch samples),
// and a thread pool. pakd_session in the C API is this class.
//
// The parts, by file:
//   session.cc         construction (weight preparation per op), memory
//                      planning, the run loop and the ops without weights
//   session-layers.cc  the convolutions and linear layers, one method per
//                      ConvMethod / weight form
//   conv-plan.h        the choice of a convolution's method (cost models)
//   weights.h, pack.h  the weight forms and their packing
//   fusion.h           residual adds folded into convolutions
#ifndef PAKD_SRC_RUNTIME_SESSION_H_
#define PAKD_SRC_RUNTIME_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/conv-plan.h"
#include "runtime/kernel-config.h"
#include "runtime/model-file.h"
#include "runtime/op-attrs.h"
#include "runtime/session-config.h"
#include "runtime/thread-pool.h"
#include "runtime/weights.h"

namespace pakd::runtime {

struct PreparedOp {
  OpDesc desc;
  ConvAttrs conv{};                       // conv2d
  PoolAttrs pool{};                       // maxpool / avgpool
  ConvMethod method = ConvMethod::kGemm;  // conv2d
  Weight weight;                          // conv2d / linear
  std::size_t rows = 0, cols = 0;         // weight rows (output channels / features) x columns
  std::vector<float> scale, bias;         // per output channel (may be empty)
  std::vector<std::size_t> in_dims, out_dims;
  std::size_t kh = 1, kw = 1;             // convolution kernel size
  std::size_t in_size = 0, out_size = 0;  // elements per sample
  std::vector<std::size_t> input_sizes;   // per input, elements per sample
  // A residual add fused into this convolution (fuse_residual_adds):
  // desc.inputs[1] is the other summand (same shape as the output), added
  // after the scale and bias and before desc.act (the add's activation).
  bool residual = false;
  // reshape: the output is the input's memory under another shape (no copy).
  bool alias = false;
  // binary (prepare_binary): kSame (equal shapes), kRows (one operand
  // constant per row of the other: a squeeze-excite scale, a scalar; the
  // constant operand is inputs[bin_r], or bin_const when there is one input),
  // or kGeneral (any broadcast: bin_dims with per-operand strides).
  enum class BinaryMode : std::uint8_t { kSame, kRows, kGeneral };
  BinaryMode bin_mode = BinaryMode::kGeneral;
  int bin_kind = 0, bin_r = 1, bin_r_first = 0;
  float bin_const = 0.0f;
  std::size_t bin_rows = 0, bin_inner = 0;
  std::vector<std::size_t> bin_dims, bin_sa, bin_sb;

  ConvGeometry geometry() const { return ConvGeometry::of(in_dims.data(), out_dims.data(), kh, kw, conv); }
};

class Session {
 public:
  // Throws FormatError (bad file), std::invalid_argument (bad config) or
  // std::bad_alloc.
  Session(const std::uint8_t* data, std::size_t size, const SessionConfig& config);

  // input: batch x input_size floats; output: batch x output_size floats.
  // batch must be in [1, max_batch] (checked by the caller). Never allocates.
  void run(const float* input, std::size_t batch, float* output);
  // The same, adding each op's wall time in nanoseconds to op_ns[i]
  // (num_ops() entries).
  void run_profiled(const float* input, std::size_t batch, float* output, double* op_ns);
  // "conv2d+relu 16x28x28" style description of op i.
  std::string op_description(std::size_t i) const;

  const std::string& meta() const { return meta_; }
  const std::vector<std::size_t>& input_dims() const { return input_dims_; }
  const std::vector<std::size_t>& output_dims() const { return output_dims_; }
  std::size_t input_size() const { return input_size_; }
  std::size_t output_size() const { return output_size_; }
  std::size_t num_ops() const { return ops_.size(); }
  std::size_t weight_bytes() const;
  std::size_t arena_bytes() const { return (arena_.size() + scratch_.size()) * sizeof(float); }
  int num_threads() const { return pool_.num_threads(); }
  std::size_t max_batch() const { return config_.max_batch; }
  const KernelConfig& kernels() const { return kernels_; }

 private:
  // session.cc
  void prepare(const ModelFile& file);
  void prepare_conv(const Tensor& t, PreparedOp* p) const;
  void prepare_linear(const Tensor& t, PreparedOp* p) const;
  void prepare_binary(const Graph& graph, PreparedOp* p) const;
  void plan_memory(const Graph& graph);
  void binary(const PreparedOp& op, std::size_t batch, float* y);
  void run_op(const PreparedOp& op, std::size_t batch);

  // session-layers.cc
  void conv(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void conv_reference(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void direct_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void sparse_direct_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void winograd_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void depthwise(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void linear(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  // The fused residual of sample b (nullptr: none).
  const float* residual(const PreparedOp& op, std::size_t b) const {
    return op.residual ? value_ptr_[op.desc.inputs[1]] + b * op.out_size : nullptr;
  }
  // y = act(y * scale + bias [+ res]) over channels [c_begin, c_end) and
  // positions [s_begin, s_end) of y (channels x spatial); res (nullptr: none)
  // has y's layout.
  void epilogue(const PreparedOp& op, float* y, std::size_t spatial, std::size_t c_begin, std::size_t c_end,
                std::size_t s_begin, std::size_t s_end, const float* res = nullptr) const;

  SessionConfig config_;
  KernelConfig kernels_;  // every kernel the session runs, one per family
  std::string meta_;
  std::vector<PreparedOp> ops_;
  std::vector<std::size_t> input_dims_, output_dims_;
  std::size_t input_size_ = 0, output_size_ = 0;
  std::uint32_t input_value_ = 0, output_value_ = 0;
  std::vector<std::size_t> value_offset_;  // floats into arena_, per value
  std::vector<std::uint32_t> value_root_;  // per value: the value whose memory it is (itself unless a reshape's)
  std::vector<const float*> value_ptr_;    // per run
  std::vector<float> arena_;
  std::vector<float> scratch_;  // im2col / transposes
  ThreadPool pool_;
};

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_SESSION_H_
