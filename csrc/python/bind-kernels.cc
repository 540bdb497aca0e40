// Kernel entry points of pakd._core used by tests and benchmarks: sparse CSR x
// dense (f32 and u8-codebook values) and int8 GEMM with dynamic activation
// quantization, and the convolution kernels. They look kernels up by name in the
// private kernel tables (runtime/kernel-config.h) and call them
// directly, so every argument is validated here, before any kernel runs: a bad
// input raises ValueError, it never reaches a kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "kernels/kernels.h"
#include "runtime/conv-plan.h"
#include "runtime/kernel-config.h"
#include "runtime/pack.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Int8Array = py::array_t<std::int8_t, py::array::c_style | py::array::forcecast>;
using Int64Array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using Rows = std::optional<std::pair<std::size_t, std::size_t>>;

// Largest column count: column indices are uint32 in the kernels.
constexpr std::size_t kMaxCols = std::numeric_limits<std::uint32_t>::max();

std::string shape_string(const py::array& x) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < x.ndim(); ++d) {
    s += (d ? ", " : "") + std::to_string(x.shape(d));
  }
  return s + (x.ndim() == 1 ? ",)" : ")");
}

std::string dtype_string(const py::array& x) { return py::str(x.dtype()).cast<std::string>(); }

[[noreturn]] void fail(const std::string& message) { throw py::value_error(message); }

// ---------------------------------------------------------------------------
// Kernel tables
// ---------------------------------------------------------------------------

namespace rt = pakd::runtime;

py::list kernel_list(const rt::KernelFamily& family) {
  py::list kernels;
  for (const rt::KernelInfo& kernel : family.kernels) {
    py::dict d;
    d["name"] = kernel.name;
    d["isa"] = kernel.isa;
    d["supported"] = rt::kernel_supported(kernel.required);
    kernels.append(std::move(d));
  }
  return kernels;
}

const rt::KernelFamily& kernel_family(const std::string& name) {
  const rt::KernelFamily* family = rt::find_kernel_family(name.c_str());
  if (family == nullptr) {
    std::string known;
    for (const rt::KernelFamily& f : rt::kernel_families()) known += (known.empty() ? "" : ", ") + std::string(f.name);
    fail("unknown kernel family '" + name + "' (known: " + known + ")");
  }
  return *family;
}

[[noreturn]] void not_supported(const std::string& message) {
  PyErr_SetString(PyExc_NotImplementedError, message.c_str());
  throw py::error_already_set();
}

// The kernel named `name` (None: the family's best). Unknown: ValueError;
// not runnable on this CPU: NotImplementedError (as gemm() does).
template <typename Fn>
Fn choose_kernel(const rt::KernelTable<Fn>& table, const std::optional<std::string>& name, const char* family) {
  if (!name) return table.best().fn;
  const rt::KernelEntry<Fn>* kernel = table.find(name->c_str());
  if (kernel == nullptr) {
    std::string known;
    for (const rt::KernelEntry<Fn>& k : table) {
      known += (known.empty() ? "" : ", ") + std::string(k.name);
    }
    fail(std::string("unknown ") + family + " kernel '" + *name + "' (known: " + known + ")");
  }
  if (!rt::kernel_supported(kernel->required)) {
    not_supported(std::string(family) + " kernel '" + *name + "' needs " + kernel->isa +
                  ", which this CPU does not have");
  }
  return kernel->fn;
}

// The kernel of `table` with the instruction set `isa` (the companion of a
// kernel of another family: a convolution's input pass), else the reference.
template <typename Fn>
Fn companion_kernel(const rt::KernelTable<Fn>& table, const char* isa) {
  const rt::KernelEntry<Fn>* kernel = table.find_isa(isa);
  return kernel != nullptr ? kernel->fn : table.reference().fn;
}

// ---------------------------------------------------------------------------
// Argument conversion and validation
// ---------------------------------------------------------------------------

// A 1-D integer array (any integer dtype; an empty array of any dtype) as int64.
Int64Array int_vector(const py::object& obj, const char* what) {
  py::array arr = py::array::ensure(obj);
  if (!arr) fail(std::string(what) + " must be an array of integers");
  if (arr.ndim() != 1) {
    fail(std::string(what) + " must be 1-D, got shape " + shape_string(arr));
  }
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u' && arr.size() != 0) {
    fail(std::string(what) + " must have an integer dtype, got " + dtype_string(arr));
  }
  return Int64Array::ensure(arr);
}

FloatArray float_array(const py::object& obj, const char* what) {
  py::array arr = py::array::ensure(obj);
  if (!arr) fail(std::string(what) + " must be an array of numbers");
  const char kind = arr.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') {
    fail(std::string(what) + " must be a real numeric array, got dtype " + dtype_string(arr));
  }
  return FloatArray::ensure(arr);
}

std::optional<FloatArray> bias_vector(const std::optional<py::object>& bias, std::size_t m) {
  if (!bias || bias->is_none()) return std::nullopt;
  FloatArray b = float_array(*bias, "bias");
  if (b.ndim() != 1 || static_cast<std::size_t>(b.shape(0)) != m) {
    fail("bias must have shape (" + std::to_string(m) + ",), got " + shape_string(b));
  }
  return b;
}

// x: (k,) -> one column, or (k, n).
struct DenseInput {
  FloatArray array;
  std::size_t k;
  std::size_t n;
  bool vector;
};

DenseInput dense_input(const py::object& obj, const char* what) {
  FloatArray x = float_array(obj, what);
  if (x.ndim() != 1 && x.ndim() != 2) {
    fail(std::string(what) + " must be 1-D (k,) or 2-D (k, n), got shape " + shape_string(x));
  }
  const auto k = static_cast<std::size_t>(x.shape(0));
  const bool vector = x.ndim() == 1;
  const std::size_t n = vector ? 1 : static_cast<std::size_t>(x.shape(1));
  return {std::move(x), k, n, vector};
}

