/*
 * Common layer: memory and string functions for the kernel and user space
 * (see common/string.h). gcc emits calls to memcpy and friends on its own, so
 * this file is compiled with -fno-tree-loop-distribute-patterns: otherwise the
 * byte loops below would be "optimised" into calls to themselves.
 *
 * On x86-64 the bulk copies use `rep movsb`/`rep stosb`, which every CPU since
 * Ivy Bridge (ERMS) runs at close to cache bandwidth for all sizes. Backward
 * copies never set the direction flag: an interrupt taken with DF=1 would run
 * its handler with the wrong direction. COMMON_STRING_PORTABLE forces the
 * portable code, so host tests exercise it too.
 *
 * On the host only strlcpy is built, unless COMMON_STRING_UNDER_TEST asks for
 * the whole file (the tests compile it under other names, next to glibc).
 */
#include <stdint.h>
#include <common/string.h>

#if defined(__x86_64__) && !defined(COMMON_STRING_PORTABLE)
#define STRING_USE_REP 1
#else
#define STRING_USE_REP 0
#endif

#if !defined(TESSERA_HOST) || defined(COMMON_STRING_UNDER_TEST)

/* A word that may sit at any address and alias anything. */
typedef uint64_t __attribute__((may_alias, aligned(1))) word_unaligned;
#define WORD sizeof(uint64_t)

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
#if STRING_USE_REP
    void *ret = dst;
    __asm__ volatile("rep movsb"
                     : "+D"(dst), "+S"(src), "+c"(n)
                     :
                     : "memory");
    return ret;
#else
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (; n >= WORD; n -= WORD, d += WORD, s += WORD)
        *(word_unaligned *)d = *(const word_unaligned *)s;
    while (n--)
        *d++ = *s++;
    return dst;
#endif
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    /* Forward is safe unless dst starts inside [src, src+n). */
    if ((uintptr_t)d - (uintptr_t)s >= n) {
#if STRING_USE_REP
        __asm__ volatile("rep movsb"
                         : "+D"(d), "+S"(s), "+c"(n)
                         :
                         : "memory");
#else
        for (; n >= WORD; n -= WORD, d += WORD, s += WORD)
            *(word_unaligned *)d = *(const word_unaligned *)s;
        while (n--)
            *d++ = *s++;
#endif
        return dst;
    }
    /*
     * Backward, a word at a time: each word is loaded whole before it is
     * stored, and the words below it have not been written yet.
     */
    d += n;
    s += n;
    for (; n >= WORD; n -= WORD) {
        d -= WORD;
        s -= WORD;
        *(word_unaligned *)d = *(const word_unaligned *)s;
    }
    while (n--)
        *--d = *--s;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
#if STRING_USE_REP
    void *ret = dst;
    __asm__ volatile("rep stosb"
                     : "+D"(dst), "+c"(n)
                     : "a"(c)
                     : "memory");
    return ret;
#else
    unsigned char *d = dst;
    uint64_t pattern = (unsigned char)c * 0x0101010101010101ull;
    for (; n >= WORD; n -= WORD, d += WORD)
        *(word_unaligned *)d = pattern;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
#endif
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    /* Skip equal words quickly, then find the differing byte. */
    for (; n >= WORD; n -= WORD, x += WORD, y += WORD)
        if (*(const word_unaligned *)x != *(const word_unaligned *)y)
            break;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    const char *p = s;
    while (*p)
        p++;
    return (size_t)(p - s);
}

size_t strnlen(const char *s, size_t maxlen)
{
    size_t n = 0;
    while (n < maxlen && s[n])
        n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && *x == *y) {
        x++;
        y++;
    }
    return (*x > *y) - (*x < *y);
}

int strncmp(const char *a, const char *b, size_t n)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (; n; n--, x++, y++) {
        if (*x != *y)
            return *x < *y ? -1 : 1;
        if (!*x)
            return 0;
    }
    return 0;
}

char *strchr(const char *s, int c)
{
    char ch = (char)c;
    for (;; s++) {
        if (*s == ch)
            return (char *)s;
        if (!*s)
            return NULL;
    }
}

char *strrchr(const char *s, int c)
{
    char ch = (char)c;
    const char *last = NULL;
    for (;; s++) {
        if (*s == ch)
            last = s;
        if (!*s)
            return (char *)last;
    }
}

char *strstr(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return (char *)haystack;
    for (; (haystack = strchr(haystack, needle[0])) != NULL; haystack++)
        if (strncmp(haystack, needle, n) == 0)
            return (char *)haystack;
    return NULL;
}

#endif /* !TESSERA_HOST || COMMON_STRING_UNDER_TEST */

size_t strlcpy(char *restrict dst, const char *restrict src, size_t size)
{
    size_t len = strlen(src);
    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}
