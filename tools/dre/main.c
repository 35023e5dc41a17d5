/* main.c — dispatches `dre <command> ...` to the command's function. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    {"index", cmd_index, "work on index folders: add-bm25, import (vectors made elsewhere), merge"},
    {"export", cmd_export, "write an index's embeddings to .npy"},
    {"bench", cmd_bench, "benchmark the tokenizer, kernels and encoder"},
};

/* dre started by mpirun: the same command, run by dre-mpi (the tool linked with MPI) from the
 * folder this dre is in, so that dre alone never loads MPI's libraries. */
static int exec_mpi_build(char **argv) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 16);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            strcpy(slash + 1, "dre-mpi");
            execv(self, argv);
        }
    }
    fprintf(stderr, "dre: started by mpirun, but %s (dre built with MPI) cannot run: %s\n",
            n > 0 ? self : "dre-mpi", strerror(errno));
    return 1;
}

/* Commands that share their work among the ranks of an mpirun job. */
static int shared_among_ranks(const char *name) {
    return !strcmp(name, "embed") || !strcmp(name, "serve");
}

/* A command started by mpirun: MPI only then (a plain dre never starts it); the others refuse
 * rather than run N times over. */
static int run_under_mpi(size_t i, int argc, char **argv) {
    if (!strcmp(commands[i].name, "serve")) {
        /* The signals that stop a service wait for its sigwait (cmd_serve.c) in every thread,
         * MPI's own included, so they are blocked before MPI starts its threads. */
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigaddset(&stop, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &stop, NULL);
    }
    if (dre_dist_init(&argc, &argv) != DRE_OK) return cli_fail(commands[i].name, DRE_ERR_UNSUPPORTED);
    int rc = 2;
    if (shared_among_ranks(commands[i].name) || dre_dist_size() == 1) {
        rc = commands[i].run(argc - 1, argv + 1);
    } else if (dre_dist_rank() == 0) {
        fprintf(stderr,
                "dre %s: runs in one process; under mpirun only embed and serve share their "
                "work among ranks (run dre %s without mpirun: it reads a sharded index too)\n",
                commands[i].name, commands[i].name);
    }
    dre_dist_finalize();
    return rc;
}

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
    /* The service shares the cores with its HTTP threads and its clients: OpenMP threads
     * that spin at every barrier there stall a query behind a descheduled spinner (measured
     * on 2 cores, one client: 15 queries/s with p99 229 ms spinning, 53 with p99 47 ms
     * passive). The OpenMP runtime reads OMP_WAIT_POLICY when it is loaded, so `dre serve`
     * sets it, unless the user did, and starts itself again (same pid, same arguments). */
    if (!strcmp(argv[1], "serve") && !getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
        /* no /proc: carry on with the runtime as it is */
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            if (!dre_dist_launched()) return commands[i].run(argc - 1, argv + 1);
            if (!dre_dist_available()) return exec_mpi_build(argv);
            return run_under_mpi(i, argc, argv);
        }
    fprintf(stderr, "dre: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
