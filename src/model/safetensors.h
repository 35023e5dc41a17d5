/* model/safetensors.h — a validating reader of the safetensors format, memory-mapped:
 * an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
 * and byte range, then the raw data. */
#ifndef DRE_SAFETENSORS_H
#define DRE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_MAX_DIMS 8

typedef enum st_dtype {
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U64,
    ST_U32,
    ST_U16,
    ST_U8,
    ST_BOOL,
    ST_F8_E4M3,
    ST_F8_E5M2,
} st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    size_t n_elements;
    const uint8_t *data; /* inside the mapping; n_elements * dre_st_dtype_size(dtype) bytes */
} st_tensor;

typedef struct st_file {
    char *path;
    const uint8_t *map; /* the whole file */
    size_t map_len;
    st_tensor *tensors;
    size_t n_tensors;
} st_file;

/* Maps and validates path: the header length fits in the file, the header is a JSON
 * object, every tensor has a known dtype, a shape, and data_offsets inside the data
 * area whose length is shape * dtype size; names are unique. Errors name the file and
 * the tensor. On failure *out is left closed. */
dre_status dre_st_open(const char *path, st_file *out);
void dre_st_close(st_file *f);

/* The tensor called name, or NULL. */
const st_tensor *dre_st_find(const st_file *f, const char *name);

size_t dre_st_dtype_size(st_dtype dtype);
const char *dre_st_dtype_name(st_dtype dtype);

/* Converts n elements of an F32, F16 or BF16 tensor's data to fp32 (unaligned input ok). */
void dre_st_to_f32(const uint8_t *data, st_dtype dtype, size_t n, float *out);

#ifdef __cplusplus
}
#endif
#endif
