// Direct convolution, 6 output positions x 16 output channels per tile with
// NEON, any stride. AArch64: 24 accumulators (6 positions x 4 vectors of 4
// channels); per tap 4 weight loads and 6 input lane loads (into 2
// registers) feed 24 FMAs by lane; a last block of fewer than 16 channels
// runs only its vectors (50 channels: 3 x 4 + 1 vectors); kernel widths 1, 3
// and 5 have their tap loops unrolled. ARMv7 (16 q-registers, no FMA): the 16 channels as two halves of 8
// (12 accumulators each, multiply-accumulate). A whole tile is transposed in
// registers (4x4 blocks) into the channel-major output; a partial tile (fewer
// positions or channels) goes through memory.
// Contract: F32DconvOcFn in kernels/kernels.h.
#include <arm_neon.h>

#include <cstddef>

#include "kernels/kernels.h"

namespace {

constexpr std::size_t V = pakd::kDconvOcVector, P = pakd::kDconvOcPixels;

#if defined(__aarch64__)
constexpr std::size_t kQ = 4;  // q-vectors of channels per pass
#define PAKD_MAC_LANE(acc, w, x, lane) vfmaq_laneq_f32(acc, w, x, lane)
#define PAKD_MAC_LANE2(acc, w, x, lane) vfmaq_lane_f32(acc, w, x, lane)
#else
constexpr std::size_t kQ = 2;
#define PAKD_MAC_LANE(acc, w, x, lane) \
  vmlaq_lane_f32(acc, w, (lane) < 2 ? vget_low_f32(x) : vget_high_f32(x), (lane) & 1)
#define PAKD_MAC_LANE2(acc, w, x, lane) vmlaq_lane_f32(acc, w, x, lane)
#endif

// The first Q vectors of channels [4 kQ h, 4 kQ (h + 1)) of one tile:
// out[j][q] = position j, channels 4 (kQ h + q) .. +3; KW the kernel width
// (0: kw at run time). Per tap the 6 positions' inputs go into the lanes of
// two registers (24 accumulators + 4 weights + 2 inputs fit the 32
// q-registers). Named accumulators (GCC keeps an array of vectors in
// memory); the vectors past Q are dead code. Contig: the 6 positions'
// inputs are consecutive (stride 1, the tile inside one output row): two
// loads per tap instead of six.
template <std::size_t Q, std::size_t KW, bool Contig>
inline void tile_pass(const float* wt, std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp,
                      std::size_t plane, const float* x, const std::size_t off[P], float32x4_t out[P][kQ]) {
#define PAKD_VEC(q) \
  float32x4_t a0##q = vdupq_n_f32(0.0f), a1##q = a0##q, a2##q = a0##q, a3##q = a0##q, a4##q = a0##q, a5##q = a0##q
#define PAKD_VEC_MAC(q)                          \
  if (Q > q) {                                   \
    const float32x4_t w = vld1q_f32(wt + 4 * q); \
    a0##q = PAKD_MAC_LANE(a0##q, w, xa, 0);      \
    a1##q = PAKD_MAC_LANE(a1##q, w, xa, 1);      \
    a2##q = PAKD_MAC_LANE(a2##q, w, xa, 2);      \
    a3##q = PAKD_MAC_LANE(a3##q, w, xa, 3);      \
    a4##q = PAKD_MAC_LANE2(a4##q, w, xb, 0);     \
    a5##q = PAKD_MAC_LANE2(a5##q, w, xb, 1);     \
  }
#define PAKD_VEC_OUT(q) \
  if (Q > q) {          \
    out[0][q] = a0##q;  \
    out[1][q] = a1##q;  \
    out[2][q] = a2##q;  \
    out[3][q] = a3##q;  \
    out[4][q] = a4##q;  \
    out[5][q] = a5##q;  \
  }
  PAKD_VEC(0);
  PAKD_VEC(1);
#if defined(__aarch64__)
  PAKD_VEC(2);
  PAKD_VEC(3);
#endif
  const std::size_t width = KW != 0 ? KW : kw;
  for (std::size_t ic = 0; ic < cin; ++ic) {
    const float* xc = x + ic * plane;
    const float* x0 = xc + off[0];
    const float* x1 = xc + off[1];
    const float* x2 = xc + off[2];
    const float* x3 = xc + off[3];
    const float* x4 = xc + off[4];
    const float* x5 = xc + off[5];
    for (std::size_t row = 0; row < kh * wp; row += wp) {
      for (std::size_t kx = 0; kx < width; ++kx, wt += V) {
        const std::size_t t = row + kx;
        float32x4_t xa;
        float32x2_t xb;
        if (Contig) {
          xa = vld1q_f32(x0 + t);
          xb = vld1_f32(x0 + t + 4);
        } else {
          xa = vld1q_dup_f32(x0 + t);
          xa = vld1q_lane_f32(x1 + t, xa, 1);
          xa = vld1q_lane_f32(x2 + t, xa, 2);
          xa = vld1q_lane_f32(x3 + t, xa, 3);
          xb = vld1_dup_f32(x4 + t);
          xb = vld1_lane_f32(x5 + t, xb, 1);
        }
#if defined(__GNUC__) && defined(__aarch64__)
        // keep the inputs in two registers (GCC would load 6 scalars, spilling accumulators)
        __asm__("" : "+w"(xa), "+w"(xb));
#endif
        PAKD_VEC_MAC(0)
        PAKD_VEC_MAC(1)
#if defined(__aarch64__)
        PAKD_VEC_MAC(2)
        PAKD_VEC_MAC(3)
#endif
      }
    }
  }
  PAKD_VEC_OUT(0)
  PAKD_VEC_OUT(1)
#if defined(__aarch64__)
  PAKD_VEC_OUT(2)
  PAKD_VEC_OUT(3)
#endif
#undef PAKD_VEC
#undef PAKD_VEC_MAC
#undef PAKD_VEC_OUT
}

template <std::size_t Q, bool Contig>
inline void tile_pass_kw(const float* wt, std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp,
                         std::size_t plane, const float* x, const std::size_t off[P], float32x4_t acc[P][kQ]) {
  switch (kw) {
    case 1: tile_pass<Q, 1, Contig>(wt, cin, kh, kw, wp, plane, x, off, acc); break;
    case 3: tile_pass<Q, 3, Contig>(wt, cin, kh, kw, wp, plane, x, off, acc); break;
    case 5: tile_pass<Q, 5, Contig>(wt, cin, kh, kw, wp, plane, x, off, acc); break;
    default: tile_pass<Q, 0, Contig>(wt, cin, kh, kw, wp, plane, x, off, acc); break;
  }
}

template <std::size_t Q>
inline void tile_pass_q(const float* wt, std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp,
                        std::size_t plane, const float* x, const std::size_t off[P], bool contig,
                        float32x4_t acc[P][kQ]) {
  if (contig) {
    tile_pass_kw<Q, true>(wt, cin, kh, kw, wp, plane, x, off, acc);
  } else {
    tile_pass_kw<Q, false>(wt, cin, kh, kw, wp, plane, x, off, acc);
  }
}

// 4 channels (acc[j], positions j = 0..5) into y[v * ldy + j], v < 4.
inline void store_6x4_transposed(const float32x4_t a0, const float32x4_t a1, const float32x4_t a2, const float32x4_t a3,
                                 const float32x4_t a4, const float32x4_t a5, float* y, std::size_t ldy) {
  const float32x4x2_t t01 = vtrnq_f32(a0, a1);  // (c0p0 c0p1 c2p0 c2p1), (c1p0 c1p1 c3p0 c3p1)
  const float32x4x2_t t23 = vtrnq_f32(a2, a3);
  const float32x4x2_t t45 = vtrnq_f32(a4, a5);
  vst1q_f32(y, vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0])));
  vst1_f32(y + 4, vget_low_f32(t45.val[0]));
  vst1q_f32(y + ldy, vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1])));
  vst1_f32(y + ldy + 4, vget_low_f32(t45.val[1]));
  vst1q_f32(y + 2 * ldy, vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0])));
  vst1_f32(y + 2 * ldy + 4, vget_high_f32(t45.val[0]));
  vst1q_f32(y + 3 * ldy, vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1])));
  vst1_f32(y + 3 * ldy + 4, vget_high_f32(t45.val[1]));
}

}  // namespace

