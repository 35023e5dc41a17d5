// attention.cu — variable-length multi-head self-attention over a packed batch, fused:
// per (sequence, head, tile of 64 queries) one block computes
//     out = softmax(q k^T / sqrt(head_dim)) v
// over the sequence's own keys only, without writing the score matrix anywhere.
// CPU twin: dre_attention_cpu in src/cpu/ops.c.
//
// Formulation (flash attention, online softmax over key tiles of 64):
//   for each key tile:  S = Q K^T                                   (tensor cores, fp32 acc)
//                       m' = max(m, rowmax(S)),  P = exp(S - m'),  alpha = exp(m - m')
//                       l = l * alpha + rowsum(P),   O = O * alpha + P V
//   out = O / l
// Scores are scaled by log2(e) / sqrt(head_dim) so 2^x can be used; softmax state and O stay
// fp32, P is rounded to fp16 only as the operand of P V. Two versions, side by side
// (`dre bench encoder --variant attention=NAME`, DRE_VARIANT for tests):
//   mma  (default) FlashAttention-2 style: S, P and O live in registers as mma.sync
//        m16n8k16 fragments; the softmax runs on the accumulator fragments with quad
//        shuffles; P becomes the A operand of P V without leaving registers; K and V tiles
//        stream into shared memory with cp.async, double-buffered, and reach the tensor
//        cores through ldmatrix; 16-byte loads of Q and stores of the output. The k bias
//        drops out (it adds q.b_k to every score of a row: softmax does not see it) and the
//        v bias is added to the output (the softmax weights sum to one).
//   wmma the first version: WMMA 16x16x16 with S, P and O round-tripping through shared
//        memory, the softmax one row at a time across the warp.
// The mma grid puts a (sequence, head)'s query tiles next to each other in launch order,
// so its K and V are read from DRAM about once and from L2 by the other tiles; the wmma
// grid (as it was) runs every sequence's first query tile before any second one.
#include <cuda_fp16.h>
#include <mma.h>

#include "kernels.h"
#include "mma.cuh"
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

// ---------------------------------------------------------------- version: wmma

