/* encoder_gpu.c — placeholder until the GPU encoder lands. */
#include "common.h"
#include "encoder_gpu.h"

int gpu_device_count(void) { return 0; }
dre_status gpu_encoder_create(const dre_model *model, int32_t budget_tokens, gpu_encoder **out) {
    return set_error(DRE_ERR_NO_GPU, "GPU encoder not built yet");
}
void gpu_encoder_destroy(gpu_encoder *enc) {}
dre_status gpu_encoder_encode(gpu_encoder *enc, const int32_t *ids, const int32_t *cu_seqlens,
                              int32_t n_seqs, float *out) {
    return set_error(DRE_ERR_NO_GPU, "GPU encoder not built yet");
}
