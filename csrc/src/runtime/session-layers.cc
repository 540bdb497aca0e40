// Session: the convolutions (one method per ConvMethod, conv-plan.h) and the
// linear layers, each on the kernels of the session's KernelConfig, and the
// per-channel epilogue they share.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <variant>

#include "runtime/activation.h"
#include "runtime/session.h"

namespace pakd::runtime {
namespace {

// Output channels [c0, c1) from wide rows (row oy of channel oc at
// wide[oc * n + oy * wp], wo of its wp columns kept) into y[oc][oy][ox] as
// act(wide * scale + bias + res), for the activations the output-pass
// kernels (f32-dconv-out: none or ReLU) do not take.
void wide_rows_to_output(const PreparedOp& op, const float* wide, std::size_t n, std::size_t wp, std::size_t ho,
                         std::size_t wo, std::size_t c0, std::size_t c1, float* y, const float* res) {
  const bool has_scale = !op.scale.empty(), has_bias = !op.bias.empty();
  const Act act = op.desc.act;
  for (std::size_t oc = c0; oc < c1; ++oc) {
    const float s = has_scale ? op.scale[oc] : 1.0f, b = has_bias ? op.bias[oc] : 0.0f;
    for (std::size_t oy = 0; oy < ho; ++oy) {
      const float* src = wide + oc * n + oy * wp;
      float* dst = y + (oc * ho + oy) * wo;
      if (res != nullptr) {  // a fused residual add: act(conv + residual)
        const float* r = res + (oc * ho + oy) * wo;
        for (std::size_t ox = 0; ox < wo; ++ox) dst[ox] = activate(src[ox] * s + b + r[ox], act);
      } else {
        for (std::size_t ox = 0; ox < wo; ++ox) dst[ox] = activate(src[ox] * s + b, act);
      }
    }
  }
}

// im2col for channels [c0, c0 + cin_g) of one sample into col[K, Ho*Wo].
// Per (channel, ky, kx) the valid output columns [ox_lo, ox_hi) are computed
// once, so the inner loops carry no bounds checks (a contiguous copy for
// stride 1) and only the padding borders are zero-filled.
void im2col(const ConvGeometry& g, const float* x, std::size_t c0, float* col) {
  const std::size_t n = g.n();
  const std::int64_t w = static_cast<std::int64_t>(g.w), h = static_cast<std::int64_t>(g.h);
  const std::int64_t wo = static_cast<std::int64_t>(g.wo);
  for (std::size_t c = 0; c < g.cin_g(); ++c) {
    const float* xc = x + (c0 + c) * g.h * g.w;
    for (std::size_t ky = 0; ky < g.kh; ++ky) {
      for (std::size_t kx = 0; kx < g.kw; ++kx) {
        float* row = col + ((c * g.kh + ky) * g.kw + kx) * n;
        // input column of output column ox: ox * sw + x0; valid when in [0, w)
        const std::int64_t x0 = static_cast<std::int64_t>(kx) * g.dw - g.pw;
        std::int64_t lo = x0 >= 0 ? 0 : (-x0 + g.sw - 1) / g.sw;
        std::int64_t hi = x0 >= w ? 0 : (w - 1 - x0) / g.sw + 1;
        lo = std::min(lo, wo);
        hi = std::max(std::min(hi, wo), lo);
        for (std::size_t oy = 0; oy < g.ho; ++oy) {
          const std::int64_t iy = static_cast<std::int64_t>(oy) * g.sh - g.ph + static_cast<std::int64_t>(ky) * g.dh;
          float* out = row + oy * g.wo;
          if (iy < 0 || iy >= h) {
            std::memset(out, 0, g.wo * sizeof(float));
            continue;
          }
          const float* xr = xc + iy * w + x0;  // xr[ox * sw] is the input of column ox
          for (std::int64_t ox = 0; ox < lo; ++ox) out[ox] = 0.0f;
          if (g.sw == 1) {
            std::memcpy(out + lo, xr + lo, static_cast<std::size_t>(hi - lo) * sizeof(float));
          } else {
            for (std::int64_t ox = lo; ox < hi; ++ox) out[ox] = xr[ox * g.sw];
          }
          for (std::int64_t ox = hi; ox < wo; ++ox) out[ox] = 0.0f;
        }
      }
    }
  }
}

}  // namespace

void Session::epilogue(const PreparedOp& op, float* y, std::size_t spatial, std::size_t c_begin, std::size_t c_end,
                       std::size_t s_begin, std::size_t s_end, const float* res) const {
  const bool has_scale = !op.scale.empty(), has_bias = !op.bias.empty();
  const Act act = op.desc.act;
  if (!has_scale && !has_bias && act == Act::kNone && res == nullptr) return;
  if (act == Act::kNone || act == Act::kRelu) {  // the f32-epilogue kernel
    kernels_.epilogue->fn(c_begin, c_end, s_begin, s_end, spatial, has_scale ? op.scale.data() : nullptr,
                          has_bias ? op.bias.data() : nullptr, res, act == Act::kRelu, y);
    return;
  }
  // the other activations (relu6, hardswish, sigmoid), element by element
  for (std::size_t c = c_begin; c < c_end; ++c) {
    float* row = y + c * spatial;
    const float s = has_scale ? op.scale[c] : 1.0f;
    const float b = has_bias ? op.bias[c] : 0.0f;
    if (res != nullptr) {  // a fused residual add, in one pass
      const float* r = res + c * spatial;
      for (std::size_t i = s_begin; i < s_end; ++i) row[i] = activate(row[i] * s + b + r[i], act);
      continue;
    }
    if (has_scale) {
      for (std::size_t i = s_begin; i < s_end; ++i) row[i] = row[i] * s + b;
    } else if (has_bias) {
      for (std::size_t i = s_begin; i < s_end; ++i) row[i] += b;
    }
    activate_range(row + s_begin, s_end - s_begin, act);
  }
}

// im2col (none for a 1x1 stride-1 convolution) + the dense GEMM per group,
// or the CSR SpMM (f32 or codebook values, one group); the epilogue on each
// thread's part of the output.
void Session::conv(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = op.geometry();
  const std::size_t k = g.k(), n = g.n(), m = g.cout_g();
  const DenseWeight* dense = std::get_if<DenseWeight>(&op.weight);
  const CsrWeight* csr = std::get_if<CsrWeight>(&op.weight);
  const CsrCodebookWeight* cb = std::get_if<CsrCodebookWeight>(&op.weight);
  const std::size_t nnz = csr != nullptr ? csr->col_idx.size() : cb != nullptr ? cb->col_idx.size() : 0;
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * op.in_size;
    float* yb = y + b * op.out_size;
    for (std::size_t grp = 0; grp < g.groups; ++grp) {
      const float* col = xb + grp * g.cin_g() * g.h * g.w;
      if (!g.pointwise()) {
        im2col(g, xb, grp * g.cin_g(), scratch_.data());
        col = scratch_.data();
      }
      float* yg = yb + grp * m * n;
      const std::size_t macs = m * n * k;
      const float* rb = residual(op, b);
      if (dense != nullptr) {
        const float* a = dense->w.data() + grp * m * k;
        parallel_ranges(pool_, n, 16, macs, [&](std::size_t j0, std::size_t j1) {
          kernels_.gemm->fn(m, j1 - j0, k, a, k, col + j0, n, yg + j0, n);
          epilogue(op, yb, n, grp * m, grp * m + m, j0, j1, rb);
        });
      } else {  // CSR (groups == 1)
        parallel_ranges(pool_, m, 4, nnz * n, [&](std::size_t r0, std::size_t r1) {
          if (cb != nullptr) {
            kernels_.cbspmm->fn(r0, r1, n, cb->row_ptr.data(), cb->col_idx.data(), cb->codes.data(), cb->table.data(),
                                nullptr, col, n, yg, n);
          } else {
            kernels_.spmm->fn(r0, r1, n, csr->row_ptr.data(), csr->col_idx.data(), csr->values.data(), nullptr, col, n,
                              yg, n);
          }
          epilogue(op, yb, n, r0, r1, 0, n, rb);
        });
      }
    }
  }
}

