/* bench_corpus.c — `dre bench search --corpus-vectors N`: index kinds at scale, on the CPU.
 * Draws N synthetic unit vectors with the structure of a real corpus (topics, a shared
 * direction every embedding leans to, near-duplicates) and queries near some of them, imports
 * them as each kind of index (dre index import: Flat, SQ8 + fp32 rescoring, binary + int8
 * rescoring, HNSW, IVF-PQ, FAISS doing every search), then measures each index in a fresh
 * process of its own (this binary again, with --measure): open time, RSS, queries/s, and
 * recall@k against exact fp32 search (Flat's answers). One line per measurement
 * (bench=search what=corpus ...), then a Markdown table. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define MAX_KINDS 8
#define MAX_PARAMS 4
#define MAX_ROWS (MAX_KINDS * MAX_PARAMS)
#define BLOCK 65536
#define DEFAULT_KINDS "flat,sq8,binary,hnsw,ivfpq"
/* Subtopics of a topic: documents near each other within a topic, as real ones are. */
#define SUBTOPICS 20

typedef struct kind {
    const char *name, *factory;
    dre_quantize quantize;
    dre_rescore rescore;
    const char *params[MAX_PARAMS]; /* search parameters, NAME=V, each measured; NULL-ended */
} kind;

static const kind kinds[] = {
    {"flat", "Flat", DRE_QUANTIZE_NONE, DRE_RESCORE_NONE, {NULL}},
    {"sq8", "SQ8", DRE_QUANTIZE_INT8, DRE_RESCORE_FP32, {NULL}},
    {"binary",
     "BFlat",
     DRE_QUANTIZE_BINARY,
     DRE_RESCORE_INT8,
     {"rescore_factor=4", "rescore_factor=10", "rescore_factor=25", "rescore_factor=60"}},
    {"binary-fp32",
     "BFlat",
     DRE_QUANTIZE_BINARY,
     DRE_RESCORE_FP32,
     {"rescore_factor=4", "rescore_factor=10", "rescore_factor=25", NULL}},
    {"binary-hnsw",
     "BHNSW32",
     DRE_QUANTIZE_BINARY,
     DRE_RESCORE_INT8,
     {"efSearch=256", NULL}},
    {"hnsw", "HNSW32", DRE_QUANTIZE_NONE, DRE_RESCORE_NONE, {"efSearch=64", "efSearch=256"}},
    {"ivfpq", "IVF4096,PQ48", DRE_QUANTIZE_NONE, DRE_RESCORE_NONE, {"nprobe=32", "nprobe=128"}},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: dre bench search --corpus-vectors N [options]\n"
            "\n"
            "Index kinds over N synthetic vectors, each built with dre index import and then\n"
            "searched in a process of its own: build time, file sizes, open time, RSS,\n"
            "queries/s (all queries batched, a first pass and a warm one) and recall@k\n"
            "against exact fp32 search (the flat kind, always measured first). The vectors: unit vectors mixing one shared direction (all real\n"
            "embeddings lean one way), one of N/1000 (64..4096) topics, one of its 20\n"
            "subtopics and noise of their own (0.4, 0.6, 0.5, 0.6 of the norm), one in 20 a\n"
            "near-duplicate of an earlier one; queries: a random document plus noise (cosine\n"
            "about 0.82 to it). On them binary codes keep about as much as on SciFact's real\n"
            "embeddings (README).\n"
            "\n"
            "  --corpus-vectors N  vectors (e.g. 1000000, 10000000)\n"
            "  --dir DIR           where the vectors and indexes go (default bench-corpus-N;\n"
            "                      vectors drawn before with the same N, dim, queries and seed\n"
            "                      are reused)\n"
            "  --kinds LIST        of flat, sq8, binary, binary-fp32, binary-hnsw, hnsw, ivfpq\n"
            "                      (default\n"
            "                      " DEFAULT_KINDS ")\n"
            "  --dim D             dimension (default 384)\n"
            "  --queries Q         query vectors (default 1000)\n"
            "  --k K               results per query (default 10)\n"
            "  --seed S            (default 1)\n"
            "  --keep              keep the index folders (default: each removed once measured)\n");
}

/* ---------------------------------------------------------------- the vectors */

/* About normal: the sum of four uniforms, centred (variance 1/3). */
static void noise(uint64_t *state, float *x, int32_t dim) {
    for (int32_t d = 0; d < dim; d++) {
        const uint64_t r = cli_splitmix64(state);
        float v = 0.0f;
        for (int j = 0; j < 4; j++)
            v += (float)((r >> (16 * j)) & 0xffff) / 65536.0f;
        x[d] = (v - 2.0f) * 1.7320508f;
    }
}

