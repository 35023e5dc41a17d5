/* bench_search.c — `dre bench search`: exact GPU search (dre_gpu_search_*) against FAISS's
 * exact inner-product index (IndexFlat through the C API) on the CPU, on random unit
 * vectors: both times, the ratio, and how many of the k ids per query agree. With --crowds,
 * crowds of near-duplicates planted among them and every query aimed at one: the k-th
 * place falls inside a crowd, closer than fp16 tells apart, the worst case of an fp16
 * search (its queries searched again on the GPU are counted), and the slowest of 100
 * queries searched one at a time is reported. */
#define _POSIX_C_SOURCE 200809L
#define DRE_STATIC_LINKING_ONLY /* dre_gpu_search_widened */
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: dre bench search [options]\n\n"
               "  --n N          database vectors (default 1000000)\n"
               "  --dim D        dimension (default 384)\n"
               "  --queries Q    query vectors (default 1000)\n"
               "  --k K          neighbours per query, 1..1024 (default 10)\n"
               "  --fp16         hold the vectors as fp16 on the GPU (default fp32)\n"
               "  --seed S       random vectors (default 1)\n"
               "  --crowds C     plant C crowds of 64 near-duplicates (cosine about 0.99998\n"
               "                 within a crowd) and aim every query at one (default 0)\n\n"
               "Random unit vectors; prints one line per measurement (bench=search ...).\n"
               "With --corpus-vectors N: index kinds at scale on the CPU (--corpus-vectors\n"
               "--help says more).\n");
}

/* n x dim unit vectors; coordinates roughly normal (sum of four uniforms, centred), so
 * the directions are close to uniform on the sphere. */
static float *unit_vectors(int64_t n, int32_t dim, uint64_t seed) {
    float *v = malloc((size_t)n * dim * sizeof *v);
    if (!v) return NULL;
    uint64_t state = seed;
    for (int64_t i = 0; i < n; i++) {
        float *row = v + (size_t)i * dim;
        double sq = 0.0;
        for (int32_t d = 0; d < dim; d++) {
            const uint64_t r = cli_splitmix64(&state);
            float x = 0.0f;
            for (int j = 0; j < 4; j++)
                x += (float)((r >> (16 * j)) & 0xffff) / 65536.0f;
            row[d] = x - 2.0f;
            sq += (double)row[d] * row[d];
        }
        const float inv = (float)(1.0 / sqrt(sq > 0 ? sq : 1.0));
        for (int32_t d = 0; d < dim; d++)
            row[d] *= inv;
    }
    return v;
}

#define CROWD 64 /* more than the k + 16 candidates an fp16 search of k = 10 re-scores */

/* Plants crowds of CROWD near-duplicates (a random row, then CROWD - 1 copies of it moved by
 * noise of norm about 0.004 through the rows after it, renormalised) evenly through xb, and
 * points each query at one crowd (its first row plus noise of norm about 0.035). */
static void plant_crowds(float *xb, int64_t n, float *xq, int64_t nq, int32_t dim,
                         long long crowds, uint64_t seed) {
    uint64_t state = seed ^ 0x9E3779B97F4A7C15ull;
    const int64_t stride = n / crowds;
    float *noise = unit_vectors(1, dim, seed);
    for (long long c = 0; c < crowds && noise; c++) {
        const float *first = xb + (size_t)(c * stride) * dim;
        for (int m = 1; m < CROWD; m++) {
            float *row = xb + (size_t)(c * stride + m) * dim;
            free(noise);
            noise = unit_vectors(1, dim, cli_splitmix64(&state));
            if (!noise) break;
            double sq = 0.0;
            for (int32_t d = 0; d < dim; d++) {
                row[d] = first[d] + 0.004f * noise[d];
                sq += (double)row[d] * row[d];
            }
            for (int32_t d = 0; d < dim; d++)
                row[d] = (float)(row[d] / sqrt(sq));
        }
    }
    for (int64_t q = 0; q < nq && noise; q++) {
        const long long c = (long long)(cli_splitmix64(&state) % (uint64_t)crowds);
        const float *first = xb + (size_t)(c * stride) * dim;
        free(noise);
        noise = unit_vectors(1, dim, cli_splitmix64(&state));
        if (!noise) break;
        float *row = xq + (size_t)q * dim;
        double sq = 0.0;
        for (int32_t d = 0; d < dim; d++) {
            row[d] = first[d] + 0.035f * noise[d];
            sq += (double)row[d] * row[d];
        }
        for (int32_t d = 0; d < dim; d++)
            row[d] = (float)(row[d] / sqrt(sq));
    }
    free(noise);
}

