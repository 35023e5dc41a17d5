/* model/safetensors.c — maps a .safetensors file and checks its header before anything reads
 * tensor data, so a corrupt or truncated file is an error naming the file and tensor,
 * never a read outside the mapping. */
#define _POSIX_C_SOURCE 200809L
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

/* The header is read whole; real models have headers of a few hundred KiB. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

static const struct {
    const char *name;
    st_dtype dtype;
    size_t size;
} dtype_table[] = {
    {"F32", ST_F32, 4},   {"F16", ST_F16, 2},         {"BF16", ST_BF16, 2},
    {"F64", ST_F64, 8},   {"I64", ST_I64, 8},         {"I32", ST_I32, 4},
    {"I16", ST_I16, 2},   {"I8", ST_I8, 1},           {"U64", ST_U64, 8},
    {"U32", ST_U32, 4},   {"U16", ST_U16, 2},         {"U8", ST_U8, 1},
    {"BOOL", ST_BOOL, 1}, {"F8_E4M3", ST_F8_E4M3, 1}, {"F8_E5M2", ST_F8_E5M2, 1},
};
#define N_DTYPES (sizeof dtype_table / sizeof dtype_table[0])

size_t dre_st_dtype_size(st_dtype dtype) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dtype == dtype) return dtype_table[i].size;
    return 0;
}

const char *dre_st_dtype_name(st_dtype dtype) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dtype == dtype) return dtype_table[i].name;
    return "?";
}

/* A JSON number that is a whole value in [0, 2^53], exactly representable. */
static int json_to_u64(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || floor(v) != v) return 0;
    *out = (uint64_t)v;
    return 1;
}

void dre_st_close(st_file *f) {
    if (!f) return;
    if (f->map) munmap((void *)f->map, f->map_len);
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* Fills t from one header entry; data_len is the size of the area after the header. */
static dre_status parse_entry(const st_file *f, const cJSON *entry, const uint8_t *data,
                              size_t data_len, st_tensor *t) {
    const char *path = f->path, *name = entry->string;
    if (!cJSON_IsObject(entry))
        return dre_set_error(DRE_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", path,
                             name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets))
        return dre_set_error(DRE_ERR_FORMAT,
                             "%s: tensor '%s': needs a string 'dtype' and arrays 'shape' and "
                             "'data_offsets'",
                             path, name);
    size_t i = 0;
    while (i < N_DTYPES && strcmp(dtype_table[i].name, dtype->valuestring) != 0)
        i++;
    if (i == N_DTYPES)
        return dre_set_error(DRE_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name,
                             dtype->valuestring);
    t->dtype = dtype_table[i].dtype;
    size_t elem_size = dtype_table[i].size;

    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > ST_MAX_DIMS)
        return dre_set_error(DRE_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)", path,
                             name, n_dims, ST_MAX_DIMS);
    t->n_dims = n_dims;
    size_t n_elements = 1;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t v;
        if (!json_to_u64(dim, &v))
            return dre_set_error(DRE_ERR_FORMAT,
                                 "%s: tensor '%s': shape[%d] is not a non-negative integer", path,
                                 name, d);
        if (v != 0 && n_elements > SIZE_MAX / v)
            return dre_set_error(DRE_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
        n_elements *= (size_t)v;
        t->shape[d++] = (int64_t)v;
    }
    if (n_elements > SIZE_MAX / elem_size)
        return dre_set_error(DRE_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
    t->n_elements = n_elements;

    uint64_t begin, end;
    if (cJSON_GetArraySize(offsets) != 2 || !json_to_u64(cJSON_GetArrayItem(offsets, 0), &begin) ||
        !json_to_u64(cJSON_GetArrayItem(offsets, 1), &end))
        return dre_set_error(DRE_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets must be two non-negative integers",
                             path, name);
    if (begin > end || end > data_len)
        return dre_set_error(
            DRE_ERR_FORMAT,
            "%s: tensor '%s': data_offsets [%llu, %llu] outside the %zu data bytes "
            "(file truncated?)",
            path, name, (unsigned long long)begin, (unsigned long long)end, data_len);
    if (end - begin != n_elements * elem_size)
        return dre_set_error(
            DRE_ERR_FORMAT,
            "%s: tensor '%s': data_offsets span %llu bytes but shape x %s needs %zu", path, name,
            (unsigned long long)(end - begin), dtype->valuestring, n_elements * elem_size);
    t->data = data + begin;
    return DRE_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static dre_status parse_header(st_file *f) {
    const char *path = f->path;
    if (f->map_len < 8)
        return dre_set_error(DRE_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header",
                             path, f->map_len);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | f->map[i];
    if (header_len > f->map_len - 8)
        return dre_set_error(
            DRE_ERR_FORMAT,
            "%s: header length %llu is larger than the file (%zu bytes): truncated "
            "or not a safetensors file",
            path, (unsigned long long)header_len, f->map_len);
    if (header_len > ST_MAX_HEADER)
        return dre_set_error(DRE_ERR_FORMAT, "%s: header length %llu is implausibly large", path,
                             (unsigned long long)header_len);
    const char *header = (const char *)f->map + 8;
    const uint8_t *data = f->map + 8 + header_len;
    size_t data_len = f->map_len - 8 - (size_t)header_len;

    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(header, (size_t)header_len, &parse_end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = parse_end && parse_end >= header ? (size_t)(parse_end - header) : 0;
        cJSON_Delete(root);
        return dre_set_error(DRE_ERR_FORMAT,
                             "%s: header is not a JSON object (error near byte %zu)", path, 8 + at);
    }
    /* the header may be padded with spaces after the object, nothing else */
    for (const char *p = parse_end; p && p < header + header_len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r' && *p != '\0') {
            cJSON_Delete(root);
            return dre_set_error(DRE_ERR_FORMAT, "%s: trailing bytes after the JSON header", path);
        }
    }

    size_t n = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, root) n++;
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        cJSON_Delete(root);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    dre_status st = DRE_OK;
    cJSON_ArrayForEach(entry, root) {
        if (!entry->string) {
            st = dre_set_error(DRE_ERR_FORMAT, "%s: header entry without a name", path);
            break;
        }
        if (strcmp(entry->string, "__metadata__") == 0) continue;
        st_tensor *t = &f->tensors[f->n_tensors];
        t->name = strdup(entry->string);
        if (!t->name) {
            st = dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        f->n_tensors++;
        st = parse_entry(f, entry, data, data_len, t);
        if (st != DRE_OK) break;
    }
    cJSON_Delete(root);
    if (st != DRE_OK) return st;

    /* sorted by name: dre_st_find bisects, and duplicates sit side by side */
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_tensor_name);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return dre_set_error(DRE_ERR_FORMAT, "%s: tensor '%s' appears twice in the header",
                                 path, f->tensors[i].name);
    return DRE_OK;
}

