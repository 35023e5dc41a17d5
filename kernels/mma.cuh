// mma.cuh — the warp-level tensor-core and async-copy instructions the attention kernel is
// built from, as device functions: inline PTX on the GPU, and under the CUDA emulation
// (tests/emu/cuda_emu.h) calls to its exact emulation. Where each lane's registers sit in
// the matrices is the PTX ISA manual's (section 9.7.14, "Warp Level Matrix Multiply-
// Accumulate Instructions"), g = lane / 4, t = lane % 4:
//   mma.m16n8k16, f16 A/B, f32 C/D ("Matrix Fragments for mma.m16n8k16 with floating point
//   type"), two 16-bit elements per register, the lower-numbered one in the low half:
//     A 16x16 (row):  a0,a1 (g, 2t..2t+1)  a2,a3 (g+8, 2t..)  a4,a5 (g, 2t+8..)  a6,a7 (g+8,
//     2t+8..) B 16x8  (col):  b0,b1 (k = 2t..2t+1, n = g)  b2,b3 (k = 2t+8.., n = g) C/D 16x8 f32:
//     c0,c1 (g, 2t..2t+1)  c2,c3 (g+8, 2t..2t+1)
//   ldmatrix.m8n8 ("Warp-level matrix load instruction: ldmatrix"): lanes 8m..8m+7 give the
//   row addresses of matrix m (16 bytes each, 16-byte aligned); lane l receives row l / 4,
//   columns 2(l%4), 2(l%4)+1 of each matrix, or with .trans those of the transpose.
//   So ldmatrix of an 8x8 block yields exactly an A or B register of the layouts above.
//   cp.async ("Data Movement and Conversion Instructions: cp.async"): 16 bytes global ->
//   shared, bypassing registers, complete only after cp.async.wait_group.
// Tested lane by lane against plain matrix products in tests/kernels_mma_test.cc.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

#include <cstring>

// r[m] = this lane's register of 8x8 matrix m (m < N), rows at the lanes' addresses.
template <int N> __device__ __forceinline__ void ldmatrix(uint32_t (&r)[N], const __half *row) {
    static_assert(N == 1 || N == 2 || N == 4, "ldmatrix .x1, .x2 or .x4");
#ifdef DRE_CUDA_EMU_DEVICE
    emu::ldmatrix(r, N, false, row);
#else
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(row);
    if constexpr (N == 1)
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                     : "=r"(r[0])
                     : "r"(a));
    else if constexpr (N == 2)
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1])
                     : "r"(a));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
#endif
}

// The same, each matrix transposed.
template <int N>
__device__ __forceinline__ void ldmatrix_trans(uint32_t (&r)[N], const __half *row) {
    static_assert(N == 1 || N == 2 || N == 4, "ldmatrix .x1, .x2 or .x4");
#ifdef DRE_CUDA_EMU_DEVICE
    emu::ldmatrix(r, N, true, row);
#else
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(row);
    if constexpr (N == 1)
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                     : "=r"(r[0])
                     : "r"(a));
    else if constexpr (N == 2)
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1])
                     : "r"(a));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
#endif
}

// d = a b + c: one 16x8x16 product on tensor cores, fp16 inputs, fp32 accumulation.
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
#ifdef DRE_CUDA_EMU_DEVICE
    const uint32_t b[2] = {b0, b1};
    const float c[4] = {d[0], d[1], d[2], d[3]};
    emu::mma_m16n8k16(d, a, b, c);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// 16 bytes global -> shared, asynchronously; fill = false writes 16 zero bytes instead (and
// reads nothing at src, which must still be a valid address).
__device__ __forceinline__ void cp_async_16(__half *dst, const __half *src, bool fill) {
#ifdef DRE_CUDA_EMU_DEVICE
    emu::cp_async(dst, src, 16, fill ? 16 : 0);
#else
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(src),
                 "r"(fill ? 16 : 0)
                 : "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#ifdef DRE_CUDA_EMU_DEVICE
    emu::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most `pending` of this thread's committed groups are still in flight.
template <int pending> __device__ __forceinline__ void cp_async_wait() {
#ifdef DRE_CUDA_EMU_DEVICE
    emu::cp_async_wait(pending);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
#endif
}

// 2^x by the special function unit (ex2.approx.ftz: 2 ulp; -inf gives 0).
__device__ __forceinline__ float exp2_approx(float x) {
#ifdef DRE_CUDA_EMU_DEVICE
    return std::exp2(x);
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
#endif
}

// Two floats as the fp16 pair of one register (lo in the low half).
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    uint32_t r;
    memcpy(&r, &h, sizeof r);
    return r;
}
