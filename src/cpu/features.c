/* cpu/features.c — which path the CPU encoder's products take on this CPU at each precision,
 * and why (dre_cpu_path, printed by `dre info --cpu`): the same tests the encoder makes
 * (cpu/gemm.c, cpu/gemm_bf16.c, cpu/gemm_int8.c, cpu/amx.c), said in words, with the
 * instructions the CPU has that dre does not use (VNNI) named too. */
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "cpu/amx.h"
#include "cpu/gemm.h"

/* CPUID leaf 7: AVX512_VNNI (ecx bit 11) */
static int has_vnni(void) {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx >> 11) & 1;
}

dre_status dre_cpu_path(dre_precision precision, char *buf, size_t size) {
    const int vnni = has_vnni();
    const char *amx_why = NULL;
    const int amx = dre_cpu_amx_mode(&amx_why) != CPU_AMX_OFF;
    const char *force = getenv("DRE_CPU_GEMM");
    const int openblas = force && strcmp(force, "openblas") == 0;
    switch (precision) {
    case DRE_PRECISION_FP32:
        if (dre_cpu_gemm_vectorised())
            snprintf(buf, size,
                     "AVX-512F: fp32 weights packed in panels of 32 columns, FMA "
                     "micro-kernels with fused bias and GELU (the default)");
        else
            snprintf(buf, size, "OpenBLAS sgemm and the plain operators (%s)",
                     openblas ? "DRE_CPU_GEMM=openblas" : "this CPU has no AVX-512F");
        return DRE_OK;
    case DRE_PRECISION_BF16:
        if (!dre_cpu_bf16_supported()) {
            snprintf(buf, size,
                     "unsupported: needs AVX-512 BF16 (VDPBF16PS), which this CPU "
                     "lacks");
            return dre_set_error(DRE_ERR_UNSUPPORTED, "precision %s: %s",
                                 dre_precision_name(precision), buf);
        }
        if (amx)
            snprintf(buf, size,
                     "%s: weights and activations rounded to bf16, 32 x 32 blocks of sums in "
                     "fp32; attention's products too",
                     amx_why);
        else
            snprintf(buf, size,
                     "AVX-512 BF16: weights and activations rounded to bf16, VDPBF16PS "
                     "with fp32 sums (%s)",
                     amx_why);
        return DRE_OK;
    case DRE_PRECISION_INT8:
        if (!dre_cpu_int8_supported()) {
            snprintf(buf, size,
                     "unsupported: needs AVX-512 BF16 (VDPBF16PS), which this CPU "
                     "lacks");
            return dre_set_error(DRE_ERR_UNSUPPORTED, "precision %s: %s",
                                 dre_precision_name(precision), buf);
        }
        if (amx)
            snprintf(buf, size,
                     "%s: int8 weights (a scale per %d of a column) widened to bf16 a panel "
                     "at a time, activations in bf16, fp32 sums; AMX-INT8 unused: it needs "
                     "int8 activations, and dre keeps them bf16 for accuracy",
                     amx_why, CPU_INT8_GROUP);
        else
            snprintf(buf, size,
                     "AVX-512 BF16: int8 weights (a scale per %d of a column) widened to bf16 "
                     "as read, activations in bf16, VDPBF16PS with fp32 sums; %s (%s)",
                     CPU_INT8_GROUP,
                     vnni ? "VNNI (VPDPBUSD) present but unused: it needs int8 activations, "
                            "and dre keeps them bf16 for accuracy"
                          : "no VNNI on this CPU (none needed)",
                     amx_why);
        return DRE_OK;
    }
    snprintf(buf, size, "unknown precision %d", (int)precision);
    return dre_set_error(DRE_ERR_INVALID_ARG, "dre_cpu_path: unknown precision %d", (int)precision);
}