// The row range [begin, end) of an m-row result; None: all rows.
std::pair<std::size_t, std::size_t> row_range(const Rows& rows, std::size_t m) {
  if (!rows) return {0, m};
  if (rows->first > rows->second || rows->second > m) {
    fail("rows=(" + std::to_string(rows->first) + ", " + std::to_string(rows->second) + ") is not a range within [0, " +
         std::to_string(m) + "]");
  }
  return *rows;
}

// The result array: `out` when given (float32, C-contiguous, writeable, of the
// result's shape), else a new array (zero-filled when only some rows are
// computed, so the others are defined).
py::array_t<float> result_array(const std::optional<py::object>& out, std::size_t m, const DenseInput& x,
                                bool partial) {
  std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(m)};
  if (!x.vector) shape.push_back(static_cast<py::ssize_t>(x.n));
  if (out && !out->is_none()) {
    if (!py::isinstance<py::array>(*out)) fail("out must be a numpy array");
    auto arr = py::reinterpret_borrow<py::array>(*out);
    if (!arr.dtype().is(py::dtype::of<float>())) {
      fail("out must have dtype float32, got " + dtype_string(arr));
    }
    if (!(arr.flags() & py::array::c_style) || !arr.writeable()) {
      fail("out must be C-contiguous and writeable");
    }
    bool same = arr.ndim() == static_cast<py::ssize_t>(shape.size());
    for (std::size_t d = 0; same && d < shape.size(); ++d) same = arr.shape(d) == shape[d];
    if (!same) fail("out has shape " + shape_string(arr) + ", the result needs a different one");
    return py::reinterpret_borrow<py::array_t<float>>(arr);
  }
  py::array_t<float> y(shape);
  if (partial && y.size() > 0) {
    float* p = y.mutable_data();
    for (py::ssize_t i = 0; i < y.size(); ++i) p[i] = 0.0f;
  }
  return y;
}

// ---------------------------------------------------------------------------
// CSR matrix: validated once, owned (a later change to the caller's arrays
// cannot make the kernels read out of bounds).
// ---------------------------------------------------------------------------

class CsrMatrix {
 public:
  // f32 values
  CsrMatrix(const py::object& indptr, const py::object& indices, const py::object& values,
            std::pair<std::size_t, std::size_t> shape)
      : m_(shape.first), k_(shape.second) {
    structure(indptr, indices);
    FloatArray v = float_array(values, "values");
    if (v.ndim() != 1 || static_cast<std::size_t>(v.shape(0)) != col_idx_.size()) {
      fail("values must have shape (" + std::to_string(col_idx_.size()) + ",) (one per index), got " + shape_string(v));
    }
    values_.assign(v.data(), v.data() + v.size());
  }

  // u8 codebook values
  static CsrMatrix with_codebook(const py::object& indptr, const py::object& indices, const py::object& codes,
                                 const py::object& table, std::pair<std::size_t, std::size_t> shape) {
    CsrMatrix csr(shape);
    csr.structure(indptr, indices);
    FloatArray t = float_array(table, "table");
    if (t.ndim() != 1 || t.shape(0) > 256) {
      fail("table must be 1-D with at most 256 entries, got shape " + shape_string(t));
    }
    Int64Array c = int_vector(codes, "codes");
    if (static_cast<std::size_t>(c.shape(0)) != csr.col_idx_.size()) {
      fail("codes must have shape (" + std::to_string(csr.col_idx_.size()) + ",) (one per index), got " +
           shape_string(c));
    }
    const std::int64_t entries = t.shape(0);
    const std::int64_t* pc = c.data();
    csr.codes_.resize(csr.col_idx_.size());
    for (std::size_t j = 0; j < csr.codes_.size(); ++j) {
      if (pc[j] < 0 || pc[j] >= entries) {
        fail("codes[" + std::to_string(j) + "] = " + std::to_string(pc[j]) + " is out of range for a table of " +
             std::to_string(entries) + " entries");
      }
      csr.codes_[j] = static_cast<std::uint8_t>(pc[j]);
    }
    csr.table_.assign(t.data(), t.data() + t.size());
    csr.codebook_ = true;
    return csr;
  }

  std::pair<std::size_t, std::size_t> shape() const { return {m_, k_}; }
  std::size_t nnz() const { return col_idx_.size(); }
  bool codebook() const { return codebook_; }

  py::array_t<float> matmul(const py::object& x_obj, const std::optional<py::object>& bias_obj,
                            const std::optional<std::string>& kernel, const std::optional<py::object>& out,
                            const Rows& rows) const {
    const DenseInput x = dense_input(x_obj, "x");
    if (x.k != k_) {
      fail("x has shape " + shape_string(x.array) + " but the sparse matrix has " + std::to_string(k_) +
           " columns (x.shape[0] must equal it)");
    }
    const std::optional<FloatArray> bias = bias_vector(bias_obj, m_);
    const auto [begin, end] = row_range(rows, m_);
    pakd::F32SpmmFn spmm = nullptr;
    pakd::F32CbSpmmFn cbspmm = nullptr;
    if (codebook_) {
      cbspmm = choose_kernel(rt::f32_cbspmm_kernels(), kernel, "spmm_codebook");
    } else {
      spmm = choose_kernel(rt::f32_spmm_kernels(), kernel, "spmm");
    }
    py::array_t<float> y = result_array(out, m_, x, begin != 0 || end != m_);
    if (begin == end || x.n == 0) return y;

    const float* px = x.array.data();
    const float* pb = bias ? bias->data() : nullptr;
    float* py_ = y.mutable_data();
    const std::size_t n = x.n;
    {
      py::gil_scoped_release release;
      if (codebook_) {
        cbspmm(begin, end, n, row_ptr_.data(), col_idx_.data(), codes_.data(), table_.data(), pb, px, n, py_, n);
      } else {
        spmm(begin, end, n, row_ptr_.data(), col_idx_.data(), values_.data(), pb, px, n, py_, n);
      }
    }
    return y;
  }

