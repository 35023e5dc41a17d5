/* gpu/gemm.c — the encoder's GEMMs through cuBLASLt with fused epilogues. Row-major
 * y[n, out] = x[n, in] w^T is, column-major as cuBLASLt sees it, D[out, n] = op_T(W)[out, in]
 * X[in, n]: A = w (in x out, ld in, transposed), B = x (in x n, ld in), C = residual and
 * D = y (out x n, ld out). The epilogue's bias runs along D's rows: one per output feature.
 * The descriptors and the heuristic's algorithm are kept per shape (in, out, n, epilogue,
 * residual or not) in a small table: a batch of a new length costs one heuristic query. */
#include "gpu/gemm.h"

#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/cuda_check.h"

#define PLAN_SLOTS 256 /* shapes kept; more distinct batch lengths reuse slots */

typedef struct plan {
    int used;
    int32_t n, in_dim, out_dim;
    gpu_epilogue epilogue;
    int residual;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, cd;
    cublasLtMatmulAlgo_t algo;
} plan;

struct gpu_gemm {
    cublasLtHandle_t lt;
    cudaStream_t stream;
    void *workspace;
    size_t workspace_bytes;
    cublasLtMatmulPreference_t preference;
    plan plans[PLAN_SLOTS];
};

#define LT_CHECK(call) CUBLAS_CHECK(call)

dre_status dre_gpu_gemm_create(cudaStream_t stream, void *workspace, size_t workspace_bytes,
                               gpu_gemm **out) {
    *out = NULL;
    gpu_gemm *g = calloc(1, sizeof *g);
    if (!g) return dre_set_error(DRE_ERR_NOMEM, "gpu_gemm: out of memory");
    g->stream = stream;
    g->workspace = workspace;
    g->workspace_bytes = workspace_bytes;
    dre_status st = DRE_OK;
    cublasStatus_t s = cublasLtCreate(&g->lt);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulPreferenceCreate(&g->preference);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(g->preference,
                                                 CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &g->workspace_bytes, sizeof g->workspace_bytes);
    /* split-K partial sums in fp32, never in the fp16 output type */
    const uint32_t schemes =
        CUBLASLT_REDUCTION_SCHEME_MASK & ~CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(
            g->preference, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof schemes);
    if (s != CUBLAS_STATUS_SUCCESS)
        st = dre_gpu_cublas_error(s, "cuBLASLt set-up", __FILE__, __LINE__);
    if (st != DRE_OK) {
        dre_gpu_gemm_destroy(g);
        return st;
    }
    *out = g;
    return DRE_OK;
}

static void plan_free(plan *p) {
    if (p->desc) (void)cublasLtMatmulDescDestroy(p->desc);
    if (p->a) (void)cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) (void)cublasLtMatrixLayoutDestroy(p->b);
    if (p->cd) (void)cublasLtMatrixLayoutDestroy(p->cd);
    memset(p, 0, sizeof *p);
}

void dre_gpu_gemm_destroy(gpu_gemm *g) {
    if (!g) return;
    for (int i = 0; i < PLAN_SLOTS; i++)
        plan_free(&g->plans[i]);
    if (g->preference) (void)cublasLtMatmulPreferenceDestroy(g->preference);
    if (g->lt) (void)cublasLtDestroy(g->lt);
    free(g);
}

/* Descriptors and the heuristic's best algorithm for one shape, into p. */
static dre_status plan_make(gpu_gemm *g, plan *p, int32_t n, int32_t in_dim, int32_t out_dim,
                            gpu_epilogue epilogue, int residual) {
    p->used = 1;
    p->n = n;
    p->in_dim = in_dim;
    p->out_dim = out_dim;
    p->epilogue = epilogue;
    p->residual = residual;
    LT_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t transa = CUBLAS_OP_T;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &transa,
                                            sizeof transa));
    const cublasLtEpilogue_t e = epilogue == GPU_EPILOGUE_BIAS        ? CUBLASLT_EPILOGUE_BIAS
                                 : epilogue == GPU_EPILOGUE_BIAS_GELU ? CUBLASLT_EPILOGUE_GELU_BIAS
                                                                      : CUBLASLT_EPILOGUE_DEFAULT;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    LT_CHECK(
        cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16F, (uint64_t)in_dim, (uint64_t)out_dim, in_dim));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16F, (uint64_t)in_dim, (uint64_t)n, in_dim));
    LT_CHECK(
        cublasLtMatrixLayoutCreate(&p->cd, CUDA_R_16F, (uint64_t)out_dim, (uint64_t)n, out_dim));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    LT_CHECK(cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->a, p->b, p->cd, p->cd, g->preference,
                                            1, &result, &found));
    if (found < 1)
        return dre_set_error(
            DRE_ERR_CUDA, "cuBLASLt has no algorithm for a %d x %d x %d fp16 GEMM with epilogue %d",
            out_dim, n, in_dim, (int)epilogue);
    p->algo = result.algo;
    return DRE_OK;
}

static plan *plan_for(gpu_gemm *g, int32_t n, int32_t in_dim, int32_t out_dim,
                      gpu_epilogue epilogue, int residual, dre_status *st) {
    uint32_t h = (uint32_t)n * 2654435761u ^ (uint32_t)in_dim * 40503u ^ (uint32_t)out_dim * 97u ^
                 (uint32_t)epilogue * 7u ^ (uint32_t)residual;
    h %= PLAN_SLOTS;
    for (int probe = 0; probe < 8; probe++) {
        plan *p = &g->plans[(h + (uint32_t)probe) % PLAN_SLOTS];
        if (p->used && p->n == n && p->in_dim == in_dim && p->out_dim == out_dim &&
            p->epilogue == epilogue && p->residual == residual)
            return p;
        if (!p->used) {
            *st = plan_make(g, p, n, in_dim, out_dim, epilogue, residual);
            if (*st != DRE_OK) plan_free(p);
            return *st == DRE_OK ? p : NULL;
        }
    }
    plan *p = &g->plans[h]; /* the neighbourhood is full: replace its first */
    plan_free(p);
    *st = plan_make(g, p, n, in_dim, out_dim, epilogue, residual);
    if (*st != DRE_OK) plan_free(p);
    return *st == DRE_OK ? p : NULL;
}

dre_status dre_gpu_gemm_run(gpu_gemm *g, const fp16_t *x, const fp16_t *w, const fp16_t *bias,
                            const fp16_t *residual, fp16_t *y, int32_t n, int32_t in_dim,
                            int32_t out_dim, gpu_epilogue epilogue) {
    if (!g || !x || !w || !y || n < 1 || in_dim < 1 || out_dim < 1 ||
        (epilogue != GPU_EPILOGUE_NONE) != (bias != NULL) ||
        (epilogue == GPU_EPILOGUE_BIAS_GELU && residual))
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_gpu_gemm_run: bad arguments");
    dre_status st = DRE_OK;
    plan *p = plan_for(g, n, in_dim, out_dim, epilogue, residual != NULL, &st);
    if (!p) return st;
    if (bias)
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof bias));
    const float one = 1.0f, beta = residual ? 1.0f : 0.0f;
    LT_CHECK(cublasLtMatmul(g->lt, p->desc, &one, w, p->a, x, p->b, &beta, residual ? residual : y,
                            p->cd, y, p->cd, &p->algo, g->workspace, g->workspace_bytes,
                            g->stream));
    return DRE_OK;
}
