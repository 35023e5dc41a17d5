/* cmd_export.c — `dre export INDEX OUT.npy`: the index's vectors as a float32 [count, dim]
 * .npy file in row order (row i = docstore row i), optionally with the ids beside it. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Rows reconstructed and written at a time. */
#define EXPORT_CHUNK 16384

static void usage(FILE *f) {
    fprintf(f, "usage: dre export [options] [--index] INDEX OUT.npy\n"
               "\n"
               "Writes the vectors of the index folder INDEX to OUT.npy (NumPy format 1.0,\n"
               "float32, shape [vectors, dim], C order), row i being docstore row i, or for an\n"
               "index of chunked documents, chunk i (--ids tells whose). Indexes that compress\n"
               "vectors (PQ, SQ) give their reconstructions.\n"
               "\n"
               "  --ids FILE   also write the document ids, one per line, in the same order\n"
               "               (chunked: id<TAB>chunk number)\n"
               "  -h, --help   this help\n");
}

/* The document id of each vector row, a line each; with chunks, "id<TAB>chunk". */
static int export_ids(dre_index *index, const char *path, int64_t n_vectors, int chunked) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "dre export: %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (int64_t v = 0; v < n_vectors; v++) {
        int64_t row = 0;
        int32_t chunk = 0;
        dre_doc doc;
        dre_status st = dre_index_chunk(index, v, &row, &chunk);
        if (st == DRE_OK) st = dre_index_doc(index, row, &doc);
        if (st != DRE_OK) {
            fclose(f);
            return cli_fail("export", st);
        }
        if (chunked)
            fprintf(f, "%s\t%d\n", doc.id, chunk);
        else
            fprintf(f, "%s\n", doc.id);
        dre_doc_clear(&doc);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "dre export: %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *positional[2] = {NULL, NULL}, *ids_path = NULL;
    int n_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(arg, "--ids")) {
            if (i + 1 >= argc) return cli_usage_error("export", "--ids needs a FILE");
            ids_path = argv[++i];
        } else if (!strncmp(arg, "--ids=", 6)) {
            ids_path = arg + 6;
        } else if (!strcmp(arg, "--index") && i + 1 < argc && n_positional == 0) {
            positional[n_positional++] = argv[++i];
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return cli_usage_error("export", "unknown option '%s'", arg);
        } else if (n_positional < 2) {
            positional[n_positional++] = arg;
        } else {
            return cli_usage_error("export", "unexpected argument '%s'", arg);
        }
    }
    if (n_positional != 2) return cli_usage_error("export", "needs INDEX and OUT.npy");

    dre_index *index = NULL;
    dre_status st = dre_index_open(positional[0], &index);
    if (st != DRE_OK) return cli_fail("export", st);
    const dre_index_info *info = dre_index_get_info(index);
    int64_t count = info->n_vectors;
    int dim = info->dim;
    float *buf = malloc((size_t)EXPORT_CHUNK * (size_t)dim * sizeof *buf);
    FILE *f = fopen(positional[1], "wb");
    int rc = 0;
    if (!buf) {
        fprintf(stderr, "dre export: out of memory\n");
        rc = 1;
    } else if (!f) {
        fprintf(stderr, "dre export: %s: %s\n", positional[1], strerror(errno));
        rc = 1;
    } else if (!cli_write_npy_header(f, (long long)count, dim)) {
        fprintf(stderr, "dre export: %s: write failed\n", positional[1]);
        rc = 1;
    }
    for (int64_t first = 0; rc == 0 && first < count; first += EXPORT_CHUNK) {
        int64_t n = count - first < EXPORT_CHUNK ? count - first : EXPORT_CHUNK;
        st = dre_index_vectors(index, first, n, buf);
        if (st != DRE_OK) {
            rc = cli_fail("export", st);
        } else if (fwrite(buf, sizeof *buf * (size_t)dim, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "dre export: %s: %s\n", positional[1], strerror(errno));
            rc = 1;
        }
    }
    if (f && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "dre export: %s: %s\n", positional[1], strerror(errno));
        rc = 1;
    }
    free(buf);
    if (rc == 0 && ids_path) rc = export_ids(index, ids_path, count, info->chunk_tokens > 0);
    if (rc == 0 && info->chunk_tokens > 0)
        fprintf(stderr, "dre export: %lld vectors: the chunks of %lld documents\n",
                (long long)count, (long long)info->count);
    dre_index_close(index);
    return rc;
}