// Exact output tiles of each channel from its nonzero taps.
void Session::sparse_direct_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = op.geometry();
  const SparseDconvWeight& w = std::get<SparseDconvWeight>(op.weight);
  // 64-byte aligned (scratch_ has the slack), so the kernel's input rows never split a cache line
  const std::size_t skew = reinterpret_cast<std::uintptr_t>(scratch_.data()) % 64 / sizeof(float);
  float* const xt = scratch_.data() + (16 - skew) % 16;
  const std::size_t rs = sdconv_row_stride(g.kw);
  for (std::size_t b = 0; b < batch; ++b) {
    float* yb = y + b * op.out_size;
    sdconv_pack_input(x + b * op.in_size, g.cin, g.h, g.w, static_cast<std::size_t>(g.ph),
                      static_cast<std::size_t>(g.pw), g.wo, g.kw, xt);
    parallel_ranges(pool_, g.cout, 1, w.values.size() * g.n(), [&](std::size_t o0, std::size_t o1) {
      kernels_.sdconv->fn(o0, o1, g.ho, g.wo, rs, g.hp() * rs, w.row_ptr.data(), w.offsets.data(), w.values.data(), xt,
                          yb, g.n());
      epilogue(op, yb, g.n(), o0, o1, 0, g.n(), residual(op, b));
    });
  }
}