 private:
  explicit CsrMatrix(std::pair<std::size_t, std::size_t> shape) : m_(shape.first), k_(shape.second) {}

  // indptr/indices -> row_ptr_/col_idx_, checking that they describe a valid
  // m x k CSR matrix.
  void structure(const py::object& indptr, const py::object& indices) {
    if (k_ > kMaxCols) fail("at most " + std::to_string(kMaxCols) + " columns are supported");
    Int64Array p = int_vector(indptr, "indptr");
    Int64Array c = int_vector(indices, "indices");
    if (static_cast<std::size_t>(p.shape(0)) != m_ + 1) {
      fail("indptr must have shape (" + std::to_string(m_ + 1) + ",) (rows + 1), got " + shape_string(p));
    }
    const auto nnz = static_cast<std::size_t>(c.shape(0));
    if (nnz > std::numeric_limits<std::uint32_t>::max()) fail("too many nonzeros (at most 2^32 - 1)");
    const std::int64_t* pp = p.data();
    if (pp[0] != 0) fail("indptr[0] must be 0, got " + std::to_string(pp[0]));
    for (std::size_t i = 0; i < m_; ++i) {
      if (pp[i + 1] < pp[i]) {
        fail("indptr must be non-decreasing, but indptr[" + std::to_string(i + 1) + "] = " + std::to_string(pp[i + 1]) +
             " < indptr[" + std::to_string(i) + "] = " + std::to_string(pp[i]));
      }
    }
    if (static_cast<std::uint64_t>(pp[m_]) != nnz) {
      fail("indptr[-1] = " + std::to_string(pp[m_]) + " must equal len(indices) = " + std::to_string(nnz));
    }
    const std::int64_t* pc = c.data();
    for (std::size_t j = 0; j < nnz; ++j) {
      if (pc[j] < 0 || static_cast<std::uint64_t>(pc[j]) >= k_) {
        fail("indices[" + std::to_string(j) + "] = " + std::to_string(pc[j]) + " is out of range for " +
             std::to_string(k_) + " columns");
      }
    }
    row_ptr_.assign(pp, pp + m_ + 1);
    col_idx_.assign(pc, pc + nnz);
  }

  std::size_t m_;
  std::size_t k_;
  bool codebook_ = false;
  std::vector<std::uint32_t> row_ptr_;
  std::vector<std::uint32_t> col_idx_;
  std::vector<float> values_;
  std::vector<std::uint8_t> codes_;
  std::vector<float> table_;
};

std::pair<std::size_t, std::size_t> spmm_shape(const py::object& indptr, const py::object& x) {
  const Int64Array p = int_vector(indptr, "indptr");
  if (p.shape(0) < 1) fail("indptr must have at least one entry (rows + 1)");
  return {static_cast<std::size_t>(p.shape(0) - 1), dense_input(x, "x").k};
}

// ---------------------------------------------------------------------------
// int8 GEMM
// ---------------------------------------------------------------------------

py::tuple quantize_s8(const py::object& x_obj) {
  FloatArray x = float_array(x_obj, "x");
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  Int8Array q(shape);
  const float* px = x.data();
  std::int8_t* pq = q.mutable_data();
  const auto count = static_cast<std::size_t>(x.size());
  float scale;
  {
    py::gil_scoped_release release;
    scale = pakd::quantize_s8_symmetric(px, count, pq);
  }
  return py::make_tuple(std::move(q), scale);
}

py::array_t<float> qs8_gemm(const py::object& a_obj, const py::object& a_scale_obj, const py::object& x_obj,
                            const std::optional<py::object>& bias_obj, const std::optional<std::string>& kernel,
                            const std::optional<py::object>& out, const Rows& rows) {
  py::array a_any = py::array::ensure(a_obj);
  if (!a_any || !a_any.dtype().is(py::dtype::of<std::int8_t>())) {
    fail("a_q must be an int8 array" + (a_any ? " (got dtype " + dtype_string(a_any) + ")" : std::string()));
  }
  if (a_any.ndim() != 2) fail("a_q must be 2-D (m, k), got shape " + shape_string(a_any));
  Int8Array a = Int8Array::ensure(a_any);
  const auto m = static_cast<std::size_t>(a.shape(0));
  const auto k = static_cast<std::size_t>(a.shape(1));
  FloatArray a_scale = float_array(a_scale_obj, "a_scale");
  if (a_scale.ndim() != 1 || static_cast<std::size_t>(a_scale.shape(0)) != m) {
    fail("a_scale must have shape (" + std::to_string(m) + ",) (one per row of a_q), got " + shape_string(a_scale));
  }
  const DenseInput x = dense_input(x_obj, "x");
  if (x.k != k) {
    fail("shape mismatch: a_q has shape " + shape_string(a) + " and x has shape " + shape_string(x.array) +
         " (a_q.shape[1] must equal x.shape[0])");
  }
  if (k > pakd::kQs8GemmMaxK) {
    fail("k = " + std::to_string(k) + " is too large for exact int32 sums (at most " +
         std::to_string(pakd::kQs8GemmMaxK) + ")");
  }
  const std::optional<FloatArray> bias = bias_vector(bias_obj, m);
  const auto [begin, end] = row_range(rows, m);
  const pakd::Qs8GemmFn gemm = choose_kernel(rt::qs8_gemm_kernels(), kernel, "qs8_gemm");
  py::array_t<float> y = result_array(out, m, x, begin != 0 || end != m);
  if (begin == end || x.n == 0) return y;

  const std::int8_t* pa = a.data();
  const float* ps = a_scale.data();
  const float* px = x.array.data();
  const float* pb = bias ? bias->data() : nullptr;
  float* py_ = y.mutable_data();
  const std::size_t n = x.n;
  {
    py::gil_scoped_release release;
    std::vector<std::int8_t> xq(k * n);
    const float x_scale = pakd::quantize_s8_symmetric(px, k * n, xq.data());
    gemm(begin, end, n, k, pa, k, ps, xq.data(), n, x_scale, pb, py_, n);
  }
  return y;
}

