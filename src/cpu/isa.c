/* cpu/isa.c — which of the CPU encoder's instruction-set paths this CPU can run (declared in
 * cpu/gemm.h): asked of the CPU in one place, below every file that chooses a path by them
 * (the products, attention, the AMX mode, dre info --cpu). */
#include <stdlib.h>
#include <string.h>

#include "cpu/gemm.h"

int dre_cpu_gemm_vectorised(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *force = getenv("DRE_CPU_GEMM");
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && !(force && strcmp(force, "openblas") == 0);
    }
    return cached;
}

int dre_cpu_bf16_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

int dre_cpu_int8_supported(void) { return dre_cpu_bf16_supported(); }
