/* gpu/context.c — the process's CUDA context as dre's GPU stages see it: whether a device
 * exists, and whether a sticky device error (a kernel's illegal address, a launch failure)
 * has lost the context. After such an error every CUDA call in the process fails; dre then
 * refuses all further GPU work with one message that says so and what to do, rather than
 * failing at random later calls. */
#include <stdatomic.h>
#include <stdio.h>

#include "gpu/cuda_check.h"

static atomic_int lost; /* set once, never cleared (but by the emulation's tests) */
static atomic_int reason_claimed;
static char lost_reason[400]; /* written once, by the thread that claims it, before lost */

int dre_gpu_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); /* no driver or no device: not an error here */
        return 0;
    }
    return n;
}

/* The errors that leave the context unusable ("any further CUDA work will return the same
 * error; the process must be terminated and relaunched", says the runtime's documentation). */
static int is_sticky(cudaError_t err) {
    switch (err) {
    case cudaErrorECCUncorrectable:
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure: return 1;
    default: return 0;
    }
}

#define LOST_ADVICE                                                                                \
    "; every later GPU call in this process fails. Restart the process to use the GPU again "      \
    "(`dre embed --resume` continues from the last checkpoint, on the GPU or with --device cpu)"

dre_status dre_gpu_context_check(void) {
    if (!atomic_load(&lost)) return DRE_OK;
    return dre_set_error(DRE_ERR_CUDA, "the GPU's CUDA context was lost earlier (%s)" LOST_ADVICE,
                         lost_reason);
}

dre_status dre_gpu_cuda_error(cudaError_t err, const char *what, const char *hint, const char *file,
                              int line) {
    if (!is_sticky(err))
        return dre_set_error(DRE_ERR_CUDA, "%s failed: %s%s at %s:%d", what,
                             cudaGetErrorString(err), hint ? hint : "", file, line);
    char reason[sizeof lost_reason];
    snprintf(reason, sizeof reason, "%s failed: %s at %s:%d", what, cudaGetErrorString(err), file,
             line);
    if (!atomic_exchange(&reason_claimed, 1)) {
        snprintf(lost_reason, sizeof lost_reason, "%s", reason);
        atomic_store(&lost, 1);
    }
    return dre_set_error(DRE_ERR_CUDA, "the GPU's CUDA context is lost: %s" LOST_ADVICE, reason);
}

dre_status dre_gpu_cublas_error(cublasStatus_t status, const char *what, const char *file,
                                int line) {
    const cudaError_t err = cudaPeekAtLastError(); /* a lost context shows here too */
    if (is_sticky(err)) return dre_gpu_cuda_error(err, what, NULL, file, line);
    return dre_set_error(DRE_ERR_CUDA, "%s failed: %s at %s:%d", what,
                         cublasGetStatusString(status), file, line);
}

void dre_gpu_context_forget_loss(void) {
    atomic_store(&lost, 0);
    atomic_store(&reason_claimed, 0);
}
