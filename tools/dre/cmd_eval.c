/* cmd_eval.c — `dre eval`: encodes BEIR queries, searches an index and scores the run
 * against qrels with nDCG@10, Recall@10, Recall@100 and MRR@10 (trec_eval's numbers,
 * as BEIR reports them). Means are over the queries that have judgements; queries
 * without any are skipped and counted. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* queries encoded and searched per round, to bound memory on large query sets */
#define EVAL_CHUNK 4096

typedef struct {
    const char *index_dir, *queries_path, *qrels_path, *model_dir, *run_path;
    dre_device device;
    int32_t k;
    int per_query, json;
} eval_args;

static void usage(FILE *f) {
    fprintf(f, "usage: dre eval --index DIR --queries FILE --qrels FILE [options]\n"
               "\n"
               "Encodes the queries, searches the index and scores the results against the\n"
               "relevance judgements: nDCG@10, Recall@10, Recall@100 and MRR@10, computed as\n"
               "trec_eval (pytrec_eval, as BEIR uses it) computes them. Means are over the\n"
               "queries of --queries that have judgements, as BEIR averages: queries without\n"
               "any are skipped and counted; judged queries absent from --queries do not count.\n"
               "\n"
               "  --index DIR      index folder made by `dre embed`\n"
               "  --queries FILE   BEIR queries .jsonl ({\"_id\", \"text\"}), .tsv (id<TAB>text),\n"
               "                   or plain lines (id = line number)\n"
               "  --qrels FILE     BEIR qrels TSV (query-id<TAB>corpus-id<TAB>score, header\n"
               "                   skipped) or TREC qrels (query-id 0 doc-id score)\n"
               "  --model DIR      model folder (default: $DRE_MODEL or models/all-MiniLM-L6-v2);\n"
               "                   must be the model the index was built with\n"
               "  --device D       auto, cpu or gpu (default auto)\n"
               "  -k N             depth of the run file (default 100); the search depth is\n"
               "                   max(100, N) so that Recall@100 is always defined\n"
               "  --per-query      also print each query's metrics\n"
               "  --run FILE       write the TREC run file (qid Q0 docid rank score dre)\n"
               "  --json           print the results as JSON\n"
               "  -h, --help       this help\n");
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, eval_args *a) {
    memset(a, 0, sizeof *a);
    a->model_dir = cli_default_model();
    a->device = DRE_DEVICE_AUTO;
    a->k = 100;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        int missing = 0;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(arg, "--per-query")) {
            a->per_query = 1;
        } else if (!strcmp(arg, "--json")) {
            a->json = 1;
        } else if ((v = cli_option(argc, argv, &i, "--index", &missing))) {
            a->index_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--queries", &missing))) {
            a->queries_path = v;
        } else if ((v = cli_option(argc, argv, &i, "--qrels", &missing))) {
            a->qrels_path = v;
        } else if ((v = cli_option(argc, argv, &i, "--model", &missing))) {
            a->model_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--run", &missing))) {
            a->run_path = v;
        } else if ((v = cli_option(argc, argv, &i, "--device", &missing))) {
            if (dre_device_parse(v, &a->device) != DRE_OK)
                return cli_usage_error("eval", "--device must be auto, cpu or gpu, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "-k", &missing)) ||
                   (v = cli_option(argc, argv, &i, "--k", &missing))) {
            char *end;
            long k = strtol(v, &end, 10);
            if (*end || k < 1 || k > 100000)
                return cli_usage_error("eval", "-k must be an integer in 1..100000, not '%s'", v);
            a->k = (int32_t)k;
        } else if (missing) {
            return cli_usage_error("eval", "%s needs a value", arg);
        } else {
            return cli_usage_error("eval", "unknown option '%s'", arg);
        }
    }
    if (!a->index_dir) return cli_usage_error("eval", "--index is required");
    if (!a->queries_path) return cli_usage_error("eval", "--queries is required");
    if (!a->qrels_path) return cli_usage_error("eval", "--qrels is required");
    return -1;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

