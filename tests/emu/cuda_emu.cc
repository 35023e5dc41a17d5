// cuda_emu.cc — the CPU emulation of CUDA declared in include/cuda_emu.h: fibers for the
// threads of a block, deferred streams, tracked allocations, cuBLAS GEMMs through OpenBLAS.
#include "cuda_emu.h"

#include <cblas.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

#if !defined(__x86_64__)
#error "the CUDA emulation switches fibers with x86-64 code"
#endif

// ------------------------------------------------------------------ fibers (x86-64)

// Saves the callee-saved registers and the SSE / x87 control words on the current stack,
// stores the stack pointer in *from, and continues the context whose stack pointer is to.
extern "C" void emu_switch(void **from, void *to);
asm(R"(
    .pushsection .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
    .popsection
)");

namespace emu {

float half_to_float[65536];
static const bool half_table_ready = [] {
    for (uint32_t i = 0; i < 65536; i++) {
        const uint16_t bits = (uint16_t)i;
        _Float16 v;
        std::memcpy(&v, &bits, 2);
        half_to_float[i] = (float)v;
    }
    return true;
}();

uint3 thread_idx;
uint3 block_idx;
dim3 block_dim, grid_dim;

namespace {

constexpr size_t kStackBytes = 256 << 10; // ASan frames are large; pages are touched lazily
constexpr size_t kGuardBytes = 4096;      // PROT_NONE below each stack: overflow faults

enum fiber_state { READY, BLOCK_WAIT, WARP_WAIT, DONE };

// A cp.async copy waiting for its group's wait_group.
struct async_copy {
    void *dst;
    const void *src;
    int bytes, src_bytes;
};

struct fiber {
    void *sp = nullptr;
    char *stack = nullptr; // usable part, kStackBytes
    uint3 idx{};
    int warp = 0, lane = 0;
    fiber_state state = READY;
    unsigned exchanges = 0, mmas = 0;
    void *asan_fake = nullptr;      // ASan's fake stack while switched out
    std::vector<async_copy> copies; // issued, not yet completed
    std::vector<size_t> group_ends; // committed groups: their ends in copies
};

struct warp_state {
    uint64_t slots[2][32];             // double-buffered exchange slots
    unsigned char gathered[2][32][64]; // double-buffered warp_all_gather slots
    int lanes = 0;                     // lanes that exist (the last warp may be partial)
    // the shared WMMA product of the current mma_sync
    unsigned mma_gen = 0;
    float mma_out[256];
    const float *mma_in[3];
    // the warp's D of the current mma.sync.m16n8k16 (1 + the lanes' exchange count)
    unsigned m16n8k16_gen = 0;
    float m16n8k16_d[16 * 8];
};

struct block_run {
    std::vector<fiber> threads;
    std::vector<warp_state> warps;
    const std::function<void()> *body = nullptr;
    void *dynamic_shared = nullptr;
    bool faulted = false;
    // cp.async copies land when issued (the earliest a GPU may land them) instead of at
    // their wait_group (the latest): a read before the wait shows in the second, a buffer
    // refilled while another warp still reads it in the first
    bool eager_copies = false;
};

fiber *current = nullptr;
void *scheduler_sp = nullptr;
block_run *running = nullptr;
std::string fault_message;
std::vector<char *> stack_pool;

#if EMU_ASAN
const void *asan_main_bottom = nullptr;
size_t asan_main_size = 0;
#endif

char *take_stack(size_t i) {
    while (stack_pool.size() <= i) {
        void *m = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            std::fprintf(stderr, "cuda_emu: out of memory for fiber stacks\n");
            std::abort();
        }
        mprotect(m, kGuardBytes, PROT_NONE);
        stack_pool.push_back(static_cast<char *>(m) + kGuardBytes);
    }
    return stack_pool[i];
}

// Back to the scheduler; returns when the scheduler resumes this fiber.
void yield_to_scheduler(bool finished) {
#if EMU_ASAN
    __sanitizer_start_switch_fiber(finished ? nullptr : &current->asan_fake, asan_main_bottom,
                                   asan_main_size);
#endif
    emu_switch(&current->sp, scheduler_sp);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(current->asan_fake, nullptr, nullptr);
#endif
}

[[noreturn]] void fiber_main() {
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &asan_main_bottom, &asan_main_size);
#endif
    (*running->body)();
    current->state = DONE;
    yield_to_scheduler(true);
    __builtin_unreachable();
}

void resume(fiber &f) {
    current = &f;
    thread_idx = f.idx;
#if EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, kStackBytes);
#endif
    emu_switch(&scheduler_sp, f.sp);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    current = nullptr;
}

void init_fiber(fiber &f, char *stack) {
    f.stack = stack;
#if EMU_ASAN
    __asan_unpoison_memory_region(stack, kStackBytes);
#endif
    // Stack top, as emu_switch will pop it: control words, r15..r12, rbx, rbp, return
    // address (fiber_main), then a zero "return address" of fiber_main itself. After the
    // `ret` into fiber_main rsp is 8 mod 16, as after a call.
    uintptr_t top = reinterpret_cast<uintptr_t>(stack + kStackBytes) & ~uintptr_t(15);
    uint64_t *sp = reinterpret_cast<uint64_t *>(top) - 3;
    sp[0] = sp[1] = sp[2] = 0;
    *--sp = reinterpret_cast<uint64_t>(&fiber_main);
    for (int i = 0; i < 6; i++)
        *--sp = 0;
    uint32_t ctl[2];
    __asm__ volatile("stmxcsr %0" : "=m"(ctl[0]));
    __asm__ volatile("fnstcw %0" : "=m"(ctl[1]));
    --sp;
    std::memcpy(sp, ctl, 8);
    f.sp = sp;
}

uint64_t g_launches = 0;

// xorshift64*: a cheap generator for the schedule shuffles.
struct schedule_rng {
    using result_type = uint64_t;
    uint64_t state;
    explicit schedule_rng(uint64_t seed) : state(seed * 0x9e3779b97f4a7c15ull | 1) {}
    static constexpr uint64_t min() { return 0; }
    static constexpr uint64_t max() { return ~uint64_t(0); }
    uint64_t operator()() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545f4914f6cdd1dull;
    }
};

