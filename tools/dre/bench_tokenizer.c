/* bench_tokenizer.c — `dre bench tokenizer`: tokenizer throughput on a JSONL corpus
 * (title + " " + text per line, repeated to about 20 MB), on one thread and on all,
 * one parseable line per measurement. tools/bench/peer_tokenizer.py measures Hugging Face's
 * tokenizers the same way. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define TARGET_BYTES (20u << 20)

typedef struct text_ref {
    const char *s;
    size_t len;
} text_ref;

typedef struct bench_job {
    const dre_tokenizer *tok;
    const text_ref *texts;
    size_t first, n;
    int32_t max_length;
    int64_t n_tokens;
    dre_status status;
} bench_job;

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: dre bench tokenizer [--model DIR] --corpus FILE [--repeat N] [--threads N]\n"
        "                           [--max-length N]\n\n"
        "Tokenizes title + \" \" + text of every JSONL line of FILE, the corpus repeated\n"
        "N times (default: to about 20 MB), on one thread and on N threads (default:\n"
        "all cores), and prints per run:\n"
        "  tokenizer threads=T texts=... bytes=... tokens=... seconds=... MB/s=... texts/s=...\n");
}

static void *run_job(void *arg) {
    bench_job *job = arg;
    int32_t *ids = malloc((size_t)job->max_length * sizeof *ids);
    if (!ids) {
        job->status = DRE_ERR_NOMEM;
        return NULL;
    }
    job->n_tokens = 0;
    job->status = DRE_OK;
    for (size_t i = job->first; i < job->first + job->n; i++) {
        int32_t n;
        job->status =
            dre_tokenize(job->tok, job->texts[i].s, job->texts[i].len, job->max_length, ids, &n);
        if (job->status != DRE_OK) break;
        job->n_tokens += n;
    }
    free(ids);
    return NULL;
}

/* Tokenizes every text on n_threads threads (contiguous slices); returns seconds or < 0. */
static double run(const dre_tokenizer *tok, const text_ref *texts, size_t n, int n_threads,
                  int32_t max_length, int64_t *n_tokens) {
    bench_job *jobs = calloc((size_t)n_threads, sizeof *jobs);
    pthread_t *threads = calloc((size_t)n_threads, sizeof *threads);
    if (!jobs || !threads) {
        free(jobs);
        free(threads);
        return -1;
    }
    double t0 = cli_seconds();
    for (int t = 0; t < n_threads; t++) {
        size_t first = n * (size_t)t / (size_t)n_threads,
               last = n * (size_t)(t + 1) / (size_t)n_threads;
        jobs[t] = (bench_job){.tok = tok,
                              .texts = texts,
                              .first = first,
                              .n = last - first,
                              .max_length = max_length};
        if (pthread_create(&threads[t], NULL, run_job, &jobs[t]) != 0)
            jobs[t].status = DRE_ERR_NOMEM;
    }
    double seconds = 0;
    *n_tokens = 0;
    for (int t = 0; t < n_threads; t++) {
        pthread_join(threads[t], NULL);
        if (jobs[t].status != DRE_OK) seconds = -1;
        *n_tokens += jobs[t].n_tokens;
    }
    if (seconds == 0) seconds = cli_seconds() - t0;
    free(jobs);
    free(threads);
    return seconds;
}

/* Reads title + " " + text of each JSONL line into one buffer; *offsets[i] is text i's start. */
static int load_corpus(const char *path, char **buf, size_t **offsets, size_t *n_texts) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "dre bench tokenizer: cannot open %s\n", path);
        return 1;
    }
    char *line = NULL, *data = NULL;
    size_t cap = 0, len = 0, data_cap = 0, n = 0, off_cap = 0, *offs = NULL;
    long got, lineno = 0;
    int rc = 0;
    while ((got = cli_read_line(f, &line, &cap)) >= 0) {
        lineno++;
        if (got == 0) continue;
        cJSON *row = cJSON_ParseWithLength(line, (size_t)got);
        const cJSON *title = cJSON_GetObjectItemCaseSensitive(row, "title");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(row, "text");
        if (!cJSON_IsString(text)) {
            fprintf(stderr,
                    "dre bench tokenizer: %s:%ld: not a JSON object with a \"text\" string\n", path,
                    lineno);
            cJSON_Delete(row);
            rc = 1;
            break;
        }
        const char *t = cJSON_IsString(title) ? title->valuestring : "";
        size_t need = strlen(t) + 1 + strlen(text->valuestring) + 1;
        if (len + need > data_cap || n == off_cap) {
            data_cap = (len + need) * 2;
            off_cap = off_cap ? off_cap * 2 : 1024;
            char *d = realloc(data, data_cap);
            size_t *o = realloc(offs, (off_cap + 1) * sizeof *o);
            if (d) data = d;
            if (o) offs = o;
            if (!d || !o) {
                cJSON_Delete(row);
                rc = 1;
                break;
            }
        }
        offs[n++] = len;
        len += (size_t)sprintf(data + len, "%s%s%s", t, t[0] ? " " : "", text->valuestring) + 1;
        cJSON_Delete(row);
    }
    fclose(f);
    free(line);
    if (!rc && n == 0) {
        fprintf(stderr, "dre bench tokenizer: %s: no texts\n", path);
        rc = 1;
    }
    if (rc) {
        free(data);
        free(offs);
        return 1;
    }
    offs[n] = len;
    *buf = data;
    *offsets = offs;
    *n_texts = n;
    return 0;
}

