/* cmd_info.c — `dre info INDEX`: what an index folder holds: documents, model, pooling,
 * FAISS factory, file sizes, and a sharded index's shards. `dre info --cpu`: the path the CPU
 * encoder takes at each --precision on this CPU, and why. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: dre info [--json] [--index] INDEX\n"
            "       dre info --cpu\n"
            "\n"
            "Describes the index folder INDEX (made by `dre embed`): documents, model and its\n"
            "weights hash, vector dimension, pooling, FAISS factory, BM25, prompts, file sizes;\n"
            "of a sharded index, its shards too (file sizes are their sums).\n"
            "\n"
            "  --json      one JSON object\n"
            "  --cpu       this CPU and the path the CPU encoder's products take at each\n"
            "              --precision (fp32, bf16, int8) on it, and why\n"
            "  -h, --help  this help\n");
}

static long long file_size_in(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return -1;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The size of an index's file: a sharded index's, summed over its shards. */
static long long file_size(const dre_index *index, const char *dir, const char *name) {
    const int32_t n_shards = dre_index_get_info(index)->n_shards;
    if (n_shards == 0) return file_size_in(dir, name);
    long long sum = 0;
    for (int32_t i = 0; i < n_shards; i++) {
        const char *shard_dir = NULL;
        long long size = -1;
        if (dre_index_shard_info(index, i, &shard_dir, NULL, NULL))
            size = file_size_in(shard_dir, name);
        if (size < 0) return -1;
        sum += size;
    }
    return sum;
}

/* Prints s as a JSON string. */
static void json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* The shards of a sharded index: one line each, or a JSON list. */
static void print_shards(const dre_index *index, int json) {
    const int32_t n_shards = dre_index_get_info(index)->n_shards;
    if (json) printf(", \"n_shards\": %d, \"shards\": [", n_shards);
    for (int32_t i = 0; i < n_shards; i++) {
        const char *dir = NULL;
        int64_t first_row = 0, first_vector = 0;
        const dre_index_info *s = dre_index_shard_info(index, i, &dir, &first_row, &first_vector);
        if (!s) continue;
        if (json) {
            printf("%s{\"dir\": ", i ? ", " : "");
            json_string(dir);
            printf(", \"count\": %lld, \"n_vectors\": %lld, \"first_row\": %lld}",
                   (long long)s->count, (long long)s->n_vectors, (long long)first_row);
        } else
            printf("shard %-6d %s: %lld documents from row %lld\n", i, dir, (long long)s->count,
                   (long long)first_row);
    }
    if (json) printf("]");
}

/* `dre info --cpu`: the CPU's name and the instructions that matter, then each precision's
 * path (dre_cpu_path) */
static int print_cpu(void) {
    char name[256] = "?", *flags = NULL, *line = NULL;
    size_t cap = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && getline(&line, &cap, f) > 0) {
        const char *colon = strchr(line, ':');
        if (!colon) continue;
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "model name", 10) && !strcmp(name, "?"))
            snprintf(name, sizeof name, "%s", colon + 2);
        else if (!strncmp(line, "flags", 5) && !flags && (flags = malloc(strlen(colon) + 2)))
            sprintf(flags, " %s ", colon + 1); /* " flag flag ... " */
    }
    if (f) fclose(f);
    free(line);
    printf("cpu          %s\n", name);
    printf("instructions");
    const char *wanted[] = {"avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16",
                            "amx_int8"};
    const size_t n_wanted = sizeof wanted / sizeof *wanted;
    for (size_t i = 0; i < n_wanted; i++) {
        char key[32];
        snprintf(key, sizeof key, " %s ", wanted[i]);
        printf(" %s %s%s", wanted[i], flags && strstr(flags, key) ? "yes" : "no",
               i + 1 < n_wanted ? "," : "\n");
    }
    free(flags);
    for (int p = DRE_PRECISION_FP32; p <= DRE_PRECISION_INT8; p++) {
        char path[512];
        dre_cpu_path((dre_precision)p, path, sizeof path);
        printf("%-12s %s\n", dre_precision_name((dre_precision)p), path);
    }
    return 0;
}

