/*
 * libsys: console output. Each printf() call reaches the console as one
 * write (up to 1 KiB), so lines from different processes do not interleave.
 */
#ifndef LIBSYS_STDIO_H
#define LIBSYS_STDIO_H

#include <stdarg.h>
#include <stddef.h>
#include <common/fmt.h>

int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int puts(const char *s);
#define snprintf  fmt_snprintf
#define vsnprintf fmt_vsnprintf

#endif
