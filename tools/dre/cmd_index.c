/* cmd_index.c — `dre index add-bm25 INDEX`, `dre index import` and `dre index merge`: work on
 * index folders other than embedding into them. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: dre index add-bm25 [--index] INDEX\n"
            "       dre index import --vectors X.npy --docs DOCS --index INDEX [options]\n"
            "       dre index merge SHARDED OUT\n"
            "\n"
            "add-bm25   adds a BM25 table (an SQLite FTS5 index of titles and texts) to an\n"
            "           index folder made without one (`dre embed --no-bm25`, or an older\n"
            "           dre), so that `dre search --mode bm25|hybrid` can use it. A copy of\n"
            "           docs.sqlite is indexed and renamed into place, then meta.json is\n"
            "           updated; nothing changes if the index has one already.\n"
            "\n"
            "import     a new index from embeddings made elsewhere: X.npy is a float32 or\n"
            "           float16 matrix (rows, dim), row i the vector of the i-th document of\n"
            "           DOCS (JSONL, TSV or lines, as dre embed reads a corpus; ids unique).\n"
            "           The vectors go in as they are (normalise them first for cosine).\n"
            "  --vectors FILE         the .npy matrix\n"
            "  --docs FILE            the documents, in the matrix's row order\n"
            "  --index DIR            the new index folder (must hold no index)\n"
            "  --model DIR            the model that made the vectors, which you vouch for:\n"
            "                         recorded, so dre search embeds text queries with it\n"
            "                         (default: none; search then takes --query-vectors)\n"
            "  --model-name NAME      the name recorded without --model (default unknown)\n"
            "  --factory S            FAISS index_factory string (default: the quantization's)\n"
            CLI_QUANTIZE_OPTIONS_HELP
            "  --format F             jsonl, tsv or lines (default: by extension)\n"
            "  --id-field, --title-field, --text-field NAME   JSONL field names\n"
            "  --no-bm25              no BM25 table\n"
            "\n"
            "merge      folds the sharded index SHARDED (made by mpirun dre embed) into one\n"
            "           index folder OUT, as one process would have written it: IVF shards\n"
            "           (trained as one) list by list, Flat shards vector by vector, the\n"
            "           documents and the BM25 table alike. Other kinds stay sharded (dre\n"
            "           search, eval and serve read a sharded folder as it is).\n"
            "\n"
            "  -h, --help  this help\n");
}

static int add_bm25(int argc, char **argv) {
    const char *dir = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--index") && i + 1 < argc && !dir) {
            dir = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("index", "unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage_error("index", "one INDEX at a time");
        }
    }
    if (!dir) return cli_usage_error("index", "add-bm25 needs an INDEX folder");
    dre_status st = dre_index_add_bm25(dir);
    if (st != DRE_OK) return cli_fail("index", st);
    fprintf(stderr, "%s: BM25 table ready\n", dir);
    return 0;
}

static int import(int argc, char **argv) {
    dre_import_options o;
    dre_import_options_init(&o);
    const char *vectors = NULL, *docs = NULL, *dir = NULL;
    int usage_rc = 0;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i], *v;
        int missing = 0;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(arg, "--no-bm25")) {
            o.no_bm25 = 1;
        } else if ((v = cli_option(argc, argv, &i, "--vectors", &missing))) {
            vectors = v;
        } else if ((v = cli_option(argc, argv, &i, "--docs", &missing))) {
            docs = v;
        } else if ((v = cli_option(argc, argv, &i, "--index", &missing))) {
            dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--model", &missing))) {
            o.model_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--model-name", &missing))) {
            o.model_name = v;
        } else if ((v = cli_option(argc, argv, &i, "--factory", &missing))) {
            if (!v[0]) return cli_usage_error("index", "--factory needs a FAISS factory string");
            o.factory = v;
        } else if (cli_quantize_option(argc, argv, &i, "index", &o.quantize, &o.rescore,
                                       &o.rescore_factor, &usage_rc)) {
            if (usage_rc) return usage_rc;
        } else if ((v = cli_option(argc, argv, &i, "--format", &missing))) {
            if (!strcmp(v, "jsonl"))
                o.format = DRE_CORPUS_JSONL;
            else if (!strcmp(v, "tsv"))
                o.format = DRE_CORPUS_TSV;
            else if (!strcmp(v, "lines"))
                o.format = DRE_CORPUS_LINES;
            else if (strcmp(v, "auto") != 0)
                return cli_usage_error("index", "--format must be jsonl, tsv or lines, not '%s'",
                                       v);
        } else if ((v = cli_option(argc, argv, &i, "--id-field", &missing))) {
            o.id_field = v;
        } else if ((v = cli_option(argc, argv, &i, "--title-field", &missing))) {
            o.title_field = v;
        } else if ((v = cli_option(argc, argv, &i, "--text-field", &missing))) {
            o.text_field = v;
        } else if (missing) {
            return cli_usage_error("index", "%s needs a value", arg);
        } else {
            return cli_usage_error("index", "import: unexpected argument '%s'", arg);
        }
    }
    if (!vectors || !docs || !dir)
        return cli_usage_error("index", "import needs --vectors X.npy, --docs DOCS and --index DIR");
    dre_embed_summary s;
    dre_status st = dre_index_import(vectors, docs, dir, &o, &s);
    if (st != DRE_OK) return cli_fail("index", st);
    fprintf(stderr, "imported %lld vectors into %s in %.2f s\n", (long long)s.n_docs, dir,
            s.seconds);
    return 0;
}

static int merge(int argc, char **argv) {
    const char *dirs[2] = {NULL, NULL};
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("index", "unknown option '%s'", argv[i]);
        } else if (n < 2) {
            dirs[n++] = argv[i];
        } else {
            return cli_usage_error("index", "merge takes SHARDED and OUT, nothing more");
        }
    }
    if (n < 2) return cli_usage_error("index", "merge needs a SHARDED index and an OUT folder");
    dre_status st = dre_index_merge(dirs[0], dirs[1]);
    if (st != DRE_OK) return cli_fail("index", st);
    fprintf(stderr, "%s: the shards of %s, merged into one index\n", dirs[1], dirs[0]);
    return 0;
}

int cmd_index(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("index", "needs a subcommand: add-bm25, import or merge");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "add-bm25")) return add_bm25(argc, argv);
    if (!strcmp(argv[1], "import")) return import(argc, argv);
    if (!strcmp(argv[1], "merge")) return merge(argc, argv);
    return cli_usage_error("index", "unknown subcommand '%s' (known: add-bm25, import, merge)",
                           argv[1]);
}
