// Distances from a float32 query to compact codes, the index's traversal form
// for collections stored with quantization:
//
//   int8 (scalar quantization): a vector component x_i is stored as one byte
//   c_i with x_i ≈ low_i + step_i · c_i. The query is prepared once per search
//   (sx_sq8_prepare): w_i = q_i · step_i is rounded to a signed byte s_i at a
//   per-query scale, so q·x ≈ bias + scale · Σ s_i c_i, an integer dot product
//   of unsigned and signed bytes: AVX-512 VNNI's vpdpbusd does 64 of them per
//   instruction. Squared L2 adds the stored vector's squared length, kept as a
//   float after its code.
//
//   bits1 (sign codes, one bit per dimension): the Hamming distance, VPOPCNTQ
//   where present.
//
// Every kernel has a portable scalar twin, the reference the tests compare.
#include "sextant_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// ---- Query preparation --------------------------------------------------------

void sx_sq8_prepare(const float *query, const float *low, const float *step, size_t dimensions, uint32_t metric,
                    sx_sq8_query *out) {
    float largest = 0;
    double bias = 0, norm = 0;
    for (size_t i = 0; i < dimensions; i++) {
        float w = query[i] * step[i];
        float magnitude = fabsf(w);
        if (magnitude > largest) largest = magnitude;
        bias += (double)query[i] * (double)low[i];
        norm += (double)query[i] * (double)query[i];
    }
    float scale = largest > 0 ? largest / 127.0f : 1.0f;
    float inverse = 1.0f / scale;
    size_t padded = (dimensions + 63) / 64 * 64;
    for (size_t i = 0; i < padded; i++) {
        if (i < dimensions) {
            float scaled = query[i] * step[i] * inverse;
            long rounded = lrintf(scaled);
            out->values[i] = (int8_t)(rounded > 127 ? 127 : (rounded < -127 ? -127 : rounded));
        } else {
            out->values[i] = 0;
        }
    }
    out->scale = scale;
    out->bias = (float)bias;
    out->queryNormSquared = (float)norm;
    out->metric = metric;
    out->dimensions = (uint32_t)dimensions;
}

/// The portable form of preparing a stored code as the query: decode, then
/// prepare. `scratch` holds `dimensions` floats.
void sx_sq8_prepare_code_scalar(const uint8_t *code, const float *low, const float *step, size_t dimensions,
                                uint32_t metric, float *scratch, sx_sq8_query *out) {
    sx_sq8_decode(code, low, step, dimensions, scratch);
    sx_sq8_prepare(scratch, low, step, dimensions, metric, out);
}

void sx_sq8_encode(const float *vector, const float *low, const float *step, size_t dimensions, uint8_t *code) {
    for (size_t i = 0; i < dimensions; i++) {
        float level = step[i] > 0 ? (vector[i] - low[i]) / step[i] : 0;
        long rounded = lrintf(level);
        code[i] = (uint8_t)(rounded < 0 ? 0 : (rounded > 255 ? 255 : rounded));
    }
}

void sx_sq8_decode(const uint8_t *code, const float *low, const float *step, size_t dimensions, float *vector) {
    for (size_t i = 0; i < dimensions; i++) vector[i] = low[i] + step[i] * (float)code[i];
}

static inline float sq8_finish(const sx_sq8_query *q, int32_t dot, const uint8_t *code) {
    float estimate = q->bias + q->scale * (float)dot;
    if (q->metric == 0) return 1.0f - estimate;
    float stored;
    memcpy(&stored, code + sx_sq8_norm_offset(q->dimensions), sizeof stored);
    return q->queryNormSquared - 2.0f * estimate + stored;
}

// ---- Portable -----------------------------------------------------------------------

int32_t sx_sq8_dot_scalar(const int8_t *query, const uint8_t *code, size_t dimensions) {
    int32_t sum = 0;
    for (size_t i = 0; i < dimensions; i++) sum += (int32_t)query[i] * (int32_t)code[i];
    return sum;
}

