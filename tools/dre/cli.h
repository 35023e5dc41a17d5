/* cli.h — the dre command-line tool: one cmd_* function per subcommand, each in its
 * own file, each a user of dre.h only. */
#ifndef DRE_CLI_H
#define DRE_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "dre.h"

/* Each returns the process exit status: 0 ok, 1 failure, 2 usage error. */
int cmd_tokenize(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* The benchmarks behind `dre bench <what>`, one file each. */
int bench_tokenizer(int argc, char **argv);
int bench_encoder(int argc, char **argv);
int bench_search(int argc, char **argv);

/* Prints "dre <cmd>: <status>: <last error>" to stderr and returns 1. */
int cli_fail(const char *cmd, dre_status status);

/* Under mpirun: a rank's own failure is printed with its rank, then the job is stopped
 * (dre_dist_abort); one every rank shares is printed by rank 0 alone. Returns 1. */
int cli_dist_fail(const char *cmd, dre_status status);

/* Prints "dre <cmd>: <message>" and a hint to run --help, returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads one line (without its newline) into *line, growing it; returns its length, or
 * -1 at end of input. */
long cli_read_line(FILE *f, char **line, size_t *cap);

/* Matches argv[*i] against an option taking a value, as "--name value" or
 * "--name=value": returns the value (advancing *i past it) or NULL; sets *missing when
 * the option is last with no value. */
const char *cli_option(int argc, char **argv, int *i, const char *name, int *missing);

/* Parses a decimal count in 1..max; returns 0 if s is not one. */
int cli_parse_count(const char *s, long long max, long long *out);

/* The search options shared by `dre search` and `dre eval` (--mode, --fusion, --alpha,
 * --depth, --rrf-k, --query-prompt, --search-precision, --param): returns 1 if argv[*i] was one
 * (consumed, with its value), 0 if not; on a bad value prints the usage error and sets *usage_rc
 * to 2. */
int cli_search_option(int argc, char **argv, int *i, const char *cmd, dre_search_options *o,
                      int *usage_rc);
/* Their help text. */
#define CLI_SEARCH_OPTIONS_HELP                                                                    \
    "  --mode M           dense, bm25 or hybrid (default: hybrid when the index has a BM25\n"      \
    "                     table, else dense)\n"                                                    \
    "  --fusion F         hybrid: convex (default; alpha * dense + (1 - alpha) * bm25, the\n"      \
    "                     scores min-max normalised) or rrf (sum of 1 / (rrf-k + rank))\n"         \
    "  --depth N          hybrid: documents taken from each list (default 100)\n"                  \
    "  --rrf-k X          rrf's k (default 60)\n"                                                  \
    "  --alpha X          convex: the dense score's weight, 0..1 (default 0.5)\n"                  \
    "  --query-prompt T   put T before each query (default: the index's query prompt, from\n"      \
    "                     meta.json; \"\" for none)\n"                                             \
    "  --search-precision P  dense search of a Flat index by a GPU searcher: fp16 (default;\n"     \
    "                     candidates re-scored in fp32) or fp32 vectors on the GPU, or faiss\n"    \
    "                     (FAISS on the CPU, as for every other index and device)\n"               \
    "  --param NAME=V     FAISS search parameter for these queries, e.g. nprobe=16 (IVF),\n"       \
    "                     efSearch=128 (HNSW); may repeat\n"

/* --quantize, --rescore and --rescore-factor of `dre embed` and `dre index import`, as
 * cli_search_option reads its options. */
int cli_quantize_option(int argc, char **argv, int *i, const char *cmd, dre_quantize *quantize,
                        dre_rescore *rescore, int32_t *factor, int *usage_rc);
#define CLI_QUANTIZE_OPTIONS_HELP                                                                  \
    "  --quantize Q           none (default), int8 or binary: the index keeps 8-bit codes\n"      \
    "                         (FAISS SQ8; --factory default SQ8) or sign bits (a FAISS\n"         \
    "                         binary index, 32x smaller than fp32; --factory default BFlat,\n"    \
    "                         or BHNSW32, BIVF1024...) in RAM, and its search rescores the\n"    \
    "                         top k x factor candidates exactly from vectors memory-mapped\n"     \
    "                         beside it (vectors.i8 or vectors.f32)\n"                            \
    "  --rescore R            the rescoring vectors: int8 (binary's default) or fp32\n"          \
    "                         (int8's only kind)\n"                                               \
    "  --rescore-factor N     candidates per result rescored by default (4); a search may\n"      \
    "                         set its own with --param rescore_factor=N (0: no rescoring)\n"

/* Writes the .npy 1.0 header of a float32 (rows, dim) matrix; 0 on a write error. */
int cli_write_npy_header(FILE *f, long long rows, int dim);

/* `dre bench search --corpus-vectors N`: the scale benchmark of index kinds (bench_corpus.c). */
int bench_corpus(int argc, char **argv);

/* Monotonic seconds, for timing. */
double cli_seconds(void);

/* splitmix64: a small seeded generator for benchmark data (tools/bench/peer_encoder.py draws
 * the same sequence). */
uint64_t cli_splitmix64(uint64_t *state);

/* The default model folder: $DRE_MODEL, else models/all-MiniLM-L6-v2. */
const char *cli_default_model(void);

#endif
