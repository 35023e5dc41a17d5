/* gpu/gemm.h — the encoder's GEMMs through cuBLASLt, with their epilogues fused: bias, bias
 * then GELU, and a residual added through the GEMM's C input. Algorithms are chosen by
 * cuBLASLt's heuristic once per shape and kept. */
#ifndef DRE_GPU_GEMM_H
#define DRE_GPU_GEMM_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "dre.h"
#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gpu_epilogue {
    GPU_EPILOGUE_NONE,     /* y = x w^T (+ residual) */
    GPU_EPILOGUE_BIAS,     /* y = x w^T + bias (+ residual) */
    GPU_EPILOGUE_BIAS_GELU /* y = gelu_tanh(x w^T + bias), cuBLASLt's GELU (the tanh form) */
} gpu_epilogue;

typedef struct gpu_gemm gpu_gemm;

/* GEMMs enqueued on stream, with workspace (device, workspace_bytes) for cuBLASLt. */
dre_status dre_gpu_gemm_create(cudaStream_t stream, void *workspace, size_t workspace_bytes,
                               gpu_gemm **out);
void dre_gpu_gemm_destroy(gpu_gemm *g);

/* y[n, out_dim] = epilogue(x[n, in_dim] w^T + bias) + residual, all row-major fp16, w in
 * PyTorch's [out_dim, in_dim] layout, bias [out_dim] fp16 (NULL unless the epilogue has one),
 * residual [n, out_dim] (NULL: none; not with BIAS_GELU; it may be y itself). fp32
 * accumulation, and fp32 split-K reductions where cuBLASLt splits. */
dre_status dre_gpu_gemm_run(gpu_gemm *g, const fp16_t *x, const fp16_t *w, const fp16_t *bias,
                            const fp16_t *residual, fp16_t *y, int32_t n, int32_t in_dim,
                            int32_t out_dim, gpu_epilogue epilogue);

#ifdef __cplusplus
}
#endif
#endif