int schedule_mode() {
    static const int mode = [] {
        const char *s = std::getenv("DRE_EMU_ORDER");
        if (!s || !std::strcmp(s, "shuffle")) return 0;
        if (!std::strcmp(s, "forward")) return 1;
        if (!std::strcmp(s, "reverse")) return 2;
        std::fprintf(stderr, "cuda_emu: DRE_EMU_ORDER is forward, reverse or shuffle\n");
        std::abort();
    }();
    return mode;
}

// Releases warp w if all its lanes wait at a warp-wide operation: 1 released, 0 not all
// there yet, -1 a fault (lanes at a warp-wide operation while others are at __syncthreads or
// have exited: on the GPU that warp hangs or reads garbage).
int release_warp(block_run &b, size_t w) {
    int waiting = 0, at_block = 0, done = 0;
    const int lanes = b.warps[w].lanes;
    for (int l = 0; l < lanes; l++) {
        const fiber_state s = b.threads[w * 32 + l].state;
        waiting += s == WARP_WAIT;
        at_block += s == BLOCK_WAIT;
        done += s == DONE;
    }
    if (waiting == 0) return 0;
    if (waiting == lanes) {
        for (int l = 0; l < lanes; l++)
            b.threads[w * 32 + l].state = READY;
        return 1;
    }
    char msg[200];
    std::snprintf(msg, sizeof msg,
                  "warp %zu: %d lanes wait in a warp-wide operation (shuffle, __syncwarp, "
                  "mma_sync) while %d are at __syncthreads and %d have exited",
                  w, waiting, at_block, done);
    fault_message = msg;
    return -1;
}

// Runs the ready lanes of warp w, in `order`, each to its next barrier.
bool run_lanes(block_run &b, size_t w, const std::vector<int> &order) {
    for (int l : order) {
        if (l >= b.warps[w].lanes) continue;
        fiber &f = b.threads[w * 32 + l];
        if (f.state != READY) continue;
        resume(f);
        if (b.faulted) return false;
    }
    return true;
}

// Runs one block to its end; false (fault_message set) when the kernel faulted. Two legal
// schedules, chosen per block: lockstep (every warp advances one warp-level step per round)
// and warp-serial (each warp runs alone up to its next __syncthreads, so it gets as far
// ahead of the others as the barriers allow). Lanes run in a shuffled order. A barrier
// missing between warps shows under warp-serial, one within a warp under the shuffle.
bool run_block(block_run &b, schedule_rng &rng) {
    const size_t n_warps = b.warps.size();
    std::vector<size_t> warp_order(n_warps);
    for (size_t w = 0; w < n_warps; w++)
        warp_order[w] = w;
    std::vector<int> lane_order(32);
    for (int l = 0; l < 32; l++)
        lane_order[l] = l;
    const int mode = schedule_mode();
    if (mode == 2) {
        std::reverse(warp_order.begin(), warp_order.end());
        std::reverse(lane_order.begin(), lane_order.end());
    }
    const bool serial = mode == 0 && (rng() & 1);
    b.eager_copies = mode == 2 || (mode == 0 && (rng() & 1));
    for (;;) {
        if (mode == 0) std::shuffle(warp_order.begin(), warp_order.end(), rng);
        bool progress = false;
        for (size_t w : warp_order) {
            for (;;) {
                if (mode == 0) std::shuffle(lane_order.begin(), lane_order.end(), rng);
                if (!run_lanes(b, w, lane_order)) return false;
                const int r = release_warp(b, w);
                if (r < 0) return false;
                progress |= r > 0;
                if (!serial || r == 0) break;
            }
        }
        if (progress) continue;
        // Every lane waits at __syncthreads or is done (exited threads count as arrived).
        bool any_live = false;
        for (fiber &f : b.threads)
            if (f.state == BLOCK_WAIT) {
                f.state = READY;
                any_live = true;
            }
        if (!any_live) return true;
    }
}

// ------------------------------------------------------------------ runtime state

thread_local cudaError_t last_error = cudaSuccess;
// A device fault (a kernel's, or an injected one) loses the context: from then on every
// call fails with it, as on a GPU.
cudaError_t sticky = cudaSuccess;
// The launch (by the count g_launches reaches) that faults, 0 for none.
uint64_t fault_at = [] {
    const char *s = std::getenv("DRE_EMU_FAULT_AT_LAUNCH");
    return s ? std::strtoull(s, nullptr, 10) : 0ull;
}();

cudaError_t record(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

void complain(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fprintf(stderr, "cuda_emu: ");
    std::vfprintf(stderr, fmt, ap);
    std::fprintf(stderr, "\n");
    va_end(ap);
}

struct allocation {
    size_t size;
    bool device;
    bool registered = false; // cudaHostRegister'ed host memory: not ours to free
};
std::map<uintptr_t, allocation> allocations;

// The allocation holding [p, p + n), or nullptr.
const allocation *find_allocation(const void *p, size_t n) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return nullptr;
    --it;
    if (a < it->first || a + n > it->first + it->second.size) return nullptr;
    return &it->second;
}
bool is_device(const void *p, size_t n) {
    const allocation *al = find_allocation(p, n);
    return al && al->device;
}
bool is_mapped(const void *p, size_t n) {
    const allocation *al = find_allocation(p, n);
    return al && al->registered;
}

std::map<const void *, int> max_dynamic_shared; // per kernel, cudaFuncSetAttribute
constexpr size_t kDefaultShared = 48 << 10, kMaxShared = 227 << 10; // H100

} // namespace
} // namespace emu

struct emu_stream {
    std::deque<std::function<cudaError_t()>> work;
    unsigned flags = 0;
};
struct emu_event {
    double seconds = 0.0;
    bool done = false, timing = true;
    emu_stream *stream = nullptr;
};
struct emu_cublas {
    cudaStream_t stream = nullptr;
};

