/* cuda_emu.h — a CPU emulation of the part of CUDA that dre uses, so that the kernels in
 * kernels/ and the GPU host code in src/ run, unchanged, on a machine without a GPU:
 *   - the runtime (memory, streams, events, copies) with device allocations tracked, copies
 *     and kernel arguments checked against them, and stream work deferred until the host
 *     synchronises (a missing synchronisation reads stale data instead of passing by luck);
 *   - kernels: every block's threads run as fibers that switch only at barriers, shuffles
 *     and other warp-wide operations; lanes run in a shuffled order and, per block, warps
 *     either advance in lockstep or each runs alone up to its next __syncthreads, so a
 *     missing barrier changes results (DRE_EMU_ORDER=forward|reverse fixes the order);
 *     warp operations with lanes at different barriers, misaligned WMMA pointers, kernel
 *     arguments outside device memory, or too much shared memory fail the launch;
 *   - fp16 (__half), warp intrinsics, shared-memory atomics, WMMA 16x16x16 fragments;
 *   - cublasGemmEx through OpenBLAS (fp16 operands widened, fp32 accumulation).
 * Shadow headers (cuda_runtime_api.h, cuda_fp16.h, mma.h, cublas_v2.h ...) include this
 * one; tests/emu/rewrite.pl turns `kernel<<<config>>>(args)` into emu::launch calls.
 * It checks the logic of the code. It cannot see what only real hardware shows: the
 * memory model (reads the compiler moves across a shuffle), timing, the real compiler's
 * code, and speed; those are the GPU machine's business. */
#ifndef DRE_CUDA_EMU_H
#define DRE_CUDA_EMU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- runtime (C) */

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorECCUncorrectable = 214,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchTimeout = 702,
    cudaErrorAssert = 710,
    cudaErrorHardwareStackError = 714,
    cudaErrorIllegalInstruction = 715,
    cudaErrorMisalignedAddress = 716,
    cudaErrorInvalidAddressSpace = 717,
    cudaErrorInvalidPc = 718,
    cudaErrorLaunchFailure = 719
} cudaError_t;

typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t err);
cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaFreeHost(void *ptr);
/* Page-locked, mapped host memory: the range stays host memory for copies, and kernels may
 * take it as an argument (the device pointer is the host pointer, as with unified
 * addressing). Registered ranges may not overlap; unregistering takes the start. */
#define cudaHostRegisterDefault 0x00
#define cudaHostRegisterMapped 0x02
cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned flags);
cudaError_t cudaHostUnregister(void *ptr);
cudaError_t cudaHostGetDevicePointer(void **device, void *host, unsigned flags);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t height, enum cudaMemcpyKind kind,
                              cudaStream_t stream);
cudaError_t cudaMemset(void *ptr, int value, size_t n);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t n, cudaStream_t stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize(void);
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value);

/* Fault injection, the emulation's own (no CUDA counterpart): the n-th kernel launch from
 * now (1 = the next one to run; 0 cancels) faults with an illegal address, a sticky error:
 * as on a GPU, that launch and every later CUDA call fail with cudaErrorIllegalAddress, and
 * cudaGetLastError keeps returning it. The environment variable DRE_EMU_FAULT_AT_LAUNCH=n
 * does the same from the process's start. emu_recover() forgets the fault and its queued
 * work, which no real context allows, so that a test can go on. */
void emu_fault_at_launch(unsigned long long n);
void emu_recover(void);

/* ---------------------------------------------------------------- cuBLAS (C) */

