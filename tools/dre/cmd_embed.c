/* cmd_embed.c — `dre embed --corpus FILE --index DIR`: streams a corpus through the tokenizer and
 * encoder into an index folder (FAISS + SQLite), with checkpoints, --resume and --append. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* 80 paper abstracts shipped with dre, relative to the repository root */
#define DEMO_CORPUS "tests/data/papers.jsonl"

/* How progress is shown on stderr: redrawn in place on a terminal, otherwise (a log, nohup)
 * a plain line every every_seconds. */
typedef struct progress_printer {
    int terminal;
    double every_seconds, last;
} progress_printer;

static void print_progress(const dre_embed_progress *pr, void *user) {
    progress_printer *pp = user;
    if (!pr->done && pr->seconds - pp->last < pp->every_seconds) return;
    pp->last = pr->seconds;
    if (pr->done) {
        if (pp->terminal) fprintf(stderr, "\r%*s\r", 79, "");
        return;
    }
    double elapsed = pr->seconds > 0 ? pr->seconds : 1e-9;
    char eta[32] = "";
    if (pr->size > 0 && pr->offset > pr->start) {
        double rate = (double)(pr->offset - pr->start) / elapsed;
        double left = (double)(pr->size - pr->offset) / rate;
        snprintf(eta, sizeof eta, "  ETA %d:%02d:%02d", (int)(left / 3600), (int)(left / 60) % 60,
                 (int)left % 60);
    }
    fprintf(stderr, "%s%lld docs  %.0f docs/s  %.0f tokens/s  %3.0f%%%s%s",
            pp->terminal ? "\r  " : "dre embed: ", (long long)pr->n_docs,
            (double)pr->n_docs / elapsed, (double)pr->n_tokens / elapsed,
            pr->size > 0 ? 100.0 * (double)pr->offset / (double)pr->size : 0.0, eta,
            pp->terminal ? "   " : "\n");
    fflush(stderr);
}

static void print_summary(const dre_embed_summary *s, const char *index_dir) {
    if (s->already_finished) {
        fprintf(stderr, "nothing to resume: %s already holds the finished index (%lld docs)\n",
                index_dir, (long long)s->n_total);
        return;
    }
    double seconds = s->seconds > 0 ? s->seconds : 1e-9;
    fprintf(stderr,
            "embedded %lld docs (%lld tokens) in %.2f s on %s: %.1f docs/s, %.0f tokens/s; "
            "%s now holds %lld docs",
            (long long)s->n_docs, (long long)s->n_tokens, s->seconds, dre_device_name(s->device),
            (double)s->n_docs / seconds, (double)s->n_tokens / seconds, index_dir,
            (long long)s->n_total);
    if (s->n_vectors != s->n_docs) fprintf(stderr, "; %lld chunks", (long long)s->n_vectors);
    if (s->n_truncated)
        fprintf(stderr, "; %lld docs cut at %d tokens (--chunk-tokens keeps all their text)",
                (long long)s->n_truncated, s->max_length);
    if (s->n_skipped) fprintf(stderr, "; skipped %lld bad lines", (long long)s->n_skipped);
    fprintf(stderr, "\n");
}

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: dre embed [options] --index INDEX [--corpus CORPUS]\n"
        "       dre embed [options] CORPUS INDEX\n"
        "\n"
        "Embeds every document of CORPUS into the index folder INDEX (created if needed):\n"
        "index.faiss (FAISS, inner product), docs.sqlite (ids, titles, texts, and a BM25\n"
        "index of them), meta.json.\n"
        "CORPUS is BEIR JSONL ({\"_id\", \"title\", \"text\"}), TSV (id, [title,] text; a\n"
        "header line is optional) or plain text, one document per line (id = line number).\n"
        "A document with a title is embedded as \"title text\", as BEIR does.\n"
        "\n"
        "  --corpus FILE          the corpus (default: the demo corpus, " DEMO_CORPUS ")\n"
        "  --index DIR            the index folder\n"
        "  --model DIR            model folder (default: $DRE_MODEL or models/all-MiniLM-L6-v2)\n"
        "  --device D             auto, cpu or gpu (default auto: the GPU if there is one)\n"
        "  --precision P          fp32 (default), bf16 or int8: the CPU encoder's products\n"
        "                         in bf16, or with int8 weights and bf16 activations (CPUs\n"
        "                         with AVX-512 BF16; faster, cosine to fp32 >= 0.999)\n"
        "  --factory S            FAISS index_factory string (default Flat; e.g. HNSW32,\n"
        "                         IVF1024,Flat). Kinds that need training are trained on\n"
        "                         the first vectors: 64 per IVF list, 65536 to 1048576\n"
        CLI_QUANTIZE_OPTIONS_HELP);
    fprintf(f,
        "  --format F             jsonl, tsv or lines (default: by extension; .jsonl/.json\n"
        "                         jsonl, .tsv tsv, else lines)\n"
        "  --id-field NAME        JSONL field names (defaults _id, title, text);\n"
        "  --title-field NAME     --title-field \"\" reads no title\n"
        "  --text-field NAME\n"
        "  --on-error E           fail (default): stop at the first bad line; skip: skip it\n"
        "  --errors FILE          list bad lines there (file:line: what was wrong)\n"
        "  --checkpoint-every N   documents between checkpoints (default 10000)\n"
        "  --resume               continue an interrupted embed from its last checkpoint\n"
        "  --append               add to the index already in INDEX (same model required)\n"
        "  --doc-prompt TEXT      put TEXT before each document (default: the model's prompt\n"
        "                         named \"document\" in config_sentence_transformers.json, as\n"
        "                         sentence-transformers' encode_document uses it; \"\": none)\n"
        "  --query-prompt TEXT    the text dre search puts before each query (default: the\n"
        "                         model's prompt named \"query\"); both go into meta.json\n"
        "  --chunk-tokens N       cut a document longer than N tokens (with [CLS], [SEP] and\n"
        "                         the prompt; N at most the model's max length) into\n"
        "                         overlapping windows of N, each a vector of its own; search\n"
        "                         then ranks a document by its best chunk (default: one\n"
        "                         vector per document, cut at the model's max length)\n"
        "  --chunk-overlap M      tokens consecutive chunks share (default N / 4)\n"
        "  --no-bm25              no BM25 table (default: docs.sqlite gets one, an FTS5 index\n"
        "                         of title and text, for dre search --mode bm25 / hybrid)\n"
        "  --batch-tokens N       tokens per packed batch (default 16384)\n"
        "  --threads N            tokenizer threads (default: all cores)\n"
        "  --progress-seconds S   seconds between progress lines when stderr is not a\n"
        "                         terminal (default 5; on a terminal the line is redrawn)\n"
        "  -q, --quiet            no progress, no summary\n"
        "  -h, --help             this help\n"
        "\n"
        "A killed embed keeps its last checkpoint: rerun the same command with --resume.\n"
        "\n"
        "Under mpirun (`mpirun -np N dre embed ...`) each of the N ranks embeds a part of\n"
        "the corpus (line-aligned byte ranges, in order) on its own GPU or share of the\n"
        "cores into INDEX/shard-0000r; rank 0 writes INDEX/meta.json, the manifest, once\n"
        "all have finished. An index that needs training is trained once, on the same\n"
        "vectors one process would use. --resume continues every rank (same N).\n");
}

