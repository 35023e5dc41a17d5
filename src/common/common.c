/* common/common.c — the thread-local last error, status strings and small file helpers. */
#define _POSIX_C_SOURCE 200809L
#include "common/common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char last_error[1024];

dre_status dre_set_error(dre_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *dre_last_error(void) { return last_error; }

const char *dre_status_str(dre_status status) {
    switch (status) {
    case DRE_OK: return "ok";
    case DRE_ERR_INVALID_ARG: return "invalid argument";
    case DRE_ERR_IO: return "i/o error";
    case DRE_ERR_FORMAT: return "malformed input";
    case DRE_ERR_UNSUPPORTED: return "unsupported";
    case DRE_ERR_NOMEM: return "out of memory";
    case DRE_ERR_NO_GPU: return "no usable GPU";
    case DRE_ERR_CUDA: return "CUDA error";
    case DRE_ERR_INDEX: return "index error";
    case DRE_ERR_MISMATCH: return "model and index disagree";
    case DRE_ERR_LOCKED: return "index is locked";
    }
    return "unknown status";
}

dre_status dre_read_file(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger) {
            free(buf);
            fclose(f);
            return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return dre_set_error(DRE_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return DRE_OK;
}

dre_status dre_path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return dre_set_error(DRE_ERR_INVALID_ARG, "path too long: %s/%s", dir, name);
    return DRE_OK;
}

int dre_integer_id_text(double v, char *buf, size_t cap) {
    if (!(fabs(v) < 9007199254740992.0) || v != floor(v)) return 0;
    snprintf(buf, cap, "%lld", (long long)v);
    return 1;
}

int dre_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

double dre_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* IEEE half to float: rebias the exponent (15 -> 127), normalise subnormals. */
float dre_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | mant << 13; /* inf, nan */
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | mant << 13;
    } else if (mant == 0) {
        bits = sign; /* zero */
    } else {
        /* subnormal: value = mant * 2^-24; shift until the hidden bit appears */
        int e = -1;
        do {
            mant <<= 1;
            e++;
        } while (!(mant & 0x400));
        bits = sign | (uint32_t)(112 - e) << 23 | (mant & 0x3ff) << 13;
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}
