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
    dre_precision precision;
    int32_t k;
    dre_search_options search;
    int per_query, json;
} eval_args;

static void usage(FILE *f) {
    fprintf(f, "usage: dre eval --index DIR --queries FILE --qrels FILE [options]\n"
               "\n"
               "Answers the queries from the index (dense, BM25 or hybrid, as dre search does)\n"
               "and scores the results against the relevance judgements: nDCG@10, Recall@10,\n"
               "Recall@100 and MRR@10, computed as trec_eval (pytrec_eval, as BEIR uses it)\n"
               "computes them. Means are over the queries of --queries that have judgements,\n"
               "as BEIR averages: queries without any are skipped and counted; judged queries\n"
               "absent from --queries do not count.\n"
               "\n"
               "  --index DIR      index folder made by `dre embed`\n"
               "  --queries FILE   BEIR queries .jsonl ({\"_id\", \"text\"}), .tsv (id<TAB>text),\n"
               "                   or plain lines (id = line number)\n"
               "  --qrels FILE     BEIR qrels TSV (query-id<TAB>corpus-id<TAB>score, header\n"
               "                   skipped) or TREC qrels (query-id 0 doc-id score)\n"
               "  --model DIR      model folder (default: $DRE_MODEL or models/all-MiniLM-L6-v2);\n"
               "                   must be the model the index was built with\n"
               "  --device D       auto, cpu or gpu (default auto)\n"
               "  --precision P    fp32 (default), bf16 or int8: the CPU encoder's products\n"
               "                   in bf16, or with int8 weights and bf16 activations (CPUs\n"
               "                   with AVX-512 BF16; faster, cosine to fp32 >= 0.999)\n"
               "  -k N             depth of the run file (default 100); the search depth is\n"
               "                   max(100, N) so that Recall@100 is always "
               "defined\n" CLI_SEARCH_OPTIONS_HELP
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
    dre_search_options_init(&a->search);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        int missing = 0, usage_rc = 0;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if (cli_search_option(argc, argv, &i, "eval", &a->search, &usage_rc)) {
            if (usage_rc) return usage_rc;
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
        } else if ((v = cli_option(argc, argv, &i, "--precision", &missing))) {
            if (dre_precision_parse(v, &a->precision) != DRE_OK)
                return cli_usage_error("eval",
                                       "--precision must be fp32, bf16 or int8, not '%s'", v);
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
    dre_searcher *searcher;
    dre_index *index;
    dre_search_mode mode; /* resolved: never auto */
    FILE *run;
    char **id_cache;     /* external id of each index row, filled on first use */
    dre_metrics *scored; /* per query; n_queries = 0 where skipped */
    double search_seconds;
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
    dre_searcher_close(s->searcher);
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

/* Scores queries [first, first + n) from their results (n x k_search hits). */
static dre_status score_chunk(eval_state *s, size_t first, size_t n, int32_t k_search,
                              int32_t k_run, const dre_hit *hits, const int32_t *n_hits) {
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
        for (int32_t j = 0; j < n_hits[q]; j++) {
            const dre_hit *h = &hits[q * (size_t)k_search + (size_t)j];
            if ((st = row_id(s, h->row, &ids[m])) != DRE_OK) break;
            dscores[m++] = h->score;
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
    dre_search_options o = a->search;
    o.k = a->k > 100 ? a->k : 100;
    size_t chunk = n < EVAL_CHUNK ? n : EVAL_CHUNK;
    const char **texts = malloc((chunk ? chunk : 1) * sizeof *texts);
    dre_hit *hits = malloc((chunk ? chunk : 1) * (size_t)o.k * sizeof *hits);
    int32_t *n_hits = malloc((chunk ? chunk : 1) * sizeof *n_hits);
    dre_status st = DRE_OK;
    if (!texts || !hits || !n_hits) {
        s->error = "out of memory";
        st = DRE_ERR_NOMEM;
    }
    for (size_t first = 0; first < n && st == DRE_OK; first += chunk) {
        size_t m = n - first < chunk ? n - first : chunk;
        for (size_t i = 0; i < m; i++)
            texts[i] = dre_queries_text(s->queries, first + i);
        double t0 = wall_seconds();
        st = dre_search(s->searcher, texts, m, &o, hits, n_hits);
        s->search_seconds += wall_seconds() - t0;
        if (st == DRE_OK) st = score_chunk(s, first, m, o.k, a->k, hits, n_hits);
    }
    free(texts);
    free(hits);
    free(n_hits);
    return st;
}

/* Opens everything; the index must have been built with this model. */
static dre_status open_all(eval_state *s, const eval_args *a) {
    dre_status st;
    static char msg[512];
    if ((st = dre_queries_open(a->queries_path, &s->queries)) != DRE_OK) return st;
    if ((st = dre_qrels_open(a->qrels_path, &s->qrels)) != DRE_OK) return st;
    if ((st = dre_searcher_open_with(a->index_dir, a->model_dir, a->device, a->precision,
                                     &s->searcher)) != DRE_OK)
        return st;
    s->index = dre_searcher_index(s->searcher);
    const dre_index_info *ii = dre_index_get_info(s->index);
    s->mode = a->search.mode;
    if (s->mode == DRE_SEARCH_AUTO) s->mode = ii->bm25 ? DRE_SEARCH_HYBRID : DRE_SEARCH_DENSE;
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
    const char *device = dre_device_name(dre_searcher_device(s->searcher));
    if (a->json) {
        printf("{\"ndcg_10\": %.10f, \"recall_10\": %.10f, \"recall_100\": %.10f, "
               "\"mrr_10\": %.10f,\n \"n_queries\": %lld, \"n_skipped\": %lld, \"k\": %d, "
               "\"mode\": \"%s\", ",
               sum[0] / d, sum[1] / d, sum[2] / d, sum[3] / d, (long long)n_scored,
               (long long)n_skipped, a->k, dre_search_mode_name(s->mode));
        if (s->mode == DRE_SEARCH_HYBRID)
            printf("\"fusion\": \"%s\", \"depth\": %d, \"rrf_k\": %g, \"alpha\": %g, ",
                   dre_fusion_name(a->search.fusion), a->search.depth, a->search.rrf_k,
                   a->search.alpha);
        printf("\"device\": \"%s\", \"dense_search\": \"%s\", \"search_seconds\": %.3f", device,
               !dre_searcher_gpu_search(s->searcher)        ? "faiss"
               : a->search.precision == DRE_SEARCH_GPU_FP32 ? "gpu fp32"
                                                            : "gpu fp16",
               s->search_seconds);
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
    printf("nDCG@10 %.4f  Recall@10 %.4f  Recall@100 %.4f  MRR@10 %.4f  queries %lld  (%s",
           sum[0] / d, sum[1] / d, sum[2] / d, sum[3] / d, (long long)n_scored,
           dre_search_mode_name(s->mode));
    if (s->mode == DRE_SEARCH_HYBRID) printf(", %s", dre_fusion_name(a->search.fusion));
    printf(")");
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
