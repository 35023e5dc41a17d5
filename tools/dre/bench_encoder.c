/* bench_encoder.c — `dre bench encoder`: the GPU encoder's per-kernel times (CUDA events),
 * end-to-end texts/s and tokens/s, and the GEMM-only roofline (just the model's cuBLAS
 * GEMMs for the same tokens); on the CPU, end-to-end texts/s and one short query at a time.
 * The texts (bench_texts.h) are synthetic token ids of abstract or query lengths, or a
 * corpus file's documents. With --config the weights are random, so bge-small or bert-base
 * shapes can be timed without weights. The profiling hooks and random weights are dre.h's
 * advanced tier (DRE_STATIC_LINKING_ONLY). */
#define _POSIX_C_SOURCE 200809L
#define DRE_STATIC_LINKING_ONLY
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "bench_texts.h"
#include "cli.h"

#define DEFAULT_BUDGET 65536

static void usage(FILE *f) {
    fprintf(f,
            "usage: dre bench encoder [--model DIR | --config config.json] [options]\n\n"
            "  --model DIR         a Hugging Face BERT folder (default: $DRE_MODEL or "
            "models/all-MiniLM-L6-v2)\n"
            "  --config PATH       config.json (or its folder) only: random weights of its "
            "shapes,\n"
            "                      e.g. tools/bench/configs/{minilm-l6,bge-small,bert-base}\n"
            "  --texts KIND        abstracts (200-560 tokens, cut at the max length; default)\n"
            "                      or queries (8-32 tokens)\n"
            "  --corpus FILE       real texts instead: the first --n documents of a corpus\n"
            "                      (JSONL, TSV or lines), title + text as dre embed takes\n"
            "                      them, tokenized and cut at the model's max length\n"
            "  --n N               texts (default 20000)\n"
            "  --batch-tokens N    tokens per packed batch (default %d)\n"
            "  --device gpu|cpu    gpu (default): kernels, end to end, roofline; cpu: end to "
            "end\n"
            "                      and one 12-token query at a time (p50, p99); its threads:\n"
            "                      OMP_NUM_THREADS (default all cores)\n"
            "  --precision P       the CPU's: fp32 (default), bf16 or int8\n"
            "  --reps N            repetitions of the per-kernel profile (default 5)\n"
            "  --seed N            synthetic lengths and ids (default 1)\n"
            "  --variant F=NAME    a kernel family's other implementation (several: F=A,G=B);\n"
            "                      --variant list prints the families and their variants\n\n"
            "Prints one line per measurement: key=value pairs, starting with bench=encoder;\n"
            "each line names the variant of every kernel family it ran.\n",
            DEFAULT_BUDGET);
}

static int by_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---------------------------------------------------------------- measurements */

static double op_flops(dre_op op, const dre_model_info *in, const bench_texts *c, int32_t b) {
    const double h = in->hidden, ffn = in->intermediate;
    const double t = (double)(c->batch_token0[b + 1] - c->batch_token0[b]);
    switch (op) {
    case DRE_OP_QKV_GEMM: return 2.0 * t * h * 3.0 * h;
    case DRE_OP_OUT_GEMM: return 2.0 * t * h * h;
    case DRE_OP_FFN_IN_GEMM:
    case DRE_OP_FFN_OUT_GEMM: return 2.0 * t * h * ffn;
    case DRE_OP_ATTENTION: { /* q k^T and p v: 2 * 2 * len^2 * head_dim per head */
        double sum = 0;
        for (int32_t i = c->batch_first[b]; i < c->batch_first[b + 1]; i++)
            sum += 4.0 * (double)c->lengths[i] * c->lengths[i] * h;
        return sum;
    }
    default: return 0.0;
    }
}

/* DRAM bytes an operator must move at the least (each tensor read or written once; the
 * small tables, g, b, biases served by cache): what its GB/s is measured against. */
