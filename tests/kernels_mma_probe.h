/* kernels_mma_probe.h — the launchers of tests/kernels_mma_probe.cu, an instrument of
 * kernels_mma_test only (not in libdre). */
#ifndef DRE_KERNELS_MMA_PROBE_H
#define DRE_KERNELS_MMA_PROBE_H

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For tests/kernels_mma_test.cc, one warp each (tests/kernels_mma_probe.cu): the instructions of
 * kernels/mma.cuh with registers placed by the PTX manual's layouts. d (16x8, row-major) =
 * a (16x16, row-major) b (16x8, row-major k x n) + c; and out[lane * 4 + m] = the register
 * lane gets from ldmatrix .x{n_matrices} (1, 2 or 4; .trans if trans) of src, 32 rows of 8
 * halves (rows 8m .. 8m+7 are matrix m; lane l gives row l's address). */
cudaError_t mma_probe_launch(const fp16_t *a, const fp16_t *b, const float *c, float *d,
                             cudaStream_t stream);
cudaError_t ldmatrix_probe_launch(const fp16_t *src, int32_t n_matrices, int trans, uint32_t *out,
                                  cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