namespace emu {
namespace {

emu_stream legacy_stream;
std::set<emu_stream *> streams;
cudaError_t pending = cudaSuccess; // a fault of deferred work, for the next synchronisation

emu_stream *resolve(cudaStream_t s) { return s ? s : &legacy_stream; }

// Runs s's queued work in order (stopping early once *until is true, if given). With the
// context lost, queued work never runs.
void drain(emu_stream *s, const bool *until = nullptr) {
    while (!s->work.empty() && !(until && *until)) {
        if (sticky) {
            pending = sticky;
            s->work.clear();
            break;
        }
        std::function<cudaError_t()> op = std::move(s->work.front());
        s->work.pop_front();
        const cudaError_t e = op();
        if (e != cudaSuccess) {
            pending = e;
            s->work.clear(); // what was queued behind a fault does not run
        }
    }
}

// The blocking streams' work: what legacy-stream work waits for.
void drain_blocking() {
    for (emu_stream *o : streams)
        if (!(o->flags & cudaStreamNonBlocking)) drain(o);
}

// Everything the legacy default stream has queued, and the blocking streams' work before it.
void drain_legacy() {
    drain(&legacy_stream);
    drain_blocking();
}

void drain_all() {
    drain(&legacy_stream);
    for (emu_stream *s : streams)
        drain(s);
}

// Work for s: ordered after legacy-stream work if s is a blocking stream, and legacy
// work after every blocking stream's (the legacy default stream's implicit barriers).
void enqueue(cudaStream_t stream, std::function<cudaError_t()> op) {
    emu_stream *s = resolve(stream);
    if (s == &legacy_stream) {
        drain_blocking();
    } else if (!(s->flags & cudaStreamNonBlocking)) {
        drain(&legacy_stream);
    }
    s->work.push_back(std::move(op));
}

cudaError_t take_pending() {
    const cudaError_t e = sticky ? sticky : pending;
    pending = cudaSuccess;
    return record(e);
}

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

bool valid_stream(cudaStream_t s) { return !s || streams.count(s); }

} // namespace

// ------------------------------------------------------------------ device-side calls

void sync_block() {
    if (!current) fault("__syncthreads outside a kernel");
    current->state = BLOCK_WAIT;
    yield_to_scheduler(false);
}

void sync_warp(unsigned mask) {
    if (!current) fault("__syncwarp outside a kernel");
    if (mask != 0xffffffffu) fault("__syncwarp with a partial mask is not emulated");
    if (running->warps[current->warp].lanes != 32) fault("warp-wide operation in a partial warp");
    current->state = WARP_WAIT;
    yield_to_scheduler(false);
}

uint64_t warp_exchange(uint64_t bits, int mode, int arg) {
    if (!current) fault("warp shuffle outside a kernel");
    warp_state &w = running->warps[current->warp];
    const int lane = current->lane, buf = current->exchanges++ & 1;
    w.slots[buf][lane] = bits;
    sync_warp(0xffffffffu);
    switch (mode) {
    case EXCHANGE_XOR: return w.slots[buf][(lane ^ arg) & 31];
    case EXCHANGE_IDX: return w.slots[buf][arg & 31];
    case EXCHANGE_BALLOT: {
        uint64_t set = 0;
        for (int l = 0; l < 32; l++)
            if (w.slots[buf][l]) set |= uint64_t(1) << l;
        return set;
    }
    default: {
        uint64_t same = 0;
        for (int l = 0; l < 32; l++)
            if (w.slots[buf][l] == bits) same |= uint64_t(1) << l;
        return same;
    }
    }
}

void mma_tile(float *out, const float *a, const float *b, const float *c) {
    // A 16x16 row-major, B 16x16 row-major (k x n), C 16x16
    for (int r = 0; r < 16; r++)
        for (int col = 0; col < 16; col++) {
            float acc = c[r * 16 + col];
            for (int i = 0; i < 16; i++)
                acc += a[r * 16 + i] * b[i * 16 + col];
            out[r * 16 + col] = acc;
        }
}

void warp_mma(float *d, const float *a, const float *b, const float *c) {
    if (!current) fault("mma_sync outside a kernel");
    warp_state &w = running->warps[current->warp];
    const unsigned gen = ++current->mmas;
    if (w.mma_gen != gen) { // the first lane here computes the warp's product
        w.mma_gen = gen;
        mma_tile(w.mma_out, a, b, c);
        w.mma_in[0] = a;
        w.mma_in[1] = b;
        w.mma_in[2] = c;
    } else if (std::memcmp(a, w.mma_in[0], 256 * sizeof(float)) ||
               std::memcmp(b, w.mma_in[1], 256 * sizeof(float)) ||
               std::memcmp(c, w.mma_in[2], 256 * sizeof(float))) {
        fault("mma_sync: the lanes of warp %d hold different fragments", current->warp);
    }
    sync_warp(0xffffffffu); // every lane compared before any overwrites its accumulator
    std::memcpy(d, w.mma_out, 256 * sizeof(float));
    sync_warp(0xffffffffu); // and every lane copied before the next product replaces it
}

// This lane's bytes (at most 64) into the warp's gather slots, then the warp barrier: the
// slots of every lane, valid until this lane's next exchange but one (they are
// double-buffered, and the next exchange waits for every lane). *gen: this exchange's number.
using gather_slot = unsigned char[64];
static const gather_slot *gather_slots(const void *mine, size_t bytes, unsigned *gen) {
    if (!current) fault("warp operation outside a kernel");
    if (bytes > 64) fault("warp gather: %zu bytes a lane, 64 at most", bytes);
    warp_state &w = running->warps[current->warp];
    if (w.lanes != 32) fault("warp-wide operation in a partial warp");
    *gen = current->exchanges++;
    const int buf = *gen & 1;
    std::memcpy(w.gathered[buf][current->lane], mine, bytes);
    sync_warp(0xffffffffu);
    return w.gathered[buf];
}

void warp_all_gather(const void *mine, size_t bytes, void *all) {
    unsigned gen;
    const gather_slot *slots = gather_slots(mine, bytes, &gen);
    for (int l = 0; l < 32; l++)
        std::memcpy(static_cast<unsigned char *>(all) + l * bytes, slots[l], bytes);
}

// The fragment layouts of mma.m16n8k16 with .f16 A/B and .f32 C/D (PTX ISA, "Matrix
// Fragments for mma.m16n8k16 with floating point type"): g = lane >> 2, t = lane & 3;
//   A (16x16, row): element i of 8 (a0..a7, two per register, low half first) at row
//                   g + 8 ((i >> 1) & 1), column 2t + (i & 1) + 8 (i >> 2)
//   B (16x8, col):  element i of 4 (b0..b3) at row (k) 2t + (i & 1) + 8 (i >> 1), column g
//   C, D (16x8):    element i of 4 (c0..c3) at row g + 8 (i >> 1), column 2t + (i & 1)
static float half_bits(uint32_t reg, int high) {
    return half_to_float[(reg >> (high ? 16 : 0)) & 0xffffu];
}

// Every lane puts its fragments in the warp's gather slots; the first lane past the warp
// barrier decodes them into A, B and C and computes the whole 16x8 D (k in order, from C,
// in fp32) once for the warp; each lane then takes its four elements. No lane can start the
// warp's next exchange before every lane has taken them: that exchange waits for all lanes
// at its own barrier, and a lane reaches it only after reading D.
void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    struct fragments {
        uint32_t a[4], b[2];
        float c[4];
    };
    fragments mine;
    std::memcpy(mine.a, a, sizeof mine.a);
    std::memcpy(mine.b, b, sizeof mine.b);
    std::memcpy(mine.c, c, sizeof mine.c);
    unsigned gen;
    const gather_slot *slots = gather_slots(&mine, sizeof mine, &gen);
    warp_state &w = running->warps[current->warp];
    if (w.m16n8k16_gen != gen + 1) { // the first lane here: the warp's product
        w.m16n8k16_gen = gen + 1;
        float A[16][16], B[16][8];
        float *D = w.m16n8k16_d; // [16][8]
        for (int lane = 0; lane < 32; lane++) {
            fragments f;
            std::memcpy(&f, slots[lane], sizeof f);
            const int g = lane >> 2, t = lane & 3;
            for (int i = 0; i < 8; i++)
                A[g + 8 * ((i >> 1) & 1)][2 * t + (i & 1) + 8 * (i >> 2)] =
                    half_bits(f.a[i >> 1], i & 1);
            for (int i = 0; i < 4; i++) {
                B[2 * t + (i & 1) + 8 * (i >> 1)][g] = half_bits(f.b[i >> 1], i & 1);
                D[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = f.c[i];
            }
        }
        for (int row = 0; row < 16; row++)
            for (int col = 0; col < 8; col++) {
                float acc = D[row * 8 + col];
                for (int k = 0; k < 16; k++)
                    acc += A[row][k] * B[k][col];
                D[row * 8 + col] = acc;
            }
    }
    const int g = current->lane >> 2, t = current->lane & 3;
    for (int i = 0; i < 4; i++)
        d[i] = w.m16n8k16_d[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
}

// ldmatrix (PTX ISA, "Warp-level matrix load instruction: ldmatrix"): each 8x8 matrix of
// 16-bit elements comes from the 8 rows whose addresses lanes 8m .. 8m+7 give; lane l's
// register for matrix m holds row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 (low half
// first); with .trans, the transposed matrix's: rows 2 (l % 4) and 2 (l % 4) + 1 of
// column l / 4.
void ldmatrix(uint32_t *r, int n_matrices, bool trans, const void *row) {
    if (n_matrices != 1 && n_matrices != 2 && n_matrices != 4)
        fault("ldmatrix: .x%d (x1, x2 or x4)", n_matrices);
    const bool addresses = current && current->lane < 8 * n_matrices;
    if (addresses && reinterpret_cast<uintptr_t>(row) % 16 != 0)
        fault("ldmatrix: row address %p is not 16-byte aligned", row);
    const void *rows[32];
    warp_all_gather(&row, sizeof row, rows);
    const int lane = current->lane;
    for (int m = 0; m < n_matrices; m++) {
        uint16_t e[2];
        for (int j = 0; j < 2; j++) {
            const int rr = trans ? 2 * (lane % 4) + j : lane / 4;
            const int cc = trans ? lane / 4 : 2 * (lane % 4) + j;
            std::memcpy(&e[j], static_cast<const uint16_t *>(rows[8 * m + rr]) + cc, 2);
        }
        r[m] = (uint32_t)e[0] | ((uint32_t)e[1] << 16);
    }
}

void cp_async(void *dst, const void *src, int bytes, int src_bytes) {
    if (!current) fault("cp.async outside a kernel");
    if (bytes != 16 || src_bytes < 0 || src_bytes > bytes)
        fault("cp.async.cg: 16 bytes, src_bytes 0..16 (got %d, %d)", bytes, src_bytes);
    if (reinterpret_cast<uintptr_t>(dst) % 16 || reinterpret_cast<uintptr_t>(src) % 16)
        fault("cp.async: %p <- %p not 16-byte aligned", dst, src);
    if (src_bytes && !is_device(src, (size_t)src_bytes))
        fault("cp.async: source %p (+%d bytes) is not device memory", src, src_bytes);
    if (running->eager_copies) {
        std::memcpy(dst, src, (size_t)src_bytes);
        std::memset(static_cast<char *>(dst) + src_bytes, 0, (size_t)(bytes - src_bytes));
        return;
    }
    current->copies.push_back({dst, src, bytes, src_bytes});
}

void cp_async_commit() {
    if (!current) fault("cp.async.commit_group outside a kernel");
    current->group_ends.push_back(current->copies.size());
}

void cp_async_wait(int pending_groups) {
    if (!current) fault("cp.async.wait_group outside a kernel");
    std::vector<size_t> &ends = current->group_ends;
    if (pending_groups < 0) fault("cp.async.wait_group %d", pending_groups);
    if ((size_t)pending_groups >= ends.size()) return;
    const size_t done = ends[ends.size() - 1 - (size_t)pending_groups];
    for (size_t i = 0; i < done; i++) {
        const async_copy &c = current->copies[i];
        std::memcpy(c.dst, c.src, (size_t)c.src_bytes);
        std::memset(static_cast<char *>(c.dst) + c.src_bytes, 0, (size_t)(c.bytes - c.src_bytes));
    }
    current->copies.erase(current->copies.begin(), current->copies.begin() + (long)done);
    ends.erase(ends.begin(), ends.end() - pending_groups);
    for (size_t &e : ends)
        e -= done;
}

void *dynamic_shared() {
    if (!running) fault("dynamic shared memory outside a kernel");
    return running->dynamic_shared;
}

[[noreturn]] void fault(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!current) {
        complain("%s", msg);
        std::abort();
    }
    char where[160];
    std::snprintf(where, sizeof where, " (block %u,%u,%u thread %u,%u,%u)", block_idx.x,
                  block_idx.y, block_idx.z, current->idx.x, current->idx.y, current->idx.z);
    fault_message = std::string(msg) + where;
    running->faulted = true;
    current->state = DONE;
    yield_to_scheduler(true); // never resumed
    __builtin_unreachable();
}

bool check_pointer_argument(const void *p, int index) {
    if (!p || is_device(p, 0) || is_mapped(p, 0)) return true;
    complain("kernel argument %d (%p) is not device memory", index, p);
    record(cudaErrorInvalidValue);
    return false;
}

void enqueue_grid(const config &c, const void *kernel, std::function<void()> body) {
    if (sticky) {
        record(sticky);
        return;
    }
    const uint64_t threads = (uint64_t)c.block.x * c.block.y * c.block.z;
    if (threads == 0 || threads > 1024 || c.block.z > 64 || c.grid.x == 0 || c.grid.y == 0 ||
        c.grid.z == 0 || c.grid.y > 65535 || c.grid.z > 65535 || c.grid.x > 0x7fffffffu) {
        complain("launch: bad configuration grid (%u,%u,%u) block (%u,%u,%u)", c.grid.x, c.grid.y,
                 c.grid.z, c.block.x, c.block.y, c.block.z);
        record(cudaErrorInvalidConfiguration);
        return;
    }
    auto attr = max_dynamic_shared.find(kernel);
    const size_t allowed = attr == max_dynamic_shared.end() ? kDefaultShared : (size_t)attr->second;
    if (c.shared > allowed) {
        complain("launch: %zu bytes of dynamic shared memory, %zu allowed (cudaFuncSetAttribute)",
                 c.shared, allowed);
        record(cudaErrorInvalidValue);
        return;
    }
    if (!valid_stream(c.stream)) {
        record(cudaErrorInvalidResourceHandle);
        return;
    }
    enqueue(c.stream, [c, body = std::move(body)]() -> cudaError_t {
        g_launches++;
        if (g_launches == fault_at) {
            complain("injected fault at launch %llu: illegal address (the context is lost)",
                     (unsigned long long)g_launches);
            return sticky = cudaErrorIllegalAddress;
        }
        const size_t n = (size_t)c.block.x * c.block.y * c.block.z;
        block_run b;
        b.body = &body;
        b.threads.resize(n);
        b.warps.resize((n + 31) / 32);
        for (size_t w = 0; w < b.warps.size(); w++)
            b.warps[w].lanes = (int)std::min<size_t>(32, n - w * 32);
        const size_t shared = (c.shared + 1023) / 1024 * 1024;
        char *dyn = shared ? static_cast<char *>(std::aligned_alloc(1024, shared)) : nullptr;
        b.dynamic_shared = dyn;
        block_dim = c.block;
        grid_dim = c.grid;
        running = &b;
        bool ok = true;
        for (unsigned z = 0; ok && z < c.grid.z; z++)
            for (unsigned y = 0; ok && y < c.grid.y; y++)
                for (unsigned x = 0; ok && x < c.grid.x; x++) {
                    block_idx = {x, y, z};
                    if (dyn) std::memset(dyn, 0xa5, shared); // shared memory starts as garbage
                    for (size_t i = 0; i < n; i++) {
                        fiber &f = b.threads[i];
                        f = fiber{};
                        f.idx = {(unsigned)(i % c.block.x), (unsigned)(i / c.block.x % c.block.y),
                                 (unsigned)(i / ((size_t)c.block.x * c.block.y))};
                        f.warp = (int)(i / 32);
                        f.lane = (int)(i % 32);
                        init_fiber(f, take_stack(i));
                    }
                    for (warp_state &w : b.warps)
                        w.mma_gen = w.m16n8k16_gen = 0;
                    schedule_rng rng(g_launches * 1000003u + x * 131u + y * 7919u + z);
                    ok = run_block(b, rng);
                }
        running = nullptr;
        std::free(dyn);
        if (!ok) {
            complain("kernel fault: %s", fault_message.c_str());
            return sticky = cudaErrorLaunchFailure;
        }
        return cudaSuccess;
    });
}

} // namespace emu

