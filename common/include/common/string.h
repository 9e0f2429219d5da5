/*
 * Common layer: the C string and memory functions for freestanding code.
 * Used by the kernel, by user programs through libsys, and by gcc itself,
 * which emits calls to memcpy/memset/memmove/memcmp even with -ffreestanding;
 * hence the standard names. Host builds use the C library instead, and get
 * only strlcpy (glibc before 2.38 lacks it) from common/string.c.
 */
#ifndef COMMON_STRING_H
#define COMMON_STRING_H

#include <stddef.h>

#if defined(TESSERA_HOST) && !defined(COMMON_STRING_UNDER_TEST)
#include <string.h>
#else
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t maxlen);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
char *strrchr(const char *s, int c);
char *strstr(const char *haystack, const char *needle);
#endif

/*
 * Copies at most size-1 bytes of src and NUL-terminates dst when size > 0.
 * Returns strlen(src): the copy was truncated if the result is >= size.
 */
size_t strlcpy(char *restrict dst, const char *restrict src, size_t size);

#endif
