/* cpu/attention.h — the CPU encoder's attention on the AVX-512 path (dre_cpu_gemm_vectorised()):
 * per (sequence, head), K and V packed once as panels, then per tile of 14 queries the
 * scores against every key (one tile of scores, 14 x length), the softmax in registers'
 * width, and the tile's output; (sequence, head) pairs shared out to threads. Same
 * arguments and result as dre_attention_cpu (cpu/ops.h), which stays the plain reference.
 * With bf16 (--precision bf16 and int8, on CPUs with AVX-512 BF16): Q, K, V and the softmax's
 * weights rounded to bf16 as they are packed, QK^T and PV on bf16's products
 * (dre_cpu_bf16_panel: AVX-512 BF16 tiles, or AMX tiles where they run) in steps of 28
 * queries (32 on AMX), sums and the softmax in fp32. */
#ifndef DRE_CPU_ATTENTION_H
#define DRE_CPU_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* floats a thread needs for sequences up to max_len tokens (a multiple of 16) */
size_t dre_cpu_attention_scratch_floats(int32_t max_len, int32_t head_dim);

/* ws: 64-byte aligned, floats_per_thread >= dre_cpu_attention_scratch_floats(longest, head_dim)
 * and a multiple of 16; bf16 only where dre_cpu_bf16_supported() */
void dre_cpu_attention(const float *qkv, const int32_t *cu_seqlens, int32_t n_seqs, int32_t n_heads,
                       int32_t head_dim, int bf16, float *out, const cpu_workspace *ws);

#ifdef __cplusplus
}
#endif
#endif
