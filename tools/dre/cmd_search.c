/* cmd_search.c — `dre search INDEX [QUERY]`: embeds queries with the index's model and
 * prints the nearest documents: one query from the command line, a BEIR query file
 * (--queries), or one query per line on stdin. TSV by default, JSON lines with --json. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Queries embedded and searched together when they come from a file or a pipe. */
#define QUERY_CHUNK 256
/* Without a title, this many bytes of the text stand in for it. */
#define SNIPPET_BYTES 100

static void usage(FILE *f) {
    fprintf(f,
            "usage: dre search [options] --index INDEX [QUERY]\n"
            "       dre search [options] INDEX [QUERY]\n"
            "\n"
            "Answers each query with the k best documents of INDEX: rank, score, id and title,\n"
            "tab-separated (a query file or piped queries add the query id as the first\n"
            "column). Dense search embeds the query with the model and ranks documents by inner\n"
            "product; BM25 ranks them by their words; hybrid fuses the two. Queries: the QUERY\n"
            "argument, or --queries FILE (BEIR JSONL {\"_id\", \"text\"}, TSV id<TAB>text, or\n"
            "one per line), or else one per line on stdin.\n"
            "\n"
            "  --index DIR        the index folder made by `dre embed`\n"
            "  -k N               results per query (default 10; more than the index holds\n"
            "                     is cut to its size)\n"
            "  --queries FILE     read queries from FILE\n"
            "  --query-vectors F  queries as vectors made elsewhere: a float32 or float16 .npy\n"
            "                     matrix (rows, dim), each row searched dense as it is (no\n"
            "                     model: what an index imported without one takes); the first\n"
            "                     column is the row\n" CLI_SEARCH_OPTIONS_HELP
            "  --json             one JSON object per query and line; each result has its\n"
            "                     dense and BM25 ranks and scores (null where a list lacks it)\n"
            "                     and which chunk of the document scored (chunked indexes)\n"
            "  --text             print the document text too\n"
            "  --model DIR        the model the index was embedded with (default: $DRE_MODEL\n"
            "                     or models/all-MiniLM-L6-v2); its weights hash is checked\n"
            "  --device D         auto, cpu or gpu (default auto)\n"
            "  --precision P      fp32 (default), bf16 or int8: the CPU encoder's products\n"
            "                     in bf16, or with int8 weights and bf16 activations (CPUs\n"
            "                     with AVX-512 BF16; faster, cosine to fp32 >= 0.999)\n"
            "  -h, --help         this help\n");
}

typedef struct search_args {
    const char *index_dir, *query, *queries_path, *model_dir, *vectors_path;
    dre_device device;
    dre_precision precision;
    dre_search_options search;
    int json, with_text;
} search_args;

typedef struct searcher {
    dre_searcher *s;
    dre_index *index;
    dre_search_mode mode; /* resolved: never auto */
    dre_hit *hits;        /* [QUERY_CHUNK, k] */
    int32_t *n_hits;      /* [QUERY_CHUNK] */
} searcher;

/* Prints s as a JSON string. */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p == '\r')
            fputs("\\r", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Prints s on one TSV field: tabs and line breaks become spaces; at most max bytes
 * (cut at a UTF-8 character boundary) when max > 0. */
static void tsv_field(FILE *f, const char *s, size_t max) {
    size_t n = strlen(s);
    int cut = max > 0 && n > max;
    if (cut) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++)
        fputc(s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ? ' ' : s[i], f);
    if (cut) fputs("...", f);
}

/* Prints a retriever's rank and score of a hit, or nulls where the hit is not in its list. */
static void json_rank(FILE *f, const char *name, int32_t rank, double score) {
    if (rank > 0)
        fprintf(f, ", \"%s_rank\": %d, \"%s_score\": %.6f", name, rank, name, score);
    else
        fprintf(f, ", \"%s_rank\": null, \"%s_score\": null", name, name);
}