// The WMMA version's shared memory, everything in it:
//   Q, K, V  [64][D + 8] fp16    (+8: rows 16-byte aligned and off the bank stride)
//   P        [64][64 + 8] fp16
//   S        [64][64 + 4] fp32   (also the scratch for each tile's P V before it joins O)
//   O        [64][D] fp32,  m, l, alpha [64] fp32
// WMMA needs 32-byte aligned fragment pointers: each region starts on a 128-byte boundary
// and every fragment starts at a row that is a multiple of 16 and a column that is a
// multiple of 16, which with the leading dimensions above is a multiple of 32 bytes.
// qkv_bias, when given, is added as q, k and v are loaded. Block: 4 warps, warp w owns
// query rows 16w .. 16w+15: its S, P, O rows and softmax state are its own (warp barriers
// only); the K / V tiles are shared (block barriers around each load).
template <int D> struct wmma_layout {
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
// sass-gate: attention_wmma_kernel<*> regs<=128 hmma>=4 ldg128>=1
// (4 warps and ~70 KiB of shared memory a block: 3 blocks an SM, so up to 170 registers
// would not lower occupancy; WMMA on tensor cores; Q, K, V tiles read 16 bytes at a time)
__global__ void __launch_bounds__(kThreads)
    attention_wmma_kernel(const __half *qkv, const float *qkv_bias, const int32_t *cu_seqlens,
                          int32_t n_heads, float scale_log2, __half *out) {
    using L = wmma_layout<D>;
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
cudaError_t launch_wmma(const __half *qkv, const float *qkv_bias, const int32_t *cu_seqlens,
                        int32_t n_seqs, int32_t max_len, int32_t n_heads, __half *out,
                        cudaStream_t stream) {
    const size_t smem = wmma_layout<D>::bytes;
    // once per process (the attribute stays set), not on every launch
    static const cudaError_t attribute_set = cudaFuncSetAttribute(
        attention_wmma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (attribute_set != cudaSuccess) return attribute_set;
    const dim3 grid((unsigned)n_seqs, (unsigned)n_heads,
                    (unsigned)((max_len + kTileQ - 1) / kTileQ));
    const float scale_log2 = 1.4426950408889634f / sqrtf((float)D); // log2(e) / sqrt(D)
    attention_wmma_kernel<D>
        <<<grid, kThreads, smem, stream>>>(qkv, qkv_bias, cu_seqlens, n_heads, scale_log2, out);
    return cudaGetLastError();
}

// ---------------------------------------------------------------- version: mma (default)

// Shared memory: Q [64][D + 8], K [2][64][D + 8], V [2][64][D + 8] fp16: rows 16-byte
// aligned for cp.async and 16 bytes off the 128-byte bank period, so the 8 rows an
// ldmatrix reads fall in 8 different bank groups. 45 KiB for D = 64, 25 KiB for D = 32.
template <int D> struct mma_layout {
    static constexpr int ld = D + 8;
    static constexpr int tile = kTileK * ld; // halves of one 64-row tile
    static constexpr size_t bytes = 5 * (size_t)tile * sizeof(__half);
    static_assert(D % 16 == 0 && D <= 64, "head_dim 16, 32 or 64");
    static_assert(bytes <= 48 * 1024, "within the default dynamic shared memory");
};

// This thread's cp.async chunks of a K or V tile: 16 bytes each, D / 8 a row, 64 D / 8 a
// tile, the same number for every thread (1, 2 or 4), so loops over them unroll. Where the
// chunks sit in shared memory and in qkv (relative to the tile's first row) is fixed for the
// whole kernel, worked out once.
template <int D> struct tile_chunks {
    static constexpr int per_row = D / 8, per_thread = kTileK * per_row / kThreads;
    static_assert(kTileK * per_row % kThreads == 0, "whole chunks a thread");
    int row[per_thread];
    int smem[per_thread];    // halves from the tile's start in shared memory
    int64_t src[per_thread]; // halves from the tile's first row in qkv

    __device__ explicit tile_chunks(int64_t stride) {
#pragma unroll
        for (int it = 0; it < per_thread; it++) {
            const int i = threadIdx.x + it * kThreads, c = (i % per_row) * 8;
            row[it] = i / per_row;
            smem[it] = row[it] * mma_layout<D>::ld + c;
            src[it] = row[it] * stride + c;
        }
    }

    // Rows [0, 64) of the tile starting at src into dst; rows past n_valid are zero-filled
    // (and read nothing: they point at row 0, which exists).
    __device__ __forceinline__ void load(__half *dst, const __half *src_tile, int n_valid) const {
#pragma unroll
        for (int it = 0; it < per_thread; it++) {
            const bool valid = row[it] < n_valid;
            cp_async_16(dst + smem[it], src_tile + (valid ? src[it] : 0), valid);
        }
    }
};

// sass-gate: attention_mma_kernel<*> hmma>=16 ldg128>=1 stg128>=1 loop<=700
// sass-gate: attention_mma_kernel<[13][62]> regs<=128
// sass-gate: attention_mma_kernel<64> regs<=168
// (Head dims 16 and 32: 4 blocks of 4 warps an SM, as shared memory allows, and 128
// registers keep that; 64 takes 3 blocks and up to 168 registers, which its 32 O and 32 S
// accumulators need without spilling. The key-tile loop is straight-line code, at most a
// third of the wmma version's ~2,150 instructions a tile and warp.)
template <int D>
__global__ void __launch_bounds__(kThreads, D == 64 ? 3 : 4)
    attention_mma_kernel(const __half *qkv, const float *qkv_bias, const int32_t *cu_seqlens,
                         int32_t n_heads, int32_t n_qtiles, float scale_log2, __half *out) {
    using L = mma_layout<D>;
    extern __shared__ __align__(128) unsigned char smem[];
    __half *qs = reinterpret_cast<__half *>(smem);
    __half *ks = qs + L::tile; // two buffers, then V's two
    __half *vs = ks + 2 * L::tile;

    const int32_t seq = blockIdx.x / n_qtiles, q0 = (blockIdx.x % n_qtiles) * kTileQ;
    const int32_t head = blockIdx.y;
    const int32_t start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start;
    if (q0 >= len) return; // the whole block leaves before any barrier

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t = lane % 4; // the fragment coordinates (mma.cuh)
    const int32_t hidden = n_heads * D;
    const int64_t stride = 3 * (int64_t)hidden;
    const __half *k_src = qkv + (int64_t)start * stride + hidden + head * D;
    const __half *v_src = k_src + hidden;
    const int n_tiles = (len + kTileK - 1) / kTileK;

    // K and V tile 0 on their way while Q (+ its bias) is loaded: 16-byte loads
    const tile_chunks<D> chunks(stride);
    chunks.load(ks, k_src, min(kTileK, len));
    chunks.load(vs, v_src, min(kTileK, len));
    cp_async_commit();
    const __half *q_src = qkv + (int64_t)(start + q0) * stride + head * D;
    const float *q_bias = qkv_bias ? qkv_bias + head * D : nullptr;
    for (int i = threadIdx.x; i < kTileQ * (D / 8); i += kThreads) {
        const int r = i / (D / 8), c = (i % (D / 8)) * 8;
        eight_halves x;
        x.raw = make_uint4(0, 0, 0, 0);
        if (q0 + r < len) {
            x.raw = *reinterpret_cast<const uint4 *>(q_src + r * stride + c);
            if (q_bias) {
                const float4 b0 = *reinterpret_cast<const float4 *>(q_bias + c);
                const float4 b1 = *reinterpret_cast<const float4 *>(q_bias + c + 4);
                const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
                for (int j = 0; j < 4; j++) {
                    const float2 f = __half22float2(x.h2[j]);
                    x.h2[j] = __floats2half2_rn(f.x + b[2 * j], f.y + b[2 * j + 1]);
                }
            }
        }
        *reinterpret_cast<uint4 *>(qs + r * L::ld + c) = x.raw;
    }

    float o[D / 8][4]; // O: 16 rows x D, D/8 fragments of 16x8
    for (int i = 0; i < D / 8; i++)
        o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}; // rows g and g + 8: running max (log2 units)
    float l[2] = {0.0f, 0.0f};           // and this lane's part of the running sum

    // this lane's ldmatrix row addresses, as offsets from a tile's start (mma.cuh: lanes 8m ..
    // 8m+7 give matrix m's rows): Q's A fragments, K's and V's (transposed) B fragments
    const int q_lane = (warp * 16 + lane % 16) * L::ld + (lane / 16) * 8;
    const int k_lane = (lane % 8 + (lane / 16) * 8) * L::ld + ((lane / 8) % 2) * 8;
    const int v_lane = (lane % 16) * L::ld + (lane / 16) * 8;
    for (int j = 0; j < n_tiles; j++) {
        if (j + 1 < n_tiles) { // the next tile into the other buffer, then wait for this one
            const int k1 = (j + 1) * kTileK, buf = (j + 1) & 1;
            chunks.load(ks + buf * L::tile, k_src + k1 * stride, min(kTileK, len - k1));
            chunks.load(vs + buf * L::tile, v_src + k1 * stride, min(kTileK, len - k1));
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads(); // tile j (and, the first time, Q) is in shared memory for all
        const __half *kt = ks + (j & 1) * L::tile, *vt = vs + (j & 1) * L::tile;

        // S = Q K^T: 16 x 64, eight 16x8 fragments. This warp's Q rows come back from
        // shared memory as A fragments every tile (4 ldmatrix for D = 64, cheaper than the
        // 16 registers that would make the kernel spill); K's rows are B's columns, so
        // ldmatrix of K's rows gives B fragments directly, two key fragments per .x4.
        float s[8][4];
        for (int n = 0; n < 8; n++)
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t q_frag[4];
            ldmatrix<4>(q_frag, qs + q_lane + kk * 16);
#pragma unroll
            for (int np = 0; np < 4; np++) {
                uint32_t kb[4];
                ldmatrix<4>(kb, kt + k_lane + 16 * np * L::ld + kk * 16);
                mma_m16n8k16(s[2 * np], q_frag, kb[0], kb[1]);
                mma_m16n8k16(s[2 * np + 1], q_frag, kb[2], kb[3]);
            }
        }
        const int n_keys = len - j * kTileK; // keys at or past n_keys do not exist
        if (n_keys < kTileK)
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    if (n * 8 + 2 * t + (i & 1) >= n_keys) s[n][i] = -INFINITY;

        // online softmax on the fragments: lane holds columns 2t, 2t+1 of each fragment
        // for rows g (i = 0, 1) and g + 8 (i = 2, 3); a row's 4 lanes are a quad
        float alpha[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float mx = -INFINITY;
#pragma unroll
            for (int n = 0; n < 8; n++)
                mx = fmaxf(mx, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m[h], mx * scale_log2); // finite: key 0 of a tile exists
            alpha[h] = exp2_approx(m[h] - m_new);             // 0 on the first tile
            m[h] = m_new;
            float sum = 0.0f;
#pragma unroll
            for (int n = 0; n < 8; n++) {
                s[n][2 * h] = exp2_approx(fmaf(s[n][2 * h], scale_log2, -m_new));
                s[n][2 * h + 1] = exp2_approx(fmaf(s[n][2 * h + 1], scale_log2, -m_new));
                sum += s[n][2 * h] + s[n][2 * h + 1];
            }
            l[h] = l[h] * alpha[h] + sum;
        }
#pragma unroll
        for (int d = 0; d < D / 8; d++) {
            o[d][0] *= alpha[0];
            o[d][1] *= alpha[0];
            o[d][2] *= alpha[1];
            o[d][3] *= alpha[1];
        }

        // O += P V: P's fragments are S's, packed to fp16 (keys 16kk .. 16kk+15 are S
        // fragments 2kk and 2kk+1); V's rows are keys, so ldmatrix.trans gives B fragments
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            const uint32_t p[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]),
                                   pack_half2(s[2 * kk][2], s[2 * kk][3]),
                                   pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                uint32_t vb[4];
                ldmatrix_trans<4>(vb, vt + v_lane + 16 * kk * L::ld + 16 * dp);
                mma_m16n8k16(o[2 * dp], p, vb[0], vb[1]);
                mma_m16n8k16(o[2 * dp + 1], p, vb[2], vb[3]);
            }
        }
        __syncthreads(); // every warp is done with buffer j & 1 before it is refilled
    }

    // out = O / l + v bias, through this warp's own 16 rows of Q's shared memory (no
    // other warp reads them) so that the stores are 16 bytes wide