typedef struct {
    dre_queries *queries;
    dre_qrels *qrels;
    dre_index *index;
    dre_model *model;
    dre_tokenizer *tok;
    dre_encoder *enc;
    FILE *run;
    char **id_cache;     /* external id of each index row, filled on first use */
    dre_metrics *scored; /* per query; n_queries = 0 where skipped */
    double encode_seconds, search_seconds;
    const char *error; /* a failure of the CLI itself (dre_last_error is the library's) */
} eval_state;

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void state_close(eval_state *s) {
    if (s->id_cache) {
        int64_t count = dre_index_get_info(s->index)->count;
        for (int64_t r = 0; r < count; r++)
            free(s->id_cache[r]);
        free(s->id_cache);
    }
    if (s->run) fclose(s->run);
    dre_encoder_close(s->enc);
    dre_tokenizer_close(s->tok);
    dre_model_close(s->model);
    dre_index_close(s->index);
    dre_qrels_close(s->qrels);
    dre_queries_close(s->queries);
    free(s->scored);
}

static dre_status row_id(eval_state *s, int64_t row, const char **id) {
    if (!s->id_cache || row >= dre_index_get_info(s->index)->count) {
        s->error = "the index returned a row beyond its documents";
        return DRE_ERR_INDEX;
    }
    if (!s->id_cache[row]) {
        dre_doc doc;
        dre_status st = dre_index_doc(s->index, row, &doc);
        if (st != DRE_OK) return st;
        s->id_cache[row] = strdup(doc.id ? doc.id : "");
        dre_doc_clear(&doc);
        if (!s->id_cache[row]) {
            s->error = "out of memory";
            return DRE_ERR_NOMEM;
        }
    }
    *id = s->id_cache[row];
    return DRE_OK;
}

/* Scores queries [first, first + n) from their search results (n x k_search). */
static dre_status score_chunk(eval_state *s, size_t first, size_t n, int32_t k_search,
                              int32_t k_run, const float *scores, const int64_t *rows) {
    const char **ids = malloc((size_t)k_search * sizeof *ids);
    double *dscores = malloc((size_t)k_search * sizeof *dscores);
    if (!ids || !dscores) {
        free(ids);
        free(dscores);
        s->error = "out of memory";
        return DRE_ERR_NOMEM;
    }
    dre_status st = DRE_OK;
    for (size_t q = 0; q < n && st == DRE_OK; q++) {
        const char *qid = dre_queries_id(s->queries, first + q);
        int32_t m = 0;
        for (int32_t j = 0; j < k_search; j++) {
            int64_t row = rows[q * (size_t)k_search + (size_t)j];
            if (row < 0) continue; /* fewer than k_search docs in the index */
            if ((st = row_id(s, row, &ids[m])) != DRE_OK) break;
            dscores[m++] = scores[q * (size_t)k_search + (size_t)j];
        }
        if (st != DRE_OK) break;
        if (s->run)
            for (int32_t j = 0; j < m && j < k_run; j++)
                fprintf(s->run, "%s Q0 %s %d %.9g dre\n", qid, ids[j], j + 1, dscores[j]);
        if (!dre_qrels_has_query(s->qrels, qid)) continue; /* skipped: no judgements */
        st = dre_eval_query(s->qrels, qid, ids, dscores, m, &s->scored[first + q]);
    }
    free(ids);
    free(dscores);
    return st;
}

