/* model/sha256.h — SHA-256 (FIPS 180-4), used to fingerprint model weights so an index can
 * tell whether it was built with the same model. */
#ifndef DRE_SHA256_H
#define DRE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sha256_ctx {
    uint32_t state[8];
    uint64_t n_bytes;  /* message length so far */
    uint8_t block[64]; /* pending partial block */
    size_t block_len;
} sha256_ctx;

void dre_sha256_init(sha256_ctx *ctx);
void dre_sha256_update(sha256_ctx *ctx, const void *data, size_t len);
void dre_sha256_final(sha256_ctx *ctx, uint8_t digest[32]);

/* The lowercase hex digest of len bytes, NUL-terminated. */
void dre_sha256_hex(const void *data, size_t len, char hex[65]);

#ifdef __cplusplus
}
#endif
#endif
