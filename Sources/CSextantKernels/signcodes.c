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

static void hamming_portable(const uint64_t *codes, size_t words, const uint64_t *query, size_t count,
                             uint16_t *out) {
    for (size_t i = 0; i < count; i++) {
        const uint64_t *code = codes + i * words;
        uint32_t distance = 0;
        for (size_t w = 0; w < words; w++) distance += (uint32_t)__builtin_popcountll(code[w] ^ query[w]);
        out[i] = (uint16_t)distance;
    }
}

#if defined(__x86_64__)
// The same loop; the attribute lets the compiler emit the POPCNT instruction.
__attribute__((target("popcnt")))
static void hamming_popcnt(const uint64_t *codes, size_t words, const uint64_t *query, size_t count,
                           uint16_t *out) {
    for (size_t i = 0; i < count; i++) {
        const uint64_t *code = codes + i * words;
        uint32_t distance = 0;
        for (size_t w = 0; w < words; w++) distance += (uint32_t)__builtin_popcountll(code[w] ^ query[w]);
        out[i] = (uint16_t)distance;
    }
}
#endif

typedef void (*hamming_kernel)(const uint64_t *, size_t, const uint64_t *, size_t, uint16_t *);

static hamming_kernel chosen_hamming(void) {
    static hamming_kernel chosen = 0;
    hamming_kernel kernel = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (kernel) return kernel;
    kernel = hamming_portable;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("popcnt")) kernel = hamming_popcnt;
#endif
    __atomic_store_n(&chosen, kernel, __ATOMIC_RELEASE);
    return kernel;
}

void sx_hamming_codes(const uint64_t *codes, size_t words, const uint64_t *query, size_t count, uint16_t *out) {
    chosen_hamming()(codes, words, query, count, out);
}

void sx_hamming_codes_portable(const uint64_t *codes, size_t words, const uint64_t *query, size_t count,
                               uint16_t *out) {
    hamming_portable(codes, words, query, count, out);
}

size_t sx_select_smallest_u16(const uint16_t *distances, size_t count, size_t keep, size_t maximum,
                              uint32_t *chosen) {
    if (keep >= count) {
        for (size_t i = 0; i < count; i++) chosen[i] = (uint32_t)i;
        return count;
    }
    uint32_t histogram[maximum + 1];
    memset(histogram, 0, sizeof histogram);
    for (size_t i = 0; i < count; i++) histogram[distances[i] <= maximum ? distances[i] : maximum]++;
    size_t threshold = 0, below = 0;
    while (below + histogram[threshold] < keep) below += histogram[threshold++];
    size_t ties = keep - below, taken = 0;
    for (size_t i = 0; i < count; i++) {
        size_t distance = distances[i] <= maximum ? distances[i] : maximum;
        if (distance < threshold) {
            chosen[taken++] = (uint32_t)i;
        } else if (distance == threshold && ties > 0) {
            ties--;
            chosen[taken++] = (uint32_t)i;
        }
    }
    return taken;
}
