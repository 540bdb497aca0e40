// Element-wise binary ops (add, sub, mul, div) of the runtime's kBinary op,
// portable C++ (kernels/f32-elementwise-scalar.cc). One implementation each,
// so no list: the loops are written so that the compiler vectorizes them for
// the build's ISA (SSE2 / NEON). `kind` is BinaryKind (0 add, 1 sub, 2 mul,
// 3 div). Never throw.
#ifndef PAKD_SRC_KERNELS_F32_ELEMENTWISE_SCALAR_H_
#define PAKD_SRC_KERNELS_F32_ELEMENTWISE_SCALAR_H_

#include <cstddef>

// y[i] = a[i] op b[i], i < n.
void pakd_f32_binary_ukernel__scalar(int kind, std::size_t n, const float* a, const float* b, float* y);
// One operand constant per row: rows x inner elements, r[o] the row's value;
// y = a op r (r_first 0) or r op a (r_first 1). A squeeze-excite scale
// (C x H x W times C x 1 x 1) is rows = C, inner = H x W; a scalar is rows = 1.
void pakd_f32_binary_rows_ukernel__scalar(int kind, std::size_t rows, std::size_t inner, const float* a, const float* r,
                                          int r_first, float* y);
// The general broadcast, the oracle: out_dims[ndim]; a_strides / b_strides
// in elements per output dimension (0 where that operand is broadcast).
void pakd_f32_binary_ukernel__reference(int kind, std::size_t ndim, const std::size_t* out_dims,
                                        const std::size_t* a_strides, const std::size_t* b_strides, const float* a,
                                        const float* b, float* y);

#endif  // PAKD_SRC_KERNELS_F32_ELEMENTWISE_SCALAR_H_