static void normalize(float *x, int32_t dim) {
    double sq = 0;
    for (int32_t d = 0; d < dim; d++)
        sq += (double)x[d] * x[d];
    const float inv = (float)(1.0 / sqrt(sq > 0 ? sq : 1.0));
    for (int32_t d = 0; d < dim; d++)
        x[d] *= inv;
}

typedef struct corpus_spec {
    long long n, nq;
    int32_t dim;
    uint64_t seed;
} corpus_spec;

/* vectors.npy, docs.txt (a line per document) and queries.npy in dir. */
static int draw_corpus(const char *dir, const corpus_spec *c) {
    const int32_t dim = c->dim;
    int64_t topics = c->n / 1000;
    if (topics < 64) topics = 64;
    if (topics > 4096) topics = 4096;
    float *centre = malloc((size_t)topics * dim * sizeof *centre);
    float *shared = malloc((size_t)dim * sizeof *shared);
    float *block = malloc((size_t)BLOCK * dim * sizeof *block);
    float *e = malloc((size_t)dim * sizeof *e);
    float *sub = malloc((size_t)dim * sizeof *sub);
    /* a document's own part: norm 0.6 against the unit directions it mixes */
    const float own = 0.6f / sqrtf((float)dim / 1.0f);
    if (!centre || !shared || !block || !e || !sub) {
        fprintf(stderr, "dre bench search: out of memory drawing vectors\n");
        return 1;
    }
    uint64_t state = c->seed;
    noise(&state, shared, dim);
    normalize(shared, dim);
    for (int64_t t = 0; t < topics; t++) {
        noise(&state, centre + t * dim, dim);
        normalize(centre + t * dim, dim);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/vectors.npy", dir);
    FILE *v = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/docs.txt", dir);
    FILE *docs = fopen(path, "w");
    int ok = v && docs && cli_write_npy_header(v, c->n, dim);
    for (long long first = 0; ok && first < c->n; first += BLOCK) {
        const long long m = c->n - first < BLOCK ? c->n - first : BLOCK;
        for (long long i = 0; i < m; i++) {
            float *x = block + i * dim;
            const uint64_t r = cli_splitmix64(&state);
            if (i > 0 && r % 20 == 0) { /* a near-duplicate of an earlier one of the block */
                const float *of = block + (long long)((r >> 8) % (uint64_t)i) * dim;
                noise(&state, e, dim);
                for (int32_t d = 0; d < dim; d++)
                    x[d] = of[d] + 0.004f * e[d];
            } else { /* the shared direction, its topic and subtopic, its own words */
                const uint64_t topic = (r >> 8) % (uint64_t)topics;
                const float *t = centre + topic * dim;
                /* the subtopic's direction, drawn from its number alone */
                uint64_t sub_state = c->seed ^ (topic * SUBTOPICS + (r >> 40) % SUBTOPICS) *
                                                   0xD1B54A32D192ED03ull;
                noise(&sub_state, sub, dim);
                normalize(sub, dim);
                noise(&state, e, dim);
                for (int32_t d = 0; d < dim; d++)
                    x[d] = 0.4f * shared[d] + 0.6f * t[d] + 0.5f * sub[d] + own * e[d];
            }
            normalize(x, dim);
            fprintf(docs, "v%lld\n", first + i);
        }
        ok = fwrite(block, sizeof *block, (size_t)m * dim, v) == (size_t)m * dim;
    }
    ok = ok && fclose(v) == 0 && fclose(docs) == 0;
    /* queries: a random document, moved off it */
    snprintf(path, sizeof path, "%s/vectors.npy", dir);
    FILE *in = ok ? fopen(path, "rb") : NULL;
    snprintf(path, sizeof path, "%s/queries.npy", dir);
    FILE *q = ok ? fopen(path, "wb") : NULL;
    ok = in && q && cli_write_npy_header(q, c->nq, dim);
    long header = 0;
    if (ok) { /* the data starts where the header says */
        unsigned char pre[10];
        ok = fread(pre, 1, 10, in) == 10;
        header = 10 + (pre[8] | pre[9] << 8);
    }
    for (long long i = 0; ok && i < c->nq; i++) {
        const long long doc = (long long)(cli_splitmix64(&state) % (uint64_t)c->n);
        ok = fseeko(in, header + (off_t)doc * dim * (off_t)sizeof(float), SEEK_SET) == 0 &&
             fread(block, sizeof *block, (size_t)dim, in) == (size_t)dim;
        noise(&state, e, dim);
        for (int32_t d = 0; d < dim; d++)
            block[d] += 0.035f * e[d];
        normalize(block, dim);
        ok = ok && fwrite(block, sizeof *block, (size_t)dim, q) == (size_t)dim;
    }
    if (in) fclose(in);
    if (q && fclose(q) != 0) ok = 0;
    free(centre);
    free(shared);
    free(block);
    free(e);
    free(sub);
    if (!ok) fprintf(stderr, "dre bench search: writing %s: %s\n", dir, strerror(errno));
    return ok ? 0 : 1;
}

/* ---------------------------------------------------------------- one index, measured */

static double status_mb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) kb = atof(line + strlen(key) + 1);
    if (f) fclose(f);
    return kb / 1024.0;
}

