/* index/npy.c — a float32 or float16 matrix from a .npy file (see index/npy.h). The header is
 * a Python dict literal; only the three keys NumPy writes are read, in any order. */
#define _POSIX_C_SOURCE 200809L
#include "index/npy.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "common/fileio.h"

#define NPY_HEADER_MAX (1 << 20)
/* Rows of a float16 file converted at a time. */
#define F16_BLOCK 4096

/* The text after 'key': in the header dict, or NULL. */
static const char *dict_value(const char *dict, const char *key) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(dict, quoted);
    if (!p) return NULL;
    p += strlen(quoted);
    while (isspace((unsigned char)*p))
        p++;
    if (*p != ':') return NULL;
    p++;
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static dre_status parse_header(const char *path, const char *dict, npy_matrix *m) {
    const char *descr = dict_value(dict, "descr");
    if (!descr)
        return dre_set_error(DRE_ERR_FORMAT, "%s: the .npy header has no 'descr'", path);
    if (!strncmp(descr, "'<f4'", 5))
        m->item_bytes = 4;
    else if (!strncmp(descr, "'<f2'", 5))
        m->item_bytes = 2;
    else {
        char what[16];
        snprintf(what, sizeof what, "%.*s", (int)strcspn(descr, ",}"), descr);
        return dre_set_error(DRE_ERR_FORMAT,
                             "%s: dtype %s; dre reads float32 ('<f4') or float16 ('<f2') vectors "
                             "(numpy: x.astype('float32'))",
                             path, what);
    }
    const char *order = dict_value(dict, "fortran_order");
    if (!order || strncmp(order, "False", 5) != 0)
        return dre_set_error(DRE_ERR_FORMAT,
                             "%s: Fortran (column-major) order; dre reads rows in C order "
                             "(numpy: np.ascontiguousarray(x))",
                             path);
    const char *shape = dict_value(dict, "shape");
    long long rows = -1, cols = -1;
    int used = 0;
    if (!shape || sscanf(shape, "( %lld , %lld )%n", &rows, &cols, &used) != 2 || used == 0 ||
        rows < 0 || cols < 1 || cols > (1 << 20))
        return dre_set_error(DRE_ERR_FORMAT,
                             "%s: shape %.40s; dre reads a matrix of vectors, (rows, dim)", path,
                             shape ? shape : "missing");
    m->rows = rows;
    m->cols = (int32_t)cols;
    return DRE_OK;
}

dre_status dre_npy_open(const char *path, npy_matrix *out) {
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (strlen(path) >= sizeof out->path)
        return dre_set_error(DRE_ERR_INVALID_ARG, "path too long: %s", path);
    strcpy(out->path, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char pre[12];
    dre_status st = dre_pread_all(fd, pre, 10, 0, path);
    if (st == DRE_OK && memcmp(pre, "\x93NUMPY", 6) != 0)
        st = dre_set_error(DRE_ERR_FORMAT, "%s: not a .npy file (no \\x93NUMPY magic)", path);
    size_t header_len = 0, prefix = 10;
    if (st == DRE_OK) {
        if (pre[6] == 1) {
            header_len = (size_t)pre[8] | (size_t)pre[9] << 8;
        } else if (pre[6] == 2 || pre[6] == 3) {
            st = dre_pread_all(fd, pre + 10, 2, 10, path);
            header_len = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
                         (size_t)pre[11] << 24;
            prefix = 12;
        } else {
            st = dre_set_error(DRE_ERR_UNSUPPORTED, "%s: .npy format version %d.%d", path, pre[6],
                               pre[7]);
        }
    }
    if (st == DRE_OK && header_len > NPY_HEADER_MAX)
        st = dre_set_error(DRE_ERR_FORMAT, "%s: a .npy header of %zu bytes", path, header_len);
    char *dict = st == DRE_OK ? calloc(1, header_len + 1) : NULL;
    if (st == DRE_OK && !dict) st = dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    if (st == DRE_OK) st = dre_pread_all(fd, dict, header_len, (int64_t)prefix, path);
    if (st == DRE_OK) st = parse_header(path, dict, out);
    free(dict);
    struct stat sb;
    if (st == DRE_OK && fstat(fd, &sb) != 0)
        st = dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    out->data_offset = (int64_t)(prefix + header_len);
    const int64_t want = out->data_offset + out->rows * out->cols * out->item_bytes;
    if (st == DRE_OK && (int64_t)sb.st_size != want)
        st = dre_set_error(DRE_ERR_FORMAT,
                           "%s: %lld bytes, but a (%lld, %d) array of %d-byte floats takes %lld: "
                           "cut short or padded",
                           path, (long long)sb.st_size, (long long)out->rows, out->cols,
                           out->item_bytes, (long long)want);
    if (st != DRE_OK) {
        close(fd);
        return st;
    }
    out->fd = fd;
    return DRE_OK;
}

dre_status dre_npy_read(const npy_matrix *m, int64_t first, int64_t n, float *out) {
    if (first < 0 || n < 0 || first + n > m->rows)
        return dre_set_error(DRE_ERR_INVALID_ARG, "%s: rows [%lld, %lld) of %lld", m->path,
                             (long long)first, (long long)(first + n), (long long)m->rows);
    const int64_t row_bytes = (int64_t)m->cols * m->item_bytes;
    if (m->item_bytes == 4)
        return dre_pread_all(m->fd, out, (size_t)(n * row_bytes),
                             m->data_offset + first * row_bytes, m->path);
    uint8_t *half = malloc((size_t)(F16_BLOCK * row_bytes));
    if (!half) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", m->path);
    dre_status st = DRE_OK;
    for (int64_t done = 0; st == DRE_OK && done < n; done += F16_BLOCK) {
        const int64_t b = n - done < F16_BLOCK ? n - done : F16_BLOCK;
        st = dre_pread_all(m->fd, half, (size_t)(b * row_bytes),
                           m->data_offset + (first + done) * row_bytes, m->path);
        for (int64_t i = 0; st == DRE_OK && i < b * m->cols; i++)
            out[done * m->cols + i] = dre_f16_to_f32((uint16_t)(half[2 * i] | half[2 * i + 1] << 8));
    }
    free(half);
    return st;
}

void dre_npy_close(npy_matrix *m) {
    if (m && m->fd >= 0) close(m->fd);
    if (m) m->fd = -1;
}

dre_status dre_vectors_read_npy(const char *path, float **out, int64_t *rows, int32_t *dim) {
    if (!path || !out || !rows || !dim)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_vectors_read_npy: NULL argument");
    *out = NULL;
    npy_matrix m;
    DRE_TRY(dre_npy_open(path, &m));
    float *x = malloc((size_t)(m.rows > 0 ? m.rows : 1) * (size_t)m.cols * sizeof *x);
    dre_status st = x ? dre_npy_read(&m, 0, m.rows, x)
                      : dre_set_error(DRE_ERR_NOMEM, "%s: out of memory for %lld vectors", path,
                                      (long long)m.rows);
    dre_npy_close(&m);
    if (st != DRE_OK) {
        free(x);
        return st;
    }
    *out = x;
    *rows = m.rows;
    *dim = m.cols;
    return DRE_OK;
}