// Direct stride-1 convolution through one direct-convolution kernel:
// "4x24-scalar", "4x24-avx2" (wide rows) or "6x16-scalar", "6x16-avx2"
// (vectorized over output channels). x (Cin, H, W), w (Cout, Cin, kh, kw),
// zero padding (ph, pw).
py::array_t<float> conv2d_direct(const py::array_t<float, py::array::c_style | py::array::forcecast>& x,
                                 const py::array_t<float, py::array::c_style | py::array::forcecast>& w, std::size_t ph,
                                 std::size_t pw, const std::string& kernel, std::size_t stride,
                                 const std::optional<py::object>& scale_obj, const std::optional<py::object>& bias_obj,
                                 const std::optional<FloatArray>& residual, bool relu,
                                 const std::optional<std::string>& pad_kernel,
                                 const std::optional<std::string>& out_kernel) {
  if (x.ndim() != 3 || w.ndim() != 4 || w.shape(1) != x.shape(0)) {
    throw py::value_error("conv2d_direct expects x (Cin, H, W) and w (Cout, Cin, kh, kw)");
  }
  // the kernel by name in the three direct-convolution lists (the names are
  // unique across them; a "sparse-" prefix is accepted for the sparse one)
  const std::string name = kernel.rfind("sparse-", 0) == 0 ? kernel.substr(7) : kernel;
  const rt::KernelEntry<pakd::F32DconvFn>* wide_kernel_entry = rt::f32_dconv_wide_kernels().find(name.c_str());
  const rt::KernelEntry<pakd::F32DconvOcFn>* oc_entry = rt::f32_dconv_oc_kernels().find(name.c_str());
  const rt::KernelEntry<pakd::F32SparseDconvFn>* sparse_entry = rt::f32_sdconv_kernels().find(name.c_str());
  const rt::KernelInfo* found = wide_kernel_entry;
  if (found == nullptr) found = oc_entry;
  if (found == nullptr) found = sparse_entry;
  if (found == nullptr) {
    std::string known;
    for (const char* family : {"f32-dconv-wide", "f32-dconv-oc", "f32-sdconv"}) {
      for (const rt::KernelInfo& k : kernel_family(family).kernels)
        known += (known.empty() ? "" : ", ") + std::string(k.name);
    }
    fail("unknown direct convolution kernel '" + kernel + "' (known: " + known + ")");
  }
  if (!rt::kernel_supported(found->required)) {
    not_supported("direct convolution kernel '" + kernel + "' needs " + found->isa + ", which this CPU does not have");
  }
  const bool oc_kernel = oc_entry != nullptr && found == oc_entry;
  const bool sparse_kernel = sparse_entry != nullptr && found == sparse_entry;
  // the 4x24 kernels run with the input and output passes of their ISA (or those named)
  const pakd::F32PadPlanesFn pad_fn = pad_kernel ? choose_kernel(rt::f32_dconv_pad_kernels(), pad_kernel, "dconv pad")
                                                 : companion_kernel(rt::f32_dconv_pad_kernels(), found->isa);
  const pakd::F32WideRowsOutFn out_fn = out_kernel ? choose_kernel(rt::f32_dconv_out_kernels(), out_kernel, "dconv out")
                                                   : companion_kernel(rt::f32_dconv_out_kernels(), found->isa);
  const std::size_t cin = x.shape(0), h = x.shape(1), wd = x.shape(2);
  const std::size_t cout = w.shape(0), kh = w.shape(2), kw = w.shape(3);
  const std::size_t hp = h + 2 * ph, wp = wd + 2 * pw;
  if (kh > hp || kw > wp) throw py::value_error("kernel larger than the padded input");
  if (stride == 0 || (stride > 1 && !oc_kernel)) {
    throw py::value_error("stride must be >= 1 (> 1 only for the 6x16 kernels)");
  }
  const std::size_t ho = (hp - kh) / stride + 1, wo = (wp - kw) / stride + 1, plane = hp * wp;
  const bool wide_kernel = !oc_kernel && !sparse_kernel;
  if (!wide_kernel && (scale_obj || bias_obj || residual || relu)) {
    throw py::value_error("scale, bias, residual and relu apply to the 4x24 kernels only");
  }
  const std::optional<FloatArray> scale = bias_vector(scale_obj, cout), bias = bias_vector(bias_obj, cout);
  if (residual &&
      (residual->ndim() != 3 || static_cast<std::size_t>(residual->shape(0)) != cout ||
       static_cast<std::size_t>(residual->shape(1)) != ho || static_cast<std::size_t>(residual->shape(2)) != wo)) {
    throw py::value_error("conv2d_direct: residual must have the output's shape (Cout, Ho, Wo), got " +
                          shape_string(*residual));
  }
  // the session's geometry and packing (runtime/conv-plan.h, runtime/pack.h)
  const auto is = static_cast<std::int64_t>(stride), iph = static_cast<std::int64_t>(ph),
             ipw = static_cast<std::int64_t>(pw);
  const rt::ConvGeometry g{cin, h, wd, cout, ho, wo, kh, kw, 1, is, is, iph, ipw, 1, 1};
  const std::size_t n = g.wide_n();
  const float* px = x.data();
  const float* pwt = w.data();
  py::array_t<float> y({static_cast<py::ssize_t>(cout), static_cast<py::ssize_t>(ho), static_cast<py::ssize_t>(wo)});
  float* out = y.mutable_data();
  std::vector<float> xpad, wide, packed_x;
  rt::DirectConvWeight packed;
  rt::SparseDconvWeight sparse;
  const std::size_t rs = pakd::sdconv_row_stride(kw);
  if (sparse_kernel) {
    sparse = rt::pack_sparse_direct_conv(pwt, cout, cin, kh, kw, hp, wo);
    // exactly the packed input: the kernel reads nothing past it
    packed_x.resize(pakd::sdconv_input_size(cin, hp, wo, kw));
    pakd::sdconv_pack_input(px, cin, h, wd, ph, pw, wo, kw, packed_x.data());
  } else {
    packed = rt::pack_direct_conv(pwt, cout, g.k(), oc_kernel ? pakd::kDconvOcVector : pakd::kDconvOcBlock);
    // the session's input pass: the padded planes (every element must be written), the slack past them zero
    xpad.assign(g.padded_input(), 1e30f);
    pad_fn(cin, h, wd, ph, pw, px, xpad.data());
    std::fill(xpad.begin() + static_cast<std::ptrdiff_t>(cin * plane), xpad.end(), 0.0f);
    if (!oc_kernel) wide.resize(cout * n);
  }
  {
    py::gil_scoped_release release;
    if (sparse_kernel) {
      sparse_entry->fn(0, cout, ho, wo, rs, hp * rs, sparse.row_ptr.data(), sparse.offsets.data(), sparse.values.data(),
                       packed_x.data(), out, ho * wo);
    } else if (oc_kernel) {
      oc_entry->fn(0, cout, 0, ho * wo, cin, kh, kw, wp, wo, stride, plane, packed.packed.data(), xpad.data(), out,
                   ho * wo);
    } else {
      wide_kernel_entry->fn(0, cout, n, cin, kh, kw, wp, plane, packed.packed.data(), xpad.data(), wide.data(), n);
      out_fn(0, cout, n, wp, ho, wo, wide.data(), scale ? scale->data() : nullptr, bias ? bias->data() : nullptr,
             residual ? residual->data() : nullptr, relu ? 1 : 0, out);
    }
  }
  return y;
}

