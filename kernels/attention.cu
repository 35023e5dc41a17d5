// attention.cu — variable-length multi-head self-attention over a packed batch, fused:
// per (sequence, head, tile of 64 queries) one block computes
//     out = softmax(q k^T / sqrt(head_dim)) v
// over the sequence's own keys only, without writing the score matrix anywhere.
// CPU twin: attention_cpu in src/encoder_cpu.c.
//
// Formulation (flash attention, online softmax over key tiles of 64):
//   for each key tile:  S = Q K^T                     (tensor cores, WMMA 16x16x16, fp32 acc)
//                       m' = max(m, rowmax(S)),  P = exp(S - m'),  alpha = exp(m - m')
//                       l = l * alpha + rowsum(P),   O = O * alpha + P V   (WMMA, fp32 acc)
//   out = O / l
// Scores are scaled by log2(e) / sqrt(head_dim) so exp2f can be used; softmax state and O
// stay fp32, P is rounded to fp16 only as the operand of P V.
//
// Block: 4 warps, warp w owns query rows 16w .. 16w+15 of the tile: its S, P, O rows and
// softmax state are its own (warp barriers only); the K / V tiles are shared (block
// barriers around each load). Everything lives in shared memory:
//   Q, K, V  [64][D + 8] fp16    (+8: rows 16-byte aligned and off the bank stride)
//   P        [64][64 + 8] fp16
//   S        [64][64 + 4] fp32   (also the scratch for each tile's P V before it joins O)
//   O        [64][D] fp32,  m, l, alpha [64] fp32
// WMMA needs 32-byte aligned fragment pointers: each region starts on a 128-byte boundary
// and every fragment starts at a row that is a multiple of 16 and a column that is a
// multiple of 16, which with the leading dimensions above is a multiple of 32 bytes.
// qkv_bias, when given, is added as q, k and v are loaded (the QKV GEMM has no bias).
#include <cuda_fp16.h>
#include <mma.h>

#include "kernels.h"
#include "warp.cuh"

