// embed_layernorm.cu — the embedding layer: gather word + position + token-type rows and
// LayerNorm them in one pass: out[t] = LN(word[ids[t]] + pos[p(t)] + type[0]) * g + b,
// p(t) = t - start of t's sequence in the packed batch.
// CPU twin: dre_embed_layernorm_cpu in src/cpu/ops.c.
//
// Memory bound: a row reads 2 * 2 * hidden bytes (word and position rows; the type row
// and g, b stay in cache) and writes 2 * hidden. One half-warp per token row, as in
// layernorm.cu: 16-byte chunks in registers, two-pass statistics there. A token finds its
// sequence by binary search in cu_seqlens (log2(n_seqs) cached reads), so no position
// array has to be built.
#include <cuda_fp16.h>

#include "kernels.h"
#include "warp.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 16;

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

// sass-gate: embed_layernorm_kernel<*> regs<=128 hmma=0 ldg128>=1 stg128>=1
template <int CPL>
__global__ void __launch_bounds__(kThreads)
    embed_layernorm_kernel(const int32_t *ids, const int32_t *cu_seqlens, int32_t n_seqs,
                           int32_t n_tokens, const uint4 *word, const uint4 *pos, const uint4 *type,
                           int32_t vocab_size, int32_t max_positions, const float4 *g,
                           const float4 *b, float eps, int32_t chunks, float inv_hidden,
                           uint4 *out) {
    const int l = threadIdx.x % 16;
    const int32_t t = blockIdx.x * kRowsPerBlock + threadIdx.x / 16;
    const bool row = t < n_tokens;
    int32_t id = 0, p = 0;
    if (row) {
        id = ids[t];
        if (id < 0 || id >= vocab_size) id = 0;
        p = t - cu_seqlens[sequence_of(cu_seqlens, n_seqs, t)];
        if (p >= max_positions) p = max_positions - 1;
    }
    const uint4 *wr = word + (size_t)id * chunks, *pr = pos + (size_t)p * chunks;
    float v[CPL][8];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < CPL; i++) {
        const int c = l + 16 * i;
#pragma unroll
        for (int j = 0; j < 8; j++)
            v[i][j] = 0.0f;
        if (!row || c >= chunks) continue;
        float a[8], q[8], y[8];
        widen8(wr[c], a);
        widen8(pr[c], q);
        widen8(type[c], y);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            v[i][j] = a[j] + q[j] + y[j];
            sum += v[i][j];
        }
    }
    halfwarp_layernorm_store<CPL>(v, sum, chunks, inv_hidden, g, b, eps,
                                  out + (size_t)(row ? t : 0) * chunks, row);
}

struct launch {
    const int32_t *ids, *cu_seqlens;
    int32_t n_seqs, n_tokens;
    const uint4 *word, *pos, *type;
    int32_t vocab_size, max_positions;
    const float4 *g, *b;
    float eps;
    int32_t chunks;
    float inv_hidden;
    uint4 *out;
    cudaStream_t stream;

    template <int CPL> cudaError_t operator()() const {
        const unsigned blocks = (unsigned)((n_tokens + kRowsPerBlock - 1) / kRowsPerBlock);
        embed_layernorm_kernel<CPL><<<blocks, kThreads, 0, stream>>>(
            ids, cu_seqlens, n_seqs, n_tokens, word, pos, type, vocab_size, max_positions, g, b,
            eps, chunks, inv_hidden, out);
        return cudaGetLastError();
    }
};

} // namespace

// kernel launcher

extern "C" cudaError_t dre_embed_layernorm_launch(const int32_t *ids, const int32_t *cu_seqlens,
                                                  int32_t n_seqs, int32_t n_tokens,
                                                  const fp16_t *word_emb, const fp16_t *pos_emb,
                                                  const fp16_t *type_emb, int32_t vocab_size,
                                                  int32_t max_positions, const float *g,
                                                  const float *b, float eps, int32_t hidden,
                                                  fp16_t *out, cudaStream_t stream) {
    if (n_tokens < 0 || n_seqs < 0 || hidden <= 0 || hidden % 8 != 0 ||
        hidden > KERNELS_MAX_HIDDEN || vocab_size <= 0 || max_positions <= 0 || !ids ||
        !cu_seqlens || !word_emb || !pos_emb || !type_emb || !g || !b || !out ||
        ((uintptr_t)word_emb | (uintptr_t)pos_emb | (uintptr_t)type_emb | (uintptr_t)g |
         (uintptr_t)b | (uintptr_t)out) %
                16 !=
            0)
        return cudaErrorInvalidValue;
    if (n_tokens == 0) return cudaSuccess;
    if (n_seqs == 0) return cudaErrorInvalidValue; // tokens but no sequence to hold them
    const launch l = {ids,
                      cu_seqlens,
                      n_seqs,
                      n_tokens,
                      reinterpret_cast<const uint4 *>(word_emb),
                      reinterpret_cast<const uint4 *>(pos_emb),
                      reinterpret_cast<const uint4 *>(type_emb),
                      vocab_size,
                      max_positions,
                      reinterpret_cast<const float4 *>(g),
                      reinterpret_cast<const float4 *>(b),
                      eps,
                      hidden / 8,
                      1.0f / (float)hidden,
                      reinterpret_cast<uint4 *>(out),
                      stream};
    return with_chunks_per_lane(hidden / 8, l);
}
