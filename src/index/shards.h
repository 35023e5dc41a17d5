/* index/shards.h — a sharded index: a folder of complete index folders (shard-00000,
 * shard-00001, ...; each one an ordinary index with its own index.faiss, docs.sqlite and
 * meta.json) and, written last, the folder's own meta.json: the manifest. Shard r holds a
 * contiguous run of the corpus's documents, so the index's global row of a shard's local
 * row is the documents of the shards before it plus the local row (vector rows alike), and
 * the shards in order are the one-process index's rows in order.
 *
 * The manifest is meta.json with format_version INDEX_FORMAT_SHARDED, the fields every shard
 * shares (model, dim, pooling, normalisation, max length, factory, prompts, chunking,
 * quantization, bm25), the totals (count, n_vectors) and "shards": [{"dir", "count",
 * "n_vectors"}, ...] in order. A reader that sees no manifest sees no index: a half-built
 * sharded index is never opened. dre_index_open reads either kind. */
#ifndef DRE_INDEX_SHARDS_H
#define DRE_INDEX_SHARDS_H

#include <stdint.h>

#include "dre.h"
#include "index/docstore.h"

#ifdef __cplusplus
extern "C" {
#endif

/* meta.json's format_version of a manifest. */
#define INDEX_FORMAT_SHARDED 4
/* The folder of shard r inside a sharded index (printf format). */
#define INDEX_SHARD_DIR_FORMAT "shard-%05d"

/* Writes dir/meta.json as the manifest of shards 0 .. n_shards-1 (each a finished index
 * folder dir/shard-XXXXX): reads each shard's meta.json, checks that they agree on every
 * shared field (DRE_ERR_MISMATCH naming both shards and the field otherwise), sums the
 * counts, and writes the manifest to a temporary name renamed into place. */
dre_status dre_shards_manifest_write(const char *dir, int32_t n_shards);

/* 1 if dir/meta.json is a manifest, 0 if it is an ordinary index's or absent. */
int dre_shards_is_sharded(const char *dir);

/* ---- the manifest, read */

typedef struct shard_entry {
    char dir[64];      /* the shard's folder inside the sharded index's (one path component) */
    int64_t count;     /* its documents */
    int64_t n_vectors; /* its vectors */
} shard_entry;

typedef struct shards_manifest {
    dre_index_info info; /* the shared fields, the totals, format_version 4, n_shards */
    shard_entry *shards; /* [info.n_shards], in order (malloc'ed) */
} shards_manifest;

/* Reads and checks dir/meta.json as a manifest: the counts add up to the totals. */
dre_status dre_shards_manifest_read(const char *dir, shards_manifest *m);
void dre_shards_manifest_free(shards_manifest *m);

/* ---- reading: what index/index.c's dre_index_* calls branch to on a sharded index, and the
 * pieces a process of an MPI job calls to search its own shards: open a run of them
 * (dre_index_open_shards), sum BM25 statistics over them (dre_index_bm25_stats), add those of
 * the other processes (dre_bm25_stats_add, or MPI_Allreduce of the 2 + n_phrases counts), then
 * search with the sums (dre_index_search, dre_index_search_with, dre_index_bm25_search_stats):
 * rows come back global, so lists of several processes merge as lists of shards do (best
 * first, equal scores by row). */

typedef struct shard_set shard_set;

/* Opens shards first .. first + n - 1 of the sharded index dir (n < 0: every shard) as one
 * dre_index: its info is the manifest's (the whole index's totals, n_shards all its shards);
 * its rows are global, and rows of shards it did not open are refused (doc, vectors, chunk)
 * or never found (searches). dre_index_open(dir) is dre_index_open_shards(dir, 0, -1). */
dre_status dre_index_open_shards(const char *dir, int32_t first, int32_t n, dre_index **out);

/* The BM25 statistics of a query over the documents of an index (of the shards it opened),
 * and dre_index_bm25_search ranking by the statistics given (those of every shard of the
 * index, wherever they are open, for answers equal to the unsharded index's). Release stats
 * with dre_bm25_stats_free. */
dre_status dre_index_bm25_stats(dre_index *index, const char *query, bm25_stats *stats);
dre_status dre_index_bm25_search_stats(dre_index *index, const char *query, const bm25_stats *stats,
                                       int32_t k, double *scores, int64_t *rows, int32_t *n);

/* Shards other processes hold (dist/: mpirun dre serve). A handle of a run of shards given
 * this asks it for the rest: searches merge its answers (rows global, best first, equal scores
 * by row) with the open shards', BM25 statistics add its sums, documents and chunks of rows in
 * shards not open come from it. Each call answers for every shard the handle has not opened. */
typedef struct shards_remote {
    void *ctx;
    dre_status (*search)(void *ctx, const float *queries, int64_t n, int32_t k,
                         const dre_search_param *params, int32_t n_params, float *scores,
                         int64_t *rows);
    /* stats->n_phrases is the query's (set by the caller); the counts are filled */
    dre_status (*bm25_counts)(void *ctx, const char *query, bm25_stats *stats);
    dre_status (*bm25_search)(void *ctx, const char *query, const bm25_stats *stats, int32_t k,
                              double *scores, int64_t *rows, int32_t *n);
    dre_status (*doc)(void *ctx, int64_t row, dre_doc *doc);
    dre_status (*chunk)(void *ctx, int64_t vector_row, int64_t *doc_row, int32_t *chunk);
} shards_remote;

/* Hands a handle of a run of shards (dre_index_open_shards) the rest of them; remote must
 * outlive it. DRE_ERR_INVALID_ARG for an ordinary index. */
dre_status dre_index_set_remote(dre_index *index, const shards_remote *remote);
void dre_shards_set_remote(shard_set *set, const shards_remote *remote);

/* index/shards.c's side of the dre_index_* calls (arguments checked by the caller). */
dre_status dre_shards_open(const char *dir, int32_t first, int32_t n, shard_set **out,
                           dre_index_info *info);
void dre_shards_close(shard_set *set);
dre_status dre_shards_search(shard_set *set, const float *queries, int64_t n, int32_t k,
                             const dre_search_param *params, int32_t n_params, float *scores,
                             int64_t *rows);
dre_status dre_shards_set_param(shard_set *set, const char *name, double value);
dre_status dre_shards_doc(shard_set *set, int64_t row, dre_doc *doc);
dre_status dre_shards_vectors(shard_set *set, int32_t dim, int64_t first, int64_t n, float *out);
dre_status dre_shards_chunk(const shard_set *set, int64_t vector_row, int64_t *doc_row,
                            int32_t *chunk);
dre_status dre_shards_bm25_stats(shard_set *set, const char *query, bm25_stats *stats);
dre_status dre_shards_bm25_search_stats(shard_set *set, const char *query, const bm25_stats *stats,
                                        int32_t k, double *scores, int64_t *rows, int32_t *n);
const dre_index_info *dre_shards_shard_info(const shard_set *set, int32_t i, const char **dir,
                                            int64_t *first_row, int64_t *first_vector);

#ifdef __cplusplus
}
#endif
#endif