static double op_bytes(dre_op op, const dre_model_info *in, const bench_texts *c, int32_t b,
                       int gelu_in_gemm) {
    const double h = in->hidden, ffn = in->intermediate;
    const double t = (double)(c->batch_token0[b + 1] - c->batch_token0[b]);
    const double s = c->batch_first[b + 1] - c->batch_first[b];
    switch (op) {
    case DRE_OP_EMBED: return 2.0 * 3.0 * t * h; /* word + position rows in, row out */
    case DRE_OP_LN1:
    case DRE_OP_LN2: return 2.0 * 2.0 * t * h; /* x in, out (bias, residual: in the GEMM) */
    case DRE_OP_GELU: return gelu_in_gemm ? 0.0 : 2.0 * 2.0 * t * ffn; /* in place */
    case DRE_OP_POOL: return 2.0 * t * h + 3.0 * 4.0 * s * h; /* rows in; out, norm's in+out */
    case DRE_OP_ATTENTION: return 2.0 * t * 4.0 * h;          /* q, k, v in, context out (once) */
    default: return 0.0;
    }
}

/* HBM bandwidth of the GPUs dre targets, GB/s: H100 SXM and H200 */
#define H100_GBS 3350.0
#define H200_GBS 4800.0

/* `--variant list`: one line per kernel family. */
static int list_variants(void) {
    for (int f = 0; f < DRE_FAMILY_COUNT; f++) {
        const char *const *names = dre_kernel_family_variants((dre_kernel_family)f);
        printf("bench=encoder what=variants family=%s default=%s variants=",
               dre_kernel_family_name((dre_kernel_family)f), names[0]);
        for (int v = 0; names[v]; v++)
            printf("%s%s", v ? "," : "", names[v]);
        printf("\n");
    }
    return 0;
}

