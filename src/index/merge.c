/* index/merge.c — dre_index_merge: a sharded index folded into one ordinary index folder, as
 * one process would have written it. IVF shards, which share their trained coarse quantizer,
 * are merged list by list (FAISS's merge_from, ids shifted by the shards before); Flat shards
 * by their vectors. Documents are appended shard by shard, the BM25 table rebuilt over all. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "common/fileio.h"
#include "index/docstore.h"
#include "index/docstore_merge.h"
#include "index/index.h"
#include "index/shards.h"

#define MERGE_CHUNK 65536 /* Flat vectors moved at a time */

/* 1 if two IVF indexes have the same coarse centroids (bit for bit). */
static int same_quantizer(FaissIndexIVF *a, FaissIndexIVF *b, int dim) {
    size_t nlist = faiss_IndexIVF_nlist(a);
    if (nlist != faiss_IndexIVF_nlist(b)) return 0;
    float *ca = malloc(nlist * (size_t)dim * sizeof(float));
    float *cb = malloc(nlist * (size_t)dim * sizeof(float));
    int same = ca && cb &&
               !faiss_Index_reconstruct_n(faiss_IndexIVF_quantizer(a), 0, (idx_t)nlist, ca) &&
               !faiss_Index_reconstruct_n(faiss_IndexIVF_quantizer(b), 0, (idx_t)nlist, cb) &&
               !memcmp(ca, cb, nlist * (size_t)dim * sizeof(float));
    free(ca);
    free(cb);
    return same;
}

/* Moves the vectors of other (a Flat index) to the end of into. */
static dre_status append_flat(FaissIndex *into, FaissIndex *other, int dim) {
    idx_t n = faiss_Index_ntotal(other);
    float *buf = malloc((size_t)MERGE_CHUNK * (size_t)dim * sizeof(float));
    if (!buf) return dre_set_error(DRE_ERR_NOMEM, "merge: out of memory");
    dre_status st = DRE_OK;
    for (idx_t at = 0; at < n && st == DRE_OK; at += MERGE_CHUNK) {
        idx_t m = n - at < MERGE_CHUNK ? n - at : MERGE_CHUNK;
        if (faiss_Index_reconstruct_n(other, at, m, buf))
            st = dre_index_faiss_error("merge: reading a shard's vectors");
        else
            st = dre_index_faiss_add(into, m, buf);
    }
    free(buf);
    return st;
}

/* The shards' FAISS indexes, one after another, into *out (the first shard's, grown). */
static dre_status merge_vectors(const char *dir, const shards_manifest *m, FaissIndex **out) {
    char path[PATH_MAX];
    FaissIndex *base = NULL;
    const int dim = m->info.dim;
    dre_status st = DRE_OK;
    for (int32_t s = 0; s < m->info.n_shards && st == DRE_OK; s++) {
        char shard[PATH_MAX];
        st = dre_path_join(shard, sizeof shard, dir, m->shards[s].dir);
        if (st == DRE_OK) st = dre_path_join(path, sizeof path, shard, INDEX_FAISS_FILE);
        FaissIndex *ix = NULL;
        if (st == DRE_OK) st = dre_index_faiss_read(path, &ix);
        if (st != DRE_OK) break;
        if (!base) {
            base = ix;
            if (!faiss_IndexIVF_cast(base) && !faiss_IndexFlat_cast(base))
                st = dre_set_error(DRE_ERR_UNSUPPORTED,
                                   "%s: a \"%s\" index: dre index merge folds IVF and Flat shards "
                                   "(search the sharded folder as it is instead)",
                                   dir, m->info.factory);
            continue;
        }
        FaissIndexIVF *ivf = faiss_IndexIVF_cast(base), *other = faiss_IndexIVF_cast(ix);
        if (ivf) {
            if (!other || !same_quantizer(ivf, other, dim))
                st = dre_set_error(DRE_ERR_MISMATCH,
                                   "%s: %s's coarse quantizer is not the first shard's: IVF shards "
                                   "merge only when trained as one (mpirun dre embed does that)",
                                   dir, m->shards[s].dir);
            else if (faiss_IndexIVF_merge_from(ivf, other, faiss_Index_ntotal(base)))
                st = dre_index_faiss_error("merge: IVF merge_from");
        } else {
            st = append_flat(base, ix, dim);
        }
        faiss_Index_free(ix);
    }
    if (st != DRE_OK) {
        if (base) faiss_Index_free(base);
        return st;
    }
    *out = base;
    return DRE_OK;
}

