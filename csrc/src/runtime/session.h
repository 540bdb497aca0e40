// A session: a validated model (runtime/model-file.h) with its weights
// prepared for the kernels chosen at start-up, its activation memory planned
// once (an arena sized for max_batch samples), and a thread pool.
// pakd_session in the C API is this class.
#ifndef PAKD_SRC_RUNTIME_SESSION_H_
#define PAKD_SRC_RUNTIME_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/kernel-config.h"
#include "runtime/model-file.h"
#include "runtime/thread-pool.h"

namespace pakd::runtime {

struct SessionConfig {
  int num_threads = 1;
  std::size_t max_batch = 1;
  // The kernels: nullptr for KernelConfig::best() (KernelConfig::reference()
  // when `reference`); `gemm` (nullptr: the config's) overrides the f32 GEMM.
  const KernelConfig* kernels = nullptr;
  const KernelEntry<F32GemmFn>* gemm = nullptr;
  // Weights whose density (nonzeros / elements) is at most this run on the
  // sparse kernels; denser ones are expanded to dense f32. < 0: never sparse.
  float sparse_max_density = 0.35f;
  bool reference = false;   // every op through its naive reference kernel
  int codebook_kernel = 0;  // 0 auto (by layer size), 1 always, -1 never
  // Dense 3x3 stride-1 convolutions through Winograd F(4x4, 3x3):
  // 0 auto (where its cost model beats the direct kernels), 1 every eligible
  // layer, -1 never.
  int winograd = 0;
};

// How a conv / linear weight is held for its kernel.
struct PreparedWeight {
  enum class Form { kDense, kCsr, kCsrCodebook } form = Form::kDense;
  std::size_t rows = 0, cols = 0;  // rows = output channels / features
  std::vector<float> dense;        // conv: rows x cols; linear: transposed, cols x rows
  std::vector<std::uint32_t> row_ptr, col_idx;
  std::vector<float> values;                           // kCsr
  std::vector<std::uint8_t> codes;                     // kCsrCodebook
  std::vector<float> table;                            // kCsrCodebook
  std::vector<float> reference;                        // rows x cols, for reference mode
  std::vector<float> dconv;                            // stride-1 direct convolution: 4-channel blocks
  std::vector<float> dconv_oc;                         // the same vectorized over 16-channel blocks (also strided)
  std::vector<float> wino;                             // Winograd F(4x4, 3x3): transformed weights (scale folded in)
  std::vector<float> wino_bias;                        // its bias, zero-padded to 16-channel blocks (may be empty)
  std::vector<std::uint32_t> spmv_slices, spmv_words;  // linear, batch-1 session: the blocked form
  std::vector<float> spmv_values;                      // (F32BlockSpmvFn) when cheaper; col_idx and values are dropped
  std::vector<std::uint32_t> sdconv_offsets;           // sparse direct conv: input offset per nonzero tap
                                                       // (with row_ptr and values)
  std::size_t bytes() const;
  bool sparse_direct() const { return sdconv; }
  bool sdconv = false;  // runs the sparse direct convolution (possibly with no nonzero at all)
};

struct PreparedOp {
  OpDesc desc;
  PreparedWeight weight;
  std::vector<float> scale, bias;  // per output channel (may be empty)
  std::vector<std::size_t> in_dims, out_dims;
  std::size_t kh = 1, kw = 1;             // convolution kernel size
  std::size_t in_size = 0, out_size = 0;  // elements per sample
  std::vector<std::size_t> input_sizes;   // per input, elements per sample
  // A residual add fused into this convolution (Session::fuse_residual_adds):
  // desc.inputs[1] is the other summand (same shape as the output), added
  // after the scale and bias and before desc.act (the add's activation).
  bool residual = false;
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
  void prepare(const ModelFile& file);
  void plan_memory(const Graph& graph);
  void run_op(const PreparedOp& op, std::size_t batch);

  void conv(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void conv_reference(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void direct_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void winograd_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void depthwise(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  void linear(const PreparedOp& op, const float* x, float* y, std::size_t batch);
  // y = act(y * scale + bias [+ res]) over channels [c_begin, c_end) and
  // positions [s_begin, s_end); res (nullptr: none) has y's layout.
  // The fused residual of sample b (nullptr: none).
  const float* residual(const PreparedOp& op, std::size_t b) const {
    return op.residual ? value_ptr_[op.desc.inputs[1]] + b * op.out_size : nullptr;
  }
  void epilogue(const PreparedOp& op, float* y, std::size_t channels, std::size_t spatial, std::size_t c_begin,
                std::size_t c_end, std::size_t s_begin, std::size_t s_end, const float* res = nullptr) const;

  SessionConfig config_;
  KernelConfig kernels_;  // every kernel the session runs, one per family
  std::string meta_;
  std::vector<PreparedOp> ops_;
  std::vector<std::size_t> input_dims_, output_dims_;
  std::size_t input_size_ = 0, output_size_ = 0;
  std::uint32_t input_value_ = 0, output_value_ = 0;
  std::vector<std::size_t> value_offset_;  // floats into arena_, per value
  std::vector<const float*> value_ptr_;    // per run
  std::vector<float> arena_;
  std::vector<float> scratch_;  // im2col / transposes
  ThreadPool pool_;
};

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_SESSION_H_
