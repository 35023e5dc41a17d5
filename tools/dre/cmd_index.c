/* cmd_index.c — `dre index add-bm25 INDEX`: work on an existing index folder. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: dre index add-bm25 [--index] INDEX\n"
               "\n"
               "add-bm25   adds a BM25 table (an SQLite FTS5 index of titles and texts) to an\n"
               "           index folder made without one (`dre embed --no-bm25`, or an older\n"
               "           dre), so that `dre search --mode bm25|hybrid` can use it. A copy of\n"
               "           docs.sqlite is indexed and renamed into place, then meta.json is\n"
               "           updated; nothing changes if the index has one already.\n"
               "\n"
               "  -h, --help  this help\n");
}

int cmd_index(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("index", "needs a subcommand: add-bm25");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "add-bm25") != 0)
        return cli_usage_error("index", "unknown subcommand '%s' (known: add-bm25)", argv[1]);
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
