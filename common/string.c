/*
 * Common layer: memory and string functions for the kernel and user space
 * (see common/string.h). gcc emits calls to memcpy and friends on its own, so
 * this file is compiled with -fno-tree-loop-distribute-patterns: otherwise the
 * byte loops below would be "optimised" into calls to themselves.
 *
 * On x86-64 the bulk copies use `rep movsq`/`rep stosq` for whole words and
 * `rep movsb`/`rep stosb` for the tail. On hardware with ERMS the byte forms
 * alone would do, but emulators run a repeat step per element: QEMU's TCG
 * copies 8-byte steps about eight times faster, and under -icount every step
 * counts as an instruction, so the word forms decide the speed of migration
 * and zero-filling in the guest (see docs/benchmarks.md). Backward
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

#if STRING_USE_REP
/* Forward copy: whole words, then the remaining bytes. */
static inline void copy_forward(void *dst, const void *src, size_t n)
{
    size_t words = n / WORD, bytes = n % WORD;
    __asm__ volatile("rep movsq\n\t"
                     "mov %[bytes], %%rcx\n\t"
                     "rep movsb"
                     : "+D"(dst), "+S"(src), "+c"(words)
                     : [bytes] "r"(bytes)
                     : "memory");
}
#endif

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
#if STRING_USE_REP
    copy_forward(dst, src, n);
    return dst;
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
        /* Word steps forward are safe too: each word is read before the
         * store that could overlap it, since dst is below src. */
        copy_forward(d, s, n);
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
    size_t words = n / WORD, bytes = n % WORD;
    uint64_t pattern = (unsigned char)c * 0x0101010101010101ull;
    __asm__ volatile("rep stosq\n\t"
                     "mov %[bytes], %%rcx\n\t"
                     "rep stosb"
                     : "+D"(dst), "+c"(words)
                     : "a"(pattern), [bytes] "r"(bytes)
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