// The dense direct convolutions: the 4x24 wide-row kernels (4-channel
// blocks, then the output pass) or the 6x16 output-channel-tile kernels
// (straight into y, any stride).
void Session::direct_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = op.geometry();
  const DirectConvWeight& w = std::get<DirectConvWeight>(op.weight);
  const bool oc_tiles = op.method == ConvMethod::kDirectOc;
  const std::size_t wp = g.wp(), plane = g.hp() * wp, n = g.wide_n();
  float* const xpad = scratch_.data();
  float* const wide = xpad + g.padded_input();
  // the 6x16 kernel reads only inside the planes: an unpadded input is read in place
  const bool in_place = oc_tiles && g.ph == 0 && g.pw == 0;
  if (!in_place) std::fill(xpad + g.cin * plane, wide, 0.0f);  // the read slack past the planes
  const std::size_t macs = g.cout * g.n() * g.cin * g.kh * g.kw;
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * op.in_size;
    float* yb = y + b * op.out_size;
    if (!in_place) {
      kernels_.dconv_pad->fn(g.cin, g.h, g.w, static_cast<std::size_t>(g.ph), static_cast<std::size_t>(g.pw), xb, xpad);
    }
    if (oc_tiles) {  // straight into y, positions split across threads
      parallel_ranges(pool_, g.n(), kDconvOcPixels, macs, [&](std::size_t p0, std::size_t p1) {
        kernels_.dconv_oc->fn(0, g.cout, p0, p1, g.cin, g.kh, g.kw, wp, g.wo, static_cast<std::size_t>(g.sh), plane,
                              w.packed.data(), in_place ? xb : xpad, yb, g.n());
        epilogue(op, yb, g.n(), 0, g.cout, p0, p1, residual(op, b));
      });
      continue;
    }
    // blocks of 4 channels per thread; the last block stops at cout (the kernel's 1..3-row tail)
    parallel_ranges(pool_, g.cout, kDconvOcBlock, macs, [&](std::size_t o0, std::size_t o1) {
      kernels_.dconv_wide->fn(o0, o1, n, g.cin, g.kh, g.kw, wp, plane, w.packed.data(), xpad, wide, n);
      if (op.desc.act == Act::kNone || op.desc.act == Act::kRelu) {
        kernels_.dconv_out->fn(o0, o1, n, wp, g.ho, g.wo, wide, op.scale.empty() ? nullptr : op.scale.data(),
                               op.bias.empty() ? nullptr : op.bias.data(), residual(op, b), op.desc.act == Act::kRelu,
                               yb);
      } else {
        wide_rows_to_output(op, wide, n, wp, g.ho, g.wo, o0, o1, yb, residual(op, b));
      }
    });
  }
}

