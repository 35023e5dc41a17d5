/* index/npy.h — reading a matrix of vectors from a NumPy .npy file (format 1.0 to 3.0): a
 * little-endian float32 ('<f4') or float16 ('<f2') array of shape (rows, cols) in C order,
 * read a block of rows at a time as floats. What `dre index import` and `dre search
 * --query-vectors` take. */
#ifndef DRE_INDEX_NPY_H
#define DRE_INDEX_NPY_H

#include <limits.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct npy_matrix {
    int fd;
    int64_t rows;
    int32_t cols;
    int item_bytes;      /* 4 (float32) or 2 (float16) */
    int64_t data_offset; /* where row 0 starts */
    char path[PATH_MAX];
} npy_matrix;

/* Opens and checks the header: errors name the file and what is wrong with it. */
dre_status dre_npy_open(const char *path, npy_matrix *out);
/* Rows [first, first + n) as floats (float16 converted exactly). */
dre_status dre_npy_read(const npy_matrix *m, int64_t first, int64_t n, float *out);
void dre_npy_close(npy_matrix *m);

#ifdef __cplusplus
}
#endif
#endif