#pragma unroll
    for (int h = 0; h < 2; h++) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
        l[h] = 1.0f / l[h];
    }
    const float *v_bias = qkv_bias ? qkv_bias + 2 * hidden + head * D : nullptr;
    __half *stage = qs + warp * 16 * L::ld;
#pragma unroll
    for (int d = 0; d < D / 8; d++) {
        const int col = d * 8 + 2 * t;
        const float b0 = v_bias ? v_bias[col] : 0.0f, b1 = v_bias ? v_bias[col + 1] : 0.0f;
        *reinterpret_cast<__half2 *>(stage + g * L::ld + col) =
            __floats2half2_rn(o[d][0] * l[0] + b0, o[d][1] * l[0] + b1);
        *reinterpret_cast<__half2 *>(stage + (g + 8) * L::ld + col) =
            __floats2half2_rn(o[d][2] * l[1] + b0, o[d][3] * l[1] + b1);
    }
    __syncwarp();
    for (int i = lane; i < 16 * (D / 8); i += 32) {
        const int r = i / (D / 8), c = (i % (D / 8)) * 8;
        const int32_t qi = q0 + warp * 16 + r;
        if (qi < len)
            *reinterpret_cast<uint4 *>(out + (int64_t)(start + qi) * hidden + head * D + c) =
                *reinterpret_cast<const uint4 *>(stage + r * L::ld + c);
    }
}

