// Sextant's hot numeric kernels, in C so that each variant can carry its own
// target attribute (AVX2/F16C/FMA, AVX-512) while the binary as a whole stays
// runnable on any x86-64 CPU. Swift picks one variant per process at startup.
#ifndef SEXTANT_KERNELS_H
#define SEXTANT_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU features --------------------------------------------------------

enum {
    SX_CPU_AVX2_FMA_F16C = 1u << 0,
    SX_CPU_AVX512F = 1u << 1,
    SX_CPU_SSE42 = 1u << 2,
};

/// Bitmask of SX_CPU_* flags supported by this CPU (and OS).
uint32_t sx_cpu_features(void);

// ---- bf16 matrix products (the embedder's linear layers) -------------------
// c[m×n] = a[m×k] · wᵀ + bias, w (n×k, torch's layout) packed once by
// sx_bf16_pack_weights. Needs n % SX_BF16_COLUMNS == 0 and k even; scratch
// holds m·k/2 uint32. Call sx_bf16_linear only when sx_bf16_supported().

enum { SX_BF16_COLUMNS = 32 };

bool sx_bf16_supported(void);
size_t sx_bf16_packed_count(int n, int k);
void sx_bf16_pack_weights(const float *w, int n, int k, uint32_t *packed);
void sx_bf16_linear(const float *a, int m, int k, const uint32_t *packed, int n, const float *bias, float *c, uint32_t *scratch);

/// In place: v ← 0.5·v·(1 + erf(v/√2)), BERT's exact GELU (AVX-512 where available).
void sx_gelu(float *values, size_t count);

// ---- Distance kernels ----------------------------------------------------
// "f16" vectors are IEEE-754 binary16 bit patterns. Queries are always f32:
// the query is converted once, stored vectors are converted in registers.

typedef float (*sx_f16_kernel)(const float *query, const uint16_t *vector, size_t dimensions);
typedef float (*sx_f32_kernel)(const float *a, const float *b, size_t dimensions);
/// Distances from one query to `count` stored vectors addressed by slot number
/// in a strided f16 buffer. `metric` 0 = 1 - dot, 1 = squared L2.
typedef void (*sx_f16_batch_kernel)(const float *query, const uint16_t *base, size_t strideHalves,
                                    const uint32_t *slots, size_t count, size_t dimensions,
                                    uint32_t metric, float *out);

float sx_dot_f16_scalar(const float *query, const uint16_t *vector, size_t dimensions);
float sx_l2sq_f16_scalar(const float *query, const uint16_t *vector, size_t dimensions);
float sx_dot_f32_scalar(const float *a, const float *b, size_t dimensions);
float sx_l2sq_f32_scalar(const float *a, const float *b, size_t dimensions);
void sx_batch_f16_scalar(const float *query, const uint16_t *base, size_t strideHalves,
                         const uint32_t *slots, size_t count, size_t dimensions,
                         uint32_t metric, float *out);

float sx_dot_f16_avx2(const float *query, const uint16_t *vector, size_t dimensions);
float sx_l2sq_f16_avx2(const float *query, const uint16_t *vector, size_t dimensions);
float sx_dot_f32_avx2(const float *a, const float *b, size_t dimensions);
float sx_l2sq_f32_avx2(const float *a, const float *b, size_t dimensions);
void sx_batch_f16_avx2(const float *query, const uint16_t *base, size_t strideHalves,
                       const uint32_t *slots, size_t count, size_t dimensions,
                       uint32_t metric, float *out);

float sx_dot_f16_avx512(const float *query, const uint16_t *vector, size_t dimensions);
float sx_l2sq_f16_avx512(const float *query, const uint16_t *vector, size_t dimensions);
float sx_dot_f32_avx512(const float *a, const float *b, size_t dimensions);
float sx_l2sq_f32_avx512(const float *a, const float *b, size_t dimensions);
void sx_batch_f16_avx512(const float *query, const uint16_t *base, size_t strideHalves,
                         const uint32_t *slots, size_t count, size_t dimensions,
                         uint32_t metric, float *out);

// ---- Sign codes (the unindexed tail's prefilter) ---------------------------
// Bit i (word i/64, bit i%64) is set when component i is negative; unused bits
// of the last word are zero. A code is (dimensions + 63) / 64 words.

void sx_sign_code_f16(const uint16_t *vector, size_t dimensions, uint64_t *code);
void sx_sign_code_f32(const float *vector, size_t dimensions, uint64_t *code);
/// Positions (0..<count) of the `keep` smallest distances (each clamped to
/// `maximum`, at most 65,535), ties broken by position, into `chosen`; returns
/// min(keep, count). A histogram pass and a collect pass, no sort.
size_t sx_select_smallest_u16(const uint16_t *distances, size_t count, size_t keep, size_t maximum,
                              uint32_t *chosen);
