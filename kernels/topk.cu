// topk.cu — per-row top-k for exact search, with FAISS's Flat index's exact results, ties
// included: the k entries its k-heap keeps when fed the row's entries in id order, in its
// output order. Each chunk of database scores is reduced together with the k best of the
// chunks before (passed in ascending id order), so chunk after chunk the heap's state
// carries over as FAISS's does over the whole database.
// CPU twin: faiss_heap_topk in tests/kernels_topk_test.cc (FAISS's heap rules, step by step).
//
// FAISS's heap rules, and what they keep (T the k-th largest score, G entries above it):
//   an entry replaces the heap's worst only when strictly better; the worst is the lowest
//   score, of equal scores the lowest id. So every entry above T is kept; of the entries
//   equal to T, none after t* (the k-th entry >= T in id order: from there on the worst is
//   >= T) gets in, and each later entry above T evicts the lowest-id one still in. What stays
//   are the last k - G entries equal to T at or before t*. Output: score descending, equal
//   scores by descending id.
//
// One block per row, exact radix select on order-preserving 32-bit keys:
//   key(f) = bits(f) ^ (f < 0 ? 0xffffffff : 0x80000000)  (a larger float gives a larger key)
//   4 passes over the row, 8 key bits each from the top, histogram the digit of the keys
//   that match the prefix found so far; walking digits down from 255 fixes the next 8 bits
//   of T's key, how many keys equal to T are needed (`remaining`) and how many there are.
// One pass gathers the keys > T (and all keys == T when all are needed); only when some of
// the keys equal to T must be left out, two ordered passes (block-wide prefix counts per
// round of columns) find t* and take the right ones. A bitonic sort in shared memory puts
// the selection in score order or in id order. NaN maps to key 1 (below -inf) and padding
// to key 0, so padding always sorts last.
#include <cuda_runtime.h>

#include "kernels.h"

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
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

// One row as FAISS's heap sees it: n_prev earlier entries (explicit ids, ascending; an id
// < 0 is padding), then n_cols scores whose ids are id_offset + column.
struct row_view {
    const float *scores;
    const float *prev_scores;
    const int64_t *prev_ids;
    int32_t n_prev, n_total;
    int64_t id_offset;

    __device__ uint32_t key(int32_t p) const {
        if (p >= n_prev) return float_key(scores[p - n_prev]);
        return prev_ids[p] < 0 ? 0u : float_key(prev_scores[p]);
    }
    __device__ int64_t id(int32_t p) const {
        return p >= n_prev ? id_offset + (p - n_prev) : prev_ids[p];
    }
};

// Whether a (key, id) pair comes before b in the output: by score, equal scores by descending
// id (FAISS's order); or by ascending id. Padding (key 0) comes last either way.
__device__ __forceinline__ bool comes_before(uint32_t key_a, int64_t id_a, uint32_t key_b,
                                             int64_t id_b, bool by_id) {
    if (by_id) return key_b == 0u ? key_a != 0u : key_a != 0u && id_a < id_b;
    return key_a > key_b || (key_a == key_b && id_a > id_b);
}

// Block-wide count of `flag` over this round: *before gets the count in lower threads, the
// return value the round's total. Every thread of the block must call it.
__device__ __forceinline__ int32_t block_count(bool flag, int32_t *warp_counts, int32_t *before) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const unsigned ballot = __ballot_sync(0xffffffffu, flag);
    if (lane == 0) warp_counts[warp] = __popc(ballot);
    __syncthreads();
    int32_t lower = 0, total = 0;
    for (int w = 0; w < kWarps; w++) {
        lower += w < warp ? warp_counts[w] : 0;
        total += warp_counts[w];
    }
    *before = lower + __popc(ballot & ((1u << lane) - 1u));
    __syncthreads(); // warp_counts is read by all before the next call writes it
    return total;
}

