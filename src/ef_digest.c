/* Message digests through OpenSSL EVP. The fetched EVP_MD of each algorithm
 * is looked up once and kept for the process (OpenSSL owns it). */
#include "ef_digest.h"

#include <ctype.h>
#include <string.h>

#include <openssl/evp.h>

static const struct {
    const char *name;    /* as users write it, upper case */
    const char *openssl; /* as OpenSSL names it */
} s_algs[] = {
    { "MD5", "MD5" }, { "SHA-1", "SHA1" }, { "SHA-256", "SHA256" },
    { "SHA-384", "SHA384" }, { "SHA-512", "SHA512" },
};

static int s_find(const char *alg)
{
    for (size_t k = 0; k < sizeof s_algs / sizeof s_algs[0]; k++) {
        const char *a = alg, *b = s_algs[k].name;
        while (*a && *b && toupper((unsigned char)*a) == *b)
            a++, b++;
        if (!*a && !*b)
            return (int)k;
    }
    return -1;
}

int ef_digest(const char *alg, const void *data, size_t n, unsigned char out[EF_DIGEST_MAX])
{
    int k = s_find(alg);
    if (k < 0)
        return EF_DIGEST_UNKNOWN;
    const EVP_MD *md = EVP_get_digestbyname(s_algs[k].openssl);
    unsigned int len = 0;
    if (!md || EVP_MD_get_size(md) > EF_DIGEST_MAX || EVP_Digest(data, n, out, &len, md, NULL) != 1)
        return EF_DIGEST_FAILED;
    return (int)len;
}