/* --measure INDEX: open, search every query twice (cold: the first touch of every mapped page
 * a candidate lives on, page faults included; warm: as a running service searches), compare
 * with the truth file (or write it). */
static int measure(const char *index_dir, const char *queries_path, const char *truth_path,
                   int write_truth, int32_t k, const char *param) {
    const double rss0 = status_mb("VmRSS:");
    double t0 = cli_seconds();
    dre_index *ix = NULL;
    dre_status st = dre_index_open(index_dir, &ix);
    if (st != DRE_OK) return cli_fail("bench search", st);
    const double open_s = cli_seconds() - t0, rss_open = status_mb("VmRSS:") - rss0;
    float *q = NULL;
    int64_t nq = 0;
    int32_t dim = 0;
    st = dre_vectors_read_npy(queries_path, &q, &nq, &dim);
    if (st != DRE_OK) return cli_fail("bench search", st);
    dre_search_param p[1];
    int32_t n_params = 0;
    if (param) {
        const char *eq = strchr(param, '=');
        snprintf(p[0].name, sizeof p[0].name, "%.*s", (int)(eq - param), param);
        p[0].value = atof(eq + 1);
        n_params = 1;
    }
    float *scores = malloc((size_t)nq * k * sizeof *scores);
    int64_t *rows = malloc((size_t)nq * k * sizeof *rows);
    t0 = cli_seconds();
    st = dre_index_search_with(ix, q, nq, k, p, n_params, scores, rows);
    const double cold_s = cli_seconds() - t0;
    if (st != DRE_OK) return cli_fail("bench search", st);
    t0 = cli_seconds();
    st = dre_index_search_with(ix, q, nq, k, p, n_params, scores, rows);
    const double search_s = cli_seconds() - t0;
    if (st != DRE_OK) return cli_fail("bench search", st);
    double recall = 1.0;
    FILE *f = fopen(truth_path, write_truth ? "wb" : "rb");
    if (!f) {
        fprintf(stderr, "dre bench search: %s: %s\n", truth_path, strerror(errno));
        return 1;
    }
    if (write_truth) {
        if (fwrite(rows, sizeof *rows, (size_t)(nq * k), f) != (size_t)(nq * k)) recall = -1;
    } else {
        int64_t *truth = malloc((size_t)nq * k * sizeof *truth);
        long long hit = 0;
        if (fread(truth, sizeof *truth, (size_t)(nq * k), f) != (size_t)(nq * k)) {
            fprintf(stderr, "dre bench search: %s: short (another --k?)\n", truth_path);
            return 1;
        }
        for (int64_t i = 0; i < nq; i++)
            for (int32_t a = 0; a < k; a++)
                for (int32_t b = 0; b < k; b++)
                    if (rows[i * k + a] == truth[i * k + b] && rows[i * k + a] >= 0) {
                        hit++;
                        break;
                    }
        recall = (double)hit / (double)(nq * k);
        free(truth);
    }
    fclose(f);
    /* RSS in two parts: the process's own memory, and the file pages it maps (the kernel
     * maps a file's page cache a folio at a time, up to 2 MB, however few bytes were read) */
    printf("open_s=%.3f rss_open_mb=%.1f rss_mb=%.1f rss_anon_mb=%.1f rss_file_mb=%.1f "
           "hwm_mb=%.1f cold_s=%.3f cold_qps=%.1f search_s=%.3f queries_per_s=%.1f "
           "recall_at_%d=%.4f\n",
           open_s, rss_open, status_mb("VmRSS:") - rss0, status_mb("RssAnon:"),
           status_mb("RssFile:"), status_mb("VmHWM:"), cold_s, (double)nq / cold_s, search_s,
           (double)nq / search_s, k,
           recall);
    free(q);
    free(scores);
    free(rows);
    dre_index_close(ix);
    return 0;
}