static dre_status run_eval(eval_state *s, const eval_args *a) {
    size_t n = dre_queries_count(s->queries);
    int32_t dim = dre_encoder_dim(s->enc);
    int32_t k_search = a->k > 100 ? a->k : 100;
    size_t chunk = n < EVAL_CHUNK ? n : EVAL_CHUNK;
    const char **texts = malloc((chunk ? chunk : 1) * sizeof *texts);
    float *emb = malloc((chunk ? chunk : 1) * (size_t)dim * sizeof *emb);
    float *scores = malloc((chunk ? chunk : 1) * (size_t)k_search * sizeof *scores);
    int64_t *rows = malloc((chunk ? chunk : 1) * (size_t)k_search * sizeof *rows);
    dre_status st = DRE_OK;
    if (!texts || !emb || !scores || !rows) {
        s->error = "out of memory";
        st = DRE_ERR_NOMEM;
    }
    for (size_t first = 0; first < n && st == DRE_OK; first += chunk) {
        size_t m = n - first < chunk ? n - first : chunk;
        for (size_t i = 0; i < m; i++)
            texts[i] = dre_queries_text(s->queries, first + i);
        double t0 = wall_seconds();
        st = dre_encode_texts(s->enc, s->tok, texts, m, 0, emb);
        double t1 = wall_seconds();
        if (st == DRE_OK) st = dre_index_search(s->index, emb, (int64_t)m, k_search, scores, rows);
        s->encode_seconds += t1 - t0;
        s->search_seconds += wall_seconds() - t1;
        if (st == DRE_OK) st = score_chunk(s, first, m, k_search, a->k, scores, rows);
    }
    free(texts);
    free(emb);
    free(scores);
    free(rows);
    return st;
}

/* Opens everything; the index must have been built with this model. */
static dre_status open_all(eval_state *s, const eval_args *a) {
    dre_status st;
    if ((st = dre_queries_open(a->queries_path, &s->queries)) != DRE_OK) return st;
    if ((st = dre_qrels_open(a->qrels_path, &s->qrels)) != DRE_OK) return st;
    if ((st = dre_index_open(a->index_dir, &s->index)) != DRE_OK) return st;
    if ((st = dre_model_open(a->model_dir, &s->model)) != DRE_OK) return st;
    if ((st = dre_tokenizer_open(a->model_dir, &s->tok)) != DRE_OK) return st;
    const dre_index_info *ii = dre_index_get_info(s->index);
    const dre_model_info *mi = dre_model_get_info(s->model);
    static char msg[512];
    if (ii->weights_sha256[0] && strcmp(ii->weights_sha256, mi->weights_sha256)) {
        snprintf(msg, sizeof msg,
                 "%s/meta.json: the index was built with model %s (weights %.12s...), not %s "
                 "(weights %.12s...); pass that model with --model",
                 a->index_dir, ii->model_name, ii->weights_sha256, a->model_dir,
                 mi->weights_sha256);
        s->error = msg;
        return DRE_ERR_MISMATCH;
    }
    if ((st = dre_encoder_open(s->model, a->device, 0, &s->enc)) != DRE_OK) return st;
    if (dre_encoder_dim(s->enc) != ii->dim) {
        snprintf(msg, sizeof msg,
                 "%s/meta.json: the index holds %d-dimensional vectors, the model makes %d",
                 a->index_dir, ii->dim, dre_encoder_dim(s->enc));
        s->error = msg;
        return DRE_ERR_MISMATCH;
    }
    if (ii->count > 0) {
        s->id_cache = calloc((size_t)ii->count, sizeof *s->id_cache);
        if (!s->id_cache) {
            s->error = "out of memory";
            return DRE_ERR_NOMEM;
        }
    }
    size_t n = dre_queries_count(s->queries);
    s->scored = calloc(n ? n : 1, sizeof *s->scored);
    if (!s->scored) {
        s->error = "out of memory";
        return DRE_ERR_NOMEM;
    }
    if (a->run_path && !(s->run = fopen(a->run_path, "w"))) {
        snprintf(msg, sizeof msg, "%s: %s", a->run_path, strerror(errno));
        s->error = msg;
        return DRE_ERR_IO;
    }
    return DRE_OK;
}

