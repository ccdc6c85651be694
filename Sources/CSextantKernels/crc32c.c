// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every
// WAL entry, manifest and data file. SSE4.2 has an instruction for it; the
// table version is the fallback and the reference the tests compare against.
#include "sextant_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static uint32_t table[8][256];
static int tableReady = 0;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFFu];
    }
    __atomic_store_n(&tableReady, 1, __ATOMIC_RELEASE);
}

uint32_t sx_crc32c_portable(uint32_t crc, const void *data, size_t length) {
    if (!__atomic_load_n(&tableReady, __ATOMIC_ACQUIRE)) build_table();  // idempotent
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (length >= 8) {  // slicing-by-8
        uint64_t word;
        memcpy(&word, p, 8);
        uint32_t lo = (uint32_t)word ^ crc;
        uint32_t hi = (uint32_t)(word >> 32);
        crc = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^
              table[4][lo >> 24] ^ table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^
              table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
        p += 8;
        length -= 8;
    }
    while (length--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFFu];
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data,
                                                               size_t length) {
    const uint8_t *p = (const uint8_t *)data;
    uint64_t c = ~crc;
    // One stream runs at ~8 bytes per 3 cycles (several GB/s), far above the
    // disk rates it guards, so the 3-way interleaved variant is not worth it.
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        length -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (length--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}
#endif

uint32_t sx_crc32c(uint32_t crc, const void *data, size_t length) {
#if defined(__x86_64__)
    static int hasSSE42 = -1;
    int has = __atomic_load_n(&hasSSE42, __ATOMIC_RELAXED);
    if (has < 0) {
        has = (sx_cpu_features() & SX_CPU_SSE42) ? 1 : 0;
        __atomic_store_n(&hasSSE42, has, __ATOMIC_RELAXED);
    }
    if (has) return crc32c_sse42(crc, data, length);
#endif
    return sx_crc32c_portable(crc, data, length);
}
