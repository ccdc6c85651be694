// Sign codes: one bit per dimension, set where the component is negative.
// The unindexed tail keeps one per record so a query can rank thousands of
// not-yet-linked records by Hamming distance (48 bytes each at 384 dimensions,
// against 768 for the f16 vector) and score exactly only the best few hundred.
#include "sextant_kernels.h"

#include <string.h>

void sx_sign_code_f16(const uint16_t *vector, size_t dimensions, uint64_t *code) {
    size_t words = (dimensions + 63) / 64;
    memset(code, 0, words * sizeof(uint64_t));
    for (size_t i = 0; i < dimensions; i++) {
        code[i >> 6] |= (uint64_t)(vector[i] >> 15) << (i & 63);
    }
}

void sx_sign_code_f32(const float *vector, size_t dimensions, uint64_t *code) {
    size_t words = (dimensions + 63) / 64;
    memset(code, 0, words * sizeof(uint64_t));
    for (size_t i = 0; i < dimensions; i++) {
        uint32_t bits;
        memcpy(&bits, &vector[i], sizeof bits);
        code[i >> 6] |= (uint64_t)(bits >> 31) << (i & 63);
    }
}

size_t sx_select_smallest_u16(const uint16_t *distances, size_t count, size_t keep, size_t maximum,
                              uint32_t *chosen) {
    if (keep >= count) {
        for (size_t i = 0; i < count; i++) chosen[i] = (uint32_t)i;
        return count;
    }
    // Four interleaved histograms: distances cluster in a few bins, and one
    // histogram would chain every increment through the same memory word.
    size_t bins = maximum + 1;
    uint32_t histograms[4 * bins];
    memset(histograms, 0, sizeof histograms);
    size_t i = 0;
    for (; i + 4 <= count; i += 4) {
        for (size_t lane = 0; lane < 4; lane++) {
            size_t d = distances[i + lane] <= maximum ? distances[i + lane] : maximum;
            histograms[lane * bins + d]++;
        }
    }
    for (; i < count; i++) histograms[distances[i] <= maximum ? distances[i] : maximum]++;
    size_t threshold = 0, below = 0;
    for (;;) {
        size_t inBin = histograms[threshold] + histograms[bins + threshold] + histograms[2 * bins + threshold] +
                       histograms[3 * bins + threshold];
        if (below + inBin >= keep) break;
        below += inBin;
        threshold++;
    }
    // Branch-free collect: every position is written, the count advances only
    // for a winner (below the threshold, or one of the first ties at it).
    size_t ties = keep - below, taken = 0;
    for (i = 0; i < count && taken < keep; i++) {
        size_t d = distances[i] <= maximum ? distances[i] : maximum;
        size_t isTie = (d == threshold) & (ties > 0);
        chosen[taken] = (uint32_t)i;
        taken += (d < threshold) | isTie;
        ties -= isTie;
    }
    return taken;
}

// ---- Codes in blocks of eight (the unindexed tail's layout) ------------------
// Block b holds entries 8b..8b+7 word-major: word w of those eight entries is
// eight consecutive uint64, so one 512-bit load XORs and counts eight codes.

void sx_block_code_store(uint64_t *blocks, size_t words, size_t entry, const uint64_t *code) {
    uint64_t *block = blocks + (entry >> 3) * words * 8;
    for (size_t w = 0; w < words; w++) block[w * 8 + (entry & 7)] = code[w];
}

// One body, compiled twice: plain, and with POPCNT allowed (the builtin then
// becomes one instruction instead of a bit-twiddling sequence).
static inline __attribute__((always_inline)) void block_distances_body(const uint64_t *blocks, size_t words,
                                                                        const uint64_t *query, size_t block,
                                                                        uint32_t distances[8]) {
    const uint64_t *base = blocks + block * words * 8;
    for (size_t lane = 0; lane < 8; lane++) distances[lane] = 0;
    for (size_t w = 0; w < words; w++) {
        for (size_t lane = 0; lane < 8; lane++) {
            distances[lane] += (uint32_t)__builtin_popcountll(base[w * 8 + lane] ^ query[w]);
        }
    }
}

static void block_distances_portable(const uint64_t *blocks, size_t words, const uint64_t *query, size_t block,
                                     uint32_t distances[8]) {
    block_distances_body(blocks, words, query, block, distances);
}

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("popcnt")))
static void block_distances_popcnt(const uint64_t *blocks, size_t words, const uint64_t *query, size_t block,
                                   uint32_t distances[8]) {
    block_distances_body(blocks, words, query, block, distances);
}

__attribute__((target("avx512f,avx512vpopcntdq")))
static void block_distances_avx512(const uint64_t *blocks, size_t words, const uint64_t *query, size_t block,
                                   uint32_t distances[8]) {
    const uint64_t *base = blocks + block * words * 8;
    __m512i sum = _mm512_setzero_si512();
    for (size_t w = 0; w < words; w++) {
        __m512i codes = _mm512_loadu_si512((const void *)(base + w * 8));
        __m512i x = _mm512_xor_si512(codes, _mm512_set1_epi64((long long)query[w]));
        sum = _mm512_add_epi64(sum, _mm512_popcnt_epi64(x));
    }
    _mm256_storeu_si256((__m256i *)distances, _mm512_cvtepi64_epi32(sum));
}

