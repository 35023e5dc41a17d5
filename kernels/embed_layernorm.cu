// embed_layernorm.cu — the embedding layer: gather word + position + token-type rows and
// LayerNorm them in one pass: out[t] = LN(word[ids[t]] + pos[p(t)] + type[0]) * g + b,
// p(t) = t - start of t's sequence in the packed batch.
// CPU twin: embed_layernorm_cpu in src/encoder_cpu.c.
//
// One warp per token row, as in layernorm.cu: the sum lands in the warp's shared slice,
// then two-pass mean / variance in fp32. A token finds its sequence by binary search in
// cu_seqlens (log2(n_seqs) cached reads), so no position array has to be built.
#include <cuda_fp16.h>

#include "kernels.h"
#include "warp.cuh"

namespace {

constexpr int kRowsPerBlock = 4;

// The sequence holding token t: the largest s in [0, n_seqs) with cu_seqlens[s] <= t.
__device__ __forceinline__ int32_t sequence_of(const int32_t *cu_seqlens, int32_t n_seqs,
                                               int32_t t) {
    int32_t lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo + 1) / 2; // upper middle, so lo = mid progresses
        if (cu_seqlens[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

// sass-gate: embed_layernorm_kernel regs<=64 hmma=0
__global__ void __launch_bounds__(kRowsPerBlock * 32)
    embed_layernorm_kernel(const int32_t *ids, const int32_t *cu_seqlens, int32_t n_seqs,
                           int32_t n_tokens, const __half2 *word, const __half2 *pos,
                           const __half2 *type, int32_t vocab_size, int32_t max_positions,
                           const float2 *g, const float2 *b, float eps, int32_t hidden,
                           __half2 *out) {
    extern __shared__ float2 row_buf[]; // [kRowsPerBlock][hidden / 2]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int32_t t = blockIdx.x * kRowsPerBlock + warp;
    if (t >= n_tokens) return; // whole warp; no block barrier follows
    const int pairs = hidden / 2;
    float2 *v = row_buf + (size_t)warp * pairs;

    int32_t id = ids[t];
    if (id < 0 || id >= vocab_size) id = 0;
    int32_t p = t - cu_seqlens[sequence_of(cu_seqlens, n_seqs, t)];
    if (p >= max_positions) p = max_positions - 1;
    const __half2 *wr = word + (size_t)id * pairs, *pr = pos + (size_t)p * pairs;

    float sum = 0.0f;
    for (int j = lane; j < pairs; j += 32) {
        const float2 a = __half22float2(wr[j]), c = __half22float2(pr[j]);
        const float2 d = __half22float2(type[j]);
        const float2 s = make_float2(a.x + c.x + d.x, a.y + c.y + d.y);
        v[j] = s;
        sum += s.x + s.y;
    }
    warp_layernorm_store(v, sum, pairs, hidden, g, b, eps, out + (size_t)t * pairs);
}

} // namespace

// kernel launcher

extern "C" cudaError_t embed_layernorm_launch(const int32_t *ids, const int32_t *cu_seqlens,
                                              int32_t n_seqs, int32_t n_tokens,
                                              const fp16_t *word_emb, const fp16_t *pos_emb,
                                              const fp16_t *type_emb, int32_t vocab_size,
                                              int32_t max_positions, const float *g, const float *b,
                                              float eps, int32_t hidden, fp16_t *out,
                                              cudaStream_t stream) {
    if (n_tokens < 0 || n_seqs < 0 || hidden <= 0 || hidden % 2 != 0 ||
        hidden > KERNELS_MAX_HIDDEN || vocab_size <= 0 || max_positions <= 0 || !ids ||
        !cu_seqlens || !word_emb || !pos_emb || !type_emb || !g || !b || !out)
        return cudaErrorInvalidValue;
    if (n_tokens == 0) return cudaSuccess;
    if (n_seqs == 0) return cudaErrorInvalidValue; // tokens but no sequence to hold them
    const unsigned blocks = (unsigned)((n_tokens + kRowsPerBlock - 1) / kRowsPerBlock);
    const size_t smem = (size_t)kRowsPerBlock * hidden * sizeof(float);
    embed_layernorm_kernel<<<blocks, kRowsPerBlock * 32, smem, stream>>>(
        ids, cu_seqlens, n_seqs, n_tokens, reinterpret_cast<const __half2 *>(word_emb),
        reinterpret_cast<const __half2 *>(pos_emb), reinterpret_cast<const __half2 *>(type_emb),
        vocab_size, max_positions, reinterpret_cast<const float2 *>(g),
        reinterpret_cast<const float2 *>(b), eps, hidden, reinterpret_cast<__half2 *>(out));
    return cudaGetLastError();
}