// sass-gate: topk_kernel regs<=64 smem<=16384 hmma=0
// (512 threads: at most 64 registers keeps 2 blocks an SM; the selection is 12 KiB)
__global__ void __launch_bounds__(kThreads)
    topk_kernel(const float *scores, int64_t in_stride, int32_t n_cols, int64_t id_offset,
                const float *prev_scores, const int64_t *prev_ids, int64_t prev_stride,
                int32_t n_prev, int32_t k, int32_t k_pad, bool by_id, float *out_scores,
                int64_t *out_ids, int64_t out_stride) {
    __shared__ uint32_t hist[256];
    __shared__ uint32_t sel_keys[TOPK_MAX_K];
    __shared__ int64_t sel_ids[TOPK_MAX_K];
    __shared__ uint32_t s_prefix;
    __shared__ int32_t s_remaining, s_n_equal;
    __shared__ int32_t s_n_greater, s_n_taken_equal; // gather counters
    __shared__ int32_t s_warp_counts[kWarps];
    __shared__ int32_t s_t_star, s_equal_to_t_star;

    const int64_t row = blockIdx.x;
    const row_view v = {scores + row * in_stride,
                        prev_scores ? prev_scores + row * prev_stride : nullptr,
                        prev_ids ? prev_ids + row * prev_stride : nullptr,
                        n_prev,
                        n_prev + n_cols,
                        id_offset};
    const int tid = threadIdx.x, lane = tid % 32;

    uint32_t threshold = 0u; // T's key; 0 (padding): keep every real entry
    int32_t remaining = 0;   // keys == threshold to keep
    int32_t n_equal = 0;     // keys == threshold in the row
    if (v.n_total > k) {
        uint32_t prefix = 0, prefix_mask = 0;
        remaining = k; // rank of the k-th largest among the keys matching the prefix
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (int i = tid; i < 256; i += kThreads)
                hist[i] = 0;
            __syncthreads();
            // Every thread runs the same number of rounds, so the warp shuffles below see
            // all 32 lanes; a lane past the row end takes part with bin 256 (none).
            for (int32_t base = 0; base < v.n_total; base += kThreads) {
                const int32_t p = base + tid;
                uint32_t bin = 256;
                if (p < v.n_total) {
                    const uint32_t key = v.key(p);
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
                s_n_equal = (int32_t)hist[d]; // after the last pass: the keys equal to T
            }
            __syncthreads();
            prefix = s_prefix;
            remaining = s_remaining;
            n_equal = s_n_equal;
            prefix_mask |= 255u << shift;
        }
        threshold = prefix;
    }
    // T is padding (key 0) when the row has at most k real entries: keep those, no padding.
    const bool threshold_is_padding = threshold == 0u;
    const bool all_equal_taken = threshold_is_padding || n_equal == remaining;

    if (tid == 0) {
        s_n_greater = 0;
        s_n_taken_equal = 0;
    }
    __syncthreads();
    const int32_t n_greater = k - remaining; // slots of the keys > T; then those == T
    for (int32_t p = tid; p < v.n_total; p += kThreads) {
        const uint32_t key = v.key(p);
        int32_t slot = -1;
        if (key > threshold || (threshold_is_padding && key != 0u))
            slot = atomicAdd(&s_n_greater, 1);
        else if (key == threshold && all_equal_taken && !threshold_is_padding)
            slot = n_greater + atomicAdd(&s_n_taken_equal, 1);
        if (slot >= 0) {
            sel_keys[slot] = key;
            sel_ids[slot] = v.id(p);
        }
    }
    __syncthreads();
    int32_t n_taken = s_n_greater + s_n_taken_equal; // == k when the row has k real entries

    if (!all_equal_taken) {
        // Pass 1: t*, the position of the k-th key >= T, and how many keys == T come up to it.
        int32_t ge_so_far = 0, eq_so_far = 0;
        for (int32_t base = 0;; base += kThreads) { // ends at t*: it exists (T is the k-th)
            const int32_t p = base + tid;
            const uint32_t key = p < v.n_total ? v.key(p) : 0u;
            int32_t ge_before, eq_before;
            const int32_t ge_round = block_count(key >= threshold, s_warp_counts, &ge_before);
            const int32_t eq_round = block_count(key == threshold, s_warp_counts, &eq_before);
            if (key >= threshold && ge_so_far + ge_before + 1 == k) {
                s_t_star = p;
                s_equal_to_t_star = eq_so_far + eq_before + (key == threshold);
            }
            if (ge_so_far + ge_round >= k) break; // uniform: every thread has the same sums
            ge_so_far += ge_round;
            eq_so_far += eq_round;
        }
        __syncthreads();
        const int32_t t_star = s_t_star;
        const int32_t skip = s_equal_to_t_star - remaining; // the earliest of them are evicted
        // Pass 2: the keys == T at positions <= t*, after the first `skip` of them.
        eq_so_far = 0;
        for (int32_t base = 0; base <= t_star; base += kThreads) {
            const int32_t p = base + tid;
            const bool equal = p <= t_star && v.key(p) == threshold;
            int32_t before;
            const int32_t round = block_count(equal, s_warp_counts, &before);
            const int32_t rank = eq_so_far + before - skip;
            if (equal && rank >= 0) {
                sel_keys[n_greater + rank] = threshold;
                sel_ids[n_greater + rank] = v.id(p);
            }
            eq_so_far += round;
        }
        n_taken = k;
    }
    for (int32_t i = n_taken + tid; i < k_pad; i += kThreads) {
        sel_keys[i] = 0;
        sel_ids[i] = -1;
    }
    __syncthreads();

    // Bitonic sort of k_pad (key, id) pairs into the output order: pairs (i, i ^ stride),
    // each handled by the thread holding the smaller index; the direction of a run flips
    // with bit `size` of i.
    for (int32_t size = 2; size <= k_pad; size <<= 1) {
        for (int32_t stride = size / 2; stride > 0; stride >>= 1) {
            for (int32_t i = tid; i < k_pad; i += kThreads) {
                const int32_t j = i ^ stride;
                if (j > i) {
                    const bool forward = (i & size) == 0;
                    const uint32_t a = sel_keys[i], b = sel_keys[j];
                    const int64_t ia = sel_ids[i], ib = sel_ids[j];
                    if (forward ? comes_before(b, ib, a, ia, by_id)
                                : comes_before(a, ia, b, ib, by_id)) {
                        sel_keys[i] = b;
                        sel_keys[j] = a;
                        sel_ids[i] = ib;
                        sel_ids[j] = ia;
                    }
                }
            }
            __syncthreads();
        }
    }

    for (int32_t i = tid; i < k; i += kThreads) {
        const uint32_t key = sel_keys[i];
        out_scores[row * out_stride + i] = key == 0u ? -INFINITY : key_float(key);
        out_ids[row * out_stride + i] = key == 0u ? -1 : sel_ids[i];
    }
}

} // namespace