// y = W x through one blocked batch-1 sparse kernel ("8x8-scalar" or
// "8x8-avx2"): W (m, k) dense, its nonzeros packed the way the session packs
// a sparse linear layer (CSR, then kernels/f32-spmv-pack.cc).
py::array_t<float> spmv_blocked(const py::array_t<float, py::array::c_style | py::array::forcecast>& w,
                                const py::array_t<float, py::array::c_style | py::array::forcecast>& x,
                                const std::optional<std::string>& kernel) {
  if (w.ndim() != 2 || x.ndim() != 1 || x.shape(0) != w.shape(1)) {
    throw py::value_error("spmv_blocked expects w (m, k) and x (k,), got shapes " + shape_string(w) + " and " +
                          shape_string(x));
  }
  const pakd::F32BlockSpmvFn fn = choose_kernel(rt::f32_spmv_kernels(), kernel, "blocked spmv");
  const auto m = static_cast<std::size_t>(w.shape(0)), k = static_cast<std::size_t>(w.shape(1));
  py::array_t<float> y(static_cast<py::ssize_t>(m));
  if (m == 0) return y;
  if (k > pakd::kBlockSpmvMaxPanels * pakd::kBlockSpmvCols) {
    throw py::value_error("spmv_blocked: k = " + std::to_string(k) + " is above the format's " +
                          std::to_string(pakd::kBlockSpmvMaxPanels * pakd::kBlockSpmvCols) + " columns");
  }
  // packed as the session packs a sparse linear layer (runtime/pack.h)
  const rt::CsrWeight csr = rt::csr_from_dense(w.data(), m, k);
  const rt::BlockSpmvWeight packed = rt::pack_block_spmv(csr, m, k, rt::block_spmv_steps(csr, m, k));
  float* out = y.mutable_data();
  const float* px = x.data();
  {
    py::gil_scoped_release release;
    fn(m, k, 0, packed.slices.size() - 1, packed.slices.data(), packed.words.data(), packed.values.data(), px, out);
  }
  return y;
}