using namespace emu;

// ------------------------------------------------------------------ runtime API

extern "C" {

cudaError_t cudaGetDeviceCount(int *count) {
    static bool said = false;
    if (!said) {
        said = true;
        complain("CUDA is emulated on the CPU (tests/emu): results are checked, timings "
                 "mean nothing");
    }
    if (!count) return record(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    if (sticky) return sticky; // not cleared: the context stays lost
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return sticky ? sticky : last_error; }

void emu_fault_at_launch(unsigned long long n) { fault_at = n ? g_launches + n : 0; }

void emu_recover(void) {
    legacy_stream.work.clear();
    for (emu_stream *s : streams)
        s->work.clear();
    sticky = pending = last_error = cudaSuccess;
    fault_at = 0;
}

// The first thing of every call that needs a working context.
#define RETURN_IF_LOST()                                                                           \
    do {                                                                                           \
        if (sticky) return record(sticky);                                                         \
    } while (0)

const char *cudaGetErrorString(cudaError_t err) {
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulated kernel fault)";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    default: return "unknown error";
    }
}

// The emulated GPU's memory: an H100's 80 GB; host memory backs what is allocated.
static constexpr size_t kDeviceBytes = (size_t)80 << 30;
static size_t device_in_use = 0;

static cudaError_t allocate(void **ptr, size_t size, bool device) {
    RETURN_IF_LOST();
    if (!ptr) return record(cudaErrorInvalidValue);
    if (size > kDeviceBytes || (device && device_in_use + size > kDeviceBytes))
        return record(cudaErrorMemoryAllocation);
    const size_t bytes = std::max<size_t>((size + 255) / 256 * 256, 256);
    void *p = std::aligned_alloc(256, bytes);
    if (!p) return record(cudaErrorMemoryAllocation);
    std::memset(p, 0xcd, bytes); // fresh device memory is garbage
    allocations[reinterpret_cast<uintptr_t>(p)] = {size, device};
    if (device) device_in_use += size;
    *ptr = p;
    return cudaSuccess;
}

