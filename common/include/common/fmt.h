/*
 * Common layer: printf-style formatting without floating point, for the
 * kernel's console and log, user programs (through libsys) and host tools.
 * Output goes to a sink in batches; fmt_snprintf is the buffer sink.
 *
 * Supported: %d %i %u %x %X %o %p %s %c %%, flags - 0 + space #, width and
 * precision (also *), length modifiers hh h l ll z j t. %s of NULL prints
 * "(null)", %p of NULL "(nil)" as glibc does. %n is not supported and, like
 * any unknown conversion, is printed as written.
 */
#ifndef COMMON_FMT_H
#define COMMON_FMT_H

#include <stdarg.h>
#include <stddef.h>

/* Receives n bytes of output (not NUL-terminated); called with n > 0. */
typedef void (*fmt_sink_fn)(void *ctx, const char *s, size_t n);

/* Returns the number of characters produced (saturated at INT_MAX). */
int fmt_vformat(fmt_sink_fn sink, void *ctx, const char *fmt, va_list ap);
int fmt_format(fmt_sink_fn sink, void *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * C99 semantics: returns the length the full output would have, writes at
 * most size bytes and always NUL-terminates when size > 0.
 */
int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int fmt_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