// Winograd F(4x4, 3x3) through one kernel pair: x (Cin, H, W), w (Cout, Cin, 3, 3),
// optional bias (Cout,), ReLU; stride 1, padding (ph, pw); tiles split into
// `parts` consecutive ranges (as the session's threads would).
py::array_t<float> conv2d_winograd(const FloatArray& x, const FloatArray& w, const std::optional<py::object>& bias,
                                   std::size_t ph, std::size_t pw, bool relu, const std::string& kernel,
                                   std::size_t parts, const std::optional<FloatArray>& residual,
                                   const std::optional<std::string>& pack_kernel) {
  if (x.ndim() != 3 || w.ndim() != 4 || w.shape(1) != x.shape(0) || w.shape(2) != 3 || w.shape(3) != 3) {
    fail("conv2d_winograd expects x (Cin, H, W) and w (Cout, Cin, 3, 3), got " + shape_string(x) + " and " +
         shape_string(w));
  }
  // "wino4x4-6x16-avx2" (the family's prefix) names "6x16-avx2" as well
  const std::string name = kernel.rfind("wino4x4-", 0) == 0 ? kernel.substr(8) : kernel;
  const rt::KernelEntry<pakd::F32Wino4x4Fn>* entry = rt::f32_wino4x4_kernels().find(name.c_str());
  const pakd::F32Wino4x4Fn fn = choose_kernel(rt::f32_wino4x4_kernels(), std::optional<std::string>(name), "Winograd");
  // the input packing of the same ISA, or the one named
  const pakd::F32Wino4x4PackFn pack = pack_kernel
                                          ? choose_kernel(rt::f32_wino4x4_pack_kernels(), pack_kernel, "Winograd pack")
                                          : companion_kernel(rt::f32_wino4x4_pack_kernels(), entry->isa);
  const std::size_t cin = x.shape(0), h = x.shape(1), wd = x.shape(2), cout = w.shape(0);
  if (cin == 0 || cout == 0 || h == 0 || wd == 0) fail("conv2d_winograd: empty input or weights");
  if (h + 2 * ph < 3 || wd + 2 * pw < 3) fail("conv2d_winograd: kernel larger than the padded input");
  if (parts == 0) fail("parts must be >= 1");
  std::optional<FloatArray> b = bias_vector(bias, cout);
  const std::size_t ho = h + 2 * ph - 2, wo = wd + 2 * pw - 2;
  const std::size_t tx = (wo + 3) / 4, ty = (ho + 3) / 4, hpp = 4 * ty + 2, wpp = 4 * tx + 2;
  const std::size_t cin_p = (cin + 7) / 8 * 8;
  // packed as the session packs a Winograd layer (runtime/pack.h)
  const rt::WinogradWeight packed = rt::pack_winograd(w.data(), cout, cin, nullptr, b ? b->data() : nullptr);
  std::vector<float> xh(cin_p * hpp * wpp);
  py::array_t<float> y({static_cast<py::ssize_t>(cout), static_cast<py::ssize_t>(ho), static_cast<py::ssize_t>(wo)});
  if (residual &&
      (residual->ndim() != 3 || static_cast<std::size_t>(residual->shape(0)) != cout ||
       static_cast<std::size_t>(residual->shape(1)) != ho || static_cast<std::size_t>(residual->shape(2)) != wo)) {
    fail("conv2d_winograd: residual must have the output's shape (Cout, Ho, Wo), got " + shape_string(*residual));
  }
  const float* res = residual ? residual->data() : nullptr;
  float* out = y.mutable_data();
  {
    py::gil_scoped_release release;
    pack(cin, h, wd, ph, pw, x.data(), xh.data(), hpp, wpp);
    const std::size_t tiles = tx * ty, chunk = (tiles + parts - 1) / parts;
    for (std::size_t t0 = 0; t0 < tiles; t0 += chunk) {
      fn(t0, std::min(tiles, t0 + chunk), tx, cin, cin_p, cout, packed.u.data(),
         packed.bias.empty() ? nullptr : packed.bias.data(), relu ? 1 : 0, res, xh.data(), hpp, wpp, out, ho, wo);
    }
  }
  return y;
}

// A depthwise convolution through one kernel of f32-dwconv: x (N, C, H, W) or
// (C, H, W), w (C, kh, kw), zero padding `padding` on every side (the
// f32-dconv-pad reference into a buffer with the kernels' read slack), then
// min(max(conv + bias, lo), hi).
py::array_t<float> dwconv2d(const FloatArray& x, const FloatArray& w, std::int64_t stride, std::int64_t padding,
                            const std::optional<py::object>& bias_obj, float lo, float hi,
                            const std::optional<std::string>& kernel) {
  if (x.ndim() != 3 && x.ndim() != 4) fail("dwconv2d expects x (N, C, H, W) or (C, H, W), got " + shape_string(x));
  if (w.ndim() != 3) fail("dwconv2d expects w (C, kh, kw), got shape " + shape_string(w));
  const py::ssize_t off = x.ndim() == 4 ? 1 : 0;
  const auto n = static_cast<std::size_t>(x.ndim() == 4 ? x.shape(0) : 1);
  const auto c = static_cast<std::size_t>(x.shape(off)), h = static_cast<std::size_t>(x.shape(off + 1)),
             wd = static_cast<std::size_t>(x.shape(off + 2));
  if (static_cast<std::size_t>(w.shape(0)) != c) fail("dwconv2d: w must have one filter per channel of x");
  if (stride < 1 || padding < 0) fail("dwconv2d: stride must be >= 1 and padding >= 0");
  const auto kh = static_cast<std::size_t>(w.shape(1)), kw = static_cast<std::size_t>(w.shape(2));
  const auto s = static_cast<std::size_t>(stride), p = static_cast<std::size_t>(padding);
  const std::size_t hp = h + 2 * p, wp = wd + 2 * p;
  if (kh == 0 || kw == 0 || hp < kh || wp < kw) fail("dwconv2d: the kernel is larger than the padded input");
  const std::size_t ho = (hp - kh) / s + 1, wo = (wp - kw) / s + 1, plane = hp * wp;
  const pakd::F32DwconvFn fn = choose_kernel(rt::f32_dwconv_kernels(), kernel, "dwconv2d");
  const std::optional<FloatArray> bias = bias_vector(bias_obj, c);
  std::vector<float> xpad(c * plane + pakd::kDwconvReadSlack, 0.0f);
  std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(c), static_cast<py::ssize_t>(ho),
                                    static_cast<py::ssize_t>(wo)};
  if (off == 1) shape.insert(shape.begin(), static_cast<py::ssize_t>(n));
  py::array_t<float> y(shape);
  for (std::size_t b = 0; b < n; ++b) {
    rt::f32_dconv_pad_kernels().reference().fn(c, h, wd, p, p, x.data() + b * c * h * wd, xpad.data());
    fn(0, c, kh, kw, s, wp, plane, ho, wo, w.data(), bias ? bias->data() : nullptr, lo, hi, xpad.data(),
       y.mutable_data() + b * c * ho * wo, ho * wo);
  }
  return y;
}