/* Prints n queries' results (texts NULL: queries given as vectors). */
static int print_results(const searcher *s, const search_args *a, const char *const *ids,
                         const char *const *texts, int32_t n) {
    dre_status st;
    const int32_t k = a->search.k;
    for (int32_t q = 0; q < n; q++) {
        if (a->json) {
            fputc('{', stdout);
            if (ids) {
                fputs("\"query_id\": ", stdout);
                json_string(stdout, ids[q]);
                fputs(", ", stdout);
            }
            if (texts) {
                fputs("\"query\": ", stdout);
                json_string(stdout, texts[q]);
                fputs(", ", stdout);
            }
            printf("\"mode\": \"%s\"", dre_search_mode_name(s->mode));
            if (s->mode == DRE_SEARCH_HYBRID)
                printf(", \"fusion\": \"%s\"", dre_fusion_name(a->search.fusion));
            fputs(", \"results\": [", stdout);
        }
        for (int32_t r = 0; r < s->n_hits[q]; r++) {
            const dre_hit *h = &s->hits[(size_t)q * k + r];
            dre_doc doc;
            st = dre_index_doc(s->index, h->row, &doc);
            if (st != DRE_OK) return cli_fail("search", st);
            if (a->json) {
                printf("%s{\"rank\": %d, \"score\": %.9g, \"id\": ", r ? ", " : "", r + 1,
                       h->score);
                json_string(stdout, doc.id);
                fputs(", \"title\": ", stdout);
                json_string(stdout, doc.title);
                if (a->with_text) {
                    fputs(", \"text\": ", stdout);
                    json_string(stdout, doc.text);
                }
                printf(", \"row\": %lld", (long long)h->row);
                json_rank(stdout, "dense", h->dense_rank, h->dense_score);
                json_rank(stdout, "bm25", h->bm25_rank, h->bm25_score);
                if (h->chunk >= 0)
                    printf(", \"chunk\": %d", h->chunk);
                else
                    fputs(", \"chunk\": null", stdout);
                fputc('}', stdout);
            } else {
                if (ids) {
                    tsv_field(stdout, ids[q], 0);
                    fputc('\t', stdout);
                }
                printf("%d\t%.4f\t", r + 1, h->score);
                tsv_field(stdout, doc.id, 0);
                fputc('\t', stdout);
                if (doc.title[0])
                    tsv_field(stdout, doc.title, 0);
                else
                    tsv_field(stdout, doc.text, SNIPPET_BYTES);
                if (a->with_text) {
                    fputc('\t', stdout);
                    tsv_field(stdout, doc.text, 0);
                }
                fputc('\n', stdout);
            }
            dre_doc_clear(&doc);
        }
        if (a->json) fputs("]}\n", stdout);
    }
    fflush(stdout);
    return 0;
}

/* Searches n queries and prints their results. */
static int run_chunk(searcher *s, const search_args *a, const char *const *ids,
                     const char *const *texts, int32_t n) {
    if (n == 0) return 0;
    dre_status st = dre_search(s->s, texts, (size_t)n, &a->search, s->hits, s->n_hits);
    if (st != DRE_OK) return cli_fail("search", st);
    return print_results(s, a, ids, texts, n);
}

/* --query-vectors: each row of a .npy matrix searched as it is (dense), no model needed. */
static int search_vectors(searcher *s, const search_args *a) {
    const dre_index_info *info = dre_index_get_info(s->index);
    float *q = NULL;
    int64_t rows = 0;
    int32_t dim = 0;
    dre_status st = dre_vectors_read_npy(a->vectors_path, &q, &rows, &dim);
    if (st != DRE_OK) return cli_fail("search", st);
    if (dim != info->dim) {
        free(q);
        fprintf(stderr, "dre search: %s: vectors of dim %d, the index's are %d\n",
                a->vectors_path, dim, info->dim);
        return 1;
    }
    const int32_t k = a->search.k;
    float *scores = malloc((size_t)QUERY_CHUNK * (size_t)k * sizeof *scores);
    int64_t *found = malloc((size_t)QUERY_CHUNK * (size_t)k * sizeof *found);
    char ids[QUERY_CHUNK][24];
    const char *id_ptrs[QUERY_CHUNK];
    int rc = scores && found ? 0 : cli_fail("search", DRE_ERR_NOMEM);
    for (int64_t first = 0; rc == 0 && first < rows; first += QUERY_CHUNK) {
        const int32_t m = (int32_t)(rows - first < QUERY_CHUNK ? rows - first : QUERY_CHUNK);
        st = dre_index_search_with(s->index, q + first * dim, m, k, a->search.params,
                                   a->search.n_params, scores, found);
        if (st != DRE_OK) {
            rc = cli_fail("search", st);
            break;
        }
        for (int32_t i = 0; i < m; i++) {
            snprintf(ids[i], sizeof ids[i], "%lld", (long long)(first + i));
            id_ptrs[i] = ids[i];
            s->n_hits[i] = 0;
            for (int32_t j = 0; j < k && found[(size_t)i * k + j] >= 0; j++) {
                const float score = scores[(size_t)i * k + j];
                s->hits[(size_t)i * k + j] = (dre_hit){.row = found[(size_t)i * k + j],
                                                       .score = score,
                                                       .dense_rank = j + 1,
                                                       .dense_score = score};
                s->n_hits[i]++;
            }
        }
        rc = print_results(s, a, id_ptrs, NULL, m);
    }
    free(scores);
    free(found);
    free(q);
    return rc;
}