void sx_batch_sq8_scalar(const sx_sq8_query *q, const uint8_t *codes, size_t strideBytes, const uint32_t *slots,
                         size_t count, float *out) {
    for (size_t i = 0; i < count; i++) {
        const uint8_t *code = codes + (size_t)slots[i] * strideBytes;
        out[i] = sq8_finish(q, sx_sq8_dot_scalar(q->values, code, q->dimensions), code);
    }
}

uint32_t sx_hamming_scalar(const uint64_t *a, const uint64_t *b, size_t words) {
    uint32_t distance = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t x = a[w] ^ b[w];
        while (x) {
            x &= x - 1;
            distance++;
        }
    }
    return distance;
}

void sx_batch_hamming_scalar(const uint64_t *query, const uint64_t *codes, size_t strideWords, const uint32_t *slots,
                             size_t count, size_t words, float *out) {
    for (size_t i = 0; i < count; i++) out[i] = (float)sx_hamming_scalar(query, codes + (size_t)slots[i] * strideWords, words);
}

static inline void prefetch_code(const uint8_t *code, size_t bytes) {
    for (size_t offset = 0; offset < bytes; offset += 64) sx_prefetch(code + offset);
}

/// Codes to keep in flight: about 32 cache lines, at least 2 codes, at most 16.
static inline size_t code_prefetch_distance(size_t bytes) {
    size_t lines = (bytes + 63) / 64;
    size_t ahead = 32 / (lines ? lines : 1);
    return ahead < 2 ? 2 : (ahead > 16 ? 16 : ahead);
}

#if defined(__x86_64__)

// ---- AVX2: widen to 16 bits, vpmaddwd ----------------------------------------------
// (vpmaddubsw would saturate: 255 · 127 · 2 overflows a signed 16-bit pair sum.)

#define SX_CODES_AVX2 __attribute__((target("avx2,fma")))

SX_CODES_AVX2 int32_t sx_sq8_dot_avx2(const int8_t *query, const uint8_t *code, size_t dimensions) {
    __m256i sum = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= dimensions; i += 16) {
        __m256i c = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(code + i)));
        __m256i s = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(query + i)));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(c, s));
    }
    __m128i folded = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0x4E));
    folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0xB1));
    int32_t total = _mm_cvtsi128_si32(folded);
    for (; i < dimensions; i++) total += (int32_t)query[i] * (int32_t)code[i];
    return total;
}

SX_CODES_AVX2 void sx_batch_sq8_avx2(const sx_sq8_query *q, const uint8_t *codes, size_t strideBytes,
                                     const uint32_t *slots, size_t count, float *out) {
    size_t ahead = code_prefetch_distance(strideBytes);
    for (size_t j = 0; j < ahead && j < count; j++) prefetch_code(codes + (size_t)slots[j] * strideBytes, strideBytes);
    for (size_t i = 0; i < count; i++) {
        if (i + ahead < count) prefetch_code(codes + (size_t)slots[i + ahead] * strideBytes, strideBytes);
        const uint8_t *code = codes + (size_t)slots[i] * strideBytes;
        out[i] = sq8_finish(q, sx_sq8_dot_avx2(q->values, code, q->dimensions), code);
    }
}

// ---- AVX-512 VNNI: vpdpbusd, 64 byte pairs per instruction ---------------------------

#define SX_CODES_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

SX_CODES_VNNI int32_t sx_sq8_dot_vnni(const int8_t *query, const uint8_t *code, size_t dimensions) {
    __m512i sum = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= dimensions; i += 64) {
        sum = _mm512_dpbusd_epi32(sum, _mm512_loadu_si512(code + i), _mm512_loadu_si512(query + i));
    }
    if (i < dimensions) {
        size_t left = dimensions - i;  // 1...63
        __mmask64 mask = (__mmask64)((1ULL << left) - 1ULL);
        sum = _mm512_dpbusd_epi32(sum, _mm512_maskz_loadu_epi8(mask, code + i), _mm512_maskz_loadu_epi8(mask, query + i));
    }
    return _mm512_reduce_add_epi32(sum);
}