// The in-place epilogue through one kernel of f32-epilogue, on a copy of y
// (C, S): channels [c0, c1) and positions [s0, s1) (None: all).
py::array_t<float> epilogue(const FloatArray& y_in, const std::optional<py::object>& scale_obj,
                            const std::optional<py::object>& bias_obj, const std::optional<FloatArray>& residual,
                            bool relu, const std::optional<std::string>& kernel, const Rows& channels,
                            const Rows& positions) {
  if (y_in.ndim() != 2) fail("epilogue expects y (C, S), got shape " + shape_string(y_in));
  const auto c = static_cast<std::size_t>(y_in.shape(0)), n = static_cast<std::size_t>(y_in.shape(1));
  const pakd::F32EpilogueFn fn = choose_kernel(rt::f32_epilogue_kernels(), kernel, "epilogue");
  const std::optional<FloatArray> scale = bias_vector(scale_obj, c), bias = bias_vector(bias_obj, c);
  if (residual &&
      (residual->ndim() != 2 || residual->shape(0) != y_in.shape(0) || residual->shape(1) != y_in.shape(1))) {
    fail("epilogue: residual must have y's shape, got " + shape_string(*residual));
  }
  const auto [c0, c1] = row_range(channels, c);
  const auto [s0, s1] = row_range(positions, n);
  py::array_t<float> y({y_in.shape(0), y_in.shape(1)});
  std::copy(y_in.data(), y_in.data() + y_in.size(), y.mutable_data());
  fn(c0, c1, s0, s1, n, scale ? scale->data() : nullptr, bias ? bias->data() : nullptr,
     residual ? residual->data() : nullptr, relu ? 1 : 0, y.mutable_data());
  return y;
}

}  // namespace

