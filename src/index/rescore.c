/* index/rescore.c — the rescoring vectors of a quantized index (see index/rescore.h): written
 * once per embed from the staged fp32 vectors, memory-mapped for search. */
#define _POSIX_C_SOURCE 200809L
#include "index/rescore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "common/fileio.h"
#include "index/index.h"
#include "index/vindex.h"

#define RESCORE_MAGIC "DREVECS"
#define RESCORE_VERSION 1
#define RESCORE_FIXED 64
/* Vectors converted at a time while writing. */
#define WRITE_BLOCK 16384

struct rescore_vectors {
    dre_rescore kind;
    int32_t dim;
    int64_t rows;
    size_t row_bytes;
    const uint8_t *map; /* the whole file */
    size_t map_bytes;
    const uint8_t *data; /* row 0 */
    const float *vmin, *vdiff;
};

static const char *const rescore_names[] = {"none", "int8", "fp32"};

dre_status dre_rescore_parse(const char *name, dre_rescore *out) {
    for (int i = 1; name && i < 3; i++)
        if (!strcmp(name, rescore_names[i])) {
            *out = (dre_rescore)i;
            return DRE_OK;
        }
    return dre_set_error(DRE_ERR_INVALID_ARG, "rescoring vectors \"%s\" (int8 or fp32)",
                         name ? name : "(null)");
}

const char *dre_rescore_name(dre_rescore rescore) {
    return rescore >= 0 && rescore < 3 ? rescore_names[rescore] : "?";
}

const char *dre_rescore_file_name(dre_rescore kind) {
    return kind == DRE_RESCORE_INT8 ? INDEX_RESCORE_INT8_FILE : INDEX_RESCORE_FP32_FILE;
}

static size_t header_bytes(dre_rescore kind, int32_t dim) {
    size_t fixed = RESCORE_FIXED + (kind == DRE_RESCORE_INT8 ? 2 * (size_t)dim * sizeof(float) : 0);
    return (fixed + 4095) / 4096 * 4096;
}

static size_t row_bytes(dre_rescore kind, int32_t dim) {
    return kind == DRE_RESCORE_INT8 ? (size_t)dim : (size_t)dim * sizeof(float);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ------------------------------------------------------------------ reading */

dre_status dre_rescore_open(const char *path, dre_rescore kind, int32_t dim, int64_t rows,
                            rescore_vectors **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(err));
    }
    const size_t head = header_bytes(kind, dim), rb = row_bytes(kind, dim);
    const size_t want = head + (size_t)rows * rb;
    if ((size_t)st.st_size != want) {
        close(fd);
        return dre_set_error(DRE_ERR_INDEX,
                             "%s: %lld bytes, but %lld %s rows of dim %d take %zu: the index "
                             "folder's files disagree",
                             path, (long long)st.st_size, (long long)rows,
                             dre_rescore_name(kind), dim, want);
    }
    void *map = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (map == MAP_FAILED) return dre_set_error(DRE_ERR_IO, "%s: mmap: %s", path, strerror(err));
    /* rows are read where scored: read-ahead would pull in neighbours nobody asked for */
    posix_madvise((uint8_t *)map + head, want - head, POSIX_MADV_RANDOM);
    const uint8_t *h = map;
    dre_status status = DRE_OK;
    if (memcmp(h, RESCORE_MAGIC, 8) != 0)
        status = dre_set_error(DRE_ERR_INDEX, "%s: not a dre rescoring file", path);
    else if (get_u32(h + 8) != RESCORE_VERSION)
        status = dre_set_error(DRE_ERR_UNSUPPORTED, "%s: version %u (this dre reads %d)", path,
                               get_u32(h + 8), RESCORE_VERSION);
    else if (get_u32(h + 12) != (uint32_t)kind || get_u32(h + 16) != (uint32_t)dim ||
             get_u32(h + 20) != head)
        status = dre_set_error(DRE_ERR_INDEX,
                               "%s: holds kind %u of dim %u, meta.json says %s of dim %d", path,
                               get_u32(h + 12), get_u32(h + 16), dre_rescore_name(kind), dim);
    else if ((int64_t)((uint64_t)get_u32(h + 24) | (uint64_t)get_u32(h + 28) << 32) != rows)
        status = dre_set_error(DRE_ERR_INDEX, "%s: its header's row count is not meta.json's %lld",
                               path, (long long)rows);
    rescore_vectors *r = status == DRE_OK ? calloc(1, sizeof *r) : NULL;
    if (status == DRE_OK && !r) status = dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    if (status != DRE_OK) {
        munmap(map, want);
        return status;
    }
    r->kind = kind;
    r->dim = dim;
    r->rows = rows;
    r->row_bytes = rb;
    r->map = map;
    r->map_bytes = want;
    r->data = h + head;
    if (kind == DRE_RESCORE_INT8) {
        r->vmin = (const float *)(h + RESCORE_FIXED);
        r->vdiff = r->vmin + dim;
    }
    *out = r;
    return DRE_OK;
}