// kernel launcher

extern "C" cudaError_t dre_topk_launch(const float *scores, int64_t in_stride, int32_t n_cols,
                                       int64_t id_offset, const float *prev_scores,
                                       const int64_t *prev_ids, int64_t prev_stride, int32_t n_prev,
                                       int32_t n_rows, int32_t k, topk_order order,
                                       float *out_scores, int64_t *out_ids, int64_t out_stride,
                                       cudaStream_t stream) {
    if (n_rows < 0 || n_cols < 0 || n_prev < 0 || k < 1 || k > TOPK_MAX_K || out_stride < k ||
        !out_scores || !out_ids || (n_cols > 0 && (!scores || in_stride < n_cols)) ||
        (n_prev > 0 && (!prev_scores || !prev_ids || prev_stride < n_prev)) ||
        (int64_t)n_cols + n_prev > INT32_MAX - TOPK_MAX_K)
        return cudaErrorInvalidValue;
    if (n_rows == 0) return cudaSuccess;
    int32_t k_pad = 1;
    while (k_pad < k)
        k_pad <<= 1;
    topk_kernel<<<(unsigned)n_rows, kThreads, 0, stream>>>(
        scores, in_stride, n_cols, id_offset, prev_scores, prev_ids, prev_stride, n_prev, k, k_pad,
        order == TOPK_BY_ID, out_scores, out_ids, out_stride);
    return cudaGetLastError();
}