namespace pakd_python {

void bind_kernels(py::module_& m) {
  m.def(
      "kernel_families",
      [] {
        std::vector<std::string> names;
        for (const rt::KernelFamily& family : rt::kernel_families()) names.emplace_back(family.name);
        return names;
      },
      "Names of the kernel families (one list each, csrc/src/kernels/<family>-list.inc).");
  m.def(
      "kernels", [](const std::string& family) { return kernel_list(kernel_family(family)); }, py::arg("family"),
      "The compiled-in kernels of one family: list of {'name', 'isa', 'supported'}, slowest first; the first is the "
      "family's reference.");
  m.def(
      "best_kernel", [](const std::string& family) { return std::string(kernel_family(family).best().name); },
      py::arg("family"), "Name of the kernel a session uses for this family on this CPU.");
  m.def("dwconv2d", &dwconv2d, py::arg("x"), py::arg("w"), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("bias") = py::none(), py::arg("lo") = -std::numeric_limits<float>::infinity(),
        py::arg("hi") = std::numeric_limits<float>::infinity(), py::arg("kernel") = py::none(),
        "Depthwise convolution of x (N, C, H, W) or (C, H, W) with w (C, kh, kw), zero padding on every side, "
        "min(max(conv + bias, lo), hi), through one f32-dwconv kernel (None: the best); for tests and benchmarks.");
  m.def("epilogue", &epilogue, py::arg("y"), py::arg("scale") = py::none(), py::arg("bias") = py::none(),
        py::arg("residual") = py::none(), py::arg("relu") = false, py::arg("kernel") = py::none(),
        py::arg("channels") = py::none(), py::arg("positions") = py::none(),
        "relu(y * scale + bias + residual) of y (C, S) over channels=(c0, c1) and positions=(s0, s1) (None: all) "
        "through one f32-epilogue kernel (None: the best), on a copy; for tests and benchmarks.");
  py::class_<CsrMatrix>(m, "CsrMatrix", R"doc(A validated, owned m x k CSR matrix for spmm.

CsrMatrix(indptr, indices, values, shape) holds f32 values;
CsrMatrix.with_codebook(indptr, indices, codes, table, shape) holds u8 codes
into a float table of at most 256 entries (weight sharing). The arrays are
checked once (indptr[0] == 0, non-decreasing, indptr[-1] == len(indices),
0 <= indices < k, 0 <= codes < len(table)) and copied, so matmul() runs the
kernel with no per-call validation of the sparse structure.)doc")
      .def(py::init<const py::object&, const py::object&, const py::object&, std::pair<std::size_t, std::size_t>>(),
           py::arg("indptr"), py::arg("indices"), py::arg("values"), py::arg("shape"))
      .def_static("with_codebook", &CsrMatrix::with_codebook, py::arg("indptr"), py::arg("indices"), py::arg("codes"),
                  py::arg("table"), py::arg("shape"))
      .def_property_readonly("shape", &CsrMatrix::shape)
      .def_property_readonly("nnz", &CsrMatrix::nnz)
      .def_property_readonly("codebook", &CsrMatrix::codebook)
      .def("matmul", &CsrMatrix::matmul, py::arg("x"), py::arg("bias") = py::none(), py::arg("kernel") = py::none(),
           py::arg("out") = py::none(), py::arg("rows") = py::none(),
           R"doc(self @ x (+ bias[:, None]); x is (k,) or (k, n) float32.

kernel: a name from spmm_kernels() (f32 values) or spmm_codebook_kernels()
(codebook), None for the best supported. out: float32 C-contiguous array of
the result's shape to write into. rows=(begin, end): compute only those rows
(others of out are left untouched). The GIL is released during the kernel.)doc");

  m.def(
      "spmm",
      [](const py::object& indptr, const py::object& indices, const py::object& values, const py::object& x,
         const std::optional<py::object>& bias, const std::optional<std::string>& kernel,
         const std::optional<py::object>& out, const Rows& rows) {
        return CsrMatrix(indptr, indices, values, spmm_shape(indptr, x)).matmul(x, bias, kernel, out, rows);
      },
      py::arg("indptr"), py::arg("indices"), py::arg("values"), py::arg("x"), py::arg("bias") = py::none(),
      py::arg("kernel") = py::none(), py::arg("out") = py::none(), py::arg("rows") = py::none(),
      R"doc(Sparse CSR (m x k, f32 values) times dense x, (k,) or (k, n).

y[i] = bias[i] + sum_j values[j] * x[indices[j]] over row i's entries
indptr[i]:indptr[i+1] (scipy.sparse.csr_matrix layout; k = x.shape[0]).
Validates everything (ValueError); see CsrMatrix for the arguments.)doc");
  m.def(
      "spmm_codebook",
      [](const py::object& indptr, const py::object& indices, const py::object& codes, const py::object& table,
         const py::object& x, const std::optional<py::object>& bias, const std::optional<std::string>& kernel,
         const std::optional<py::object>& out, const Rows& rows) {
        return CsrMatrix::with_codebook(indptr, indices, codes, table, spmm_shape(indptr, x))
            .matmul(x, bias, kernel, out, rows);
      },
      py::arg("indptr"), py::arg("indices"), py::arg("codes"), py::arg("table"), py::arg("x"),
      py::arg("bias") = py::none(), py::arg("kernel") = py::none(), py::arg("out") = py::none(),
      py::arg("rows") = py::none(), "spmm() with values table[codes] (u8 codes, table of at most 256 floats).");
  m.def(
      "spmm_kernels", [] { return kernel_list(kernel_family("f32-spmm")); },
      "All compiled-in f32 spmm kernels: list of {'name', 'isa', 'supported'}, slowest first.");
  m.def(
      "spmm_codebook_kernels", [] { return kernel_list(kernel_family("f32-cbspmm")); },
      "All compiled-in codebook spmm kernels: list of {'name', 'isa', 'supported'}.");
  m.def("best_spmm_kernel", [] { return std::string(rt::f32_spmm_kernels().best().name); });
  m.def("best_spmm_codebook_kernel", [] { return std::string(rt::f32_cbspmm_kernels().best().name); });

  m.def("conv2d_direct", &conv2d_direct, py::arg("x"), py::arg("w"), py::arg("ph") = 0, py::arg("pw") = 0,
        py::arg("kernel") = "4x24-scalar", py::arg("stride") = 1, py::arg("scale") = py::none(),
        py::arg("bias") = py::none(), py::arg("residual") = py::none(), py::arg("relu") = false,
        py::arg("pad_kernel") = py::none(), py::arg("out_kernel") = py::none(),
        "Convolution of x (Cin, H, W) by w (Cout, Cin, kh, kw) through one direct-convolution "
        "kernel, a name from kernels('f32-dconv-wide'), kernels('f32-dconv-oc') or kernels('f32-sdconv') "
        "(zeros of w skipped; 'sparse-' + name accepted); stride 1, or any stride for the 6x16 kernels; "
        "weights and input packed by the session's packing functions; the 4x24 kernels run with the "
        "session's input and output passes (pad_kernel, out_kernel; None: those of the same ISA): padding, "
        "then relu(y * scale + bias + residual), each optional: scale and bias (Cout,), residual (Cout, Ho, Wo); "
        "for tests and benchmarks.");
  m.def("conv2d_winograd", &conv2d_winograd, py::arg("x"), py::arg("w"), py::arg("bias") = py::none(),
        py::arg("ph") = 1, py::arg("pw") = 1, py::arg("relu") = false, py::arg("kernel") = "wino4x4-6x16-scalar",
        py::arg("parts") = 1, py::arg("residual") = py::none(), py::arg("pack_kernel") = py::none(),
        "Stride-1 3x3 convolution of x (Cin, H, W) by w (Cout, Cin, 3, 3) (+ bias, + residual (Cout, Ho, "
        "Wo), ReLU) through the "
        "Winograd F(4x4, 3x3) kernels (a name from kernels('f32-wino4x4'), 'wino4x4-' + name accepted; "
        "pack_kernel from kernels('f32-wino4x4-pack'), None: the one of the same ISA), tiles split into "
        "`parts` calls; for tests and benchmarks.");
  m.def(
      "spmv_blocked", &spmv_blocked, py::arg("w"), py::arg("x"), py::arg("kernel") = "8x8-scalar",
      "w @ x for a dense w (m, k) whose nonzeros go through the blocked batch-1 sparse kernel "
      "(a name from kernels('f32-spmv'), None: the best; 8-row slices x 8-column panels, packed as the session packs a "
      "sparse linear layer); for tests and benchmarks.");
  m.def("quantize_s8", &quantize_s8, py::arg("x"),
        "Symmetric int8 quantization: (q, scale) with scale = max|x| / 127, q = round(x / scale).");
  m.def("qs8_gemm", &qs8_gemm, py::arg("a_q"), py::arg("a_scale"), py::arg("x"), py::arg("bias") = py::none(),
        py::arg("kernel") = py::none(), py::arg("out") = py::none(), py::arg("rows") = py::none(),
        R"doc(int8 GEMM with dynamic activation quantization.

a_q: int8 (m, k) weights, a_scale: (m,) per-row scales, x: float (k,) or
(k, n). x is quantized (quantize_s8), then
y[i] = bias[i] + a_scale[i] * x_scale * sum_p a_q[i, p] * x_q[p] (int32 sums).)doc");
  m.def(
      "qs8_gemm_kernels", [] { return kernel_list(kernel_family("qs8-gemm")); },
      "All compiled-in int8 GEMM kernels: list of {'name', 'isa', 'supported'}.");
  m.def("best_qs8_gemm_kernel", [] { return std::string(rt::qs8_gemm_kernels().best().name); });
}

}  // namespace pakd_python
