/* gpu/cuda_check.h — the GPU stages' error handling: a failed CUDA runtime or cuBLAS call becomes
 * a dre_status return with the call, the error and the place in dre_last_error(); a sticky
 * device error marks the process's CUDA context lost, and every later GPU entry point then
 * fails at once with a message saying so (dre_gpu_context_check). For the GPU host code. */
#ifndef DRE_CUDA_CHECK_H
#define DRE_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Usable CUDA devices; 0 where there is no driver or no device. */
int dre_gpu_device_count(void);

/* DRE_OK, or DRE_ERR_CUDA once a sticky error has lost the context: the first call of every
 * GPU entry point. */
dre_status dre_gpu_context_check(void);

/* The status of a failed CUDA call: "what failed: error[hint] at file:line", or, for a
 * sticky error, that the context is lost and what to do (and it is marked lost). hint may be
 * NULL. */
dre_status dre_gpu_cuda_error(cudaError_t err, const char *what, const char *hint, const char *file,
                              int line);
/* The same for a failed cuBLAS call (lost when the runtime holds a sticky error). */
dre_status dre_gpu_cublas_error(cublasStatus_t status, const char *what, const char *file,
                                int line);

/* For the CUDA emulation's fault-injection tests only, after the emulation recovered: the
 * context counts as usable again. A real lost context never comes back. */
void dre_gpu_context_forget_loss(void);

#ifdef __cplusplus
}
#endif

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t cuda_err_ = (call);                                                            \
        if (cuda_err_ != cudaSuccess)                                                              \
            return dre_gpu_cuda_error(cuda_err_, #call, NULL, __FILE__, __LINE__);                 \
    } while (0)

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t cublas_st_ = (call);                                                        \
        if (cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                   \
            return dre_gpu_cublas_error(cublas_st_, #call, __FILE__, __LINE__);                    \
    } while (0)

#endif