// Winograd F(4x4, 3x3): the sample packed once (8 channels interleaved,
// zero-padded to whole tiles), then tiles split across threads; the kernel
// writes y with bias and ReLU applied.
void Session::winograd_conv(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = op.geometry();
  const WinogradWeight& w = std::get<WinogradWeight>(op.weight);
  const std::size_t hpp = g.wino_hpp(), wpp = g.wino_wpp(), tiles = g.wino_tiles();
  const float* bias = w.bias.empty() ? nullptr : w.bias.data();
  const int relu = op.desc.act == Act::kRelu ? 1 : 0;
  float* const xh = scratch_.data();
  const std::size_t macs = 36 * tiles * g.wino_cin() * g.wino_cout();
  for (std::size_t b = 0; b < batch; ++b) {
    float* yb = y + b * op.out_size;
    kernels_.wino4x4_pack->fn(g.cin, g.h, g.w, static_cast<std::size_t>(g.ph), static_cast<std::size_t>(g.pw),
                              x + b * op.in_size, xh, hpp, wpp);
    parallel_ranges(pool_, tiles, 1, macs, [&](std::size_t t0, std::size_t t1) {
      kernels_.wino4x4->fn(t0, t1, g.wino_tiles_x(), g.cin, g.wino_cin(), g.cout, w.u.data(), bias, relu,
                           residual(op, b), xh, hpp, wpp, yb, g.ho, g.wo);
    });
  }
}

// Depthwise convolutions: per channel, the zero-padded plane (f32-dconv-pad)
// into the scratch and the f32-dwconv kernel over it, with the bias and a
// ReLU / ReLU6 fused; other epilogues (scale, residual, other activations)
// are a pass after. Dilated or unequal strides: the general bounds-checked
// loop.
void Session::depthwise(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = op.geometry();
  const std::vector<float>& wts = std::get<DenseWeight>(op.weight).w;
  const std::size_t macs = g.cout * g.n() * g.kh * g.kw;
  if (g.dwconv_shape()) {
    const std::size_t wp = g.wp(), plane = g.hp() * wp;
    float* const xpad = scratch_.data();
    std::fill(xpad + g.cin * plane, xpad + g.cin * plane + kDwconvReadSlack, 0.0f);
    const Act act = op.desc.act;
    const bool fused =
        op.scale.empty() && !op.residual && (act == Act::kNone || act == Act::kRelu || act == Act::kRelu6);
    constexpr float kInf = std::numeric_limits<float>::infinity();
    const float lo = fused && act != Act::kNone ? 0.0f : -kInf;
    const float hi = fused && act == Act::kRelu6 ? 6.0f : kInf;
    const float* bias = fused && !op.bias.empty() ? op.bias.data() : nullptr;
    for (std::size_t b = 0; b < batch; ++b) {
      const float* xb = x + b * op.in_size;
      float* yb = y + b * op.out_size;
      parallel_ranges(pool_, g.cout, 1, macs, [&](std::size_t c0, std::size_t c1) {
        for (std::size_t c = c0; c < c1; ++c) {  // pad and convolve channel by channel, in cache
          kernels_.dconv_pad->fn(1, g.h, g.w, static_cast<std::size_t>(g.ph), static_cast<std::size_t>(g.pw),
                                 xb + c * g.h * g.w, xpad + c * plane);
          kernels_.dwconv->fn(c, c + 1, g.kh, g.kw, static_cast<std::size_t>(g.sh), wp, plane, g.ho, g.wo, wts.data(),
                              bias, lo, hi, xpad, yb, g.n());
        }
        if (!fused) epilogue(op, yb, g.n(), c0, c1, 0, g.n(), residual(op, b));
      });
    }
    return;
  }
  const std::int64_t h = static_cast<std::int64_t>(g.h), w = static_cast<std::int64_t>(g.w);
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * op.in_size;
    float* yb = y + b * op.out_size;
    parallel_ranges(pool_, g.cout, 1, macs, [&](std::size_t c0, std::size_t c1) {
      for (std::size_t c = c0; c < c1; ++c) {
        const float* xc = xb + c * g.h * g.w;
        const float* wc = wts.data() + c * g.kh * g.kw;
        float* yc = yb + c * g.n();
        for (std::size_t oy = 0; oy < g.ho; ++oy) {
          for (std::size_t ox = 0; ox < g.wo; ++ox) {
            float acc = 0.0f;
            for (std::size_t ky = 0; ky < g.kh; ++ky) {
              const std::int64_t iy =
                  static_cast<std::int64_t>(oy) * g.sh - g.ph + static_cast<std::int64_t>(ky) * g.dh;
              if (iy < 0 || iy >= h) continue;
              for (std::size_t kx = 0; kx < g.kw; ++kx) {
                const std::int64_t ix =
                    static_cast<std::int64_t>(ox) * g.sw - g.pw + static_cast<std::int64_t>(kx) * g.dw;
                if (ix < 0 || ix >= w) continue;
                acc += xc[iy * w + ix] * wc[ky * g.kw + kx];
              }
            }
            yc[oy * g.wo + ox] = acc;
          }
        }
      }
      epilogue(op, yb, g.n(), c0, c1, 0, g.n(), residual(op, b));
    });
  }
}

