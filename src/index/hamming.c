/* index/hamming.c — exact Hamming k-nearest search over packed codes (see index/hamming.h).
 *
 * Queries go in blocks of QUERY_BLOCK (OpenMP spreads the blocks over the cores); each block
 * walks the codes CODE_BLOCK at a time. The block of codes is first copied into 64-bit words,
 * zero-padded: word-major for AVX-512 (word w of eight codes in one register: XOR with the
 * query's word w, VPOPCNTQ, add — three instructions for eight codes a word), code-major for
 * the scalar paths. Each query keeps its k best in a max-heap; a code enters only if it beats
 * the worst kept, which after the first codes is rare, so the scan is the cost. */
#define _POSIX_C_SOURCE 200809L
#include "index/hamming.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_BLOCK 32
#define CODE_BLOCK 1024

/* ------------------------------------------------------------------ the k best of a query */

typedef struct heap {
    int32_t *d; /* distances, a max-heap on (d, row) */
    int64_t *r;
    int32_t n, k;
    int64_t worst; /* d of the top once full, else past any distance */
} heap;

static int worse(const heap *h, int32_t a, int32_t b) { /* entry a after entry b */
    return h->d[a] > h->d[b] || (h->d[a] == h->d[b] && h->r[a] > h->r[b]);
}

static void swap_entries(heap *h, int32_t a, int32_t b) {
    const int32_t d = h->d[a];
    const int64_t r = h->r[a];
    h->d[a] = h->d[b];
    h->r[a] = h->r[b];
    h->d[b] = d;
    h->r[b] = r;
}

static void sift_down(heap *h, int32_t i, int32_t n) {
    for (;;) {
        int32_t top = i;
        const int32_t l = 2 * i + 1, r = 2 * i + 2;
        if (l < n && worse(h, l, top)) top = l;
        if (r < n && worse(h, r, top)) top = r;
        if (top == i) return;
        swap_entries(h, i, top);
        i = top;
    }
}

/* Rows come in ascending order: an equal distance never displaces a kept row. */
static inline void offer(heap *h, int32_t d, int64_t row) {
    if (d >= h->worst) return;
    if (h->n < h->k) {
        int32_t i = h->n++;
        h->d[i] = d;
        h->r[i] = row;
        while (i > 0 && worse(h, i, (i - 1) / 2)) {
            swap_entries(h, i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
        if (h->n == h->k) h->worst = h->d[0];
        return;
    }
    h->d[0] = d;
    h->r[0] = row;
    sift_down(h, 0, h->n);
    h->worst = h->d[0];
}

/* Best first: heap sort, then padding. */
static void finish(heap *h) {
    for (int32_t n = h->n; n > 1; n--) {
        swap_entries(h, 0, n - 1);
        sift_down(h, 0, n - 1);
    }
    for (int32_t i = h->n; i < h->k; i++) {
        h->d[i] = INT32_MAX;
        h->r[i] = -1;
    }
}

/* ------------------------------------------------------------------ scans of a code block */

/* The 64-bit words of a code (zero beyond its bytes). */
static inline void code_words(const uint8_t *code, int32_t bytes, int32_t words, uint64_t *out) {
    if (bytes == 8 * words) {
        memcpy(out, code, (size_t)bytes);
        return;
    }
    memset(out, 0, (size_t)words * sizeof *out);
    memcpy(out, code, (size_t)bytes);
}

static void scan_portable(const uint64_t *block, int32_t words, int32_t m, int64_t base,
                          const uint64_t *q, heap *h) {
    for (int32_t j = 0; j < m; j++) {
        const uint64_t *c = block + (size_t)j * words;
        int32_t d = 0;
        for (int32_t w = 0; w < words; w++) {
            uint64_t x = c[w] ^ q[w]; /* the classic parallel count */
            x = x - ((x >> 1) & 0x5555555555555555ull);
            x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
            x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
            d += (int32_t)((x * 0x0101010101010101ull) >> 56);
        }
        offer(h, d, base + j);
    }
}

__attribute__((target("popcnt"))) static void scan_popcnt(const uint64_t *block, int32_t words,
                                                           int32_t m, int64_t base,
                                                           const uint64_t *q, heap *h) {
    for (int32_t j = 0; j < m; j++) {
        const uint64_t *c = block + (size_t)j * words;
        int32_t d = 0;
        for (int32_t w = 0; w < words; w++)
            d += __builtin_popcountll(c[w] ^ q[w]);
        offer(h, d, base + j);
    }
}

/* block: word-major, CODE_BLOCK codes a word. */
__attribute__((target("avx512f,avx512vpopcntdq"))) static void
scan_avx512(const uint64_t *block, int32_t words, int32_t m, int64_t base, const uint64_t *q,
            heap *h) {
    for (int32_t j = 0; j < m; j += 8) {
        const __mmask8 valid = m - j >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (m - j)) - 1);
        __m512i acc = _mm512_setzero_si512();
        for (int32_t w = 0; w < words; w++) {
            const __m512i c = _mm512_maskz_loadu_epi64(valid, block + (size_t)w * CODE_BLOCK + j);
            acc = _mm512_add_epi64(
                acc, _mm512_popcnt_epi64(_mm512_xor_si512(c, _mm512_set1_epi64((long long)q[w]))));
        }
        __mmask8 hit =
            _mm512_mask_cmplt_epi64_mask(valid, acc, _mm512_set1_epi64((long long)h->worst));
        if (!hit) continue;
        int64_t d[8];
        _mm512_storeu_si512(d, acc);
        while (hit) {
            const int lane = __builtin_ctz(hit);
            hit &= (__mmask8)(hit - 1);
            offer(h, (int32_t)d[lane], base + j + lane);
        }
    }
}

