// Element-wise binary ops, portable C++ (contracts in
// kernels/f32-elementwise-scalar.h). The op is a template parameter so each
// inner loop is a plain, vectorizable loop.
#include "kernels/f32-elementwise-scalar.h"

#include <cstddef>

namespace {

struct Add {
  static float f(float a, float b) { return a + b; }
};
struct Sub {
  static float f(float a, float b) { return a - b; }
};
struct Mul {
  static float f(float a, float b) { return a * b; }
};
struct Div {
  static float f(float a, float b) { return a / b; }
};

template <class Op>
void same(std::size_t n, const float* a, const float* b, float* y) {
  for (std::size_t i = 0; i < n; ++i) y[i] = Op::f(a[i], b[i]);
}

template <class Op>
void rows(std::size_t n_rows, std::size_t inner, const float* a, const float* r, int r_first, float* y) {
  for (std::size_t o = 0; o < n_rows; ++o) {
    const float v = r[o];
    const float* ar = a + o * inner;
    float* yr = y + o * inner;
    if (r_first) {
      for (std::size_t i = 0; i < inner; ++i) yr[i] = Op::f(v, ar[i]);
    } else {
      for (std::size_t i = 0; i < inner; ++i) yr[i] = Op::f(ar[i], v);
    }
  }
}

template <class Op>
void general(std::size_t ndim, const std::size_t* dims, const std::size_t* sa, const std::size_t* sb, const float* a,
             const float* b, float* y) {
  std::size_t total = 1;
  for (std::size_t d = 0; d < ndim; ++d) total *= dims[d];
  std::size_t idx[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t oa = 0, ob = 0;
  for (std::size_t i = 0; i < total; ++i) {
    y[i] = Op::f(a[oa], b[ob]);
    // odometer over the output index, last dimension fastest
    for (std::size_t d = ndim; d-- > 0;) {
      if (++idx[d] < dims[d]) {
        oa += sa[d];
        ob += sb[d];
        break;
      }
      oa -= sa[d] * (dims[d] - 1);
      ob -= sb[d] * (dims[d] - 1);
      idx[d] = 0;
    }
  }
}

}  // namespace

void pakd_f32_binary_ukernel__scalar(int kind, std::size_t n, const float* a, const float* b, float* y) {
  switch (kind) {
    case 0: same<Add>(n, a, b, y); break;
    case 1: same<Sub>(n, a, b, y); break;
    case 2: same<Mul>(n, a, b, y); break;
    default: same<Div>(n, a, b, y); break;
  }
}

void pakd_f32_binary_rows_ukernel__scalar(int kind, std::size_t n_rows, std::size_t inner, const float* a,
                                          const float* r, int r_first, float* y) {
  switch (kind) {
    case 0: rows<Add>(n_rows, inner, a, r, r_first, y); break;
    case 1: rows<Sub>(n_rows, inner, a, r, r_first, y); break;
    case 2: rows<Mul>(n_rows, inner, a, r, r_first, y); break;
    default: rows<Div>(n_rows, inner, a, r, r_first, y); break;
  }
}

void pakd_f32_binary_ukernel__reference(int kind, std::size_t ndim, const std::size_t* out_dims,
                                        const std::size_t* a_strides, const std::size_t* b_strides, const float* a,
                                        const float* b, float* y) {
  switch (kind) {
    case 0: general<Add>(ndim, out_dims, a_strides, b_strides, a, b, y); break;
    case 1: general<Sub>(ndim, out_dims, a_strides, b_strides, a, b, y); break;
    case 2: general<Mul>(ndim, out_dims, a_strides, b_strides, a, b, y); break;
    default: general<Div>(ndim, out_dims, a_strides, b_strides, a, b, y); break;
  }
}