dre_status dre_st_open(const char *path, st_file *out) {
    memset(out, 0, sizeof *out);
    out->path = strdup(path);
    if (!out->path) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        dre_status st = dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
        dre_st_close(out);
        return st;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        dre_status st = dre_set_error(DRE_ERR_IO, "%s: not a regular file", path);
        close(fd);
        dre_st_close(out);
        return st;
    }
    out->map_len = (size_t)sb.st_size;
    if (out->map_len > 0) {
        void *map = mmap(NULL, out->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            dre_status st = dre_set_error(DRE_ERR_IO, "%s: mmap: %s", path, strerror(errno));
            close(fd);
            out->map_len = 0;
            dre_st_close(out);
            return st;
        }
        out->map = map;
    }
    close(fd);
    dre_status st = parse_header(out);
    if (st != DRE_OK) dre_st_close(out);
    return st;
}

const st_tensor *dre_st_find(const st_file *f, const char *name) {
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}


void dre_st_to_f32(const uint8_t *data, st_dtype dtype, size_t n, float *out) {
    /* safetensors is little-endian, as is every machine dre targets */
    switch (dtype) {
    case ST_F32: memcpy(out, data, n * sizeof(float)); break;
    case ST_F16:
        for (size_t i = 0; i < n; i++)
            out[i] = dre_f16_to_f32((uint16_t)(data[2 * i] | data[2 * i + 1] << 8));
        break;
    case ST_BF16:
        /* bf16 is the top half of an fp32 */
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(data[2 * i] | data[2 * i + 1] << 8) << 16;
            memcpy(&out[i], &bits, sizeof bits);
        }
        break;
    default: memset(out, 0, n * sizeof(float)); break;
    }
}