static cudaError_t release(void *ptr, bool device) {
    if (!ptr) return cudaSuccess;
    drain_all(); // cudaFree / cudaFreeHost synchronise the device
    auto it = allocations.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == allocations.end() || it->second.device != device || it->second.registered) {
        complain("%s of %p, which %s did not return", device ? "cudaFree" : "cudaFreeHost", ptr,
                 device ? "cudaMalloc" : "cudaMallocHost");
        return record(cudaErrorInvalidValue);
    }
    if (device) device_in_use -= it->second.size;
    allocations.erase(it);
    std::free(ptr);
    return cudaSuccess;
}

cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned flags) {
    RETURN_IF_LOST();
    if (!ptr || size == 0 || (flags & ~(unsigned)cudaHostRegisterMapped)) return record(cudaErrorInvalidValue);
    const uintptr_t a = reinterpret_cast<uintptr_t>(ptr);
    auto next = allocations.lower_bound(a);
    if ((next != allocations.end() && next->first < a + size) ||
        (next != allocations.begin() && std::prev(next)->first + std::prev(next)->second.size > a)) {
        complain("cudaHostRegister of %p (+%zu bytes): overlaps memory CUDA already has", ptr, size);
        return record(cudaErrorInvalidValue);
    }
    allocation al{size, false};
    al.registered = true;
    allocations[a] = al;
    return cudaSuccess;
}