static int run_gpu(const char *base_label, const dre_model *model, const bench_texts *c,
                   int32_t budget, int reps, const char *variants) {
    const dre_model_info *in = dre_model_get_info(model);
    dre_encoder *enc = NULL;
    dre_status st = dre_encoder_open(model, DRE_DEVICE_GPU, budget, &enc);
    if (st == DRE_OK && variants) st = dre_encoder_set_variants(enc, variants);
    if (st != DRE_OK) {
        dre_encoder_close(enc);
        return cli_fail("bench encoder", st);
    }
    char label[512];
    snprintf(label, sizeof label, "%s", base_label);
    for (int f = 0; f < DRE_FAMILY_COUNT; f++)
        snprintf(label + strlen(label), sizeof label - strlen(label), " %s=%s",
                 dre_kernel_family_name((dre_kernel_family)f),
                 dre_encoder_variant(enc, (dre_kernel_family)f));
    const int32_t dim = in->hidden;
    int32_t *cu = malloc(((size_t)c->n + 1) * sizeof *cu);
    float *out = malloc((size_t)c->n * dim * sizeof *out);
    if (!cu || !out) {
        free(cu);
        free(out);
        dre_encoder_close(enc);
        fprintf(stderr, "dre bench encoder: out of memory\n");
        return 1;
    }

    /* per-kernel profile of the first (fullest) batch, after a warm-up */
    const int gelu_in_gemm = !strcmp(dre_encoder_variant(enc, DRE_FAMILY_GELU), "tanh");
    int32_t n_seqs = bench_texts_batch_cu(c, 0, cu);
    const int32_t *ids0 = c->ids + c->batch_token0[0];
    st = dre_encoder_encode(enc, ids0, cu, n_seqs, out);
    double sum_ms[DRE_OP_COUNT] = {0};
    for (int r = 0; st == DRE_OK && r < reps; r++) {
        double ms[DRE_OP_COUNT];
        st = dre_encoder_profile(enc, ids0, cu, n_seqs, ms);
        for (int op = 0; st == DRE_OK && op < DRE_OP_COUNT; op++)
            sum_ms[op] += ms[op] / reps;
    }
    if (st == DRE_OK) {
        double layer_ms = 0.0;
        for (int op = DRE_OP_QKV_GEMM; op <= DRE_OP_LN2; op++)
            layer_ms += sum_ms[op];
        const double forward_ms = layer_ms + sum_ms[DRE_OP_EMBED] + sum_ms[DRE_OP_POOL];
        const int64_t batch_tokens = c->batch_token0[1] - c->batch_token0[0];
        for (int op = 0; op < DRE_OP_COUNT; op++) {
            const int in_layer = op >= DRE_OP_QKV_GEMM && op <= DRE_OP_LN2;
            /* ms, flops and bytes per layer for the layer's operators */
            const double ms = in_layer ? sum_ms[op] / in->n_layers : sum_ms[op];
            const double flops = op_flops((dre_op)op, in, c, 0),
                         bytes = op_bytes((dre_op)op, in, c, 0, gelu_in_gemm);
            const double gbs = bytes > 0 && ms > 0 ? bytes / (ms * 1e6) : 0.0;
            printf("bench=encoder model=%s what=kernel op=%s tokens=%lld seqs=%d %s=%.4f "
                   "share_of_%s=%.1f%% tflops=%.1f mbytes=%.1f gbs=%.0f dram_pct_h100=%.0f%% "
                   "dram_pct_h200=%.0f%%\n",
                   label, dre_op_name((dre_op)op), (long long)batch_tokens, n_seqs,
                   in_layer ? "ms_per_layer" : "ms", ms, in_layer ? "layer" : "forward",
                   100.0 * (in_layer ? sum_ms[op] / layer_ms : sum_ms[op] / forward_ms),
                   flops > 0 && ms > 0 ? flops / (ms * 1e9) : 0.0, bytes * 1e-6, gbs,
                   100.0 * gbs / H100_GBS, 100.0 * gbs / H200_GBS);
        }
        printf("bench=encoder model=%s what=forward tokens=%lld seqs=%d ms=%.3f layer_ms=%.3f\n",
               label, (long long)batch_tokens, n_seqs, forward_ms, layer_ms / in->n_layers);
    }

    /* end to end, copies in and out included: every batch through dre_encoder_encode
     * (the GPU idles while the host takes each batch's vectors), then queued two deep
     * through dre_encoder_submit / collect as `dre embed` runs them */
    double t0 = cli_seconds();
    for (int32_t b = 0; st == DRE_OK && b < c->n_batches; b++) {
        n_seqs = bench_texts_batch_cu(c, b, cu);
        st = dre_encoder_encode(enc, c->ids + c->batch_token0[b], cu, n_seqs,
                                out + (size_t)c->batch_first[b] * dim);
    }
    const double e2e_sync = cli_seconds() - t0;
    t0 = cli_seconds();
    for (int32_t b = 0; st == DRE_OK && b <= c->n_batches; b++) {
        if (b < c->n_batches) {
            n_seqs = bench_texts_batch_cu(c, b, cu);
            st = dre_encoder_submit(enc, c->ids + c->batch_token0[b], cu, n_seqs);
        }
        if (st == DRE_OK && b > 0)
            st = dre_encoder_collect(enc, out + (size_t)c->batch_first[b - 1] * dim, NULL);
    }
    const double e2e = cli_seconds() - t0;
    if (st == DRE_OK)
        printf("bench=encoder model=%s what=end_to_end device=gpu n=%d tokens=%lld batches=%d "
               "seconds=%.3f texts_per_s=%.0f tokens_per_s=%.0f one_at_a_time_seconds=%.3f\n",
               label, c->n, (long long)c->n_tokens, c->n_batches, e2e, c->n / e2e,
               c->n_tokens / e2e, e2e_sync);

    /* GEMM-only roofline: the same batches, only the model's GEMMs */
    double gemm_s = 0.0, gemm_flops = 0.0;
    for (int32_t b = 0; st == DRE_OK && b < c->n_batches; b++) {
        const int32_t tokens = (int32_t)(c->batch_token0[b + 1] - c->batch_token0[b]);
        double ms = 0.0;
        st = dre_encoder_gemm_only(enc, tokens, 2, &ms);
        gemm_s += ms * 1e-3;
        gemm_flops += in->n_layers *
                      (op_flops(DRE_OP_QKV_GEMM, in, c, b) + op_flops(DRE_OP_OUT_GEMM, in, c, b) +
                       2.0 * op_flops(DRE_OP_FFN_IN_GEMM, in, c, b));
    }
    if (st == DRE_OK)
        printf("bench=encoder model=%s what=gemm_roofline n=%d tokens=%lld seconds=%.3f "
               "texts_per_s=%.0f tokens_per_s=%.0f gemm_tflops=%.1f "
               "end_to_end_over_roofline=%.2f\n",
               label, c->n, (long long)c->n_tokens, gemm_s, c->n / gemm_s, c->n_tokens / gemm_s,
               gemm_flops / gemm_s * 1e-12, e2e / gemm_s);
    free(cu);
    free(out);
    dre_encoder_close(enc);
    return st == DRE_OK ? 0 : cli_fail("bench encoder", st);
}