namespace {

using namespace nvcuda;

constexpr int kTileQ = 64; // queries per block
constexpr int kTileK = 64; // keys per step
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
static_assert(kTileQ == 16 * kWarps, "each warp owns 16 query rows");
static_assert(kTileK == 64, "the softmax step gives each lane columns lane and lane + 32");

constexpr size_t align128(size_t n) { return (n + 127) / 128 * 128; }

template <int D> struct layout {
    static constexpr int ld_qkv = D + 8;    // halves per row of Q, K, V
    static constexpr int ld_p = kTileK + 8; // halves per row of P
    static constexpr int ld_s = kTileK + 4; // floats per row of S / the P V scratch
    static constexpr size_t q = 0;
    static constexpr size_t k = q + align128((size_t)kTileQ * ld_qkv * sizeof(__half));
    static constexpr size_t v = k + align128((size_t)kTileK * ld_qkv * sizeof(__half));
    static constexpr size_t p = v + align128((size_t)kTileK * ld_qkv * sizeof(__half));
    static constexpr size_t s = p + align128((size_t)kTileQ * ld_p * sizeof(__half));
    static constexpr size_t o = s + align128((size_t)kTileQ * ld_s * sizeof(float));
    static constexpr size_t m = o + align128((size_t)kTileQ * D * sizeof(float));
    static constexpr size_t l = m + align128(kTileQ * sizeof(float));
    static constexpr size_t alpha = l + align128(kTileQ * sizeof(float));
    static constexpr size_t bytes = alpha + align128(kTileQ * sizeof(float));
    static_assert(D % 16 == 0 && D <= kTileK, "P V scratch reuses S: needs D <= kTileK");
};

union eight_halves {
    uint4 raw;
    __half2 h2[4];
};

// Copies rows [0, n_valid) of a [rows][D] slice of qkv (row stride `stride` halves) into
// shared memory with leading dimension ld, adding bias[0 .. D) if given; rows n_valid ..
// rows-1 become zeros (so padded keys and values are finite and padded P entries, being
// zero, add nothing). 16-byte loads: 8 halves per thread per step.
template <int D>
__device__ __forceinline__ void load_tile(__half *dst, int ld, const __half *src, int64_t stride,
                                          int rows, int n_valid, const float *bias) {
    constexpr int chunks = D / 8;
    for (int i = threadIdx.x; i < rows * chunks; i += kThreads) {
        const int r = i / chunks, c = (i % chunks) * 8;
        eight_halves x;
        x.raw = make_uint4(0, 0, 0, 0);
        if (r < n_valid) {
            x.raw = *reinterpret_cast<const uint4 *>(src + r * stride + c);
            if (bias) {
                for (int j = 0; j < 4; j++) {
                    float2 f = __half22float2(x.h2[j]);
                    f.x += bias[c + 2 * j];
                    f.y += bias[c + 2 * j + 1];
                    x.h2[j] = __floats2half2_rn(f.x, f.y);
                }
            }
        }
        *reinterpret_cast<uint4 *>(dst + r * ld + c) = x.raw;
    }
}

template <int D>
// sass-gate: attention_kernel<*> regs<=128 hmma>=4 ldg128>=1
// (4 warps and ~70 KiB of shared memory a block: 3 blocks an SM, so up to 170 registers
// would not lower occupancy; WMMA on tensor cores; Q, K, V tiles read 16 bytes at a time)
__global__ void __launch_bounds__(kThreads)
    attention_kernel(const __half *qkv, const float *qkv_bias, const int32_t *cu_seqlens,
                     int32_t n_heads, float scale_log2, __half *out) {
    using L = layout<D>;
    extern __shared__ __align__(128) unsigned char smem[];
    __half *qs = reinterpret_cast<__half *>(smem + L::q);
    __half *ks = reinterpret_cast<__half *>(smem + L::k);
    __half *vs = reinterpret_cast<__half *>(smem + L::v);
    __half *ps = reinterpret_cast<__half *>(smem + L::p);
    float *ss = reinterpret_cast<float *>(smem + L::s);
    float *os = reinterpret_cast<float *>(smem + L::o);
    float *row_m = reinterpret_cast<float *>(smem + L::m);
    float *row_l = reinterpret_cast<float *>(smem + L::l);
    float *row_alpha = reinterpret_cast<float *>(smem + L::alpha);

    const int32_t seq = blockIdx.x, head = blockIdx.y, q0 = blockIdx.z * kTileQ;
    const int32_t start = cu_seqlens[seq];
    const int32_t len = cu_seqlens[seq + 1] - start;
    if (q0 >= len) return; // the whole block leaves before any barrier

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int32_t hidden = n_heads * D;
    const int64_t stride = 3 * (int64_t)hidden; // halves per token row of qkv
    const __half *q_src = qkv + (int64_t)(start + q0) * stride + head * D;
    const __half *k_src = qkv + (int64_t)start * stride + hidden + head * D;
    const __half *v_src = k_src + hidden;
    const float *q_bias = qkv_bias ? qkv_bias + head * D : nullptr;
    const float *k_bias = qkv_bias ? qkv_bias + hidden + head * D : nullptr;
    const float *v_bias = qkv_bias ? qkv_bias + 2 * hidden + head * D : nullptr;

    load_tile<D>(qs, L::ld_qkv, q_src, stride, kTileQ, min(kTileQ, len - q0), q_bias);
    for (int i = threadIdx.x; i < kTileQ * D; i += kThreads)
        os[i] = 0.0f;
    if (threadIdx.x < kTileQ) {
        row_m[threadIdx.x] = -INFINITY;
        row_l[threadIdx.x] = 0.0f;
    }
    __syncthreads();

    // This warp's 16 query rows stay in registers as WMMA A fragments.
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> q_frag[D / 16];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        wmma::load_matrix_sync(q_frag[kk], qs + warp * 16 * L::ld_qkv + kk * 16, L::ld_qkv);

    const int row0 = warp * 16; // first block row of this warp
    float *s_w = ss + row0 * L::ld_s;
    __half *p_w = ps + row0 * L::ld_p;
    float *o_w = os + row0 * D;

    for (int32_t k0 = 0; k0 < len; k0 += kTileK) {
        const int n_keys = min(kTileK, len - k0); // >= 1
        __syncthreads(); // every warp is done with the previous K and V tiles
        load_tile<D>(ks, L::ld_qkv, k_src + k0 * stride, stride, kTileK, n_keys, k_bias);
        load_tile<D>(vs, L::ld_qkv, v_src + k0 * stride, stride, kTileK, n_keys, v_bias);
        __syncthreads();

        // S[16][64] = Q K^T; K^T is K read as a column-major matrix.
        for (int nt = 0; nt < kTileK / 16; nt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> k_frag;
                wmma::load_matrix_sync(k_frag, ks + nt * 16 * L::ld_qkv + kk * 16, L::ld_qkv);
                wmma::mma_sync(acc, q_frag[kk], k_frag, acc);
            }
            wmma::store_matrix_sync(s_w + nt * 16, acc, L::ld_s, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax, one row at a time across the warp: lane has columns lane, lane + 32.
        for (int r = 0; r < 16; r++) {
            const float s0 = lane < n_keys ? s_w[r * L::ld_s + lane] * scale_log2 : -INFINITY;
            const float s1 =
                lane + 32 < n_keys ? s_w[r * L::ld_s + lane + 32] * scale_log2 : -INFINITY;
            const float m_old = row_m[row0 + r];
            const float m_new = fmaxf(m_old, warp_max(fmaxf(s0, s1))); // finite: key 0 is valid
            const float p0 = exp2f(s0 - m_new), p1 = exp2f(s1 - m_new);
            const float sum = warp_sum(p0 + p1);
            p_w[r * L::ld_p + lane] = __float2half_rn(p0);
            p_w[r * L::ld_p + lane + 32] = __float2half_rn(p1);
            __syncwarp(); // every lane has read row_m[row0 + r] before lane 0 replaces it
            if (lane == 0) {
                const float alpha = exp2f(m_old - m_new); // 0 on the first tile (m_old = -inf)
                row_alpha[row0 + r] = alpha;
                row_l[row0 + r] = row_l[row0 + r] * alpha + sum;
                row_m[row0 + r] = m_new;
            }
        }
        __syncwarp(); // P, alpha written; S fully read, so it can take the P V product

        // s_w[16][D] = P V
        for (int dt = 0; dt < D / 16; dt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int kk = 0; kk < kTileK / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> p_frag;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> v_frag;
                wmma::load_matrix_sync(p_frag, p_w + kk * 16, L::ld_p);
                wmma::load_matrix_sync(v_frag, vs + kk * 16 * L::ld_qkv + dt * 16, L::ld_qkv);
                wmma::mma_sync(acc, p_frag, v_frag, acc);
            }
            wmma::store_matrix_sync(s_w + dt * 16, acc, L::ld_s, wmma::mem_row_major);
        }
        __syncwarp();

        // O = O * alpha + P V
        for (int i = lane; i < 16 * D; i += 32) {
            const int r = i / D, c = i % D;
            o_w[r * D + c] = o_w[r * D + c] * row_alpha[row0 + r] + s_w[r * L::ld_s + c];
        }
        __syncwarp();
    }

    // out = O / l for the rows that are real queries
    for (int i = lane; i < 16 * D; i += 32) {
        const int r = i / D, c = i % D;
        const int32_t qi = q0 + row0 + r;
        if (qi < len)
            out[(int64_t)(start + qi) * hidden + head * D + c] =
                __float2half_rn(o_w[r * D + c] / row_l[row0 + r]);
    }
}

template <int D>
cudaError_t launch(const __half *qkv, const float *qkv_bias, const int32_t *cu_seqlens,
                   int32_t n_seqs, int32_t max_len, int32_t n_heads, __half *out,
                   cudaStream_t stream) {
    const size_t smem = layout<D>::bytes;
    // once per process (the attribute stays set), not on every launch
    static const cudaError_t attribute_set = cudaFuncSetAttribute(
        attention_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (attribute_set != cudaSuccess) return attribute_set;
    const dim3 grid((unsigned)n_seqs, (unsigned)n_heads,
                    (unsigned)((max_len + kTileQ - 1) / kTileQ));
    const float scale_log2 = 1.4426950408889634f / sqrtf((float)D); // log2(e) / sqrt(D)
    attention_kernel<D>
        <<<grid, kThreads, smem, stream>>>(qkv, qkv_bias, cu_seqlens, n_heads, scale_log2, out);
    return cudaGetLastError();
}

} // namespace

// kernel launcher

extern "C" cudaError_t attention_launch(const fp16_t *qkv, const float *qkv_bias,
                                        const int32_t *cu_seqlens, int32_t n_seqs, int32_t max_len,
                                        int32_t n_heads, int32_t head_dim, fp16_t *out,
                                        cudaStream_t stream) {
    if (n_seqs < 0 || max_len < 0 || n_heads <= 0 || !qkv || !cu_seqlens || !out)
        return cudaErrorInvalidValue;
    // (an argument check answers cudaErrorInvalidValue: cudaErrorMisalignedAddress is the
    // device fault that loses the context)
    if (((uintptr_t)qkv | (uintptr_t)out) % 16 != 0) return cudaErrorInvalidValue;
    if (n_seqs == 0 || max_len == 0) return cudaSuccess;
    if ((max_len + kTileQ - 1) / kTileQ > 65535 || n_heads > 65535) return cudaErrorInvalidValue;
    const __half *q = reinterpret_cast<const __half *>(qkv);
    __half *o = reinterpret_cast<__half *>(out);
    switch (head_dim) {
    case 16: return launch<16>(q, qkv_bias, cu_seqlens, n_seqs, max_len, n_heads, o, stream);
    case 32: return launch<32>(q, qkv_bias, cu_seqlens, n_seqs, max_len, n_heads, o, stream);
    case 64: return launch<64>(q, qkv_bias, cu_seqlens, n_seqs, max_len, n_heads, o, stream);
    default: return cudaErrorInvalidValue;
    }
}
