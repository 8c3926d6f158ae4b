/* Message digests through OpenSSL EVP (pure C, no lua.h).
 *
 *   unsigned char out[EF_DIGEST_MAX];
 *   int n = ef_digest("SHA-256", data, len, out);   bytes written, or
 *     EF_DIGEST_UNKNOWN (no such algorithm) / EF_DIGEST_FAILED (OpenSSL failed)
 *
 * Algorithms (case-insensitive): MD5, SHA-1, SHA-256, SHA-384, SHA-512. */
#ifndef EF_DIGEST_H
#define EF_DIGEST_H

#include <stddef.h>

#define EF_DIGEST_MAX 64
#define EF_DIGEST_UNKNOWN (-1)
#define EF_DIGEST_FAILED (-2)

int ef_digest(const char *alg, const void *data, size_t n, unsigned char out[EF_DIGEST_MAX]);

#endif
