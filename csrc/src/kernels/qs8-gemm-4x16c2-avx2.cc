// int8 GEMM with AVX2: int8 sign-extended to int16, pairs of k multiplied and
// summed into int32 by _mm256_madd_epi16 (exact: |a b| <= 2^14 per product).
//
// Compiled with -mavx2 -mfma (CMakeLists.txt), called only when the CPU has
// both (runtime/kernel-config.cc). Intrinsics and internal-linkage code only
// (see the note in kernels.h); the scratch buffer comes from
// kernels/workspace.cc, compiled without ISA flags.
//
//   n == 1 (batch-1 layer, memory bound on A: 1 byte per weight): 4 rows at
//     a time share each 16-element load of b; per 16 k: one sign-extending
//     load of A, one madd, one add per row.
//   n > 1: B is packed once per call into 16-column panels of int16 k-pairs
//     (panel, k/2, 16 columns, 2); A is packed per block of kMC rows into
//     int16 rows, so one 32-bit broadcast loads an (A[i,p], A[i,p+1]) pair.
//     A 4 x 16 micro-tile keeps 8 int32 accumulators: per k pair, 2 loads of
//     B and 4 broadcasts of A feed 8 madds.
#include <immintrin.h>

#include "kernels/kernels.h"

namespace {

constexpr std::size_t kMR = 4;
constexpr std::size_t kNR = 16;
constexpr std::size_t kMC = 64;  // rows of A per packed block (k=576: 72 KiB, L2)

std::int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

__m256i load16_s8_as_s16(const std::int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

float output(const float* bias, std::size_t i, float scale, std::int32_t acc) {
  return (bias != nullptr ? bias[i] : 0.0f) + scale * static_cast<float>(acc);
}

// n == 1, b contiguous (k int8).
void gemv(std::size_t m_begin, std::size_t m_end, std::size_t k, const std::int8_t* a, std::size_t lda,
          const float* a_scale, const std::int8_t* b, float b_scale, const float* bias, float* y, std::size_t ldy) {
  std::size_t i = m_begin;
  for (; i + 4 <= m_end; i += 4) {
    const std::int8_t* a0 = a + i * lda;
    const std::int8_t* a1 = a0 + lda;
    const std::int8_t* a2 = a1 + lda;
    const std::int8_t* a3 = a2 + lda;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    std::size_t p = 0;
    for (; p + 16 <= k; p += 16) {
      const __m256i bv = load16_s8_as_s16(b + p);
      s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(load16_s8_as_s16(a0 + p), bv));
      s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(load16_s8_as_s16(a1 + p), bv));
      s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(load16_s8_as_s16(a2 + p), bv));
      s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(load16_s8_as_s16(a3 + p), bv));
    }
    std::int32_t t0 = hsum(s0), t1 = hsum(s1), t2 = hsum(s2), t3 = hsum(s3);
    for (; p < k; ++p) {
      const std::int32_t bp = b[p];
      t0 += a0[p] * bp;
      t1 += a1[p] * bp;
      t2 += a2[p] * bp;
      t3 += a3[p] * bp;
    }
    y[(i + 0) * ldy] = output(bias, i + 0, a_scale[i + 0] * b_scale, t0);
    y[(i + 1) * ldy] = output(bias, i + 1, a_scale[i + 1] * b_scale, t1);
    y[(i + 2) * ldy] = output(bias, i + 2, a_scale[i + 2] * b_scale, t2);
    y[(i + 3) * ldy] = output(bias, i + 3, a_scale[i + 3] * b_scale, t3);
  }
  for (; i < m_end; ++i) {
    const std::int8_t* ai = a + i * lda;
    __m256i s0 = _mm256_setzero_si256();
    std::size_t p = 0;
    for (; p + 16 <= k; p += 16) {
      s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(load16_s8_as_s16(ai + p), load16_s8_as_s16(b + p)));
    }
    std::int32_t t0 = hsum(s0);
    for (; p < k; ++p) t0 += ai[p] * std::int32_t{b[p]};
    y[i * ldy] = output(bias, i, a_scale[i] * b_scale, t0);
  }
}

