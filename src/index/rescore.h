/* index/rescore.h — the rescoring vectors beside a quantized index: vectors.i8 (FAISS SQ8
 * codes, a byte a dimension) or vectors.f32, a row per vector of index.faiss, memory-mapped
 * when opened, so only the rows a search rescores are ever read.
 *
 * File: a header of header_bytes (a multiple of 4096) — "DREVECS\0", then little-endian u32
 * version (1), kind (1 int8, 2 fp32), dim, header_bytes, u64 rows; from byte 64, for int8,
 * float vmin[dim] and vdiff[dim] (the SQ8 ranges: a code c decodes to vmin + vdiff *
 * ((c + 0.5) / 255), as FAISS decodes) — then the rows. */
#ifndef DRE_INDEX_RESCORE_H
#define DRE_INDEX_RESCORE_H

#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

#define INDEX_RESCORE_INT8_FILE "vectors.i8"
#define INDEX_RESCORE_FP32_FILE "vectors.f32"
/* The int8 ranges are trained on the first this many vectors (as FAISS SQ8's in dre). */
#define INDEX_RESCORE_TRAIN_SIZE 65536

typedef struct rescore_vectors rescore_vectors;

/* The file's name in an index folder ("vectors.i8" or "vectors.f32"). */
const char *dre_rescore_file_name(dre_rescore kind);

/* Maps the file read-only (the kernel reads ahead nothing: rows are read where scored) and
 * checks its header against what meta.json says: kind, dim, rows. */
dre_status dre_rescore_open(const char *path, dre_rescore kind, int32_t dim, int64_t rows,
                            rescore_vectors **out);
void dre_rescore_close(rescore_vectors *r);
int64_t dre_rescore_rows(const rescore_vectors *r);

/* out[i] = query . row rows[i] (decoded), -inf where rows[i] < 0. int8 rows are scored as
 * base + sum (query[d] * vdiff[d] / 255) * code[d], the same sum as over FAISS's decoded
 * vectors up to float rounding. */
dre_status dre_rescore_score(const rescore_vectors *r, const float *query, const int64_t *rows,
                             int64_t n, float *out);
/* Rows [first, first + n) decoded to floats. */
void dre_rescore_decode(const rescore_vectors *r, int64_t first, int64_t n, float *out);
/* int8: the ranges (dim floats each); DRE_ERR_UNSUPPORTED for fp32. */
dre_status dre_rescore_ranges(const rescore_vectors *r, const float **vmin, const float **vdiff);

/* Writes path (through path.tmp, synced, renamed): base's rows first (NULL: none), then the
 * n float vectors of staged_fd (rows 0 .. n - 1 of a file of dim floats a row, named
 * staged_path in errors). int8 codes are FAISS's: with base's ranges, or with ranges
 * trained (FAISS SQ8, min and max) on the first min(n, train_n) staged vectors. */
dre_status dre_rescore_write(const char *path, dre_rescore kind, int32_t dim,
                             const rescore_vectors *base, int staged_fd, const char *staged_path,
                             int64_t n, int64_t train_n);

#ifdef __cplusplus
}
#endif
#endif