int bench_search(int argc, char **argv) {
    for (int i = 1; i < argc; i++) /* the scale benchmark of index kinds: bench_corpus.c */
        if (!strcmp(argv[i], "--corpus-vectors") || !strcmp(argv[i], "--measure"))
            return bench_corpus(argc, argv);
    long long n = 1000000, nq = 1000;
    long long crowds = 0;
    long dim = 384, k = 10, seed = 1;
    int fp16 = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--fp16")) {
            fp16 = 1;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error("bench search", "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--n"))
            n = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--dim"))
            dim = strtol(v, NULL, 10);
        else if (!strcmp(a, "--queries"))
            nq = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--k"))
            k = strtol(v, NULL, 10);
        else if (!strcmp(a, "--seed"))
            seed = strtol(v, NULL, 10);
        else if (!strcmp(a, "--crowds"))
            crowds = strtoll(v, NULL, 10);
        else
            return cli_usage_error("bench search", "unknown option '%s'", a);
    }
    if (n < 1 || nq < 1 || dim < 1 || dim > 65536 || k < 1 || k > 1024)
        return cli_usage_error("bench search", "need --n, --queries >= 1, 1 <= --k <= 1024");
    if (crowds < 0 || crowds * CROWD > n)
        return cli_usage_error("bench search", "--crowds C needs 0 <= C and 64 C <= --n");
    if (dre_gpu_count() == 0) { /* say so before minutes of set-up */
        fprintf(stderr, "dre bench search: no usable CUDA device: exact GPU search needs one\n");
        return 1;
    }

    float *xb = unit_vectors(n, (int32_t)dim, (uint64_t)seed);
    float *xq = unit_vectors(nq, (int32_t)dim, (uint64_t)seed + 1000003);
    float *gpu_scores = malloc((size_t)nq * k * sizeof *gpu_scores);
    float *cpu_scores = malloc((size_t)nq * k * sizeof *cpu_scores);
    int64_t *gpu_ids = malloc((size_t)nq * k * sizeof *gpu_ids);
    int64_t *cpu_ids = malloc((size_t)nq * k * sizeof *cpu_ids);
    int rc = 1;
    dre_gpu_search *gs = NULL;
    FaissIndex *index = NULL;
    if (!xb || !xq || !gpu_scores || !cpu_scores || !gpu_ids || !cpu_ids) {
        fprintf(stderr, "dre bench search: out of memory\n");
        goto done;
    }
    if (crowds > 0) plant_crowds(xb, n, xq, nq, (int32_t)dim, crowds, (uint64_t)seed);
    const char *storage = fp16 ? "fp16" : "fp32";

    /* GPU: upload once, one warm-up query batch, then all queries */
    double t0 = cli_seconds();
    dre_status st = fp16 ? dre_gpu_search_open_fp16(xb, n, (int32_t)dim, &gs)
                         : dre_gpu_search_open(xb, n, (int32_t)dim, &gs);
    const double gpu_open = cli_seconds() - t0;
    if (st == DRE_OK)
        st = dre_gpu_search_run(gs, xq, nq < 16 ? nq : 16, (int32_t)k, gpu_scores, gpu_ids);
    t0 = cli_seconds();
    if (st == DRE_OK) st = dre_gpu_search_run(gs, xq, nq, (int32_t)k, gpu_scores, gpu_ids);
    const double gpu_search = cli_seconds() - t0;
    if (st != DRE_OK) {
        rc = cli_fail("bench search", st);
        goto done;
    }
    const long long widened = (long long)dre_gpu_search_widened(gs);
    /* one query at a time: the slowest of the first 100 (a query searched again included) */
    double slowest = 0.0, one_total = 0.0;
    const long long singles = nq < 100 ? nq : 100;
    for (long long q = 0; q < singles && st == DRE_OK; q++) {
        t0 = cli_seconds();
        st = dre_gpu_search_run(gs, xq + q * dim, 1, (int32_t)k, gpu_scores + q * k,
                                gpu_ids + q * k);
        const double t = cli_seconds() - t0;
        one_total += t;
        if (t > slowest) slowest = t;
    }
    if (st != DRE_OK) {
        rc = cli_fail("bench search", st);
        goto done;
    }
    printf("bench=search what=gpu_exact storage=%s crowds=%lld n=%lld dim=%ld queries=%lld k=%ld "
           "open_s=%.3f search_s=%.4f queries_per_s=%.0f widened=%lld one_query_mean_ms=%.3f "
           "one_query_max_ms=%.3f\n",
           storage, crowds, n, dim, nq, k, gpu_open, gpu_search, nq / gpu_search, widened,
           1e3 * one_total / (double)singles, 1e3 * slowest);
    fflush(stdout);

    /* FAISS IndexFlat, inner product, on every CPU core */
    t0 = cli_seconds();
    if (faiss_index_factory(&index, (int)dim, "Flat", METRIC_INNER_PRODUCT) != 0 ||
        faiss_Index_add(index, n, xb) != 0) {
        fprintf(stderr, "dre bench search: FAISS: %s\n", faiss_get_last_error());
        goto done;
    }
    const double cpu_add = cli_seconds() - t0;
    t0 = cli_seconds();
    if (faiss_Index_search(index, nq, xq, k, cpu_scores, cpu_ids) != 0) {
        fprintf(stderr, "dre bench search: FAISS: %s\n", faiss_get_last_error());
        goto done;
    }
    const double cpu_search = cli_seconds() - t0;
    printf("bench=search what=faiss_flat_cpu n=%lld dim=%ld queries=%lld k=%ld add_s=%.3f "
           "search_s=%.4f queries_per_s=%.0f\n",
           n, dim, nq, k, cpu_add, cpu_search, nq / cpu_search);

    /* ids of each GPU list found in FAISS's list for the same query */
    long long agree = 0;
    for (long long q = 0; q < nq; q++)
        for (long i = 0; i < k; i++)
            for (long j = 0; j < k; j++)
                if (gpu_ids[q * k + i] == cpu_ids[q * k + j]) {
                    agree++;
                    break;
                }
    printf("bench=search what=compare storage=%s crowds=%lld speedup=%.1f id_agreement=%lld/%lld\n",
           storage, crowds, cpu_search / gpu_search, agree, nq * k);
    if (crowds > 0) {
        /* Inside a crowd, scores a rounding apart decide the k-th place, and FAISS's order
         * of sums differs with the batch: BLAS from 20 queries, one query's sum below. dre's
         * re-scoring sums as the latter, so FAISS fed 16 queries at a time must give the
         * same ids in the same order and the same scores, bit for bit. */
        long long same_ids = 0, same_scores = 0;
        for (long long q0 = 0; q0 < nq; q0 += 16) {
            const long long m = nq - q0 < 16 ? nq - q0 : 16;
            if (faiss_Index_search(index, m, xq + q0 * dim, k, cpu_scores + q0 * k,
                                   cpu_ids + q0 * k) != 0) {
                fprintf(stderr, "dre bench search: FAISS: %s\n", faiss_get_last_error());
                goto done;
            }
        }
        for (long long i = 0; i < nq * k; i++) {
            same_ids += gpu_ids[i] == cpu_ids[i];
            same_scores += gpu_scores[i] == cpu_scores[i];
        }
        printf("bench=search what=compare_small_batches storage=%s crowds=%lld "
               "ids_in_order=%lld/%lld scores_bitwise=%lld/%lld\n",
               storage, crowds, same_ids, nq * k, same_scores, nq * k);
    }
    rc = 0;
done:
    if (index) faiss_Index_free(index);
    dre_gpu_search_close(gs);
    free(xb);
    free(xq);
    free(gpu_scores);
    free(cpu_scores);
    free(gpu_ids);
    free(cpu_ids);
    return rc;
}
