/* index/index.h — the files of an index folder, shared by the index writer and the tests: FAISS
 * indexes made from factory strings (inner product), their files, and meta.json. */
#ifndef DRE_INDEX_H
#define DRE_INDEX_H

#include <faiss/c_api/IndexBinary_c.h>
#include <faiss/c_api/Index_c.h>
#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The newest format this dre reads. 1: a vector per document; 2: may hold documents cut
 * into chunks (n_vectors, chunk_tokens and chunk_overlap in meta.json, a chunks table in
 * docs.sqlite); 3: may be quantized (quantize, rescore and rescore_factor in meta.json, the
 * rescoring vectors beside index.faiss). dre embed writes the lowest that describes the
 * index, so older readers refuse just the indexes they cannot read. */
#define INDEX_FORMAT_VERSION 3
#define INDEX_FAISS_FILE "index.faiss"
#define INDEX_DOCS_FILE "docs.sqlite"
#define INDEX_META_FILE "meta.json"
/* Left by an embed while it runs (removed when it finishes): see index/writer.h. */
#define INDEX_CHECKPOINT_FILE "embed-checkpoint.json"
#define INDEX_DEFAULT_FACTORY "Flat"

/* Records FAISS's last error message under status DRE_ERR_INDEX. */
dre_status dre_index_faiss_error(const char *what);

/* An empty index for dim-dimensional vectors compared by inner product. */
dre_status dre_index_faiss_create(const char *factory, int32_t dim, FaissIndex **out);

/* How many vectors an untrained index should be trained on, 0 if it needs no training.
 * IVF: 64 per list, at least 65536 and at most 1 Mi (FAISS's k-means wants >= 39 per
 * centroid; a PQ inside wants >= 256 x 39); other trained kinds (PQ, SQ, PCA): 65536. */
int64_t dre_index_faiss_train_size(FaissIndex *ix);
/* Trains on n vectors; an IVF index needs at least as many as it has lists. */
dre_status dre_index_faiss_train(FaissIndex *ix, int64_t n, const float *x);

/* Adds n vectors as rows ntotal .. ntotal + n - 1: with add_with_ids where the index
 * keeps ids (IDMap), else with add, whose ids are that same sequence. */
dre_status dre_index_faiss_add(FaissIndex *ix, int64_t n, const float *x);

/* The current value of a search parameter by its faiss::ParameterSpace name (C++:
 * index/faiss_params.cpp); -1 if the index has none of that name, 0 otherwise. */
int dre_index_faiss_param_get(FaissIndex *index, const char *name, double *value);
/* Sets one through faiss::ParameterSpace; DRE_ERR_INVALID_ARG with FAISS's reason if it can't. */
dre_status dre_index_faiss_param_set(FaissIndex *index, const char *name, double value);

dre_status dre_index_faiss_write(FaissIndex *ix, const char *path);
/* The same for a binary index. */
dre_status dre_index_faiss_write_binary(FaissIndexBinary *ix, const char *path);
dre_status dre_index_faiss_read(const char *path, FaissIndex **out);

/* An unquantized Flat index's vectors ([n_vectors, dim], FAISS's own storage, valid while the
 * index is open): what a GPU searcher uploads and re-scores from; NULL for other kinds. */
const float *dre_index_flat_vectors(const dre_index *index);

/* meta.json of an index folder (index/meta.c). The checksum of index.faiss is computed
 * and recorded when the file is there; read_checksum gives the recorded one ("" if none). */
dre_status dre_index_meta_write(const char *dir, const dre_index_info *info);
dre_status dre_index_meta_read(const char *dir, dre_index_info *info);
dre_status dre_index_meta_read_checksum(const char *dir, dre_index_info *info, char checksum[17]);
/* The pieces, for the manifest of a sharded index (index/shards.c) too: meta.json's object of
 * info (no checksum; NULL when out of memory), a JSON object written to path atomically, and
 * meta.json's fields parsed from an object of a format up to max_format (checksum receives its
 * "index_checksum", "" where it has none). */
struct cJSON *dre_index_meta_object(const dre_index_info *info);
dre_status dre_index_json_write(const char *path, const struct cJSON *root);
dre_status dre_index_meta_parse(const struct cJSON *root, const char *path, int32_t max_format,
                                dre_index_info *info, char checksum[17]);
/* A 64-bit checksum of a file as 16 hex digits (see index/meta.c). */
dre_status dre_index_file_checksum(const char *path, char hex[17]);

/* "mean" / "cls" and back. */
const char *dre_pooling_name(dre_pooling pooling);

/* The one check that a model is the one an index was embedded with (dre embed --append,
 * every searcher: dre search, dre eval, dre serve): dim and weights hash, and (meta not
 * NULL) pooling, normalisation and max length. DRE_ERR_MISMATCH naming `what` and both
 * sides otherwise. */
dre_status dre_index_model_matches(const char *what, const dre_model_info *m, int32_t dim,
                                   const char *sha256, const dre_index_info *meta);

#ifdef __cplusplus
}
#endif
#endif