static int search_file(searcher *s, const search_args *a) {
    dre_queries *queries = NULL;
    dre_status st = dre_queries_open(a->queries_path, &queries);
    if (st != DRE_OK) return cli_fail("search", st);
    size_t n = dre_queries_count(queries);
    const char *ids[QUERY_CHUNK], *texts[QUERY_CHUNK];
    int rc = 0;
    for (size_t first = 0; first < n && rc == 0; first += QUERY_CHUNK) {
        int32_t m = (int32_t)(n - first < QUERY_CHUNK ? n - first : QUERY_CHUNK);
        for (int32_t i = 0; i < m; i++) {
            ids[i] = dre_queries_id(queries, first + (size_t)i);
            texts[i] = dre_queries_text(queries, first + (size_t)i);
        }
        rc = run_chunk(s, a, ids, texts, m);
    }
    dre_queries_close(queries);
    return rc;
}

/* Queries on stdin: answered one at a time with a prompt on a terminal, in chunks from a
 * pipe (ids = line numbers). */
static int search_stdin(searcher *s, const search_args *a) {
    int interactive = isatty(0);
    char *lines[QUERY_CHUNK] = {0};
    size_t caps[QUERY_CHUNK] = {0};
    char ids[QUERY_CHUNK][24];
    const char *id_ptrs[QUERY_CHUNK], *texts[QUERY_CHUNK];
    long line_no = 0;
    int rc = 0, done = 0;
    while (!done && rc == 0) {
        int32_t m = 0;
        while (m < (interactive ? 1 : QUERY_CHUNK)) {
            if (interactive) {
                fputs("query> ", stderr);
                fflush(stderr);
            }
            long len = cli_read_line(stdin, &lines[m], &caps[m]);
            if (len < 0) {
                done = 1;
                break;
            }
            line_no++;
            if (len == 0) continue;
            snprintf(ids[m], sizeof ids[m], "%ld", line_no);
            id_ptrs[m] = ids[m];
            texts[m] = lines[m];
            m++;
        }
        rc = run_chunk(s, a, interactive ? NULL : id_ptrs, texts, m);
    }
    if (interactive) fputc('\n', stderr);
    for (int i = 0; i < QUERY_CHUNK; i++)
        free(lines[i]);
    return rc;
}