/* ---------------------------------------------------------------- the run */

static long long file_bytes(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* Whether dir holds vectors drawn with spec c (data.txt says so). */
static int corpus_ready(const char *dir, const corpus_spec *c, const char *want) {
    char path[4096], have[256] = "";
    snprintf(path, sizeof path, "%s/data.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(have, sizeof have, f) && !strcmp(have, want);
    fclose(f);
    (void)c;
    return ok;
}

typedef struct row {
    const kind *k;
    const char *param;
    double build_s;
    long long index_bytes, rescore_bytes;
    char measured[512];
} row;

/* The value of key=... in a measure line. */
static double field(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p ? atof(p + strlen(key)) : -1;
}

int bench_corpus(int argc, char **argv) {
    corpus_spec c = {0, 1000, 384, 1};
    const char *dir = NULL, *kind_list = DEFAULT_KINDS, *measure_ix = NULL, *queries = NULL,
               *truth = NULL, *param = NULL;
    int keep = 0, write_truth = 0;
    long k = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--keep") || !strcmp(a, "--write-truth")) {
            *(a[2] == 'k' ? &keep : &write_truth) = 1;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error("bench search", "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--corpus-vectors"))
            c.n = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--dir"))
            dir = v;
        else if (!strcmp(a, "--kinds"))
            kind_list = v;
        else if (!strcmp(a, "--dim"))
            c.dim = (int32_t)strtol(v, NULL, 10);
        else if (!strcmp(a, "--queries"))
            c.nq = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--k"))
            k = strtol(v, NULL, 10);
        else if (!strcmp(a, "--seed"))
            c.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--measure")) /* the child's options */
            measure_ix = v;
        else if (!strcmp(a, "--query-vectors"))
            queries = v;
        else if (!strcmp(a, "--truth"))
            truth = v;
        else if (!strcmp(a, "--param"))
            param = v;
        else
            return cli_usage_error("bench search", "unknown option '%s'", a);
    }
    if (k < 1 || k > 1024) return cli_usage_error("bench search", "--k must be in 1..1024");
    if (measure_ix) {
        if (!queries || !truth)
            return cli_usage_error("bench search", "--measure needs --query-vectors and --truth");
        return measure(measure_ix, queries, truth, write_truth, (int32_t)k, param);
    }
    if (c.n < 1000 || c.nq < 1 || c.dim < 8 || c.dim % 8 != 0)
        return cli_usage_error("bench search",
                               "--corpus-vectors needs N >= 1000, --queries >= 1, --dim a "
                               "multiple of 8");
    const kind *chosen[MAX_KINDS + 1];
    int n_chosen = 0;
    chosen[n_chosen++] = &kinds[0]; /* flat: the truth */
    char list[256];
    snprintf(list, sizeof list, "%s", kind_list);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const kind *found = NULL;
        for (size_t j = 0; j < sizeof kinds / sizeof *kinds; j++)
            if (!strcmp(t, kinds[j].name)) found = &kinds[j];
        if (!found) return cli_usage_error("bench search", "unknown kind '%s'", t);
        if (found != &kinds[0] && n_chosen < MAX_KINDS) chosen[n_chosen++] = found;
    }
    char default_dir[64], path[1200], spec[256];
    if (!dir) {
        snprintf(default_dir, sizeof default_dir, "bench-corpus-%lld", c.n);
        dir = default_dir;
    }
    if (strlen(dir) > 1000) return cli_usage_error("bench search", "--dir: a path that long");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "dre bench search: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(spec, sizeof spec, "draws=2 n=%lld dim=%d queries=%lld seed=%llu\n", c.n, c.dim, c.nq,
             (unsigned long long)c.seed);
    if (!corpus_ready(dir, &c, spec)) {
        const double t0 = cli_seconds();
        fprintf(stderr, "dre bench search: drawing %lld vectors into %s\n", c.n, dir);
        if (draw_corpus(dir, &c) != 0) return 1;
        snprintf(path, sizeof path, "%s/data.txt", dir);
        FILE *f = fopen(path, "w");
        if (f) {
            fputs(spec, f);
            fclose(f);
        }
        fprintf(stderr, "dre bench search: drawn in %.0f s\n", cli_seconds() - t0);
    }
    row rows[MAX_ROWS];
    int n_rows = 0;
    char vectors[1100], docs[1100], qpath[1100], tpath[1100], exe[1024];
    snprintf(vectors, sizeof vectors, "%s/vectors.npy", dir);
    snprintf(docs, sizeof docs, "%s/docs.txt", dir);
    snprintf(qpath, sizeof qpath, "%s/queries.npy", dir);
    snprintf(tpath, sizeof tpath, "%s/truth-k%ld.i64", dir, k);
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return cli_usage_error("bench search", "cannot find this program's path");
    exe[len] = '\0';
    for (int r = 0; r < n_chosen; r++) {
        const kind *kd = chosen[r];
        char ix[1100];
        snprintf(ix, sizeof ix, "%s/ix-%s", dir, kd->name);
        snprintf(path, sizeof path, "rm -rf '%s'", ix);
        if (system(path) != 0) return 1;
        dre_import_options o;
        dre_import_options_init(&o);
        o.factory = kd->factory;
        o.quantize = kd->quantize;
        o.rescore = kd->rescore;
        o.no_bm25 = 1;
        o.format = DRE_CORPUS_LINES;
        o.model_name = "synthetic";
        fprintf(stderr, "dre bench search: building %s (%s)\n", kd->name, kd->factory);
        const double t0 = cli_seconds();
        dre_status st = dre_index_import(vectors, docs, ix, &o, NULL);
        const double build_s = cli_seconds() - t0;
        if (st != DRE_OK) return cli_fail("bench search", st);
        for (int p = 0; p == 0 || (p < MAX_PARAMS && kd->params[p]); p++) {
            row *out = &rows[n_rows++];
            memset(out, 0, sizeof *out);
            out->k = kd;
            out->param = kd->params[p];
            out->build_s = build_s;
            out->index_bytes = file_bytes(ix, "index.faiss");
            out->rescore_bytes = file_bytes(ix, kd->rescore == DRE_RESCORE_INT8   ? "vectors.i8"
                                                 : kd->rescore == DRE_RESCORE_FP32 ? "vectors.f32"
                                                                                   : "-");
            char cmd[8192];
            snprintf(cmd, sizeof cmd,
                     "'%s' bench search --measure '%s' --query-vectors '%s' --truth '%s' "
                     "--k %ld%s%s%s",
                     exe, ix, qpath, tpath, k, n_rows == 1 ? " --write-truth" : "",
                     out->param ? " --param " : "", out->param ? out->param : "");
            FILE *child = popen(cmd, "r");
            if (!child || !fgets(out->measured, sizeof out->measured, child)) {
                if (child) pclose(child);
                fprintf(stderr, "dre bench search: measuring %s failed\n", kd->name);
                return 1;
            }
            if (pclose(child) != 0) return 1;
            out->measured[strcspn(out->measured, "\n")] = '\0';
            printf("bench=search what=corpus kind=%s factory=%s quantize=%s rescore=%s param=%s "
                   "n=%lld dim=%d queries=%lld k=%ld build_s=%.1f index_mb=%.1f rescore_mb=%.1f "
                   "%s\n",
                   kd->name, kd->factory, dre_quantize_name(kd->quantize),
                   dre_rescore_name(kd->rescore), out->param ? out->param : "-", c.n, c.dim, c.nq,
                   k, out->build_s, out->index_bytes / 1e6, out->rescore_bytes / 1e6,
                   out->measured);
            fflush(stdout);
        }
        if (!keep) {
            snprintf(path, sizeof path, "rm -rf '%s'", ix);
            if (system(path) != 0) return 1;
        }
    }
    const double flat_qps = field(rows[0].measured, "queries_per_s=");
    char recall_key[32];
    snprintf(recall_key, sizeof recall_key, "recall_at_%ld=", k);
    printf("\n| index | build s | index.faiss MB | rescoring MB | open s | RSS MB: own + file | "
           "queries/s: first pass, warm | x Flat (warm) | recall@%ld |\n"
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
           k);
    for (int r = 0; r < n_rows; r++) {
        const row *x = &rows[r];
        const double qps = field(x->measured, "queries_per_s=");
        printf("| %s (%s%s%s) | %.1f | %.1f | %.1f | %.3f | %.0f + %.0f | %.0f, %.0f | %.1f | "
               "%.4f |\n",
               x->k->name, x->k->factory, x->param ? ", " : "", x->param ? x->param : "",
               x->build_s, x->index_bytes / 1e6, x->rescore_bytes / 1e6,
               field(x->measured, "open_s="), field(x->measured, "rss_anon_mb="),
               field(x->measured, "rss_file_mb="), field(x->measured, "cold_qps="), qps,
               qps / flat_qps,
               field(x->measured, recall_key));
    }
    return 0;
}
