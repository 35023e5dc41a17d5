/* index/hamming.h — exact k-nearest search by Hamming distance over packed codes: what FAISS's
 * IndexBinaryFlat search does, with the popcount instructions the CPU has (the FAISS build
 * dre links is made for any x86-64, so it counts bits without them: 1.1x Flat's speed at 100k
 * vectors, where this is many times that). AVX-512 VPOPCNTDQ where the CPU has it, else
 * POPCNT, else portable; chosen at run time. */
#ifndef DRE_INDEX_HAMMING_H
#define DRE_INDEX_HAMMING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hamming_path {
    HAMMING_AUTO = 0,
    HAMMING_PORTABLE = 1,
    HAMMING_POPCNT = 2,
    HAMMING_AVX512 = 3,
} hamming_path;

/* The path AUTO takes on this CPU. */
hamming_path dre_hamming_best_path(void);
const char *dre_hamming_path_name(hamming_path path);

/* For each of nq query codes, the k nearest of n_codes codes (bytes each, row-major):
 * distances and rows, nearest first, equal distances by ascending row (FAISS's heap keeps
 * the first found, and it scans rows in order); rows -1 and distances INT32_MAX past
 * n_codes. Threads: OpenMP, over queries. A path the CPU lacks falls back to the best it
 * has. */
void dre_hamming_knn(const uint8_t *codes, int64_t n_codes, int32_t bytes,
                     const uint8_t *queries, int64_t nq, int32_t k, hamming_path path,
                     int32_t *distances, int64_t *rows);

#ifdef __cplusplus
}
#endif
#endif