static int run_cpu(const char *label, const dre_model *model, const bench_texts *c,
                   int32_t budget, dre_precision precision) {
    dre_encoder *enc = NULL;
    dre_status st = dre_encoder_open_with(model, DRE_DEVICE_CPU, budget, precision, &enc);
    if (st != DRE_OK) return cli_fail("bench encoder", st);
    const int32_t dim = dre_encoder_dim(enc);
    int32_t *cu = malloc(((size_t)c->n + 1) * sizeof *cu);
    float *out = malloc((size_t)c->n * dim * sizeof *out);
    if (!cu || !out) {
        free(cu);
        free(out);
        dre_encoder_close(enc);
        fprintf(stderr, "dre bench encoder: out of memory\n");
        return 1;
    }
    const double t0 = cli_seconds();
    for (int32_t b = 0; st == DRE_OK && b < c->n_batches; b++) {
        const int32_t n_seqs = bench_texts_batch_cu(c, b, cu);
        st = dre_encoder_encode(enc, c->ids + c->batch_token0[b], cu, n_seqs,
                                out + (size_t)c->batch_first[b] * dim);
    }
    const double e2e = cli_seconds() - t0;
    const int threads = omp_get_max_threads();
    if (st == DRE_OK)
        printf("bench=encoder model=%s what=end_to_end device=cpu precision=%s threads=%d n=%d "
               "tokens=%lld batches=%d seconds=%.3f texts_per_s=%.1f tokens_per_s=%.0f\n",
               label, dre_precision_name(precision), threads, c->n, (long long)c->n_tokens,
               c->n_batches, e2e, c->n / e2e, c->n_tokens / e2e);
    /* One 12-token query at a time ([CLS], 10 wordpieces, [SEP]), as a search sends it: the
     * latency of each of kQueries runs after a few to warm up. */
    enum { kQueries = 200, kWarm = 10, kLen = 12 };
    double lat[kQueries];
    int32_t q[kLen], qcu[2] = {0, kLen};
    for (int j = 0; j < kLen; j++)
        q[j] = j == 0 ? 101 : j == kLen - 1 ? 102 : 2000 + 37 * j;
    for (int i = 0; st == DRE_OK && i < kWarm + kQueries; i++) {
        const double s0 = cli_seconds();
        st = dre_encoder_encode(enc, q, qcu, 1, out);
        if (i >= kWarm) lat[i - kWarm] = cli_seconds() - s0;
    }
    if (st == DRE_OK) {
        qsort(lat, kQueries, sizeof lat[0], by_double);
        printf("bench=encoder model=%s what=query_latency device=cpu precision=%s threads=%d "
               "tokens=%d queries=%d p50_ms=%.3f p99_ms=%.3f\n",
               label, dre_precision_name(precision), threads, kLen, kQueries, 1e3 * lat[kQueries / 2],
               1e3 * lat[kQueries * 99 / 100]);
    }
    free(cu);
    free(out);
    dre_encoder_close(enc);
    return st == DRE_OK ? 0 : cli_fail("bench encoder", st);
}