SX_CODES_VNNI void sx_batch_sq8_vnni(const sx_sq8_query *q, const uint8_t *codes, size_t strideBytes,
                                     const uint32_t *slots, size_t count, float *out) {
    // A walk's batch is one node's unvisited neighbours (a few dozen codes, each
    // a likely cache miss): ask for all of them at once, so their loads overlap.
    size_t ahead = count <= 48 ? count : code_prefetch_distance(strideBytes);
    for (size_t j = 0; j < ahead && j < count; j++) prefetch_code(codes + (size_t)slots[j] * strideBytes, strideBytes);
    for (size_t i = 0; i < count; i++) {
        if (i + ahead < count) prefetch_code(codes + (size_t)slots[i + ahead] * strideBytes, strideBytes);
        const uint8_t *code = codes + (size_t)slots[i] * strideBytes;
        out[i] = sq8_finish(q, sx_sq8_dot_vnni(q->values, code, q->dimensions), code);
    }
}

/// Prepares a stored code as the query in two vectorised passes (neighbour
/// selection does this hundreds of times per insert): the decoded value
/// x = low + step·c gives w = x·step = low·step + step²·c, an affine map of
/// the code; the first pass finds max |w| (and the bias Σ x·low, and Σ x² for
/// L2), the second scales, rounds and packs to signed bytes.
SX_CODES_VNNI void sx_sq8_prepare_code_avx512(const uint8_t *code, const float *low, const float *step, size_t dimensions,
                                              uint32_t metric, float *scratch, sx_sq8_query *out) {
    (void)scratch;
    __m512 largest = _mm512_setzero_ps();
    __m512 bias = _mm512_setzero_ps();
    __m512 norm = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dimensions; i += 16) {
        __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(code + i))));
        __m512 l = _mm512_loadu_ps(low + i);
        __m512 st = _mm512_loadu_ps(step + i);
        __m512 x = _mm512_fmadd_ps(st, c, l);
        __m512 w = _mm512_mul_ps(x, st);
        largest = _mm512_max_ps(largest, _mm512_abs_ps(w));
        bias = _mm512_fmadd_ps(x, l, bias);
        norm = _mm512_fmadd_ps(x, x, norm);
    }
    float maximum = _mm512_reduce_max_ps(largest);
    float biasSum = _mm512_reduce_add_ps(bias);
    float normSum = _mm512_reduce_add_ps(norm);
    for (size_t j = i; j < dimensions; j++) {
        float x = low[j] + step[j] * (float)code[j];
        float w = fabsf(x * step[j]);
        if (w > maximum) maximum = w;
        biasSum += x * low[j];
        normSum += x * x;
    }
    float scale = maximum > 0 ? maximum / 127.0f : 1.0f;
    __m512 inverse = _mm512_set1_ps(1.0f / scale);
    i = 0;
    for (; i + 16 <= dimensions; i += 16) {
        __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(code + i))));
        __m512 st = _mm512_loadu_ps(step + i);
        __m512 x = _mm512_fmadd_ps(st, c, _mm512_loadu_ps(low + i));
        __m512i rounded = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_mul_ps(x, st), inverse));  // round to nearest even
        _mm_storeu_si128((__m128i *)(out->values + i), _mm512_cvtsepi32_epi8(rounded));
    }
    for (; i < dimensions; i++) {
        float x = low[i] + step[i] * (float)code[i];
        long r = lrintf(x * step[i] / scale);
        out->values[i] = (int8_t)(r > 127 ? 127 : (r < -127 ? -127 : r));
    }
    size_t padded = (dimensions + 63) / 64 * 64;
    for (; i < padded; i++) out->values[i] = 0;
    out->scale = scale;
    out->bias = biasSum;
    out->queryNormSquared = normSum;
    out->metric = metric;
    out->dimensions = (uint32_t)dimensions;
}

