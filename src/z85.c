/*
 * z85.c - Z85 (RFC 32) encoder and decoder, see z85.h.
 */
#include "z85.h"

#include <errno.h>
#include <stdint.h>

static const char alphabet[86] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ".-:+=^!/*?&<>()[]{}@%$#";

/* The value of a character, or -1 outside the alphabet. */
static int digit(unsigned char ch)
{
    for (int i = 0; i < 85; i++)
        if ((unsigned char)alphabet[i] == ch)
            return i;
    return -1;
}

int zm_z85_encode(char *out, const unsigned char *data, size_t n)
{
    if (n % 4 != 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = (uint32_t)data[i] << 24 | (uint32_t)data[i + 1] << 16 |
                     (uint32_t)data[i + 2] << 8 | data[i + 3];
        for (int k = 4; k >= 0; k--) {
            out[k] = alphabet[v % 85];
            v /= 85;
        }
        out += 5;
    }
    *out = '\0';
    return 0;
}

int zm_z85_decode(unsigned char *out, const char *text, size_t n)
{
    if (n % 5 != 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i += 5) {
        uint64_t v = 0;
        for (int k = 0; k < 5; k++) {
            int d = digit((unsigned char)text[i + k]);
            if (d < 0)
                return -EINVAL;
            v = v * 85 + (uint64_t)d;
        }
        if (v > UINT32_MAX)
            return -EINVAL;
        *out++ = (unsigned char)(v >> 24);
        *out++ = (unsigned char)(v >> 16);
        *out++ = (unsigned char)(v >> 8);
        *out++ = (unsigned char)v;
    }
    return 0;
}