static void print_results(const eval_state *s, const eval_args *a) {
    size_t n = dre_queries_count(s->queries);
    double sum[4] = {0, 0, 0, 0};
    int64_t n_scored = 0;
    for (size_t i = 0; i < n; i++) {
        const dre_metrics *m = &s->scored[i];
        if (!m->n_queries) continue;
        sum[0] += m->ndcg_10;
        sum[1] += m->recall_10;
        sum[2] += m->recall_100;
        sum[3] += m->mrr_10;
        n_scored++;
    }
    double d = n_scored ? (double)n_scored : 1.0;
    int64_t n_skipped = (int64_t)n - n_scored;
    const char *device = dre_device_name(dre_encoder_device(s->enc));
    if (a->json) {
        printf("{\"ndcg_10\": %.10f, \"recall_10\": %.10f, \"recall_100\": %.10f, "
               "\"mrr_10\": %.10f,\n \"n_queries\": %lld, \"n_skipped\": %lld, \"k\": %d, "
               "\"device\": \"%s\", \"encode_seconds\": %.3f, \"search_seconds\": %.3f",
               sum[0] / d, sum[1] / d, sum[2] / d, sum[3] / d, (long long)n_scored,
               (long long)n_skipped, a->k, device, s->encode_seconds, s->search_seconds);
        if (a->per_query) {
            printf(",\n \"per_query\": {");
            int first = 1;
            for (size_t i = 0; i < n; i++) {
                const dre_metrics *m = &s->scored[i];
                if (!m->n_queries) continue;
                printf("%s\n  ", first ? "" : ",");
                json_string(stdout, dre_queries_id(s->queries, i));
                printf(": {\"ndcg_10\": %.10f, \"recall_10\": %.10f, \"recall_100\": %.10f, "
                       "\"mrr_10\": %.10f}",
                       m->ndcg_10, m->recall_10, m->recall_100, m->mrr_10);
                first = 0;
            }
            printf("\n }");
        }
        printf("}\n");
        return;
    }
    if (a->per_query) {
        printf("query\tnDCG@10\tRecall@10\tRecall@100\tMRR@10\n");
        for (size_t i = 0; i < n; i++) {
            const dre_metrics *m = &s->scored[i];
            if (!m->n_queries) continue;
            printf("%s\t%.4f\t%.4f\t%.4f\t%.4f\n", dre_queries_id(s->queries, i), m->ndcg_10,
                   m->recall_10, m->recall_100, m->mrr_10);
        }
    }
    printf("nDCG@10 %.4f  Recall@10 %.4f  Recall@100 %.4f  MRR@10 %.4f  queries %lld", sum[0] / d,
           sum[1] / d, sum[2] / d, sum[3] / d, (long long)n_scored);
    if (n_skipped) printf(" (%lld without judgements skipped)", (long long)n_skipped);
    printf("\n");
}

int cmd_eval(int argc, char **argv) {
    eval_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    eval_state s;
    memset(&s, 0, sizeof s);
    dre_status st = open_all(&s, &a);
    if (st == DRE_OK) st = run_eval(&s, &a);
    if (s.run) {
        /* ferror too: a write that failed earlier leaves nothing for fclose to report */
        int failed = ferror(s.run);
        failed |= fclose(s.run) != 0;
        int err = errno;
        s.run = NULL;
        if (st == DRE_OK && failed) {
            static char msg[512];
            snprintf(msg, sizeof msg, "%s: write: %s", a.run_path, strerror(err));
            s.error = msg;
            st = DRE_ERR_IO;
        }
    }
    if (st == DRE_OK) {
        size_t n = dre_queries_count(s.queries), n_scored = 0;
        for (size_t i = 0; i < n; i++)
            n_scored += s.scored[i].n_queries > 0;
        if (n_scored == 0) {
            /* a mean over no queries means nothing: most likely the files do not match */
            fprintf(stderr, "dre eval: none of the %zu queries of %s has judgements in %s\n", n,
                    a.queries_path, a.qrels_path);
            state_close(&s);
            return 1;
        }
        print_results(&s, &a);
    }
    if (st != DRE_OK) {
        if (s.error)
            fprintf(stderr, "dre eval: %s: %s\n", dre_status_str(st), s.error);
        else
            cli_fail("eval", st);
    }
    state_close(&s);
    return st == DRE_OK ? 0 : 1;
}