cudaError_t cudaHostUnregister(void *ptr) {
    drain_all(); // as on a GPU: work reading it finishes first
    auto it = allocations.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == allocations.end() || !it->second.registered) {
        complain("cudaHostUnregister of %p, which cudaHostRegister did not take", ptr);
        return record(cudaErrorInvalidValue);
    }
    allocations.erase(it);
    return cudaSuccess;
}

cudaError_t cudaHostGetDevicePointer(void **device, void *host, unsigned flags) {
    RETURN_IF_LOST();
    if (!device || flags != 0 || !is_mapped(host, 0)) return record(cudaErrorInvalidValue);
    *device = host;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t size) { return allocate(ptr, size, true); }
cudaError_t cudaFree(void *ptr) { return release(ptr, true); }
cudaError_t cudaMallocHost(void **ptr, size_t size) { return allocate(ptr, size, false); }
cudaError_t cudaFreeHost(void *ptr) { return release(ptr, false); }

// The range [p, p + n) is on the side the copy kind says.
static bool copy_side_ok(const void *p, size_t n, bool device, const char *what) {
    if (n == 0) return true;
    if (device ? is_device(p, n) : !find_allocation(p, 0) || !find_allocation(p, 0)->device)
        return true;
    complain("copy: %s %p (+%zu bytes) is not %s memory", what, p, n, device ? "device" : "host");
    return false;
}

static cudaError_t check_copy(void *dst, size_t dst_extent, const void *src, size_t src_extent,
                              cudaMemcpyKind kind) {
    bool ok = true;
    switch (kind) {
    case cudaMemcpyHostToDevice:
        ok = copy_side_ok(dst, dst_extent, true, "destination") &&
             copy_side_ok(src, src_extent, false, "source");
        break;
    case cudaMemcpyDeviceToHost:
        ok = copy_side_ok(dst, dst_extent, false, "destination") &&
             copy_side_ok(src, src_extent, true, "source");
        break;
    case cudaMemcpyDeviceToDevice:
        ok = copy_side_ok(dst, dst_extent, true, "destination") &&
             copy_side_ok(src, src_extent, true, "source");
        break;
    default: break;
    }
    return ok ? cudaSuccess : record(cudaErrorInvalidValue);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    RETURN_IF_LOST();
    if (check_copy(dst, n, src, n, kind) != cudaSuccess) return cudaErrorInvalidValue;
    drain_legacy(); // a synchronous copy is legacy-stream work
    if (n) std::memmove(dst, src, n);
    return take_pending();
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t stream) {
    RETURN_IF_LOST();
    if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
    if (check_copy(dst, n, src, n, kind) != cudaSuccess) return cudaErrorInvalidValue;
    enqueue(stream, [=] {
        if (n) std::memmove(dst, src, n);
        return cudaSuccess;
    });
    return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind kind,
                              cudaStream_t stream) {
    RETURN_IF_LOST();
    if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
    if (width > dpitch || width > spitch) return record(cudaErrorInvalidValue);
    const size_t dext = height ? dpitch * (height - 1) + width : 0;
    const size_t sext = height ? spitch * (height - 1) + width : 0;
    if (check_copy(dst, dext, src, sext, kind) != cudaSuccess) return cudaErrorInvalidValue;
    enqueue(stream, [=] {
        for (size_t r = 0; r < height; r++)
            std::memmove(static_cast<char *>(dst) + r * dpitch,
                         static_cast<const char *>(src) + r * spitch, width);
        return cudaSuccess;
    });
    return cudaSuccess;
}