int bench_encoder(int argc, char **argv) {
    const char *model_dir = NULL, *config = NULL, *texts = "abstracts", *device = "gpu";
    const char *variants = NULL, *corpus_path = NULL;
    dre_precision precision = DRE_PRECISION_FP32;
    long n = 20000, budget = DEFAULT_BUDGET, reps = 5, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) return cli_usage_error("bench encoder", "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            model_dir = v;
        else if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--texts"))
            texts = v;
        else if (!strcmp(a, "--device"))
            device = v;
        else if (!strcmp(a, "--precision")) {
            if (dre_precision_parse(v, &precision) != DRE_OK)
                return cli_usage_error("bench encoder",
                                       "--precision must be fp32, bf16 or int8, not '%s'", v);
        }
        else if (!strcmp(a, "--n"))
            n = strtol(v, NULL, 10);
        else if (!strcmp(a, "--batch-tokens"))
            budget = strtol(v, NULL, 10);
        else if (!strcmp(a, "--reps"))
            reps = strtol(v, NULL, 10);
        else if (!strcmp(a, "--seed"))
            seed = strtol(v, NULL, 10);
        else if (!strcmp(a, "--variant"))
            variants = v;
        else if (!strcmp(a, "--corpus"))
            corpus_path = v;
        else
            return cli_usage_error("bench encoder", "unknown option '%s'", a);
    }
    if (variants && !strcmp(variants, "list")) return list_variants();
    const int queries = !strcmp(texts, "queries");
    if (!queries && strcmp(texts, "abstracts"))
        return cli_usage_error("bench encoder", "--texts must be abstracts or queries");
    if (strcmp(device, "gpu") && strcmp(device, "cpu"))
        return cli_usage_error("bench encoder", "--device must be gpu or cpu");
    if (precision != DRE_PRECISION_FP32 && strcmp(device, "cpu") != 0)
        return cli_usage_error("bench encoder", "--precision %s is the CPU encoder's: add "
                               "--device cpu", dre_precision_name(precision));
    if (n < 1 || n > 100000000 || budget < 1 || budget > (1L << 30) || reps < 1)
        return cli_usage_error("bench encoder", "--n, --batch-tokens and --reps must be positive");
    if (model_dir && config)
        return cli_usage_error("bench encoder", "give --model or --config, not both");
    if (corpus_path && config)
        return cli_usage_error("bench encoder", "--corpus needs a model's tokenizer: --model");

    if (!strcmp(device, "gpu") && dre_gpu_count() == 0) {
        fprintf(stderr, "dre bench encoder: no usable CUDA device (try --device cpu for the "
                        "end-to-end number alone)\n");
        return 1;
    }

    dre_model *model = NULL;
    dre_status st = config ? dre_model_open_random(config, (uint64_t)seed, &model)
                           : dre_model_open(model_dir ? model_dir : cli_default_model(), &model);
    if (st != DRE_OK) return cli_fail("bench encoder", st);
    const dre_model_info *in = dre_model_get_info(model);
    if (budget < in->max_length) budget = in->max_length;

    bench_texts c;
    int rc = 1;
    if (corpus_path) {
        st = bench_texts_from_file(&c, corpus_path, (int32_t)n,
                                   model_dir ? model_dir : cli_default_model(), in->max_length,
                                   (int32_t)budget);
        if (st != DRE_OK) {
            rc = cli_fail("bench encoder", st);
        } else if (c.n == 0) {
            fprintf(stderr, "dre bench encoder: %s holds no documents\n", corpus_path);
            st = DRE_ERR_FORMAT;
        }
    } else if (bench_texts_synthetic(&c, (int32_t)n, queries, in->max_length, in->vocab_size,
                                     (int32_t)budget, (uint64_t)seed) != 0) {
        fprintf(stderr, "dre bench encoder: out of memory\n");
        st = DRE_ERR_NOMEM;
    }
    if (st == DRE_OK) {
        char label[256];
        const char *base = corpus_path ? strrchr(corpus_path, '/') : NULL;
        snprintf(label, sizeof label, "%.127s texts=%.64s%s", in->name,
                 corpus_path ? (base ? base + 1 : corpus_path) : texts,
                 config ? " weights=random" : "");
        printf("bench=encoder model=%s what=setup layers=%d hidden=%d heads=%d ffn=%d "
               "max_length=%d batch_tokens=%ld texts=%d tokens=%lld mean_length=%.1f\n",
               label, in->n_layers, in->hidden, in->n_heads, in->intermediate, in->max_length,
               budget, c.n, (long long)c.n_tokens, (double)c.n_tokens / c.n);
        fflush(stdout);
        rc = !strcmp(device, "gpu")
                 ? run_gpu(label, model, &c, (int32_t)budget, (int)reps, variants)
                 : run_cpu(label, model, &c, (int32_t)budget, precision);
    }
    bench_texts_free(&c);
    dre_model_close(model);
    return rc;
}