void dre_rescore_close(rescore_vectors *r) {
    if (!r) return;
    munmap((void *)r->map, r->map_bytes);
    free(r);
}

int64_t dre_rescore_rows(const rescore_vectors *r) { return r->rows; }

dre_status dre_rescore_ranges(const rescore_vectors *r, const float **vmin, const float **vdiff) {
    if (r->kind != DRE_RESCORE_INT8)
        return dre_set_error(DRE_ERR_UNSUPPORTED, "fp32 rescoring vectors have no ranges");
    *vmin = r->vmin;
    *vdiff = r->vdiff;
    return DRE_OK;
}

/* 8 partial sums, then added pairwise: the compiler vectorises the lanes. */
static float dot_f32(const float *q, const float *x, int32_t dim) {
    float lane[8] = {0};
    int32_t d = 0;
    for (; d + 8 <= dim; d += 8)
        for (int l = 0; l < 8; l++)
            lane[l] += q[d + l] * x[d + l];
    for (; d < dim; d++)
        lane[0] += q[d] * x[d];
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* q . decode(c) = sum q[d] * (vmin[d] + (c[d] + 0.5) / 255 * vdiff[d])
 *              = base + sum scale[d] * c[d],
 * with scale[d] = q[d] * vdiff[d] / 255 and base = sum q[d] * (vmin[d] + vdiff[d] / 510), both
 * once per query: a conversion and a multiply-add a component. */
static float dot_i8(const float *scale, float base, const uint8_t *c, int32_t dim) {
    float lane[8] = {0};
    int32_t d = 0;
    for (; d + 8 <= dim; d += 8)
        for (int l = 0; l < 8; l++)
            lane[l] += scale[d + l] * (float)c[d + l];
    for (; d < dim; d++)
        lane[0] += scale[d] * (float)c[d];
    return base + (((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                   ((lane[4] + lane[5]) + (lane[6] + lane[7])));
}

dre_status dre_rescore_score(const rescore_vectors *r, const float *query, const int64_t *rows,
                             int64_t n, float *out) {
    float *scale = NULL, base = 0;
    if (r->kind == DRE_RESCORE_INT8) {
        scale = malloc((size_t)r->dim * sizeof *scale);
        if (!scale) return dre_set_error(DRE_ERR_NOMEM, "rescoring: out of memory");
        double b = 0;
        for (int32_t d = 0; d < r->dim; d++) {
            scale[d] = query[d] * r->vdiff[d] / 255.0f;
            b += (double)query[d] * ((double)r->vmin[d] + (double)r->vdiff[d] / 510.0);
        }
        base = (float)b;
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t row = rows[i];
        if (row < 0 || row >= r->rows) {
            out[i] = -INFINITY;
            continue;
        }
        const uint8_t *p = r->data + (size_t)row * r->row_bytes;
        out[i] = scale ? dot_i8(scale, base, p, r->dim) : dot_f32(query, (const float *)p, r->dim);
    }
    free(scale);
    return DRE_OK;
}

void dre_rescore_decode(const rescore_vectors *r, int64_t first, int64_t n, float *out) {
    if (r->kind == DRE_RESCORE_FP32) {
        memcpy(out, r->data + (size_t)first * r->row_bytes, (size_t)n * r->row_bytes);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *c = r->data + (size_t)(first + i) * r->row_bytes;
        float *x = out + i * r->dim;
        for (int32_t d = 0; d < r->dim; d++)
            x[d] = r->vmin[d] + ((float)c[d] + 0.5f) / 255.0f * r->vdiff[d];
    }
}

/* ------------------------------------------------------------------ writing */

/* The SQ8 encoder: base's ranges, or FAISS's training on the first staged vectors. */
static dre_status int8_encoder(int32_t dim, const rescore_vectors *base, int fd,
                               const char *staged_path, int64_t n, int64_t train_n,
                               FaissIndex **out) {
    if (base) {
        if (dre_faiss_sq8_from_ranges(dim, base->vmin, base->vdiff, out) != 0)
            return dre_set_error(DRE_ERR_NOMEM, "int8 rescoring vectors: out of memory");
        return DRE_OK;
    }
    int64_t m = n < train_n ? n : train_n;
    if (m < 1) return dre_set_error(DRE_ERR_INVALID_ARG, "int8 rescoring vectors: no vectors");
    float *sample = malloc((size_t)m * (size_t)dim * sizeof(float));
    if (!sample)
        return dre_set_error(DRE_ERR_NOMEM, "int8 rescoring: out of memory for %lld vectors",
                             (long long)m);
    dre_status st = dre_pread_all(fd, sample, (size_t)m * (size_t)dim * sizeof(float), 0,
                                  staged_path);
    if (st == DRE_OK) st = dre_index_faiss_create("SQ8", dim, out);
    if (st == DRE_OK) st = dre_index_faiss_train(*out, m, sample);
    free(sample);
    return st;
}

static dre_status write_rows(int fd, const char *tmp, const rescore_vectors *base,
                             FaissIndex *sq8, dre_rescore kind, int32_t dim, int staged_fd,
                             const char *staged_path, int64_t n, size_t head) {
    const size_t rb = row_bytes(kind, dim);
    int64_t base_rows = base ? base->rows : 0;
    if (base_rows > 0)
        DRE_TRY(dre_pwrite_all(fd, base->data, (size_t)base_rows * rb, (int64_t)head, tmp));
    int64_t block = n < WRITE_BLOCK ? n : WRITE_BLOCK;
    float *x = malloc((size_t)(block > 0 ? block : 1) * (size_t)dim * sizeof(float));
    uint8_t *codes = kind == DRE_RESCORE_INT8 ? malloc((size_t)(block > 0 ? block : 1) * rb) : NULL;
    dre_status st = DRE_OK;
    if (!x || (kind == DRE_RESCORE_INT8 && !codes))
        st = dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", tmp);
    for (int64_t done = 0; st == DRE_OK && done < n; done += block) {
        int64_t m = n - done < block ? n - done : block;
        st = dre_pread_all(staged_fd, x, (size_t)m * (size_t)dim * sizeof(float),
                           done * (int64_t)dim * (int64_t)sizeof(float), staged_path);
        const void *rowsp = x;
        if (st == DRE_OK && kind == DRE_RESCORE_INT8) {
            if (faiss_Index_sa_encode(sq8, m, x, codes) != 0)
                st = dre_index_faiss_error("encoding int8 rescoring vectors");
            rowsp = codes;
        }
        if (st == DRE_OK)
            st = dre_pwrite_all(fd, rowsp, (size_t)m * rb,
                                (int64_t)head + (base_rows + done) * (int64_t)rb, tmp);
    }
    free(x);
    free(codes);
    return st;
}

dre_status dre_rescore_write(const char *path, dre_rescore kind, int32_t dim,
                             const rescore_vectors *base, int staged_fd, const char *staged_path,
                             int64_t n, int64_t train_n) {
    if (kind != DRE_RESCORE_INT8 && kind != DRE_RESCORE_FP32)
        return dre_set_error(DRE_ERR_INVALID_ARG, "rescoring vectors of kind %d", (int)kind);
    if (base && (base->kind != kind || base->dim != dim))
        return dre_set_error(DRE_ERR_MISMATCH, "%s: the existing rescoring vectors are %s of dim %d",
                             path, dre_rescore_name(base->kind), base->dim);
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return dre_set_error(DRE_ERR_INVALID_ARG, "path too long: %s", path);
    const size_t head = header_bytes(kind, dim);
    FaissIndex *sq8 = NULL;
    if (kind == DRE_RESCORE_INT8)
        DRE_TRY(int8_encoder(dim, base, staged_fd, staged_path, n, train_n, &sq8));
    uint8_t *h = calloc(1, head);
    int fd = h ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    dre_status st = DRE_OK;
    if (!h)
        st = dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", tmp);
    else if (fd < 0)
        st = dre_set_error(DRE_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (st == DRE_OK) {
        const uint64_t rows = (uint64_t)(base ? base->rows : 0) + (uint64_t)n;
        memcpy(h, RESCORE_MAGIC, 8);
        put_u32(h + 8, RESCORE_VERSION);
        put_u32(h + 12, (uint32_t)kind);
        put_u32(h + 16, (uint32_t)dim);
        put_u32(h + 20, (uint32_t)head);
        put_u32(h + 24, (uint32_t)rows);
        put_u32(h + 28, (uint32_t)(rows >> 32));
        if (kind == DRE_RESCORE_INT8 &&
            dre_faiss_sq8_ranges(sq8, (float *)(h + RESCORE_FIXED),
                                 (float *)(h + RESCORE_FIXED) + dim) != 0)
            st = dre_set_error(DRE_ERR_INDEX, "int8 rescoring vectors: no SQ8 ranges");
        if (st == DRE_OK) st = dre_pwrite_all(fd, h, head, 0, tmp);
        if (st == DRE_OK)
            st = write_rows(fd, tmp, base, sq8, kind, dim, staged_fd, staged_path, n, head);
        if (st == DRE_OK && fsync(fd) != 0)
            st = dre_set_error(DRE_ERR_IO, "%s: sync: %s", tmp, strerror(errno));
    }
    if (fd >= 0 && close(fd) != 0 && st == DRE_OK)
        st = dre_set_error(DRE_ERR_IO, "%s: close: %s", tmp, strerror(errno));
    free(h);
    if (sq8) faiss_Index_free(sq8);
    if (st == DRE_OK) st = dre_rename_synced(tmp, path);
    if (st != DRE_OK) unlink(tmp);
    return st;
}