// ---- Hamming: POPCNT, and AVX-512 VPOPCNTQ ---------------------------------------------

__attribute__((target("popcnt"))) void sx_batch_hamming_popcnt(const uint64_t *query, const uint64_t *codes,
                                                                size_t strideWords, const uint32_t *slots, size_t count,
                                                                size_t words, float *out) {
    for (size_t i = 0; i < count; i++) {
        const uint64_t *code = codes + (size_t)slots[i] * strideWords;
        uint32_t distance = 0;
        for (size_t w = 0; w < words; w++) distance += (uint32_t)__builtin_popcountll(query[w] ^ code[w]);
        out[i] = (float)distance;
    }
}

__attribute__((target("avx512f,avx512vpopcntdq"))) void sx_batch_hamming_vpopcnt(const uint64_t *query,
                                                                                 const uint64_t *codes, size_t strideWords,
                                                                                 const uint32_t *slots, size_t count,
                                                                                 size_t words, float *out) {
    for (size_t i = 0; i < count; i++) {
        const uint64_t *code = codes + (size_t)slots[i] * strideWords;
        __m512i sum = _mm512_setzero_si512();
        size_t w = 0;
        for (; w + 8 <= words; w += 8) {
            __m512i x = _mm512_xor_si512(_mm512_loadu_si512(query + w), _mm512_loadu_si512(code + w));
            sum = _mm512_add_epi64(sum, _mm512_popcnt_epi64(x));
        }
        if (w < words) {
            __mmask8 mask = (__mmask8)((1u << (words - w)) - 1u);
            __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi64(mask, query + w), _mm512_maskz_loadu_epi64(mask, code + w));
            sum = _mm512_add_epi64(sum, _mm512_popcnt_epi64(x));
        }
        out[i] = (float)_mm512_reduce_add_epi64(sum);
    }
}

bool sx_cpu_has_avx512_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

bool sx_cpu_has_avx512_vpopcntdq(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
}

bool sx_cpu_has_popcnt(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("popcnt");
}

#else  // not x86-64

void sx_sq8_prepare_code_avx512(const uint8_t *code, const float *low, const float *step, size_t dimensions, uint32_t metric,
                                float *scratch, sx_sq8_query *out) {
    sx_sq8_prepare_code_scalar(code, low, step, dimensions, metric, scratch, out);
}
int32_t sx_sq8_dot_avx2(const int8_t *q, const uint8_t *c, size_t n) { return sx_sq8_dot_scalar(q, c, n); }
int32_t sx_sq8_dot_vnni(const int8_t *q, const uint8_t *c, size_t n) { return sx_sq8_dot_scalar(q, c, n); }
void sx_batch_sq8_avx2(const sx_sq8_query *q, const uint8_t *c, size_t s, const uint32_t *sl, size_t n, float *o) {
    sx_batch_sq8_scalar(q, c, s, sl, n, o);
}
void sx_batch_sq8_vnni(const sx_sq8_query *q, const uint8_t *c, size_t s, const uint32_t *sl, size_t n, float *o) {
    sx_batch_sq8_scalar(q, c, s, sl, n, o);
}
void sx_batch_hamming_popcnt(const uint64_t *q, const uint64_t *c, size_t s, const uint32_t *sl, size_t n, size_t w,
                             float *o) { sx_batch_hamming_scalar(q, c, s, sl, n, w, o); }
void sx_batch_hamming_vpopcnt(const uint64_t *q, const uint64_t *c, size_t s, const uint32_t *sl, size_t n, size_t w,
                              float *o) { sx_batch_hamming_scalar(q, c, s, sl, n, w, o); }
bool sx_cpu_has_avx512_vnni(void) { return false; }
bool sx_cpu_has_avx512_vpopcntdq(void) { return false; }
bool sx_cpu_has_popcnt(void) { return false; }

#endif
