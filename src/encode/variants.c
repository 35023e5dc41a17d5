/* encode/variants.c — the GPU encoder's operators and its kernel families with more than
 * one implementation, by name, and the "family=name[,family=name]" lists that pick among
 * them (dre bench encoder --variant, DRE_VARIANT). Plain C: a build without CUDA names them
 * too. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "encode/backend.h"

/* in attention_variant's order (kernels/kernels.h) */
static const char *const attention_variants[] = {"mma", "wmma", NULL};
/* in gpu_gelu's order (gpu/encoder.h) */
static const char *const gelu_variants[] = {"tanh", "erf", NULL};

const char *dre_op_name(dre_op op) {
    switch (op) {
    case DRE_OP_EMBED: return "embed_layernorm";
    case DRE_OP_QKV_GEMM: return "qkv_gemm";
    case DRE_OP_ATTENTION: return "attention";
    case DRE_OP_OUT_GEMM: return "out_gemm";
    case DRE_OP_LN1: return "bias_residual_layernorm_1";
    case DRE_OP_FFN_IN_GEMM: return "ffn_in_gemm";
    case DRE_OP_GELU: return "bias_gelu";
    case DRE_OP_FFN_OUT_GEMM: return "ffn_out_gemm";
    case DRE_OP_LN2: return "bias_residual_layernorm_2";
    case DRE_OP_POOL: return "pool_normalize";
    case DRE_OP_COUNT: break;
    }
    return "?";
}

const char *dre_kernel_family_name(dre_kernel_family family) {
    switch (family) {
    case DRE_FAMILY_ATTENTION: return "attention";
    case DRE_FAMILY_GELU: return "gelu";
    case DRE_FAMILY_COUNT: break;
    }
    return "?";
}

const char *const *dre_kernel_family_variants(dre_kernel_family family) {
    switch (family) {
    case DRE_FAMILY_ATTENTION: return attention_variants;
    case DRE_FAMILY_GELU: return gelu_variants;
    case DRE_FAMILY_COUNT: break;
    }
    return NULL;
}

/* names joined with ", " into buf */
static void join_names(char *buf, size_t cap, const char *const *names, int count) {
    buf[0] = '\0';
    for (int i = 0; i < count && names[i]; i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", i ? ", " : "", names[i]);
}

/* The index of the name of length len in names (NULL-terminated or count long), or -1. */
static int find_name(const char *const *names, int count, const char *name, size_t len) {
    for (int i = 0; i < count && names[i]; i++)
        if (strlen(names[i]) == len && !strncmp(names[i], name, len)) return i;
    return -1;
}

dre_status dre_variants_parse(const char *spec, int choice[DRE_FAMILY_COUNT]) {
    const char *families[DRE_FAMILY_COUNT];
    for (int f = 0; f < DRE_FAMILY_COUNT; f++)
        families[f] = dre_kernel_family_name((dre_kernel_family)f);
    char choices[256];
    for (const char *at = spec; *at;) {
        const char *end = strchr(at, ',');
        const size_t len = end ? (size_t)(end - at) : strlen(at);
        const char *eq = memchr(at, '=', len);
        const int family = eq ? find_name(families, DRE_FAMILY_COUNT, at, (size_t)(eq - at)) : -1;
        if (family < 0) {
            join_names(choices, sizeof choices, families, DRE_FAMILY_COUNT);
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "variant '%.*s': expected family=name, the family one of: %s",
                                 (int)len, at, choices);
        }
        const char *const *names = dre_kernel_family_variants((dre_kernel_family)family);
        const int v = find_name(names, INT32_MAX, eq + 1, len - (size_t)(eq + 1 - at));
        if (v < 0) {
            join_names(choices, sizeof choices, names, INT32_MAX);
            return dre_set_error(DRE_ERR_INVALID_ARG, "variant '%.*s': %s has %s", (int)len, at,
                                 families[family], choices);
        }
        choice[family] = v;
        at = end ? end + 1 : at + len;
    }
    return DRE_OK;
}