/// Codes in blocks of eight entries, word-major inside a block (block b holds
/// entries 8b..8b+7; word w of the eight is eight consecutive uint64), so that
/// AVX-512 VPOPCNTQ counts eight codes per load. `words` ≤ 64.
void sx_block_code_store(uint64_t *blocks, size_t words, size_t entry, const uint64_t *code);
/// out[i] = Hamming distance of entry first + i to `query`, for i < count.
void sx_block_code_distances(const uint64_t *blocks, size_t words, const uint64_t *query, size_t first, size_t count,
                             uint16_t *out);
/// The same with one kernel variant (0 portable, 1 POPCNT, 2 AVX-512
/// VPOPCNTQ), for tests of every path; -1 if this CPU lacks it.
int sx_block_code_distances_variant(int variant, const uint64_t *blocks, size_t words, const uint64_t *query,
                                    size_t first, size_t count, uint16_t *out);
/// Entries of [first, first + count) near `query`: at least min(keep, count) of
/// them, among them every entry nearer than the farthest one returned (a sampled
/// threshold, about 1.5 × keep entries; exact selection when the sample misjudges).
/// `chosen` holds `capacity` (≥ keep + 8) entry numbers, `scratch` `count` distances.
size_t sx_block_code_nearest(const uint64_t *blocks, size_t words, const uint64_t *query, size_t first, size_t count,
                             size_t keep, uint32_t *chosen, size_t capacity, uint16_t *scratch);


// ---- Compact codes (the index's traversal form under quantization) ----------
// int8: one byte per dimension, x_i ≈ low_i + step_i · c_i; a code is
// sx_sq8_code_bytes(dimensions, l2) bytes: the bytes, then (under l2) the
// vector's squared length as a float at sx_sq8_norm_offset. bits1: sign codes,
// (dimensions + 63) / 64 words.

enum { SX_SQ8_MAXIMUM_PADDED = 4096 };

/// A query prepared for int8 codes: signed bytes (zero-padded to a multiple of
/// 64), their scale, the constant term, and what L2 needs.
typedef struct {
    int8_t values[SX_SQ8_MAXIMUM_PADDED];
    float scale;
    float bias;
    float queryNormSquared;
    uint32_t metric;      // 0: 1 - dot, 1: squared L2
    uint32_t dimensions;
} sx_sq8_query;

static inline size_t sx_sq8_norm_offset(size_t dimensions) { return (dimensions + 15) / 16 * 16; }
static inline size_t sx_sq8_code_bytes(size_t dimensions, bool l2) {
    return sx_sq8_norm_offset(dimensions) + (l2 ? 16 : 0);
}

void sx_sq8_prepare(const float *query, const float *low, const float *step, size_t dimensions, uint32_t metric,
                    sx_sq8_query *out);
void sx_sq8_encode(const float *vector, const float *low, const float *step, size_t dimensions, uint8_t *code);
void sx_sq8_decode(const uint8_t *code, const float *low, const float *step, size_t dimensions, float *vector);
/// A stored code prepared as the query (neighbour selection compares stored
/// nodes): decode then prepare, or both in two AVX-512 passes.
typedef void (*sx_sq8_prepare_code_kernel)(const uint8_t *code, const float *low, const float *step, size_t dimensions,
                                           uint32_t metric, float *scratch, sx_sq8_query *out);
void sx_sq8_prepare_code_scalar(const uint8_t *code, const float *low, const float *step, size_t dimensions,
                                uint32_t metric, float *scratch, sx_sq8_query *out);
void sx_sq8_prepare_code_avx512(const uint8_t *code, const float *low, const float *step, size_t dimensions,
                                uint32_t metric, float *scratch, sx_sq8_query *out);

typedef void (*sx_sq8_batch_kernel)(const sx_sq8_query *query, const uint8_t *codes, size_t strideBytes,
                                    const uint32_t *slots, size_t count, float *out);
int32_t sx_sq8_dot_scalar(const int8_t *query, const uint8_t *code, size_t dimensions);
int32_t sx_sq8_dot_avx2(const int8_t *query, const uint8_t *code, size_t dimensions);
int32_t sx_sq8_dot_vnni(const int8_t *query, const uint8_t *code, size_t dimensions);
void sx_batch_sq8_scalar(const sx_sq8_query *query, const uint8_t *codes, size_t strideBytes, const uint32_t *slots,
                         size_t count, float *out);
void sx_batch_sq8_avx2(const sx_sq8_query *query, const uint8_t *codes, size_t strideBytes, const uint32_t *slots,
                       size_t count, float *out);