template <int D>
cudaError_t launch_mma(const __half *qkv, const float *qkv_bias, const int32_t *cu_seqlens,
                       int32_t n_seqs, int32_t max_len, int32_t n_heads, __half *out,
                       cudaStream_t stream) {
    const int32_t n_qtiles = (max_len + kTileQ - 1) / kTileQ;
    if ((int64_t)n_seqs * n_qtiles > INT32_MAX) return cudaErrorInvalidValue;
    const dim3 grid((unsigned)(n_seqs * n_qtiles), (unsigned)n_heads);
    const float scale_log2 = 1.4426950408889634f / sqrtf((float)D); // log2(e) / sqrt(D)
    attention_mma_kernel<D><<<grid, kThreads, mma_layout<D>::bytes, stream>>>(
        qkv, qkv_bias, cu_seqlens, n_heads, n_qtiles, scale_log2, out);
    return cudaGetLastError();
}

template <int D>
cudaError_t launch(attention_variant variant, const __half *qkv, const float *qkv_bias,
                   const int32_t *cu_seqlens, int32_t n_seqs, int32_t max_len, int32_t n_heads,
                   __half *out, cudaStream_t stream) {
    if (variant == ATTENTION_WMMA)
        return launch_wmma<D>(qkv, qkv_bias, cu_seqlens, n_seqs, max_len, n_heads, out, stream);
    return launch_mma<D>(qkv, qkv_bias, cu_seqlens, n_seqs, max_len, n_heads, out, stream);
}

} // namespace

