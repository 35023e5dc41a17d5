/* fuzz_safetensors.c — libFuzzer target: dre_st_open on an arbitrary file. What it accepts
 * must describe tensors that lie inside the mapping, with consistent shapes, findable by
 * name, and convertible to fp32 without reading outside their data. */
#include "fuzz_util.h"

#include "model/safetensors.h"

/* Converting more than this per tensor only costs time. */
#define SAFETENSORS_FUZZ_CONVERT_MAX ((size_t)1 << 20)

int fuzz_safetensors_input(const uint8_t *data, size_t size) {
    char path[4096];
    fuzz_write("model.safetensors", data, size, path, sizeof path);
    st_file f;
    if (dre_st_open(path, &f) != DRE_OK) {
        /* a failed open leaves the handle closed, so closing it again is harmless */
        FUZZ_CHECK(f.map == NULL && f.tensors == NULL && f.n_tensors == 0);
        dre_st_close(&f);
        return 0;
    }
    FUZZ_CHECK(f.map_len == size);
    for (size_t i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        FUZZ_CHECK(t->name != NULL);
        FUZZ_CHECK(t->n_dims >= 0 && t->n_dims <= ST_MAX_DIMS);
        size_t elem = dre_st_dtype_size(t->dtype);
        FUZZ_CHECK(elem > 0);
        size_t n = 1;
        for (int d = 0; d < t->n_dims; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            n *= (size_t)t->shape[d];
        }
        FUZZ_CHECK(n == t->n_elements);
        /* the data lies after the 8-byte length and the header, inside the file */
        size_t begin = (size_t)(t->data - f.map);
        FUZZ_CHECK(t->data >= f.map + 8 && begin <= f.map_len);
        FUZZ_CHECK(t->n_elements <= (f.map_len - begin) / elem);
        FUZZ_CHECK(dre_st_find(&f, t->name) == t); /* names are unique */
        if ((t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) &&
            t->n_elements <= SAFETENSORS_FUZZ_CONVERT_MAX) {
            float *out = (float *)malloc((t->n_elements ? t->n_elements : 1) * sizeof *out);
            FUZZ_CHECK(out != NULL);
            dre_st_to_f32(t->data, t->dtype, t->n_elements, out);
            free(out);
        }
    }
    dre_st_close(&f);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_safetensors_input(data, size);
}
#endif