typedef struct emu_cublas *cublasHandle_t;
typedef enum cublasStatus {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_NOT_SUPPORTED = 15
} cublasStatus_t;
typedef enum cublasOperation { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2 } cudaDataType;
typedef cudaDataType cudaDataType_t;
typedef enum cublasComputeType { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum cublasGemmAlgo { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
typedef enum cublasMath {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION = 16
} cublasMath_t;

cublasStatus_t cublasCreate(cublasHandle_t *handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes);
const char *cublasGetStatusString(cublasStatus_t status);
/* C = alpha op(A) op(B) + beta C, column-major, alpha and beta on the host. */
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo);

/* ---------------------------------------------------------------- cuBLASLt (C) */

/* The part of cuBLASLt that src/gpu/gemm.c uses: fp16 A, B, C, D with fp32 compute, op(A)
 * transposed or not, epilogues DEFAULT, BIAS (an fp16 bias per row of D) and GELU_BIAS
 * (GELU's tanh form, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as cuBLASLt computes
 * it): D = epilogue(alpha op(A) op(B) + beta C + bias), each element rounded to fp16 once. */
typedef struct emu_lt *cublasLtHandle_t;
typedef struct emu_lt_desc *cublasLtMatmulDesc_t;
typedef struct emu_lt_layout *cublasLtMatrixLayout_t;
typedef struct emu_lt_preference *cublasLtMatmulPreference_t;
typedef struct {
    uint64_t data[8];
} cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;
typedef enum {
    CUBLASLT_MATMUL_DESC_TRANSA = 3,
    CUBLASLT_MATMUL_DESC_TRANSB = 4,
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8
} cublasLtMatmulDescAttributes_t;
typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_GELU_BIAS = 36
} cublasLtEpilogue_t;
typedef enum {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
    CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK = 3
} cublasLtMatmulPreferenceAttributes_t;
typedef enum {
    CUBLASLT_REDUCTION_SCHEME_NONE = 0,
    CUBLASLT_REDUCTION_SCHEME_INPLACE = 1,
    CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE = 2,
    CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE = 4,
    CUBLASLT_REDUCTION_SCHEME_MASK = 7
} cublasLtReductionScheme_t;

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t size);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *returned);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t a_layout, const void *B,
                              cublasLtMatrixLayout_t b_layout, const void *beta, const void *C,
                              cublasLtMatrixLayout_t c_layout, void *D,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t *algo,
                              void *workspace, size_t workspace_bytes, cudaStream_t stream);

#ifdef __cplusplus
}

/* ---------------------------------------------------------------- device side (C++) */

#include <cmath>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

/* kernels/mma.cuh takes the emulation's fragment operations instead of inline PTX */
#define DRE_CUDA_EMU_DEVICE 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
/* Blocks of a grid run one after another on one host thread, so a function-local static
 * is exactly one block's shared variable. (tests/emu/rewrite.pl turns `extern __shared__`
 * arrays into pointers to the launch's dynamic shared memory.) */
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }

/* Device min / max over the integer and float types the kernels mix. */
template <class A, class B> inline auto min(A a, B b) -> std::common_type_t<A, B> {
    return a < b ? a : b;
}
template <class A, class B> inline auto max(A a, B b) -> std::common_type_t<A, B> {
    return a < b ? b : a;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
/* Rounded once each, never fused (nor are they by the host compiler: no FMA without -mfma). */
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }

/* binary16 through the compiler's _Float16 (IEEE conversions, round to nearest even). */
struct __half {
    uint16_t bits;
};
struct alignas(4) __half2 {
    __half x, y;
};
inline __half __float2half_rn(float f) {
    const _Float16 h = (_Float16)f;
    __half r;
    std::memcpy(&r.bits, &h, 2);
    return r;
}
inline __half __float2half(float f) { return __float2half_rn(f); }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
namespace emu {
extern float half_to_float[65536]; // every binary16 value widened (filled at start-up)
}
inline float __half2float(__half h) { return emu::half_to_float[h.bits]; }
inline __half2 __floats2half2_rn(float a, float b) {
    return {__float2half_rn(a), __float2half_rn(b)};
}
inline __half2 __float2half2_rn(float a) { return {__float2half_rn(a), __float2half_rn(a)}; }
inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
inline float __low2float(__half2 h) { return __half2float(h.x); }
inline float __high2float(__half2 h) { return __half2float(h.y); }