// The oracle: a direct convolution straight from the definition.
void Session::conv_reference(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const ConvGeometry g = op.geometry();
  const std::vector<float>& wts = std::get<ReferenceWeight>(op.weight).w;
  const std::int64_t h = static_cast<std::int64_t>(g.h), w = static_cast<std::int64_t>(g.w);
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * op.in_size;
    float* yb = y + b * op.out_size;
    for (std::size_t oc = 0; oc < g.cout; ++oc) {
      const std::size_t grp = oc / g.cout_g();
      for (std::size_t oy = 0; oy < g.ho; ++oy) {
        for (std::size_t ox = 0; ox < g.wo; ++ox) {
          double acc = 0.0;
          for (std::size_t ic = 0; ic < g.cin_g(); ++ic) {
            const float* xc = xb + (grp * g.cin_g() + ic) * g.h * g.w;
            for (std::size_t ky = 0; ky < g.kh; ++ky) {
              const std::int64_t iy =
                  static_cast<std::int64_t>(oy) * g.sh - g.ph + static_cast<std::int64_t>(ky) * g.dh;
              if (iy < 0 || iy >= h) continue;
              for (std::size_t kx = 0; kx < g.kw; ++kx) {
                const std::int64_t ix =
                    static_cast<std::int64_t>(ox) * g.sw - g.pw + static_cast<std::int64_t>(kx) * g.dw;
                if (ix < 0 || ix >= w) continue;
                acc += static_cast<double>(xc[iy * w + ix]) * wts[((oc * g.cin_g() + ic) * g.kh + ky) * g.kw + kx];
              }
            }
          }
          yb[oc * g.n() + oy * g.wo + ox] = static_cast<float>(acc);
        }
      }
    }
    epilogue(op, yb, g.n(), 0, g.cout, 0, g.n(), residual(op, b));
  }
}