// B (k x n, row stride ldb) -> panels of 16 columns: element (p, j) of panel
// j / 16 at out[((j / 16) * kq + p / 2) * 32 + (j % 16) * 2 + p % 2]; rows past
// k and columns past n are zero.
void pack_b(std::size_t k, std::size_t n, const std::int8_t* b, std::size_t ldb, std::int16_t* out) {
  const std::size_t kq = (k + 1) / 2;
  const std::size_t panels = (n + kNR - 1) / kNR;
  for (std::size_t q = 0; q < kq; ++q) {
    const std::int8_t* r0 = b + 2 * q * ldb;
    const bool has_r1 = 2 * q + 1 < k;
    const std::int8_t* r1 = has_r1 ? r0 + ldb : r0;
    for (std::size_t panel = 0; panel < panels; ++panel) {
      std::int16_t* dst = out + (panel * kq + q) * 2 * kNR;
      const std::size_t j0 = panel * kNR;
      if (j0 + kNR <= n) {
        const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + j0));
        __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + j0));
        if (!has_r1) v1 = _mm_setzero_si128();
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(v0, v1)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 16), _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(v0, v1)));
      } else {
        for (std::size_t t = 0; t < kNR; ++t) {
          const bool in = j0 + t < n;
          dst[2 * t] = in ? r0[j0 + t] : 0;
          dst[2 * t + 1] = in && has_r1 ? r1[j0 + t] : 0;
        }
      }
    }
  }
}

// A rows -> int16 rows of kpad (even) elements, zero past k.
void pack_a(std::size_t rows, std::size_t k, std::size_t kpad, const std::int8_t* a, std::size_t lda,
            std::int16_t* out) {
  for (std::size_t r = 0; r < rows; ++r) {
    const std::int8_t* src = a + r * lda;
    std::int16_t* dst = out + r * kpad;
    std::size_t p = 0;
    for (; p + 16 <= k; p += 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + p), load16_s8_as_s16(src + p));
    }
    for (; p < k; ++p) dst[p] = src[p];
    for (; p < kpad; ++p) dst[p] = 0;
  }
}

// acc rows 0..3 x 16 columns = sum over kq pairs. a_rows[r] are packed int16
// rows (pairs read as one 32-bit broadcast), b a packed panel.
void ukernel_4x16(std::size_t kq, const std::int16_t* const* a_rows, const std::int16_t* b, __m256i (&acc)[kMR][2]) {
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00;
  __m256i c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const float* a0 = reinterpret_cast<const float*>(a_rows[0]);
  const float* a1 = reinterpret_cast<const float*>(a_rows[1]);
  const float* a2 = reinterpret_cast<const float*>(a_rows[2]);
  const float* a3 = reinterpret_cast<const float*>(a_rows[3]);
  for (std::size_t q = 0; q < kq; ++q) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
    b += 2 * kNR;
    __m256i av;
    av = _mm256_castps_si256(_mm256_broadcast_ss(a0 + q));
    c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(av, b0));
    c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(av, b1));
    av = _mm256_castps_si256(_mm256_broadcast_ss(a1 + q));
    c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(av, b0));
    c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(av, b1));
    av = _mm256_castps_si256(_mm256_broadcast_ss(a2 + q));
    c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(av, b0));
    c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(av, b1));
    av = _mm256_castps_si256(_mm256_broadcast_ss(a3 + q));
    c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(av, b0));
    c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(av, b1));
  }
  // pack_b put columns 0..7 in b0 and 8..15 in b1, in order.
  acc[0][0] = c00;
  acc[0][1] = c01;
  acc[1][0] = c10;
  acc[1][1] = c11;
  acc[2][0] = c20;
  acc[2][1] = c21;
  acc[3][0] = c30;
  acc[3][1] = c31;
}