namespace emu {

/* The running fiber's thread index, and the block being run. The emulation's state is
 * global: one host thread at a time may use it (cudaGetLastError's error is per thread). */
extern uint3 thread_idx;
extern uint3 block_idx;
extern dim3 block_dim, grid_dim;

void sync_block();
void sync_warp(unsigned mask);
/* Every lane of the warp puts `bits`; each gets what lane `src_lane(lane)` put. */
uint64_t warp_exchange(uint64_t bits, int mode, int arg);
enum { EXCHANGE_XOR = 0, EXCHANGE_IDX = 1, EXCHANGE_MATCH = 2, EXCHANGE_BALLOT = 3 };
void *dynamic_shared();
/* Stops the launch with a message (the kernel's thread does not come back). */
[[noreturn]] void fault(const char *fmt, ...);
/* A kernel's pointer argument must be NULL or point into a cudaMalloc allocation. */
bool check_pointer_argument(const void *p, int index);
/* d = a b + c for 16x16 tiles (row-major floats), once per warp; warp-wide like the real one. */
void warp_mma(float *d, const float *a, const float *b, const float *c);

/* Warp-wide: every lane puts `bytes` (at most 64) of its own; on return all + l * bytes holds
 * lane l's, for every lane. The building block of the fragment operations below. */
void warp_all_gather(const void *mine, size_t bytes, void *all);

/* The PTX instructions kernels/mma.cuh wraps, emulated exactly: each lane's registers are
 * placed and read as the PTX ISA manual's fragment layouts say (see mma.cuh for the
 * sections). All warp-wide: every lane of a full warp must call them together. */
/* mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32: d = a b + c on this lane's fragments */
void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]);
/* ldmatrix.sync.aligned.m8n8.x{n}[.trans].shared.b16: lane l gives the address of row l % 8
 * of matrix l / 8 (lanes past 8 n give none); r[m] gets this lane's two elements of matrix m */
void ldmatrix(uint32_t *r, int n_matrices, bool trans, const void *row);
/* cp.async.cg.shared.global: 16 bytes (src_bytes of them read, the rest zero-filled) copied
 * from global to shared memory, per block either at once or only when a later
 * cp.async.wait_group completes its group (the two ends of what a GPU may do), so a read
 * that does not wait, and a refill while others still read, both show */
void cp_async(void *dst, const void *src, int bytes, int src_bytes);
void cp_async_commit();                 /* cp.async.commit_group */
void cp_async_wait(int pending_groups); /* cp.async.wait_group n */

template <class T> inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffles of up to 8 bytes");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof v);
    return b;
}
template <class T> inline T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof v);
    return v;
}

struct config {
    dim3 grid, block;
    size_t shared;
    cudaStream_t stream;
};
inline config make_config(dim3 grid, dim3 block, size_t shared = 0, cudaStream_t stream = nullptr) {
    return {grid, block, shared, stream};
}

/* Checks the configuration now (the error is cudaGetLastError's), queues the grid on the
 * stream; `body` is what each thread runs. */
void enqueue_grid(const config &c, const void *kernel, std::function<void()> body);

template <class Tuple, size_t... I> bool check_pointers(const Tuple &t, std::index_sequence<I...>) {
    return ([&] {
        using T = std::tuple_element_t<I, Tuple>;
        if constexpr (std::is_pointer_v<T>) return check_pointer_argument(std::get<I>(t), (int)I);
        return true;
    }() && ...);
}

template <class... P, class... A> void launch(const config &c, void (*kernel)(P...), A &&...args) {
    std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...); // kernel parameters by value
    if (!check_pointers(params, std::index_sequence_for<P...>{})) return;
    enqueue_grid(c, reinterpret_cast<const void *>(kernel),
                 [kernel, params] { std::apply(kernel, params); });
}

} // namespace emu

#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