int cmd_info(int argc, char **argv) {
    const char *dir = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--cpu")) {
            return print_cpu();
        } else if (!strcmp(argv[i], "--index") && i + 1 < argc && !dir) {
            dir = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage_error("info", "one INDEX at a time");
        }
    }
    if (!dir) return cli_usage_error("info", "needs an INDEX folder");
    dre_index *index = NULL;
    dre_status st = dre_index_open(dir, &index);
    if (st != DRE_OK) return cli_fail("info", st);
    const dre_index_info *info = dre_index_get_info(index);
    const char *pooling = info->pooling == DRE_POOL_CLS ? "cls" : "mean";
    long long faiss_bytes = file_size(index, dir, "index.faiss");
    long long docs_bytes = file_size(index, dir, "docs.sqlite");
    const char *rescore_file = info->rescore == DRE_RESCORE_INT8   ? "vectors.i8"
                               : info->rescore == DRE_RESCORE_FP32 ? "vectors.f32"
                                                                   : NULL;
    long long rescore_bytes = rescore_file ? file_size(index, dir, rescore_file) : 0;
    if (json) {
        printf("{\"index\": ");
        json_string(dir);
        printf(", \"format_version\": %d, \"count\": %lld, \"dim\": %d, \"model\": ",
               info->format_version, (long long)info->count, info->dim);
        json_string(info->model_name);
        printf(", \"weights_sha256\": \"%s\", \"pooling\": \"%s\", \"normalize\": %s, "
               "\"max_length\": %d, \"factory\": ",
               info->weights_sha256, pooling, info->normalize ? "true" : "false", info->max_length);
        json_string(info->factory);
        printf(", \"n_vectors\": %lld, \"chunk_tokens\": %d, \"chunk_overlap\": %d",
               (long long)info->n_vectors, info->chunk_tokens, info->chunk_overlap);
        printf(", \"doc_precision\": ");
        json_string(info->doc_precision);
        printf(", \"bm25\": %s, \"doc_prompt\": ", info->bm25 ? "true" : "false");
        json_string(info->doc_prompt);
        printf(", \"query_prompt\": ");
        json_string(info->query_prompt);
        printf(", \"quantize\": \"%s\", \"rescore\": \"%s\", \"rescore_factor\": %d",
               dre_quantize_name(info->quantize), dre_rescore_name(info->rescore),
               info->rescore_factor);
        print_shards(index, 1);
        printf(", \"index_bytes\": %lld, \"docs_bytes\": %lld, \"rescore_bytes\": %lld}\n",
               faiss_bytes, docs_bytes, rescore_bytes);
    } else {
        printf("index        %s\n", dir);
        printf("documents    %lld\n", (long long)info->count);
        if (info->n_shards > 0) printf("shards       %d\n", info->n_shards);
        print_shards(index, 0);
        if (info->chunk_tokens > 0)
            printf("vectors      %lld chunks of up to %d tokens, %d shared\n",
                   (long long)info->n_vectors, info->chunk_tokens, info->chunk_overlap);
        printf("dimension    %d\n", info->dim);
        printf("model        %s\n", info->model_name);
        printf("weights      sha256 %s\n", info->weights_sha256);
        printf("pooling      %s%s\n", pooling, info->normalize ? ", L2-normalised" : "");
        printf("max length   %d tokens\n", info->max_length);
        printf("embedded at  %s\n",
               info->doc_precision[0] ? info->doc_precision : "(not recorded)");
        printf("factory      %s (%s)\n", info->factory,
               info->quantize == DRE_QUANTIZE_BINARY ? "Hamming distance of sign bits"
                                                     : "inner product");
        if (info->quantize != DRE_QUANTIZE_NONE)
            printf("quantized    %s codes in RAM; the top k x %d rescored from %s vectors "
                   "(%s, memory-mapped)\n",
                   dre_quantize_name(info->quantize), info->rescore_factor,
                   dre_rescore_name(info->rescore), rescore_file);
        printf("bm25         %s\n", info->bm25 ? "yes (docs_fts: porter unicode61)" : "no");
        if (info->doc_prompt[0]) printf("doc prompt   \"%s\"\n", info->doc_prompt);
        if (info->query_prompt[0]) printf("query prompt \"%s\"\n", info->query_prompt);
        printf("files        index.faiss %.1f MB, docs.sqlite %.1f MB", faiss_bytes / 1e6,
               docs_bytes / 1e6);
        if (rescore_file) printf(", %s %.1f MB", rescore_file, rescore_bytes / 1e6);
        printf("\n");
        printf("format       %d\n", info->format_version);
    }
    dre_index_close(index);
    return 0;
}