void gemm(std::size_t m_begin, std::size_t m_end, std::size_t n, std::size_t k, const std::int8_t* a, std::size_t lda,
          const float* a_scale, const std::int8_t* b, std::size_t ldb, float b_scale, const float* bias, float* y,
          std::size_t ldy) {
  const std::size_t kq = (k + 1) / 2;
  const std::size_t kpad = 2 * kq;
  const std::size_t panels = (n + kNR - 1) / kNR;
  const std::size_t b_elems = panels * kq * 2 * kNR;
  const std::size_t rows = m_end - m_begin;
  const std::size_t mc_max = rows < kMC ? rows : kMC;
  // 64-byte aligned parts of one per-thread buffer: packed B, then packed A.
  const std::size_t b_bytes = (b_elems * sizeof(std::int16_t) + 63) / 64 * 64;
  auto* work = static_cast<unsigned char*>(pakd::kernel_workspace(b_bytes + mc_max * kpad * sizeof(std::int16_t) + 64));
  auto* b_pack = reinterpret_cast<std::int16_t*>(work);
  auto* a_pack = reinterpret_cast<std::int16_t*>(work + b_bytes);
  pack_b(k, n, b, ldb, b_pack);

  __m256i acc[kMR][2];
  alignas(32) float tmp[kNR];
  for (std::size_t ic = m_begin; ic < m_end; ic += kMC) {
    const std::size_t mc = m_end - ic < kMC ? m_end - ic : kMC;
    pack_a(mc, k, kpad, a + ic * lda, lda, a_pack);
    for (std::size_t panel = 0; panel < panels; ++panel) {
      const std::int16_t* bp = b_pack + panel * kq * 2 * kNR;
      const std::size_t c0 = panel * kNR;
      const std::size_t cols = n - c0 < kNR ? n - c0 : kNR;
      for (std::size_t ir = 0; ir < mc; ir += kMR) {
        const std::size_t mr = mc - ir < kMR ? mc - ir : kMR;
        const std::int16_t* a_rows[kMR];
        for (std::size_t r = 0; r < kMR; ++r) {  // rows past mc repeat a valid row
          a_rows[r] = a_pack + (ir + (r < mr ? r : 0)) * kpad;
        }
        ukernel_4x16(kq, a_rows, bp, acc);
        for (std::size_t r = 0; r < mr; ++r) {
          const std::size_t i = ic + ir + r;
          const __m256 scale = _mm256_set1_ps(a_scale[i] * b_scale);
          const __m256 bv = _mm256_set1_ps(bias != nullptr ? bias[i] : 0.0f);
          const __m256 lo = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(acc[r][0]), bv);
          const __m256 hi = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(acc[r][1]), bv);
          float* yr = y + i * ldy + c0;
          if (cols == kNR) {
            _mm256_storeu_ps(yr, lo);
            _mm256_storeu_ps(yr + 8, hi);
          } else {
            _mm256_store_ps(tmp, lo);
            _mm256_store_ps(tmp + 8, hi);
            for (std::size_t t = 0; t < cols; ++t) yr[t] = tmp[t];
          }
        }
      }
    }
  }
}

}  // namespace

void pakd_qs8_gemm_ukernel_4x16c2__avx2(std::size_t m_begin, std::size_t m_end, std::size_t n, std::size_t k,
                                        const std::int8_t* a, std::size_t lda, const float* a_scale,
                                        const std::int8_t* b, std::size_t ldb, float b_scale, const float* bias,
                                        float* y, std::size_t ldy) {
  if (m_begin >= m_end || n == 0) return;
  if (n == 1) {
    if (ldb != 1) {  // gather the column into a contiguous vector
      auto* col = static_cast<std::int8_t*>(pakd::kernel_workspace(k));
      for (std::size_t p = 0; p < k; ++p) col[p] = b[p * ldb];
      b = col;
    }
    gemv(m_begin, m_end, k, a, lda, a_scale, b, b_scale, bias, y, ldy);
    return;
  }
  gemm(m_begin, m_end, n, k, a, lda, a_scale, b, ldb, b_scale, bias, y, ldy);
}
