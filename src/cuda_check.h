/* cuda_check.h — turns a failed CUDA runtime or cuBLAS call into a dre_status return with
 * the call, the error and the place in dre_last_error(). For the GPU stages' host code. */
#ifndef DRE_CUDA_CHECK_H
#define DRE_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "common.h"

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t cuda_err_ = (call);                                                            \
        if (cuda_err_ != cudaSuccess)                                                              \
            return set_error(DRE_ERR_CUDA, "%s failed: %s at %s:%d", #call,                        \
                             cudaGetErrorString(cuda_err_), __FILE__, __LINE__);                   \
    } while (0)

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t cublas_st_ = (call);                                                        \
        if (cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                   \
            return set_error(DRE_ERR_CUDA, "%s failed: %s at %s:%d", #call,                        \
                             cublasGetStatusString(cublas_st_), __FILE__, __LINE__);               \
    } while (0)

#endif
