/* main.c — dispatches `dre <command> ...` to the command's function. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"tokenize", cmd_tokenize, "texts on stdin, one per line -> token ids"},
    {"encode", cmd_encode, "texts on stdin, one per line -> embeddings (.npy or TSV)"},
    {"embed", cmd_embed, "embed a corpus into an index folder (FAISS + SQLite)"},
    {"search", cmd_search, "answer queries against an index"},
    {"eval", cmd_eval, "nDCG@10, Recall@10/100, MRR@10 from BEIR queries and qrels"},
    {"serve", cmd_serve, "serve an index over HTTP (OpenAI embeddings API, /search)"},
    {"info", cmd_info, "describe an index folder"},
    {"index", cmd_index, "work on an index folder: add-bm25"},
    {"export", cmd_export, "write an index's embeddings to .npy"},
    {"bench", cmd_bench, "benchmark the tokenizer, kernels and encoder"},
};

static void usage(FILE *f) {
    fprintf(f, "dre %s — dense retrieval engine\n\nusage: dre <command> [options]\n\ncommands:\n",
            DRE_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`dre <command> --help` describes each command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("dre %s\n", DRE_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dre: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
