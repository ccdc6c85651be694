// bf16 matrix products for the embedder's linear layers. Weights are packed
// once into pairs of bf16 along the input dimension, the layout AVX512-BF16's
// vdpbf16ps consumes: one instruction multiplies 32 pairs and accumulates 16
// f32 sums, twice the work of an f32 FMA. Activations are rounded to bf16 per
// call (round to nearest even); every sum stays in f32.
#include "sextant_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

bool sx_bf16_supported(void) {
#if defined(__x86_64__)
    unsigned int a = 0, b = 0, c = 0, d = 0;
    if (!(sx_cpu_features() & SX_CPU_AVX512F)) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    bool bw_vl = (b & (1u << 30)) && (b & (1u << 31));
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return bw_vl && (a & (1u << 5));  // CPUID.(7,1):EAX[5] = AVX512_BF16
#else
    return false;
#endif
}

static inline uint16_t bf16_round(float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    if ((bits & 0x7F800000u) == 0x7F800000u) return (uint16_t)(bits >> 16);  // inf, nan
    bits += 0x7FFFu + ((bits >> 16) & 1u);  // nearest, ties to even
    return (uint16_t)(bits >> 16);
}

size_t sx_bf16_packed_count(int n, int k) { return (size_t)n * (size_t)(k / 2); }

void sx_bf16_pack_weights(const float *w, int n, int k, uint32_t *packed) {
    // Blocks of 32 outputs; inside a block, for each input pair, 32 lanes.
    const int pairs = k / 2;
    for (int block = 0; block < n / SX_BF16_COLUMNS; block++) {
        uint32_t *out = packed + (size_t)block * pairs * SX_BF16_COLUMNS;
        for (int pair = 0; pair < pairs; pair++) {
            for (int lane = 0; lane < SX_BF16_COLUMNS; lane++) {
                const float *row = w + (size_t)(block * SX_BF16_COLUMNS + lane) * k;
                uint32_t lo = bf16_round(row[2 * pair]), hi = bf16_round(row[2 * pair + 1]);
                out[(size_t)pair * SX_BF16_COLUMNS + lane] = lo | (hi << 16);
            }
        }
    }
}

#if defined(__x86_64__)
#define SX_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

