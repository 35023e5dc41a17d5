/* cmd_bench.c — `dre bench <what>`: dispatches to the benchmark programs. */
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: dre bench <what> [options]\n\n"
               "  tokenizer  tokenizer MB/s, one thread and all threads\n"
               "  encoder    per-kernel and end-to-end GPU encoder speed, GEMM-only roofline\n"
               "  search     exact GPU search against FAISS exact search on the CPU; with\n"
               "             --corpus-vectors N, index kinds at scale (Flat, SQ8, binary,\n"
               "             HNSW, IVF-PQ): size, open time, RSS, queries/s, recall\n\n"
               "`dre bench <what> --help` gives each one's options.\n");
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "tokenizer")) return bench_tokenizer(argc - 1, argv + 1);
    if (!strcmp(argv[1], "encoder")) return bench_encoder(argc - 1, argv + 1);
    if (!strcmp(argv[1], "search")) return bench_search(argc - 1, argv + 1);
    return cli_usage_error("bench", "unknown benchmark '%s'", argv[1]);
}
