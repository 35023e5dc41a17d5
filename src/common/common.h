/* common/common.h — internal helpers shared by every stage: error reporting and small utilities.
 * Not part of the public interface. */
#ifndef DRE_COMMON_H
#define DRE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Records a formatted message as this thread's last error and returns status, so a
 * failure reads: return dre_set_error(DRE_ERR_FORMAT, "%s:%d: ...", path, line); */
dre_status dre_set_error(dre_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Propagates a failed status; the callee has already set the message. */
#define DRE_TRY(expr)                                                                              \
    do {                                                                                           \
        dre_status try_status_ = (expr);                                                           \
        if (try_status_ != DRE_OK) return try_status_;                                             \
    } while (0)

/* Reads a whole file into a NUL-terminated buffer (caller frees). */
dre_status dre_read_file(const char *path, char **data, size_t *len);

/* Joins dir and name into out (size cap); DRE_ERR_INVALID_ARG if it does not fit. */
dre_status dre_path_join(char *out, size_t cap, const char *dir, const char *name);

/* An integer JSON id ({"_id": 17}) as decimal text in buf: 1 if v is a whole number
 * that a double holds exactly (|v| < 2^53), else 0. */
int dre_integer_id_text(double v, char *buf, size_t cap);

/* Number of online cores (at least 1). */
int dre_cpu_count(void);

/* Monotonic seconds. */
double dre_now_seconds(void);

/* An IEEE half (binary16) as a float, exactly (subnormals, infinities and NaNs too). */
float dre_f16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