SX_BF16_TARGET static void round_rows(const float *a, int m, int k, uint32_t *out) {
    const size_t total = (size_t)m * k;
    size_t i = 0;
    for (; i + 32 <= total; i += 32) {
        __m512 lo = _mm512_loadu_ps(a + i), hi = _mm512_loadu_ps(a + i + 16);
        _mm512_storeu_si512((void *)(out + i / 2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    for (; i < total; i += 2) out[i / 2] = (uint32_t)bf16_round(a[i]) | ((uint32_t)bf16_round(a[i + 1]) << 16);
}

#define SX_MR 8

SX_BF16_TARGET void sx_bf16_linear(const float *a, int m, int k, const uint32_t *packed, int n, const float *bias, float *c,
                                   uint32_t *scratch) {
    const int pairs = k / 2;
    round_rows(a, m, k, scratch);
    for (int block = 0; block < n / SX_BF16_COLUMNS; block++) {
        const uint32_t *wb = packed + (size_t)block * pairs * SX_BF16_COLUMNS;
        const __m512 bias0 = _mm512_loadu_ps(bias + block * SX_BF16_COLUMNS);
        const __m512 bias1 = _mm512_loadu_ps(bias + block * SX_BF16_COLUMNS + 16);
        int m0 = 0;
        for (; m0 + SX_MR <= m; m0 += SX_MR) {
            __m512 acc0[SX_MR], acc1[SX_MR];
            for (int r = 0; r < SX_MR; r++) { acc0[r] = bias0; acc1[r] = bias1; }
            const uint32_t *ar = scratch + (size_t)m0 * pairs;
            for (int pair = 0; pair < pairs; pair++) {
                const __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(wb + (size_t)pair * SX_BF16_COLUMNS));
                const __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(wb + (size_t)pair * SX_BF16_COLUMNS + 16));
                for (int r = 0; r < SX_MR; r++) {
                    const __m512bh x = (__m512bh)_mm512_set1_epi32((int)ar[(size_t)r * pairs + pair]);
                    acc0[r] = _mm512_dpbf16_ps(acc0[r], x, b0);
                    acc1[r] = _mm512_dpbf16_ps(acc1[r], x, b1);
                }
            }
            for (int r = 0; r < SX_MR; r++) {
                float *row = c + (size_t)(m0 + r) * n + block * SX_BF16_COLUMNS;
                _mm512_storeu_ps(row, acc0[r]);
                _mm512_storeu_ps(row + 16, acc1[r]);
            }
        }
        for (; m0 < m; m0++) {  // the last rows, one at a time
            __m512 acc0 = bias0, acc1 = bias1;
            const uint32_t *ar = scratch + (size_t)m0 * pairs;
            for (int pair = 0; pair < pairs; pair++) {
                const __m512bh x = (__m512bh)_mm512_set1_epi32((int)ar[pair]);
                acc0 = _mm512_dpbf16_ps(acc0, x, (__m512bh)_mm512_loadu_si512((const void *)(wb + (size_t)pair * SX_BF16_COLUMNS)));
                acc1 = _mm512_dpbf16_ps(acc1, x, (__m512bh)_mm512_loadu_si512((const void *)(wb + (size_t)pair * SX_BF16_COLUMNS + 16)));
            }
            float *row = c + (size_t)m0 * n + block * SX_BF16_COLUMNS;
            _mm512_storeu_ps(row, acc0);
            _mm512_storeu_ps(row + 16, acc1);
        }
    }
}
#else
void sx_bf16_linear(const float *a, int m, int k, const uint32_t *packed, int n, const float *bias, float *c, uint32_t *scratch) {
    (void)a; (void)m; (void)k; (void)packed; (void)n; (void)bias; (void)c; (void)scratch;
}
#endif

// ---- GELU (erf form), vectorised -------------------------------------------
// 0.5·v·(1 + erf(v/√2)) with erf from Abramowitz & Stegun 7.1.26 (absolute
// error ≤ 1.5e-7) and exp by range reduction and a degree-6 polynomial: within
// a few f32 ulps of erff, at a fraction of its cost.
#include <math.h>

static void gelu_scalar(float *values, size_t count) {
    for (size_t i = 0; i < count; i++) values[i] = 0.5f * values[i] * (1.0f + erff(values[i] * 0.70710678118654752f));
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f"))) static void gelu_avx512(float *values, size_t count) {
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), sqrtHalf = _mm512_set1_ps(0.70710678118654752f);
    const __m512 p = _mm512_set1_ps(0.3275911f);
    const __m512 a1 = _mm512_set1_ps(0.254829592f), a2 = _mm512_set1_ps(-0.284496736f), a3 = _mm512_set1_ps(1.421413741f);
    const __m512 a4 = _mm512_set1_ps(-1.453152027f), a5 = _mm512_set1_ps(1.061405429f);
    const __m512i signMask = _mm512_set1_epi32((int)0x80000000u);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m512 v = _mm512_loadu_ps(values + i);
        const __m512 z = _mm512_mul_ps(v, sqrtHalf);
        const __m512i sign = _mm512_and_si512(_mm512_castps_si512(z), signMask);
        const __m512 a = _mm512_abs_ps(z);
        const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(p, a, one));
        __m512 poly = _mm512_fmadd_ps(a5, t, a4);
        poly = _mm512_fmadd_ps(poly, t, a3);
        poly = _mm512_fmadd_ps(poly, t, a2);
        poly = _mm512_fmadd_ps(poly, t, a1);
        poly = _mm512_mul_ps(poly, t);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a)));
        const __m512 erfAbs = _mm512_fnmadd_ps(poly, e, one);
        const __m512 erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erfAbs), sign));
        _mm512_storeu_ps(values + i, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf)));
    }
    gelu_scalar(values + i, count - i);
}
#endif

void sx_gelu(float *values, size_t count) {
#if defined(__x86_64__)
    if (sx_cpu_features() & SX_CPU_AVX512F) { gelu_avx512(values, count); return; }
#endif
    gelu_scalar(values, count);
}
