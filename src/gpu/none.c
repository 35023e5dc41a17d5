/* gpu/none.c — the GPU room of a build without CUDA (cmake -DDRE_CUDA=OFF), in place of the
 * rest of gpu/ and kernels/: no device, and every GPU entry point says the build has none. */
#include "common/common.h"
#include "encode/backend.h"

#define WITHOUT_CUDA                                                                               \
    "--device gpu: this dre was built without CUDA (cmake -DDRE_CUDA=OFF), so it has no GPU "      \
    "encoder or search; use --device cpu or auto"

static int no_devices(void) { return 0; }

static dre_status no_gpu(void) { return dre_set_error(DRE_ERR_NO_GPU, "%s", WITHOUT_CUDA); }

static dre_status create(const dre_model *model, int32_t budget_tokens, dre_precision precision,
                         void **out) {
    (void)precision;
    (void)model, (void)budget_tokens;
    *out = NULL;
    return no_gpu();
}
static void destroy(void *backend) { (void)backend; }
static dre_status submit(void *backend, const int32_t *ids, const int32_t *cu_seqlens,
                         int32_t n_seqs) {
    (void)backend, (void)ids, (void)cu_seqlens, (void)n_seqs;
    return no_gpu();
}
static dre_status collect(void *backend, float *out, int32_t *n_seqs) {
    (void)backend, (void)out, (void)n_seqs;
    return no_gpu();
}

const dre_backend_ops dre_backend_gpu = {
    .name = "gpu",
    .device_count = no_devices,
    .create = create,
    .destroy = destroy,
    .submit = submit,
    .collect = collect,
};

dre_status dre_gpu_search_open(const float *vectors, int64_t n, int32_t dim, dre_gpu_search **out) {
    (void)vectors, (void)n, (void)dim;
    if (out) *out = NULL;
    return no_gpu();
}

dre_status dre_gpu_search_open_fp16(const float *vectors, int64_t n, int32_t dim,
                                    dre_gpu_search **out) {
    return dre_gpu_search_open(vectors, n, dim, out);
}

void dre_gpu_search_close(dre_gpu_search *gs) { (void)gs; }

int64_t dre_gpu_search_widened(const dre_gpu_search *gs) {
    (void)gs;
    return 0;
}

void dre_gpu_search_set_chunk_rows(dre_gpu_search *gs, int64_t rows) {
    (void)gs;
    (void)rows;
}

dre_status dre_gpu_search_run(dre_gpu_search *gs, const float *queries, int64_t n_queries,
                              int32_t k, float *scores, int64_t *rows) {
    (void)gs, (void)queries, (void)n_queries, (void)k, (void)scores, (void)rows;
    return no_gpu();
}