static int parse_args(int argc, char **argv, search_args *a) {
    memset(a, 0, sizeof *a);
    a->model_dir = cli_default_model();
    a->device = DRE_DEVICE_AUTO;
    dre_search_options_init(&a->search);
    int n_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        int missing = 0, usage_rc = 0;
        long long n;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(arg, "--json")) {
            a->json = 1;
        } else if (!strcmp(arg, "--text")) {
            a->with_text = 1;
        } else if (cli_search_option(argc, argv, &i, "search", &a->search, &usage_rc)) {
            if (usage_rc) return usage_rc;
        } else if ((v = cli_option(argc, argv, &i, "-k", &missing))) {
            if (!cli_parse_count(v, 100000, &n))
                return cli_usage_error("search", "-k needs a count in 1..100000, not '%s'", v);
            a->search.k = (int32_t)n;
        } else if ((v = cli_option(argc, argv, &i, "--queries", &missing))) {
            a->queries_path = v;
        } else if ((v = cli_option(argc, argv, &i, "--query-vectors", &missing))) {
            a->vectors_path = v;
        } else if ((v = cli_option(argc, argv, &i, "--index", &missing))) {
            a->index_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--model", &missing))) {
            a->model_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--device", &missing))) {
            if (dre_device_parse(v, &a->device) != DRE_OK)
                return cli_usage_error("search", "--device must be auto, cpu or gpu, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--precision", &missing))) {
            if (dre_precision_parse(v, &a->precision) != DRE_OK)
                return cli_usage_error("search",
                                       "--precision must be fp32, bf16 or int8, not '%s'", v);
        } else if (missing) {
            return cli_usage_error("search", "%s needs a value", arg);
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return cli_usage_error("search", "unknown option '%s'", arg);
        } else if (!a->index_dir && n_positional == 0) {
            a->index_dir = arg;
            n_positional++;
        } else if (!a->query) {
            a->query = arg;
            n_positional++;
        } else {
            return cli_usage_error("search", "one query at a time (quote it), or use --queries");
        }
    }
    if (!a->index_dir) return cli_usage_error("search", "needs an INDEX folder");
    if ((a->query != NULL) + (a->queries_path != NULL) + (a->vectors_path != NULL) > 1)
        return cli_usage_error("search",
                               "give one of a QUERY, --queries FILE and --query-vectors FILE");
    if (a->vectors_path && a->search.mode != DRE_SEARCH_AUTO && a->search.mode != DRE_SEARCH_DENSE)
        return cli_usage_error("search", "--query-vectors searches dense: no text for BM25");
    return -1;
}

static void searcher_close(searcher *s) {
    free(s->hits);
    free(s->n_hits);
    if (s->s)
        dre_searcher_close(s->s);
    else
        dre_index_close(s->index);
}

/* Opens the index with its model (dre_searcher_open checks they belong together), or alone
 * for query vectors. */
static int searcher_open(searcher *s, search_args *a) {
    memset(s, 0, sizeof *s);
    dre_status st = a->vectors_path
                        ? dre_index_open(a->index_dir, &s->index)
                        : dre_searcher_open_with(a->index_dir, a->model_dir, a->device,
                                                 a->precision, &s->s);
    if (st != DRE_OK) return cli_fail("search", st);
    if (s->s) s->index = dre_searcher_index(s->s);
    const dre_index_info *info = dre_index_get_info(s->index);
    if (a->vectors_path) {
        if (info->chunk_tokens > 0) {
            fprintf(stderr, "dre search: %s is chunked: --query-vectors would rank chunks, not "
                            "documents; search it with text queries\n",
                    a->index_dir);
            return 1;
        }
        a->search.mode = DRE_SEARCH_DENSE;
    }
    if (a->search.k > info->count) {
        fprintf(stderr,
                "dre search: note: -k %d is more than the %lld documents of %s; using %lld\n",
                a->search.k, (long long)info->count, a->index_dir, (long long)info->count);
        a->search.k = (int32_t)(info->count > 0 ? info->count : 1);
    }
    s->mode = a->search.mode;
    if (s->mode == DRE_SEARCH_AUTO) s->mode = info->bm25 ? DRE_SEARCH_HYBRID : DRE_SEARCH_DENSE;
    s->hits = malloc((size_t)QUERY_CHUNK * (size_t)a->search.k * sizeof *s->hits);
    s->n_hits = malloc(QUERY_CHUNK * sizeof *s->n_hits);
    if (!s->hits || !s->n_hits) {
        fprintf(stderr, "dre search: out of memory for %d results per query\n", a->search.k);
        return 1;
    }
    return 0;
}

int cmd_search(int argc, char **argv) {
    search_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    searcher s;
    rc = searcher_open(&s, &a);
    if (rc == 0) {
        if (a.vectors_path) {
            rc = search_vectors(&s, &a);
        } else if (a.query) {
            const char *texts[1] = {a.query};
            rc = run_chunk(&s, &a, NULL, texts, 1);
        } else if (a.queries_path) {
            rc = search_file(&s, &a);
        } else {
            rc = search_stdin(&s, &a);
        }
    }
    searcher_close(&s);
    return rc;
}
