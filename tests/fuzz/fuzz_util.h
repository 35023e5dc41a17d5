/* fuzz_util.h — what the libFuzzer targets in tests/fuzz/ share: a private temporary
 * folder for the path-based APIs, writing an input there, and the failure hook. Written
 * in the common subset of C11 and C++, because tests/fuzz_regressions_test.cc includes
 * the targets to replay tests/fuzz/regressions/ under GoogleTest. */
#ifndef DRE_FUZZ_UTIL_H
#define DRE_FUZZ_UTIL_H

/* mkdtemp, symlink, fileno: include this header before any other */
#if !defined(_POSIX_C_SOURCE) && !defined(__cplusplus)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A broken invariant. libFuzzer counts an abort as a crash and keeps the input; the
 * GoogleTest replay defines FUZZ_FAIL to record a test failure instead. */
#ifndef FUZZ_FAIL
#define FUZZ_FAIL(msg)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, (msg));              \
        abort();                                                                                   \
    } while (0)
#endif

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) FUZZ_FAIL(#cond);                                                             \
    } while (0)

/* A folder of this process's own (TMPDIR or /tmp), made on first use. Several fuzzers
 * may run at once: each has its own folder. Left behind on a crash, which the runner's
 * scratch folder takes care of. */
static inline const char *fuzz_tmp_dir(void) {
    static char dir[4096];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        if (!base || !base[0]) base = "/tmp";
        snprintf(dir, sizeof dir, "%s/dre-fuzz-XXXXXX", base);
        if (!mkdtemp(dir)) {
            fprintf(stderr, "fuzz: mkdtemp %s: %s\n", dir, strerror(errno));
            abort();
        }
    }
    return dir;
}

/* path = fuzz_tmp_dir() "/" name; name may hold one subfolder ("1_Pooling/config.json"),
 * which is created. */
static inline void fuzz_path(char *path, size_t cap, const char *name) {
    snprintf(path, cap, "%s/%s", fuzz_tmp_dir(), name);
    const char *slash = strchr(name, '/');
    if (slash) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%.*s", fuzz_tmp_dir(), (int)(slash - name), name);
        mkdir(sub, 0700);
    }
}

/* Writes size bytes to the temporary file name, replacing it; its path goes to path. */
static inline void fuzz_write(const char *name, const uint8_t *data, size_t size, char *path,
                              size_t cap) {
    fuzz_path(path, cap, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

/* Removes the temporary file name if it exists. */
static inline void fuzz_remove(const char *name) {
    char path[4096];
    fuzz_path(path, sizeof path, name);
    unlink(path);
}

#endif