int bench_tokenizer(int argc, char **argv) {
    const char *model_dir = cli_default_model(), *corpus = NULL;
    long repeat = 0, n_threads = 0, max_length = 0;
    for (int i = 1; i < argc; i++) {
        long *target = NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model_dir = argv[++i];
        } else if (!strcmp(argv[i], "--corpus") && i + 1 < argc) {
            corpus = argv[++i];
        } else if (!strcmp(argv[i], "--repeat")) {
            target = &repeat;
        } else if (!strcmp(argv[i], "--threads")) {
            target = &n_threads;
        } else if (!strcmp(argv[i], "--max-length")) {
            target = &max_length;
        } else {
            return cli_usage_error("bench tokenizer", "unknown or incomplete option '%s'", argv[i]);
        }
        if (target) {
            char *end;
            if (i + 1 >= argc || (*target = strtol(argv[i + 1], &end, 10)) < 1 || *end ||
                *target > 100000)
                return cli_usage_error("bench tokenizer", "%s wants a positive integer", argv[i]);
            i++;
        }
    }
    if (!corpus) return cli_usage_error("bench tokenizer", "--corpus FILE is required");

    dre_tokenizer *tok;
    dre_status st = dre_tokenizer_open(model_dir, &tok);
    if (st != DRE_OK) return cli_fail("bench tokenizer", st);
    if (max_length == 0) max_length = dre_tokenizer_max_length(tok);
    if (n_threads == 0)
        n_threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    if (max_length < 2) {
        dre_tokenizer_close(tok);
        return cli_usage_error("bench tokenizer", "--max-length must be at least 2");
    }

    char *buf;
    size_t *offs, n_corpus;
    if (load_corpus(corpus, &buf, &offs, &n_corpus)) {
        dre_tokenizer_close(tok);
        return 1;
    }
    size_t corpus_bytes = offs[n_corpus] - n_corpus; /* without the NULs */
    if (repeat == 0) repeat = (long)((TARGET_BYTES + corpus_bytes - 1) / corpus_bytes);
    size_t n = n_corpus * (size_t)repeat, bytes = corpus_bytes * (size_t)repeat;
    text_ref *texts = malloc(n * sizeof *texts);
    int rc = 0;
    if (!texts) {
        fprintf(stderr, "dre bench tokenizer: out of memory\n");
        rc = 1;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        size_t k = i % n_corpus;
        texts[i] = (text_ref){buf + offs[k], offs[k + 1] - offs[k] - 1};
    }
    printf("# corpus %s: %zu texts x %ld = %zu texts, %.1f MB; model %s, max length %ld\n", corpus,
           n_corpus, repeat, n, (double)bytes / 1e6, model_dir, max_length);
    int64_t warm_tokens;
    if (!rc) run(tok, texts, n < 1000 ? n : 1000, 1, (int32_t)max_length, &warm_tokens);
    long counts[2] = {1, n_threads};
    for (int r = 0; !rc && r < (n_threads > 1 ? 2 : 1); r++) {
        int64_t n_tokens;
        double s = run(tok, texts, n, (int)counts[r], (int32_t)max_length, &n_tokens);
        if (s < 0) {
            fprintf(stderr, "dre bench tokenizer: tokenizing failed: %s\n", dre_last_error());
            rc = 1;
            break;
        }
        printf("tokenizer threads=%ld texts=%zu bytes=%zu tokens=%lld seconds=%.4f MB/s=%.1f "
               "texts/s=%.0f\n",
               counts[r], n, bytes, (long long)n_tokens, s, (double)bytes / 1e6 / s, (double)n / s);
        fflush(stdout);
    }
    free(texts);
    free(buf);
    free(offs);
    dre_tokenizer_close(tok);
    return rc;
}