cudaError_t cudaMemset(void *ptr, int value, size_t n) {
    RETURN_IF_LOST();
    if (n && !is_device(ptr, n)) {
        complain("cudaMemset: %p (+%zu bytes) is not device memory", ptr, n);
        return record(cudaErrorInvalidValue);
    }
    drain_legacy();
    if (n) std::memset(ptr, value, n);
    return take_pending();
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t n, cudaStream_t stream) {
    RETURN_IF_LOST();
    if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
    if (n && !is_device(ptr, n)) {
        complain("cudaMemsetAsync: %p (+%zu bytes) is not device memory", ptr, n);
        return record(cudaErrorInvalidValue);
    }
    enqueue(stream, [=] {
        if (n) std::memset(ptr, value, n);
        return cudaSuccess;
    });
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
    RETURN_IF_LOST();
    if (!stream) return record(cudaErrorInvalidValue);
    *stream = new emu_stream;
    (*stream)->flags = flags;
    streams.insert(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream || !streams.count(stream)) return record(cudaErrorInvalidResourceHandle);
    drain(stream); // queued work still completes
    streams.erase(stream);
    delete stream;
    return take_pending();
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
    emu_stream *s = resolve(stream);
    if (s == &legacy_stream) drain_blocking();
    drain(s);
    return take_pending();
}

cudaError_t cudaDeviceSynchronize(void) {
    drain_all();
    return take_pending();
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    RETURN_IF_LOST();
    if (!event) return record(cudaErrorInvalidValue);
    *event = new emu_event;
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags) {
    if (flags & ~(unsigned)cudaEventDisableTiming) return record(cudaErrorInvalidValue);
    const cudaError_t e = cudaEventCreate(event);
    if (e == cudaSuccess) (*event)->timing = !(flags & cudaEventDisableTiming);
    return e;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    RETURN_IF_LOST();
    if (!event) return record(cudaErrorInvalidResourceHandle);
    if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
    event->done = false;
    event->stream = resolve(stream);
    enqueue(stream, [event] {
        event->seconds = now();
        event->done = true;
        return cudaSuccess;
    });
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!event) return record(cudaErrorInvalidResourceHandle);
    // runs the event's stream up to the event, and no further
    if (event->stream) drain(event->stream, &event->done);
    return take_pending();
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    RETURN_IF_LOST();
    if (!ms || !start || !end) return record(cudaErrorInvalidValue);
    if (!start->done || !end->done) return record(cudaErrorInvalidResourceHandle);
    if (!start->timing || !end->timing) return record(cudaErrorInvalidResourceHandle);
    *ms = (float)((end->seconds - start->seconds) * 1000.0);
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
    RETURN_IF_LOST();
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        (size_t)value > kMaxShared)
        return record(cudaErrorInvalidValue);
    max_dynamic_shared[func] = value;
    return cudaSuccess;
}