/* The shards' docstores, one after another, into out/docs.sqlite. */
static dre_status merge_docs(const char *dir, const shards_manifest *m, const char *out) {
    char tmp[PATH_MAX], final_path[PATH_MAX], src[PATH_MAX], shard[PATH_MAX];
    DRE_TRY(dre_path_join(final_path, sizeof final_path, out, INDEX_DOCS_FILE));
    if (snprintf(tmp, sizeof tmp, "%s.tmp", final_path) >= (int)sizeof tmp)
        return dre_set_error(DRE_ERR_INVALID_ARG, "path too long: %s", final_path);
    DRE_TRY(dre_path_join(shard, sizeof shard, dir, m->shards[0].dir));
    DRE_TRY(dre_path_join(src, sizeof src, shard, INDEX_DOCS_FILE));
    DRE_TRY(dre_docstore_copy(src, tmp));
    docstore *ds = NULL;
    dre_status st = dre_docstore_open(tmp, 1, &ds);
    int64_t rows = m->shards[0].count, vectors = m->shards[0].n_vectors;
    for (int32_t s = 1; s < m->info.n_shards && st == DRE_OK; s++) {
        st = dre_path_join(shard, sizeof shard, dir, m->shards[s].dir);
        if (st == DRE_OK) st = dre_path_join(src, sizeof src, shard, INDEX_DOCS_FILE);
        if (st == DRE_OK) st = dre_docstore_append_from(ds, src, rows, vectors);
        rows += m->shards[s].count;
        vectors += m->shards[s].n_vectors;
    }
    if (st == DRE_OK) st = dre_docstore_rebuild_bm25(ds);
    dre_docstore_close(ds); /* back to one file */
    if (st == DRE_OK) st = dre_rename_synced(tmp, final_path);
    if (st != DRE_OK) remove(tmp);
    return st;
}

dre_status dre_index_merge(const char *sharded_dir, const char *out_dir) {
    if (!sharded_dir || !out_dir)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_merge: NULL argument");
    if (!dre_shards_is_sharded(sharded_dir))
        return dre_set_error(DRE_ERR_INVALID_ARG, "%s: not a sharded index (no manifest of shards)",
                             sharded_dir);
    shards_manifest m = {0};
    DRE_TRY(dre_shards_manifest_read(sharded_dir, &m));
    dre_status st = DRE_OK;
    if (m.info.quantize != DRE_QUANTIZE_NONE)
        st = dre_set_error(DRE_ERR_UNSUPPORTED,
                           "%s: a quantized index: dre index merge folds IVF and Flat shards",
                           sharded_dir);
    if (st == DRE_OK && mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        st = dre_set_error(DRE_ERR_IO, "%s: cannot create: %s", out_dir, strerror(errno));
    if (st == DRE_OK && dre_file_exists_in(out_dir, INDEX_META_FILE))
        st = dre_set_error(DRE_ERR_INVALID_ARG, "%s already holds an index; choose another folder",
                           out_dir);
    FaissIndex *merged = NULL;
    if (st == DRE_OK) st = merge_vectors(sharded_dir, &m, &merged);
    char path[PATH_MAX];
    if (st == DRE_OK) st = dre_path_join(path, sizeof path, out_dir, INDEX_FAISS_FILE);
    if (st == DRE_OK) st = dre_index_faiss_write(merged, path);
    if (merged) faiss_Index_free(merged);
    if (st == DRE_OK) st = merge_docs(sharded_dir, &m, out_dir);
    if (st == DRE_OK) { /* meta.json last: the folder is an index from here on */
        dre_index_info info = m.info;
        info.n_shards = 0;
        info.format_version = info.chunk_tokens > 0 ? 2 : 1;
        st = dre_index_meta_write(out_dir, &info);
    }
    if (st == DRE_OK) st = dre_sync_path(out_dir);
    dre_shards_manifest_free(&m);
    return st;
}
