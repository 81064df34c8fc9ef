/* common/id.c - ids from OpenSSL's SHA-256 and getrandom(2). */
#include "common/id.h"

#include "common/hex.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void sha256_parts(const void *a, size_t an, const void *b, size_t bn, unsigned char md[32])
{
    unsigned int mdlen = 32;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, a, an);
    if (b) EVP_DigestUpdate(c, b, bn);
    EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
}

void em_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    sha256_parts(data, len, NULL, 0, md);
    em_hex_lower(md, 32, out);
}

void em_id_item(const char *uri, char out[EM_ID_LEN + 1])
{
    unsigned char md[32];
    sha256_parts(uri, strlen(uri), NULL, 0, md);
    em_hex_lower(md, EM_ID_LEN / 2, out);
}

int em_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > EM_ID_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void em_id_batch(char out[EM_BATCH_ID_LEN + 1])
{
    unsigned char r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(r, &ts.tv_nsec, 4);
        memcpy(r + 4, &ts.tv_sec, 4);
    }
    out[0] = 'b';
    out[1] = '-';
    em_hex_lower(r, 8, out + 2);
}