void Session::linear(const PreparedOp& op, const float* x, float* y, std::size_t batch) {
  const std::size_t out = op.rows, in = op.cols;
  const bool has_scale = !op.scale.empty(), has_bias = !op.bias.empty();
  // Y[b, o] = Y * scale[o] + bias[o], activation; columns [o0, o1)
  auto finish = [&](std::size_t o0, std::size_t o1) {
    for (std::size_t b = 0; b < batch; ++b) {
      float* row = y + b * out;
      for (std::size_t o = o0; o < o1; ++o) {
        float v = row[o];
        if (has_scale) v *= op.scale[o];
        if (has_bias) v += op.bias[o];
        row[o] = activate(v, op.desc.act);
      }
    }
  };
  if (const auto* ref = std::get_if<ReferenceWeight>(&op.weight)) {
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t o = 0; o < out; ++o) {
        double acc = 0.0;
        for (std::size_t i = 0; i < in; ++i) acc += static_cast<double>(ref->w[o * in + i]) * x[b * in + i];
        y[b * out + o] = static_cast<float>(acc);
      }
    }
    finish(0, out);
    return;
  }
  const DenseWeight* dense = std::get_if<DenseWeight>(&op.weight);
  if (dense != nullptr && out * in <= 16384) {
    // A small layer (a classifier head): y = sum_i x[i] * W^T[i, :] row by
    // row; the GEMM's blocking and tile padding cost more than the work.
    for (std::size_t b = 0; b < batch; ++b) {
      float* yb = y + b * out;
      std::fill(yb, yb + out, 0.0f);
      for (std::size_t i = 0; i < in; ++i) {
        const float xi = x[b * in + i];
        const float* wr = dense->w.data() + i * out;
        for (std::size_t o = 0; o < out; ++o) yb[o] += xi * wr[o];
      }
    }
    finish(0, out);
    return;
  }
  if (dense != nullptr) {
    parallel_ranges(pool_, out, 16, batch * out * in, [&](std::size_t o0, std::size_t o1) {
      kernels_.gemm->fn(batch, o1 - o0, in, x, in, dense->w.data() + o0, out, y + o0, out);
      finish(o0, o1);
    });
    return;
  }
  if (const auto* blocked = std::get_if<BlockSpmvWeight>(&op.weight)) {  // batch 1: slices split across threads
    const std::size_t slices = blocked->slices.size() - 1;
    parallel_ranges(pool_, slices, 1, blocked->values.size(), [&](std::size_t s0, std::size_t s1) {
      kernels_.spmv->fn(out, in, s0, s1, blocked->slices.data(), blocked->words.data(), blocked->values.data(), x, y);
      finish(s0 * kBlockSpmvRows, std::min(out, s1 * kBlockSpmvRows));
    });
    return;
  }
  // Sparse: Z[out, B] = W x X^T. For one sample X^T is X itself.
  const float* xt = x;
  float* z = y;
  if (batch > 1) {
    float* t = scratch_.data();
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t i = 0; i < in; ++i) t[i * batch + b] = x[b * in + i];
    }
    xt = t;
    z = t + in * batch;
  }
  const CsrWeight* csr = std::get_if<CsrWeight>(&op.weight);
  const CsrCodebookWeight* cb = std::get_if<CsrCodebookWeight>(&op.weight);
  const std::size_t nnz = csr != nullptr ? csr->col_idx.size() : cb->col_idx.size();
  parallel_ranges(pool_, out, 8, nnz * batch, [&](std::size_t r0, std::size_t r1) {
    if (cb != nullptr) {
      kernels_.cbspmm->fn(r0, r1, batch, cb->row_ptr.data(), cb->col_idx.data(), cb->codes.data(), cb->table.data(),
                          nullptr, xt, batch, z, batch);
    } else {
      kernels_.spmm->fn(r0, r1, batch, csr->row_ptr.data(), csr->col_idx.data(), csr->values.data(), nullptr, xt, batch,
                        z, batch);
    }
    if (batch == 1) finish(r0, r1);
  });
  if (batch > 1) {
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t o = 0; o < out; ++o) y[b * out + o] = z[o * batch + b];
    }
    finish(0, out);
  }
}

}  // namespace pakd::runtime