// ------------------------------------------------------------------ cuBLAS

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new emu_cublas;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && !is_device(workspace, bytes)) {
        complain("cublasSetWorkspace: %p (+%zu bytes) is not device memory", workspace, bytes);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

static size_t type_size(cudaDataType t) { return t == CUDA_R_16F ? 2 : 4; }

static void widen_matrix(const void *src, cudaDataType t, size_t n, float *dst) {
    if (t == CUDA_R_32F) {
        std::memcpy(dst, src, n * sizeof(float));
        return;
    }
    const __half *h = static_cast<const __half *>(src);
    for (size_t i = 0; i < n; i++)
        dst[i] = __half2float(h[i]);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (sticky) return CUBLAS_STATUS_EXECUTION_FAILED; // cudaPeekAtLastError says why
    const bool ta = transa == CUBLAS_OP_T, tb = transb == CUBLAS_OP_T;
    if (m < 0 || n < 0 || k < 0 || !alpha || !beta || compute != CUBLAS_COMPUTE_32F ||
        (Atype != CUDA_R_16F && Atype != CUDA_R_32F) || Btype != Atype ||
        (Ctype != CUDA_R_16F && Ctype != CUDA_R_32F) || lda < std::max(1, ta ? k : m) ||
        ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    // element extents of the column-major operands
    const size_t a_cols = ta ? m : k, a_rows = ta ? k : m;
    const size_t b_cols = tb ? k : n, b_rows = tb ? n : k;
    const size_t a_n = k ? (size_t)lda * (a_cols - 1) + a_rows : 0;
    const size_t b_n = k ? (size_t)ldb * (b_cols - 1) + b_rows : 0;
    const size_t c_n = (size_t)ldc * (n - 1) + m;
    if ((a_n && !is_device(A, a_n * type_size(Atype))) ||
        (b_n && !is_device(B, b_n * type_size(Btype))) || !is_device(C, c_n * type_size(Ctype))) {
        complain("cublasGemmEx: an operand is not (wholly) in device memory");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    enqueue(handle->stream, [=]() -> cudaError_t {
        std::vector<float> a(a_n), b(b_n), c(c_n, 0.0f);
        widen_matrix(A, Atype, a_n, a.data());
        widen_matrix(B, Btype, b_n, b.data());
        if (be != 0.0f) widen_matrix(C, Ctype, c_n, c.data());
        if (k)
            cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, m, n, k, al, a.data(), lda, b.data(), ldb,
                        be, c.data(), ldc);
        else
            for (float &x : c)
                x *= be;
        for (int col = 0; col < n; col++)
            for (int r = 0; r < m; r++) {
                const size_t i = (size_t)col * ldc + r;
                if (Ctype == CUDA_R_32F)
                    static_cast<float *>(C)[i] = c[i];
                else
                    static_cast<__half *>(C)[i] = __float2half_rn(c[i]);
            }
        return cudaSuccess;
    });
    return CUBLAS_STATUS_SUCCESS;
}

// ------------------------------------------------------------------ cuBLASLt

struct emu_lt {};
struct emu_lt_desc {
    cublasOperation_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = nullptr;
};
struct emu_lt_layout {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
};
struct emu_lt_preference {
    size_t max_workspace = 0;
};

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new emu_lt;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
    if (!desc || compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    *desc = new emu_lt_desc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t size) {
    if (!desc || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB: {
        if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
        const cublasOperation_t op = *static_cast<const cublasOperation_t *>(buf);
        (attr == CUBLASLT_MATMUL_DESC_TRANSA ? desc->transa : desc->transb) = op;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_EPILOGUE: {
        if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
        const cublasLtEpilogue_t e = *static_cast<const cublasLtEpilogue_t *>(buf);
        if (e != CUBLASLT_EPILOGUE_DEFAULT && e != CUBLASLT_EPILOGUE_BIAS &&
            e != CUBLASLT_EPILOGUE_GELU && e != CUBLASLT_EPILOGUE_GELU_BIAS)
            return CUBLAS_STATUS_NOT_SUPPORTED;
        desc->epilogue = e;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        if (size != sizeof(void *)) return CUBLAS_STATUS_INVALID_VALUE;
        std::memcpy(&desc->bias, buf, sizeof(void *));
        return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
    if (!layout || (type != CUDA_R_16F && type != CUDA_R_32F) ||
        ld < (int64_t)std::max<uint64_t>(rows, 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    *layout = new emu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new emu_lt_preference;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size) {
    if (!pref || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && size == sizeof(uint64_t)) {
        std::memcpy(&pref->max_workspace, buf, sizeof(uint64_t));
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr == CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK && size == sizeof(uint32_t))
        return CUBLAS_STATUS_SUCCESS; // the emulation never splits k
    return CUBLAS_STATUS_INVALID_VALUE;
}

// The shapes of D = op(A) op(B): m x k times k x n into m x n, all column-major.
static bool lt_shapes(const emu_lt_desc *d, const emu_lt_layout *a, const emu_lt_layout *b,
                      const emu_lt_layout *c, const emu_lt_layout *dl, uint64_t *m, uint64_t *n,
                      uint64_t *k) {
    const bool ta = d->transa == CUBLAS_OP_T, tb = d->transb == CUBLAS_OP_T;
    *m = ta ? a->cols : a->rows;
    *k = ta ? a->rows : a->cols;
    const uint64_t kb = tb ? b->cols : b->rows;
    *n = tb ? b->rows : b->cols;
    return kb == *k && c->rows == *m && c->cols == *n && dl->rows == *m && dl->cols == *n &&
           c->type == dl->type && a->type == b->type;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *returned) {
    if (!handle || !desc || !a || !b || !c || !d || !pref || requested < 1 || !results || !returned)
        return CUBLAS_STATUS_INVALID_VALUE;
    uint64_t m, n, k;
    *returned = 0;
    if (!lt_shapes(desc, a, b, c, d, &m, &n, &k)) return CUBLAS_STATUS_INVALID_VALUE;
    results[0] = cublasLtMatmulHeuristicResult_t{};
    results[0].algo.data[0] = 0x656d75; // any value: the emulation has one algorithm
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

static size_t lt_extent(const emu_lt_layout *l) {
    return l->cols ? (size_t)l->ld * (l->cols - 1) + l->rows : 0;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t a_layout, const void *B,
                              cublasLtMatrixLayout_t b_layout, const void *beta, const void *C,
                              cublasLtMatrixLayout_t c_layout, void *D,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t *algo,
                              void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    if (!handle || !desc || !alpha || !beta || !A || !B || !C || !D || !algo)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (sticky) return CUBLAS_STATUS_EXECUTION_FAILED; // cudaPeekAtLastError says why
    uint64_t m, n, k;
    if (!lt_shapes(desc, a_layout, b_layout, c_layout, d_layout, &m, &n, &k))
        return CUBLAS_STATUS_INVALID_VALUE;
    const bool bias_epilogue =
        desc->epilogue == CUBLASLT_EPILOGUE_BIAS || desc->epilogue == CUBLASLT_EPILOGUE_GELU_BIAS;
    const emu_lt_layout al = *a_layout, bl = *b_layout, cl = *c_layout, dl = *d_layout;
    const size_t es = type_size(dl.type);
    if (!is_device(A, lt_extent(&al) * type_size(al.type)) ||
        !is_device(B, lt_extent(&bl) * type_size(bl.type)) || !is_device(C, lt_extent(&cl) * es) ||
        !is_device(D, lt_extent(&dl) * es) || (bias_epilogue && !is_device(desc->bias, m * es)) ||
        (workspace_bytes && !is_device(workspace, workspace_bytes))) {
        complain("cublasLtMatmul: an operand, the bias or the workspace is not (wholly) device "
                 "memory");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const bool ta = desc->transa == CUBLAS_OP_T, tb = desc->transb == CUBLAS_OP_T;
    const float al_f = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    const cublasLtEpilogue_t epilogue = desc->epilogue;
    const void *bias = bias_epilogue ? desc->bias : nullptr;
    enqueue(stream, [=]() -> cudaError_t {
        std::vector<float> a(lt_extent(&al)), b(lt_extent(&bl)), c(lt_extent(&dl), 0.0f);
        widen_matrix(A, al.type, a.size(), a.data());
        widen_matrix(B, bl.type, b.size(), b.data());
        std::vector<float> cin(lt_extent(&cl));
        widen_matrix(C, cl.type, cin.size(), cin.data());
        for (uint64_t col = 0; col < n; col++)
            for (uint64_t r = 0; r < m; r++)
                c[col * dl.ld + r] = be == 0.0f ? 0.0f : be * cin[col * cl.ld + r];
        if (k)
            cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, al_f, a.data(),
                        (int)al.ld, b.data(), (int)bl.ld, 1.0f, c.data(), (int)dl.ld);
        std::vector<float> bias_f(bias ? m : 0);
        if (bias) widen_matrix(bias, dl.type, m, bias_f.data());
        for (uint64_t col = 0; col < n; col++)
            for (uint64_t r = 0; r < m; r++) {
                float x = c[col * dl.ld + r] + (bias ? bias_f[r] : 0.0f);
                if (epilogue == CUBLASLT_EPILOGUE_GELU || epilogue == CUBLASLT_EPILOGUE_GELU_BIAS)
                    x = 0.5f * x *
                        (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
                const size_t i = col * dl.ld + r;
                if (dl.type == CUDA_R_32F)
                    static_cast<float *>(D)[i] = x;
                else
                    static_cast<__half *>(D)[i] = __float2half_rn(x);
            }
        return cudaSuccess;
    });
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
