/* encode/backend.h — what an encoder backend implements, in the manner of ggml's backends:
 * a table of functions that encode/encoder.c (dre_encoder_*) calls without knowing which
 * backend it holds. The CPU encoder (cpu/encoder.c) and the GPU encoder (gpu/encoder.c, or
 * gpu/none.c in a build without CUDA) each define one table.
 *
 * The dispatcher checks every batch before a backend sees it (cu_seqlens[0] = 0, each
 * sequence 1..the model's max length, at most budget_tokens tokens, every id in the
 * vocabulary) and keeps count of the queued ones (at most DRE_ENCODER_DEPTH): a backend
 * trusts what it is given. */
#ifndef DRE_ENCODE_BACKEND_H
#define DRE_ENCODE_BACKEND_H

#include <stdint.h>

#include "dre.h"
#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dre_backend_ops {
    const char *name; /* "cpu", "gpu" */
    /* Usable devices of this kind (the CPU: 1; the GPU: 0 without a driver, a device, or a
     * build with CUDA). */
    int (*device_count)(void);
    /* A backend for the model (which outlives it), its buffers sized once for batches of up
     * to budget_tokens tokens; precision is the CPU's (the dispatcher gives the GPU fp32). */
    dre_status (*create)(const dre_model *model, int32_t budget_tokens, dre_precision precision,
                         void **out);
    void (*destroy)(void *backend);
    /* Queues a checked batch (ids and cu_seqlens are copied before it returns); a backend
     * may compute it at once, or later. */
    dre_status (*submit)(void *backend, const int32_t *ids, const int32_t *cu_seqlens,
                         int32_t n_seqs);
    /* The oldest queued batch's n_seqs x hidden floats into out. After a failed submit or
     * collect the backend holds no batch. */
    dre_status (*collect)(void *backend, float *out, int32_t *n_seqs);

    /* The advanced tier (dre.h, DRE_STATIC_LINKING_ONLY); NULL where a backend has none. */
    dre_status (*profile)(void *backend, const int32_t *ids, const int32_t *cu_seqlens,
                          int32_t n_seqs, double ms[DRE_OP_COUNT]);
    dre_status (*gemm_only)(void *backend, int32_t n_tokens, int32_t reps, double *ms);
    dre_status (*set_variants)(void *backend, const char *spec);
    const char *(*variant)(const void *backend, dre_kernel_family family);
} dre_backend_ops;

extern const dre_backend_ops dre_backend_cpu;
extern const dre_backend_ops dre_backend_gpu;

/* Reads a "family=name[,family=name]" list into choice[family] (an index into the family's
 * variants, dre_kernel_family_variants); an unknown family or name is DRE_ERR_INVALID_ARG
 * naming the choices (encode/variants.c). */
dre_status dre_variants_parse(const char *spec, int choice[DRE_FAMILY_COUNT]);

#ifdef __cplusplus
}
#endif
#endif