/* ------------------------------------------------------------------ the search */

hamming_path dre_hamming_best_path(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq"))
        return HAMMING_AVX512;
    if (__builtin_cpu_supports("popcnt")) return HAMMING_POPCNT;
    return HAMMING_PORTABLE;
}

const char *dre_hamming_path_name(hamming_path path) {
    static const char *const names[] = {"auto", "portable", "popcnt", "avx512"};
    return path >= 0 && path <= HAMMING_AVX512 ? names[path] : "?";
}

void dre_hamming_knn(const uint8_t *codes, int64_t n_codes, int32_t bytes,
                     const uint8_t *queries, int64_t nq, int32_t k, hamming_path path,
                     int32_t *distances, int64_t *rows) {
    const hamming_path best = dre_hamming_best_path();
    if (path == HAMMING_AUTO || path > best) path = best;
    const int32_t words = (bytes + 7) / 8;
    const int64_t n_blocks = (nq + QUERY_BLOCK - 1) / QUERY_BLOCK;
#pragma omp parallel for schedule(dynamic)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t q0 = b * QUERY_BLOCK;
        const int32_t nb = (int32_t)(nq - q0 < QUERY_BLOCK ? nq - q0 : QUERY_BLOCK);
        uint64_t *block = malloc((size_t)CODE_BLOCK * (size_t)words * sizeof *block);
        uint64_t *q = malloc((size_t)QUERY_BLOCK * (size_t)words * sizeof *q);
        uint64_t *word = malloc((size_t)words * sizeof *word);
        heap h[QUERY_BLOCK];
        if (!block || !q || !word) abort(); /* a few KiB: nothing sensible to do without them */
        for (int32_t i = 0; i < nb; i++) {
            code_words(queries + (size_t)(q0 + i) * (size_t)bytes, bytes, words,
                       q + (size_t)i * words);
            h[i] = (heap){distances + (q0 + i) * k, rows + (q0 + i) * k, 0, k, INT64_MAX};
        }
        for (int64_t first = 0; first < n_codes; first += CODE_BLOCK) {
            const int32_t m =
                (int32_t)(n_codes - first < CODE_BLOCK ? n_codes - first : CODE_BLOCK);
            for (int32_t j = 0; j < m; j++) {
                const uint8_t *code = codes + (size_t)(first + j) * (size_t)bytes;
                if (path == HAMMING_AVX512) {
                    code_words(code, bytes, words, word);
                    for (int32_t w = 0; w < words; w++)
                        block[(size_t)w * CODE_BLOCK + j] = word[w];
                } else {
                    code_words(code, bytes, words, block + (size_t)j * words);
                }
            }
            for (int32_t i = 0; i < nb; i++) {
                const uint64_t *qi = q + (size_t)i * words;
                if (path == HAMMING_AVX512)
                    scan_avx512(block, words, m, first, qi, &h[i]);
                else if (path == HAMMING_POPCNT)
                    scan_popcnt(block, words, m, first, qi, &h[i]);
                else
                    scan_portable(block, words, m, first, qi, &h[i]);
            }
        }
        for (int32_t i = 0; i < nb; i++)
            finish(&h[i]);
        free(block);
        free(q);
        free(word);
    }
}