// kernel launcher

extern "C" cudaError_t dre_attention_launch(const fp16_t *qkv, const float *qkv_bias,
                                            const int32_t *cu_seqlens, int32_t n_seqs,
                                            int32_t max_len, int32_t n_heads, int32_t head_dim,
                                            fp16_t *out, attention_variant variant,
                                            cudaStream_t stream) {
    if (n_seqs < 0 || max_len < 0 || n_heads <= 0 || !qkv || !cu_seqlens || !out ||
        (variant != ATTENTION_MMA && variant != ATTENTION_WMMA) || ((uintptr_t)qkv_bias % 16 != 0))
        return cudaErrorInvalidValue;
    // (an argument check answers cudaErrorInvalidValue: cudaErrorMisalignedAddress is the
    // device fault that loses the context)
    if (((uintptr_t)qkv | (uintptr_t)out) % 16 != 0) return cudaErrorInvalidValue;
    if (n_seqs == 0 || max_len == 0) return cudaSuccess;
    if ((max_len + kTileQ - 1) / kTileQ > 65535 || n_heads > 65535) return cudaErrorInvalidValue;
    const __half *q = reinterpret_cast<const __half *>(qkv);
    __half *o = reinterpret_cast<__half *>(out);
    switch (head_dim) {
    case 16:
        return launch<16>(variant, q, qkv_bias, cu_seqlens, n_seqs, max_len, n_heads, o, stream);
    case 32:
        return launch<32>(variant, q, qkv_bias, cu_seqlens, n_seqs, max_len, n_heads, o, stream);
    case 64:
        return launch<64>(variant, q, qkv_bias, cu_seqlens, n_seqs, max_len, n_heads, o, stream);
    default: return cudaErrorInvalidValue;
    }
}
