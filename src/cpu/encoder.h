/* cpu/encoder.h — the fp32 CPU encoder (dre_backend_cpu in encode/backend.h), whose
 * functions the tests also call directly. The batches it is given are checked already
 * (encode/encoder.c). */
#ifndef DRE_CPU_ENCODER_H
#define DRE_CPU_ENCODER_H

#include <stdint.h>

#include "dre.h"
#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpu_encoder cpu_encoder;

/* precision: DRE_PRECISION_BF16 packs the four products' weights as bf16 (cpu/gemm_bf16.c),
 * DRE_PRECISION_INT8 as int8 with a scale per column (cpu/gemm_int8.c); either is
 * DRE_ERR_UNSUPPORTED without AVX-512 BF16. */
dre_status dre_cpu_encoder_create(const dre_model *model, int32_t budget_tokens,
                                  dre_precision precision, cpu_encoder **out);
void dre_cpu_encoder_destroy(cpu_encoder *enc);
/* One checked batch (n_seqs >= 1) to n_seqs x hidden floats. */
dre_status dre_cpu_encoder_encode(cpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                                  int32_t n_seqs, float *out);

#ifdef __cplusplus
}
#endif
#endif