void sx_batch_sq8_vnni(const sx_sq8_query *query, const uint8_t *codes, size_t strideBytes, const uint32_t *slots,
                       size_t count, float *out);

typedef void (*sx_hamming_batch_kernel)(const uint64_t *query, const uint64_t *codes, size_t strideWords,
                                        const uint32_t *slots, size_t count, size_t words, float *out);
uint32_t sx_hamming_scalar(const uint64_t *a, const uint64_t *b, size_t words);
void sx_batch_hamming_scalar(const uint64_t *query, const uint64_t *codes, size_t strideWords, const uint32_t *slots,
                             size_t count, size_t words, float *out);
void sx_batch_hamming_popcnt(const uint64_t *query, const uint64_t *codes, size_t strideWords, const uint32_t *slots,
                             size_t count, size_t words, float *out);
void sx_batch_hamming_vpopcnt(const uint64_t *query, const uint64_t *codes, size_t strideWords, const uint32_t *slots,
                              size_t count, size_t words, float *out);

bool sx_cpu_has_avx512_vnni(void);
bool sx_cpu_has_avx512_vpopcntdq(void);
bool sx_cpu_has_popcnt(void);

// ---- Conversions -----------------------------------------------------------

uint16_t sx_f32_to_f16_bits(float value);
float sx_f16_bits_to_f32(uint16_t bits);
void sx_f32_to_f16_array(const float *source, uint16_t *destination, size_t count);
void sx_f16_to_f32_array(const uint16_t *source, float *destination, size_t count);

// ---- CRC32C (Castagnoli) ----------------------------------------------------

/// Continues `crc` (pass 0 to start) over `data`. Uses SSE4.2 when present.
uint32_t sx_crc32c(uint32_t crc, const void *data, size_t length);
uint32_t sx_crc32c_portable(uint32_t crc, const void *data, size_t length);

// ---- Memory ordering on raw (mmap'd) memory --------------------------------

static inline uint32_t sx_load_acquire_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void sx_store_release_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t sx_load_acquire_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void sx_store_release_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint8_t sx_load_acquire_u8(const uint8_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void sx_store_release_u8(uint8_t *p, uint8_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint8_t sx_fetch_or_u8(uint8_t *p, uint8_t v) { return __atomic_fetch_or(p, v, __ATOMIC_ACQ_REL); }
static inline bool sx_cas_u8(uint8_t *p, uint8_t expected, uint8_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline uint64_t sx_fetch_add_u64(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); }
static inline uint32_t sx_fetch_add_u32(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); }
static inline bool sx_cas_u64(uint64_t *p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline void sx_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
static inline void sx_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

// ---- Neighbour lists as seqlocks --------------------------------------------
// A list block is [version][count][ids × capacity] (uint32 each). An odd
// version means a writer is inside. Readers copy the list and retry if the
// version moved, so they never act on a half-written list, and never block a
// writer. Writers compute the new list outside the lock and publish it with a
// compare-and-swap on the version they read (optimistic concurrency), so the
// lock is held only for the few stores of the copy.

/// Copies a consistent list into `out`; returns its count and the version read.
static inline uint32_t sx_list_read(const uint32_t *block, uint32_t capacity, uint32_t *out,
                                    uint32_t *versionOut) {
    for (;;) {
        uint32_t v1 = __atomic_load_n(&block[0], __ATOMIC_ACQUIRE);
        if (v1 & 1u) { sx_cpu_relax(); continue; }
        uint32_t n = __atomic_load_n(&block[1], __ATOMIC_RELAXED);
        if (n > capacity) n = capacity;
        for (uint32_t i = 0; i < n; i++) out[i] = __atomic_load_n(&block[2 + i], __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint32_t v2 = __atomic_load_n(&block[0], __ATOMIC_RELAXED);
        if (v1 == v2) { if (versionOut) *versionOut = v1; return n; }
    }
}

/// Publishes `ids` if the list still has `expectedVersion`; false if a concurrent
/// writer got there first (the caller re-reads and recomputes).
static inline bool sx_list_publish(uint32_t *block, uint32_t expectedVersion, const uint32_t *ids,
                                   uint32_t count) {
    uint32_t expected = expectedVersion;
    if (expected & 1u) return false;
    if (!__atomic_compare_exchange_n(&block[0], &expected, expectedVersion + 1u, false,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        return false;
    }
    for (uint32_t i = 0; i < count; i++) __atomic_store_n(&block[2 + i], ids[i], __ATOMIC_RELAXED);
    __atomic_store_n(&block[1], count, __ATOMIC_RELAXED);
    __atomic_store_n(&block[0], expectedVersion + 2u, __ATOMIC_RELEASE);
    return true;
}

#ifdef __cplusplus
}
#endif

#endif
