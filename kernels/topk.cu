// topk.cu — per-row top-k of a score matrix, for exact search: the k largest scores of each
// row, best first, with their ids. Used on each chunk of database scores, and again to
// merge a chunk's k best with the k best so far (ids given explicitly).
// CPU twin: a sort in tests/kernels_topk_test.cc.
//
// One block per row, exact radix select on order-preserving 32-bit keys:
//   key(f) = bits(f) ^ (f < 0 ? 0xffffffff : 0x80000000)  (a larger float gives a larger key)
//   4 passes over the row, 8 key bits each from the top, histogram the digit of the keys
//   that match the prefix found so far; walking digits down from 255 fixes the next 8 bits
//   of the k-th largest key T and how many keys equal to T are still needed (`remaining`).
// Then one pass gathers the k - remaining keys > T and the first `remaining` keys == T
// (which of equal keys is arbitrary), and a bitonic sort in shared memory orders them.
// NaN maps to key 1 (below -inf) and padding to key 0, so padding always sorts last.
#include <cuda_runtime.h>

#include "kernels.h"

namespace {

constexpr int kThreads = 512;
static_assert(TOPK_MAX_K <= 1024 && (TOPK_MAX_K & (TOPK_MAX_K - 1)) == 0,
              "the bitonic sort needs a power of two");

__device__ __forceinline__ uint32_t float_key(float f) {
    if (f != f) return 1u; // NaN: just above padding, below every number
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float key_float(uint32_t key) {
    const uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
    return __uint_as_float(u);
}

__global__ void __launch_bounds__(kThreads)
    topk_kernel(const float *scores, const int64_t *ids, int64_t id_offset, int32_t n_cols,
                int64_t in_stride, int32_t k, int32_t k_pad, float *out_scores, int64_t *out_ids,
                int64_t out_stride) {
    __shared__ uint32_t hist[256];
    __shared__ uint32_t sel_keys[TOPK_MAX_K];
    __shared__ int64_t sel_ids[TOPK_MAX_K];
    __shared__ uint32_t s_prefix;
    __shared__ int32_t s_remaining;
    __shared__ int32_t s_n_greater, s_n_equal; // gather counters

    const int64_t row = blockIdx.x;
    const float *x = scores + row * in_stride;
    const int64_t *row_ids = ids ? ids + row * in_stride : nullptr;
    const int tid = threadIdx.x, lane = tid % 32;

    uint32_t threshold = 0; // keep keys > threshold, and `remaining` keys == threshold
    int32_t remaining = 0;
    int32_t n_taken = n_cols; // entries that will be filled from the row
    if (n_cols > k) {
        n_taken = k;
        uint32_t prefix = 0, prefix_mask = 0;
        remaining = k; // rank of the k-th largest among the keys matching the prefix
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (int i = tid; i < 256; i += kThreads)
                hist[i] = 0;
            __syncthreads();
            // Every thread runs the same number of rounds, so the warp shuffles below see
            // all 32 lanes; a lane past the row end takes part with bin 256 (none).
            for (int32_t base = 0; base < n_cols; base += kThreads) {
                const int32_t col = base + tid;
                uint32_t bin = 256;
                if (col < n_cols) {
                    const uint32_t key = float_key(x[col]);
                    if ((key & prefix_mask) == prefix) bin = (key >> shift) & 255u;
                }
                // lanes with the same bin add once, through their lowest lane
                const unsigned same = __match_any_sync(0xffffffffu, bin);
                if (bin < 256 && lane == __ffs(same) - 1) atomicAdd(&hist[bin], __popc(same));
            }
            __syncthreads();
            if (tid == 0) {
                int d = 255; // stops at the digit holding the k-th largest (0 at the latest)
                while (d > 0 && (int32_t)hist[d] < remaining) {
                    remaining -= (int32_t)hist[d]; // all of digit d is above it
                    d--;
                }
                s_prefix = prefix | ((uint32_t)d << shift);
                s_remaining = remaining;
            }
            __syncthreads();
            prefix = s_prefix;
            remaining = s_remaining;
            prefix_mask |= 255u << shift;
        }
        threshold = prefix;
    }

    if (tid == 0) {
        s_n_greater = 0;
        s_n_equal = 0;
    }
    __syncthreads();
    const int32_t n_greater = n_taken - remaining; // slots 0 .. n_greater-1 hold keys > T
    for (int32_t col = tid; col < n_cols; col += kThreads) {
        const uint32_t key = float_key(x[col]);
        int32_t slot = -1;
        if (n_cols <= k) {
            slot = col; // the whole row is taken
        } else if (key > threshold) {
            slot = atomicAdd(&s_n_greater, 1);
        } else if (key == threshold) {
            const int32_t e = atomicAdd(&s_n_equal, 1);
            if (e < remaining) slot = n_greater + e;
        }
        if (slot >= 0) {
            sel_keys[slot] = key;
            sel_ids[slot] = row_ids ? row_ids[col] : id_offset + col;
        }
    }
    for (int32_t i = n_taken + tid; i < k_pad; i += kThreads) {
        sel_keys[i] = 0;
        sel_ids[i] = -1;
    }
    __syncthreads();

    // Bitonic sort of k_pad keys, descending: pairs (i, i ^ stride), each handled by the
    // thread holding the smaller index; the direction of a run flips with bit `size` of i.
    for (int32_t size = 2; size <= k_pad; size <<= 1) {
        for (int32_t stride = size / 2; stride > 0; stride >>= 1) {
            for (int32_t i = tid; i < k_pad; i += kThreads) {
                const int32_t j = i ^ stride;
                if (j > i) {
                    const bool descending = (i & size) == 0;
                    const uint32_t a = sel_keys[i], b = sel_keys[j];
                    if (descending ? a < b : a > b) {
                        sel_keys[i] = b;
                        sel_keys[j] = a;
                        const int64_t t = sel_ids[i];
                        sel_ids[i] = sel_ids[j];
                        sel_ids[j] = t;
                    }
                }
            }
            __syncthreads();
        }
    }

    for (int32_t i = tid; i < k; i += kThreads) {
        const int64_t id = sel_ids[i];
        out_scores[row * out_stride + i] = id < 0 ? -INFINITY : key_float(sel_keys[i]);
        out_ids[row * out_stride + i] = id;
    }
}

} // namespace

// kernel launcher

extern "C" cudaError_t topk_launch(const float *scores, const int64_t *ids, int64_t id_offset,
                                   int32_t n_rows, int32_t n_cols, int64_t in_stride, int32_t k,
                                   float *out_scores, int64_t *out_ids, int64_t out_stride,
                                   cudaStream_t stream) {
    if (n_rows < 0 || n_cols < 0 || k < 1 || k > TOPK_MAX_K || out_stride < k || !out_scores ||
        !out_ids || (n_cols > 0 && (!scores || in_stride < n_cols)))
        return cudaErrorInvalidValue;
    if (n_rows == 0) return cudaSuccess;
    int32_t k_pad = 1;
    while (k_pad < k)
        k_pad <<= 1;
    topk_kernel<<<(unsigned)n_rows, kThreads, 0, stream>>>(
        scores, ids, id_offset, n_cols, in_stride, k, k_pad, out_scores, out_ids, out_stride);
    return cudaGetLastError();
}