void pakd_f32_dconv_ukernel_6x16__neon(std::size_t oc_begin, std::size_t oc_end, std::size_t p_begin, std::size_t p_end,
                                       std::size_t cin, std::size_t kh, std::size_t kw, std::size_t wp, std::size_t wo,
                                       std::size_t stride, std::size_t plane, const float* w, const float* x, float* y,
                                       std::size_t ldy) {
  const std::size_t taps = cin * kh * kw;
  // the input stride along a row: the tap loop steps x by 1; off[] gives the position
  for (std::size_t ob = oc_begin; ob < oc_end; ob += V) {
    const float* wb = w + (ob / V) * taps * V;
    const std::size_t vs = oc_end - ob < V ? oc_end - ob : V;
    for (std::size_t p0 = p_begin; p0 < p_end; p0 += P) {
      const std::size_t rows = p_end - p0 < P ? p_end - p0 : P;
      std::size_t off[P];
      for (std::size_t j = 0; j < P; ++j) {
        const std::size_t p = p0 + (j < rows ? j : 0);
        off[j] = (p / wo) * stride * wp + p % wo * stride;
      }
      for (std::size_t h = 0; h * 4 * kQ < vs; ++h) {
        const std::size_t c0 = h * 4 * kQ;  // first channel of this pass
        // only the vectors holding real channels (a last block of 1..15 channels)
        const bool contig = rows == P && off[P - 1] == off[0] + P - 1;  // stride 1, one row
        const std::size_t nq = vs - c0 >= 4 * kQ ? kQ : (vs - c0 + 3) / 4;
        float32x4_t acc[P][kQ];
        const float* wt = wb + c0;
        switch (nq) {
#if defined(__aarch64__)
          case 3: tile_pass_q<3>(wt, cin, kh, kw, wp, plane, x, off, contig, acc); break;
          case 4: tile_pass_q<4>(wt, cin, kh, kw, wp, plane, x, off, contig, acc); break;
#endif
          case 1: tile_pass_q<1>(wt, cin, kh, kw, wp, plane, x, off, contig, acc); break;
          default: tile_pass_q<2>(wt, cin, kh, kw, wp, plane, x, off, contig, acc); break;
        }
        if (rows == P && c0 + 4 * kQ <= vs) {
          for (std::size_t q = 0; q < kQ; ++q) {
            store_6x4_transposed(acc[0][q], acc[1][q], acc[2][q], acc[3][q], acc[4][q], acc[5][q],
                                 y + (ob + c0 + 4 * q) * ldy + p0, ldy);
          }
          continue;
        }
        float tile[P][4 * kQ];
        for (std::size_t j = 0; j < P; ++j) {
          for (std::size_t q = 0; q < nq; ++q) vst1q_f32(tile[j] + 4 * q, acc[j][q]);
        }
        const std::size_t cn = vs - c0 < 4 * kQ ? vs - c0 : 4 * kQ;
        for (std::size_t v = 0; v < cn; ++v) {
          float* yr = y + (ob + c0 + v) * ldy + p0;
          for (std::size_t j = 0; j < rows; ++j) yr[j] = tile[j][v];
        }
      }
    }
  }
}