inline void __syncthreads() { emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::sync_warp(mask); }
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    if (mask != 0xffffffffu || width != 32)
        emu::fault("__shfl_xor_sync: partial warps are not emulated");
    return emu::from_bits<T>(emu::warp_exchange(emu::to_bits(v), emu::EXCHANGE_XOR, lane_mask));
}
template <class T> inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    if (mask != 0xffffffffu || width != 32)
        emu::fault("__shfl_sync: partial warps are not emulated");
    return emu::from_bits<T>(emu::warp_exchange(emu::to_bits(v), emu::EXCHANGE_IDX, src_lane));
}
template <class T> inline unsigned __match_any_sync(unsigned mask, T v) {
    if (mask != 0xffffffffu) emu::fault("__match_any_sync: partial warps are not emulated");
    return (unsigned)emu::warp_exchange(emu::to_bits(v), emu::EXCHANGE_MATCH, 0);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    if (mask != 0xffffffffu) emu::fault("__ballot_sync: partial warps are not emulated");
    return (unsigned)emu::warp_exchange(predicate != 0, emu::EXCHANGE_BALLOT, 0);
}
/* Fibers never run at the same time and switch only at barriers: a read-modify-write is
 * atomic here as it is on the GPU. */
template <class T> inline T atomicAdd(T *p, T v) {
    const T old = *p;
    *p = old + v;
    return old;
}
inline unsigned atomicAdd(unsigned *p, int v) { return atomicAdd(p, (unsigned)v); }

template <class F> cudaError_t cudaFuncSetAttribute(F *func, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void *>(func), attr, value);
}

/* ---------------------------------------------------------------- WMMA, 16x16x16 */

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

/* Each lane holds the whole tile (the real fragments spread it over the warp, in a layout
 * the code may not depend on anyway); loads, products and stores are done per lane. */
template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
    static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
    static constexpr int num_elements = rows * cols;
    float x[num_elements]; // row-major values (fp16 operands widened exactly)
};

inline void check_tile(const void *p, unsigned ldm, size_t elem) {
    if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
        emu::fault("wmma: fragment pointer %p is not 256-bit aligned", p);
    if ((ldm * elem) % 16 != 0) emu::fault("wmma: ldm %u is not a multiple of 16 bytes", ldm);
}
inline float widen(__half h) { return __half2float(h); }
inline float widen(float f) { return f; }

template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f, const T *p, unsigned ldm) {
    static_assert(!std::is_same_v<Use, accumulator>, "accumulators load with a layout");
    check_tile(p, ldm, sizeof(T));
    using Frag = fragment<Use, M, N, K, T, Layout>;
    constexpr bool row = std::is_same_v<Layout, row_major>;
    for (int r = 0; r < Frag::rows; r++)
        for (int c = 0; c < Frag::cols; c++)
            f.x[r * Frag::cols + c] = widen(row ? p[r * ldm + c] : p[c * ldm + r]);
}

template <int M, int N, int K, class T>
void fill_fragment(fragment<accumulator, M, N, K, T> &f, T v) {
    for (float &x : f.x)
        x = (float)v;
}

template <int M, int N, int K, class T>
void store_matrix_sync(T *p, const fragment<accumulator, M, N, K, T> &f, unsigned ldm,
                       layout_t layout) {
    check_tile(p, ldm, sizeof(T));
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++)
            (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
}

template <int M, int N, int K, class TA, class LA, class LB, class TC>
void mma_sync(fragment<accumulator, M, N, K, TC> &d, const fragment<matrix_a, M, N, K, TA, LA> &a,
              const fragment<matrix_b, M, N, K, TA, LB> &b,
              const fragment<accumulator, M, N, K, TC> &c) {
    static_assert(M == 16 && N == 16 && K == 16, "16x16x16 tiles only");
    emu::warp_mma(d.x, a.x, b.x, c.x);
}

} // namespace wmma
} // namespace nvcuda

#endif /* __cplusplus */
#endif