// The full pass of sx_block_code_nearest: eight distances per load, compared
// with the threshold in-register; only passing lanes reach scalar code.
__attribute__((target("avx512f,avx512vpopcntdq")))
static size_t block_collect_avx512(const uint64_t *blocks, size_t words, const uint64_t *query, size_t first,
                                   size_t end, uint64_t threshold, uint32_t *chosen, size_t capacity) {
    size_t taken = 0;
    __m512i limit = _mm512_set1_epi64((long long)threshold);
    for (size_t block = first >> 3; block * 8 < end; block++) {
        const uint64_t *base = blocks + block * words * 8;
        __m512i sum = _mm512_setzero_si512();
        for (size_t w = 0; w < words; w++) {
            __m512i x = _mm512_xor_si512(_mm512_loadu_si512((const void *)(base + w * 8)), _mm512_set1_epi64((long long)query[w]));
            sum = _mm512_add_epi64(sum, _mm512_popcnt_epi64(x));
        }
        __mmask8 pass = _mm512_cmple_epu64_mask(sum, limit);
        while (pass) {
            size_t entry = block * 8 + (size_t)__builtin_ctz(pass);
            pass &= (__mmask8)(pass - 1);
            if (entry < first || entry >= end) continue;
            if (taken == capacity) return taken;
            chosen[taken++] = (uint32_t)entry;
        }
    }
    return taken;
}
#endif

typedef void (*block_kernel)(const uint64_t *, size_t, const uint64_t *, size_t, uint32_t[8]);

static block_kernel chosen_block_kernel(void) {
    static block_kernel chosen = 0;
    block_kernel kernel = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (kernel) return kernel;
    kernel = block_distances_portable;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("popcnt")) kernel = block_distances_popcnt;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq")) kernel = block_distances_avx512;
#endif
    __atomic_store_n(&chosen, kernel, __ATOMIC_RELEASE);
    return kernel;
}

static void block_code_distances(block_kernel kernel, const uint64_t *blocks, size_t words, const uint64_t *query,
                                 size_t first, size_t count, uint16_t *out) {
    uint32_t distances[8];
    size_t end = first + count;
    for (size_t block = first >> 3; block * 8 < end; block++) {
        kernel(blocks, words, query, block, distances);
        for (size_t lane = 0; lane < 8; lane++) {
            size_t entry = block * 8 + lane;
            if (entry >= first && entry < end) out[entry - first] = (uint16_t)distances[lane];
        }
    }
}

void sx_block_code_distances(const uint64_t *blocks, size_t words, const uint64_t *query, size_t first, size_t count,
                             uint16_t *out) {
    block_code_distances(chosen_block_kernel(), blocks, words, query, first, count, out);
}

int sx_block_code_distances_variant(int variant, const uint64_t *blocks, size_t words, const uint64_t *query,
                                    size_t first, size_t count, uint16_t *out) {
    block_kernel kernel = 0;
    if (variant == 0) kernel = block_distances_portable;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (variant == 1 && __builtin_cpu_supports("popcnt")) kernel = block_distances_popcnt;
    if (variant == 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq")) {
        kernel = block_distances_avx512;
    }
#endif
    if (!kernel) return -1;
    block_code_distances(kernel, blocks, words, query, first, count, out);
    return 0;
}

size_t sx_block_code_nearest(const uint64_t *blocks, size_t words, const uint64_t *query, size_t first, size_t count,
                             size_t keep, uint32_t *chosen, size_t capacity, uint16_t *scratch) {
    if (keep == 0) return 0;
    if (count <= keep || capacity < keep) {
        size_t n = count < capacity ? count : capacity;
        for (size_t i = 0; i < n; i++) chosen[i] = (uint32_t)(first + i);
        return n;
    }
    block_kernel kernel = chosen_block_kernel();
    size_t bits = words * 64;
    uint32_t histogram[bits + 1];
    memset(histogram, 0, sizeof histogram);
    uint32_t distances[8];
    size_t end = first + count;
    size_t firstBlock = first >> 3, endBlock = (end + 7) >> 3;
    // A sample of every eighth block sets a threshold expected to pass about
    // 1.5 × keep entries; the full pass then keeps whatever passes it.
    size_t sampled = 0;
    for (size_t block = firstBlock; block < endBlock; block += 8) {
        kernel(blocks, words, query, block, distances);
        for (size_t lane = 0; lane < 8; lane++) {
            size_t entry = block * 8 + lane;
            if (entry >= first && entry < end) { histogram[distances[lane]]++; sampled++; }
        }
    }
    size_t target = (keep * 3 * sampled) / (2 * count) + 1;
    size_t threshold = 0, cumulative = histogram[0];
    while (cumulative < target && threshold < bits) cumulative += histogram[++threshold];
    size_t taken = 0;
#if defined(__x86_64__)
    if (kernel == block_distances_avx512) {
        taken = block_collect_avx512(blocks, words, query, first, end, threshold, chosen, capacity);
    } else
#endif
    {
        for (size_t block = firstBlock; block < endBlock && taken + 8 <= capacity; block++) {
            kernel(blocks, words, query, block, distances);
            for (size_t lane = 0; lane < 8; lane++) {
                size_t entry = block * 8 + lane;
                chosen[taken] = (uint32_t)entry;
                taken += (distances[lane] <= threshold) & (entry >= first) & (entry < end);
            }
        }
    }
    if (taken >= keep && taken + 8 <= capacity) return taken;
    // The sample misjudged (too few passed, or too many to hold): rank exactly.
    block_code_distances(kernel, blocks, words, query, first, count, scratch);
    size_t n = sx_select_smallest_u16(scratch, count, keep, bits, chosen);
    for (size_t i = 0; i < n; i++) chosen[i] += (uint32_t)first;
    return n;
}
