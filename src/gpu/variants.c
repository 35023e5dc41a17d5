/* gpu/variants.c — the GPU encoder's kernel families with more than one implementation,
 * and the "family=name[,family=name]" lists that pick among them (dre bench encoder
 * --variant, DRE_VARIANT). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "gpu/encoder.h"

/* in attention_variant's order (kernels.h) */
static const char *const attention_variants[] = {"mma", "wmma", NULL};
/* in gpu_gelu's order (gpu/encoder.h) */
static const char *const gelu_variants[] = {"tanh", "erf", NULL};

const char *gpu_family_name(gpu_family family) {
    switch (family) {
    case GPU_FAMILY_ATTENTION: return "attention";
    case GPU_FAMILY_GELU: return "gelu";
    case GPU_FAMILY_COUNT: break;
    }
    return "?";
}

const char *const *gpu_family_variants(gpu_family family) {
    switch (family) {
    case GPU_FAMILY_ATTENTION: return attention_variants;
    case GPU_FAMILY_GELU: return gelu_variants;
    case GPU_FAMILY_COUNT: break;
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

dre_status gpu_variants_parse(const char *spec, int choice[GPU_FAMILY_COUNT]) {
    const char *families[GPU_FAMILY_COUNT];
    for (int f = 0; f < GPU_FAMILY_COUNT; f++)
        families[f] = gpu_family_name((gpu_family)f);
    char choices[256];
    for (const char *at = spec; *at;) {
        const char *end = strchr(at, ',');
        const size_t len = end ? (size_t)(end - at) : strlen(at);
        const char *eq = memchr(at, '=', len);
        const int family = eq ? find_name(families, GPU_FAMILY_COUNT, at, (size_t)(eq - at)) : -1;
        if (family < 0) {
            join_names(choices, sizeof choices, families, GPU_FAMILY_COUNT);
            return set_error(DRE_ERR_INVALID_ARG,
                             "variant '%.*s': expected family=name, the family one of: %s",
                             (int)len, at, choices);
        }
        const char *const *names = gpu_family_variants((gpu_family)family);
        const int v = find_name(names, INT32_MAX, eq + 1, len - (size_t)(eq + 1 - at));
        if (v < 0) {
            join_names(choices, sizeof choices, names, INT32_MAX);
            return set_error(DRE_ERR_INVALID_ARG, "variant '%.*s': %s has %s", (int)len, at,
                             families[family], choices);
        }
        choice[family] = v;
        at = end ? end + 1 : at + len;
    }
    return DRE_OK;
}
