/* index/vindex.h — the part of an index that is searched in RAM (index.faiss): a FAISS index
 * of float vectors, made from a factory string ("Flat", "HNSW32", "IVF4096,PQ48", "SQ8"...),
 * or, for DRE_QUANTIZE_BINARY, a FAISS binary index ("BFlat", "BHNSW32", "BIVF1024") of
 * each vector's sign bits. Both take float vectors; a binary one packs them itself. The
 * rescoring vectors beside a quantized index are index/rescore.h's. */
#ifndef DRE_INDEX_VINDEX_H
#define DRE_INDEX_VINDEX_H

#include <faiss/c_api/IndexBinary_c.h>
#include <faiss/c_api/Index_c.h>
#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vindex vindex;

/* The factory an index of this quantization gets when none is given. */
const char *dre_vindex_default_factory(dre_quantize quantize);

/* An empty index: a float one compared by inner product, or (binary) a Hamming one. */
dre_status dre_vindex_create(const char *factory, dre_quantize quantize, int32_t dim,
                             vindex **out);
/* Reads index.faiss as written by dre_vindex_write for this quantization. */
dre_status dre_vindex_read(const char *path, dre_quantize quantize, vindex **out);
dre_status dre_vindex_write(const vindex *v, const char *path);
void dre_vindex_free(vindex *v);

int64_t dre_vindex_ntotal(const vindex *v);
int32_t dre_vindex_dim(const vindex *v);
int dre_vindex_is_trained(const vindex *v);
/* How many vectors to train on (0 once trained): dre_index_faiss_train_size's rule. */
int64_t dre_vindex_train_size(const vindex *v);
dre_status dre_vindex_train(vindex *v, int64_t n, const float *x);
/* Room for n more vectors where the index keeps them in one array (Flat, SQ8, BFlat):
 * their memory is taken once, not grown by doubling (which holds old and new at once).
 * Without the memory, nothing changes (the adds say so). */
void dre_vindex_reserve(vindex *v, int64_t n);
/* Adds n vectors as rows ntotal .. ntotal + n - 1. */
dre_status dre_vindex_add(vindex *v, int64_t n, const float *x);

/* The k best rows for n queries, best first (rows -1 past the end). A float index scores by
 * inner product as FAISS computes it (from its codes, for SQ or PQ); a binary one by the
 * inner product of the sign vectors over dim, (dim - 2 * Hamming distance) / dim, equal
 * distances by row. A BFlat index is searched by index/hamming.h's scan (FAISS's answers,
 * faster), the other binary kinds by FAISS. */
dre_status dre_vindex_search(const vindex *v, const float *queries, int64_t n, int32_t k,
                             float *scores, int64_t *rows);

/* A search parameter by FAISS's name: get (0, or -1 where the index has none of that name)
 * and set. */
int dre_vindex_param_get(vindex *v, const char *name, double *value);
dre_status dre_vindex_param_set(vindex *v, const char *name, double value);

/* Rows [first, first + n) decoded to floats: a float index's reconstruction (exact for Flat);
 * DRE_ERR_UNSUPPORTED for a binary one (its rescoring vectors hold them). */
dre_status dre_vindex_reconstruct(const vindex *v, int64_t first, int64_t n, float *out);

/* Sign bits of n vectors, dim / 8 bytes each, most significant bit first (numpy's
 * packbits(x > 0)): the codes of a binary index. */
void dre_vindex_pack_signs(const float *x, int64_t n, int32_t dim, uint8_t *codes);

/* C++ (index/faiss_gaps.cpp): FAISS calls that its C API lacks. Errors as text in err. */
int dre_faiss_binary_create(const char *factory, int dim, FaissIndexBinary **out, char *err,
                            size_t cap);
size_t dre_faiss_binary_nlist(FaissIndexBinary *index);
/* An IndexBinaryFlat's codes (ntotal x d / 8 bytes), or NULL for any other binary index. */
const uint8_t *dre_faiss_binary_flat_codes(FaissIndexBinary *index);
/* get != NULL: reads the parameter into *get; else sets it to set. -1: no such parameter. */
int dre_faiss_binary_param(FaissIndexBinary *index, const char *name, double *get, double set);
/* An 8-bit scalar quantizer's trained per-dimension minimum and range (decode: vmin + vdiff *
 * (code + 0.5) / 255); -1 if index is not a trained "SQ8". */
int dre_faiss_sq8_ranges(FaissIndex *index, float *vmin, float *vdiff);
/* A trained "SQ8" index with these ranges (to encode more vectors as earlier ones were). */
int dre_faiss_sq8_from_ranges(int dim, const float *vmin, const float *vdiff, FaissIndex **out);
/* An IndexFlat's vectors (ntotal x d floats, its own storage), or NULL for any other index. */
const float *dre_faiss_flat_data(FaissIndex *index);
/* Room for `more` vectors beyond ntotal in a flat-coded index (Flat, SQ, PQ's codes) or an
 * IndexBinaryFlat (index or bin, the other NULL); other kinds unchanged. -1: no memory. */
int dre_faiss_reserve(FaissIndex *index, FaissIndexBinary *bin, int64_t more);

/* A Flat index's vectors, held by FAISS, valid while v is; NULL for any other kind. */
const float *dre_vindex_flat_data(const vindex *v);

#ifdef __cplusplus
}
#endif
#endif