int cmd_embed(int argc, char **argv) {
    dre_embed_options opts;
    dre_embed_options_init(&opts);
    progress_printer printer = {.terminal = isatty(2), .every_seconds = 5, .last = -1e9};
    int quiet = 0;
    const char *model_dir = cli_default_model();
    const char *corpus = NULL, *index_dir = NULL, *positional[2] = {NULL, NULL};
    int n_positional = 0, usage_rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        int missing = 0;
        long long n;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(arg, "--resume")) {
            opts.resume = 1;
        } else if (!strcmp(arg, "--append")) {
            opts.append = 1;
        } else if (!strcmp(arg, "--no-bm25")) {
            opts.no_bm25 = 1;
        } else if ((v = cli_option(argc, argv, &i, "--doc-prompt", &missing))) {
            opts.doc_prompt = v;
        } else if ((v = cli_option(argc, argv, &i, "--query-prompt", &missing))) {
            opts.query_prompt = v;
        } else if ((v = cli_option(argc, argv, &i, "--corpus", &missing))) {
            corpus = v;
        } else if ((v = cli_option(argc, argv, &i, "--index", &missing))) {
            index_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--model", &missing))) {
            model_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--device", &missing))) {
            if (dre_device_parse(v, &opts.device) != DRE_OK)
                return cli_usage_error("embed", "--device must be auto, cpu or gpu, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--precision", &missing))) {
            if (dre_precision_parse(v, &opts.precision) != DRE_OK)
                return cli_usage_error("embed",
                                       "--precision must be fp32, bf16 or int8, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--factory", &missing))) {
            if (!v[0]) return cli_usage_error("embed", "--factory needs a FAISS factory string");
            opts.factory = v;
        } else if (cli_quantize_option(argc, argv, &i, "embed", &opts.quantize, &opts.rescore,
                                       &opts.rescore_factor, &usage_rc)) {
            if (usage_rc) return usage_rc;
        } else if ((v = cli_option(argc, argv, &i, "--format", &missing))) {
            if (!strcmp(v, "jsonl"))
                opts.format = DRE_CORPUS_JSONL;
            else if (!strcmp(v, "tsv"))
                opts.format = DRE_CORPUS_TSV;
            else if (!strcmp(v, "lines"))
                opts.format = DRE_CORPUS_LINES;
            else if (!strcmp(v, "auto"))
                opts.format = DRE_CORPUS_AUTO;
            else
                return cli_usage_error("embed", "--format must be jsonl, tsv or lines, not '%s'",
                                       v);
        } else if ((v = cli_option(argc, argv, &i, "--id-field", &missing))) {
            if (!v[0]) return cli_usage_error("embed", "--id-field cannot be empty");
            opts.id_field = v;
        } else if ((v = cli_option(argc, argv, &i, "--title-field", &missing))) {
            opts.title_field = v;
        } else if ((v = cli_option(argc, argv, &i, "--text-field", &missing))) {
            if (!v[0]) return cli_usage_error("embed", "--text-field cannot be empty");
            opts.text_field = v;
        } else if ((v = cli_option(argc, argv, &i, "--on-error", &missing))) {
            if (!strcmp(v, "skip"))
                opts.skip_bad_lines = 1;
            else if (!strcmp(v, "fail"))
                opts.skip_bad_lines = 0;
            else
                return cli_usage_error("embed", "--on-error must be fail or skip, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--errors", &missing))) {
            opts.errors_path = v;
        } else if ((v = cli_option(argc, argv, &i, "--checkpoint-every", &missing))) {
            if (!cli_parse_count(v, (long long)1 << 40, &n))
                return cli_usage_error("embed",
                                       "--checkpoint-every needs a positive count, not '%s'", v);
            opts.checkpoint_every = n;
        } else if ((v = cli_option(argc, argv, &i, "--batch-tokens", &missing))) {
            if (!cli_parse_count(v, 1 << 24, &n))
                return cli_usage_error("embed", "--batch-tokens needs a positive count, not '%s'",
                                       v);
            opts.budget_tokens = (int32_t)n;
        } else if ((v = cli_option(argc, argv, &i, "--chunk-tokens", &missing))) {
            if (!cli_parse_count(v, 1 << 20, &n))
                return cli_usage_error("embed", "--chunk-tokens needs a count of tokens, not '%s'",
                                       v);
            opts.chunk_tokens = (int32_t)n;
        } else if ((v = cli_option(argc, argv, &i, "--chunk-overlap", &missing))) {
            char *end;
            long overlap = strtol(v, &end, 10);
            if (!v[0] || *end || overlap < 0 || overlap > (1 << 20))
                return cli_usage_error("embed", "--chunk-overlap needs a count >= 0, not '%s'", v);
            opts.chunk_overlap = (int32_t)overlap;
        } else if ((v = cli_option(argc, argv, &i, "--progress-seconds", &missing))) {
            char *end;
            printer.every_seconds = strtod(v, &end);
            if (!v[0] || *end || !(printer.every_seconds >= 0))
                return cli_usage_error("embed", "--progress-seconds needs seconds >= 0, not '%s'",
                                       v);
        } else if ((v = cli_option(argc, argv, &i, "--threads", &missing))) {
            if (!cli_parse_count(v, 1024, &n))
                return cli_usage_error("embed", "--threads needs a count in 1..1024, not '%s'", v);
            opts.n_threads = (int)n;
        } else if (missing) {
            return cli_usage_error("embed", "%s needs a value", arg);
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return cli_usage_error("embed", "unknown option '%s'", arg);
        } else if (n_positional < 2) {
            positional[n_positional++] = arg;
        } else {
            return cli_usage_error("embed", "unexpected argument '%s'", arg);
        }
    }
    /* positionals fill what the options left open: CORPUS INDEX, or INDEX alone */
    if (n_positional == 2 && !corpus && !index_dir) {
        corpus = positional[0];
        index_dir = positional[1];
    } else if (n_positional == 1 && !index_dir) {
        index_dir = positional[0];
    } else if (n_positional == 1 && !corpus) {
        corpus = positional[0];
    } else if (n_positional > 0) {
        return cli_usage_error("embed", "too many arguments: give --corpus FILE and --index DIR");
    }
    if (!index_dir) return cli_usage_error("embed", "needs an index folder (--index DIR)");
    if (!corpus) {
        corpus = DEMO_CORPUS;
        if (!quiet)
            fprintf(stderr, "dre embed: no --corpus given: embedding the demo corpus %s\n", corpus);
    }

    if (!quiet) {
        if (printer.terminal) printer.every_seconds = 0.25;
        opts.progress = print_progress;
        opts.progress_user = &printer;
    }
    dre_embed_summary summary;
    if (dre_dist_size() > 1 || dre_dist_launched()) {
        int rank = dre_dist_rank();
        dre_status st = dre_embed_sharded(model_dir, corpus, index_dir, &opts, &summary);
        if (st != DRE_OK) return cli_dist_fail("embed", st);
        if (!quiet && rank == 0) {
            print_summary(&summary, index_dir);
            fprintf(stderr, "%d shards, one per rank\n", dre_dist_size());
        }
        return 0;
    }
    dre_status st = dre_embed(model_dir, corpus, index_dir, &opts, &summary);
    if (st != DRE_OK) return cli_fail("embed", st);
    if (!quiet) print_summary(&summary, index_dir);
    return 0;
}
