/*
 * Kernel layer: formatted output on the serial console, and panic. Every
 * kernel message goes through kprintf(); panic() is for broken kernel
 * invariants only, never for bad input from user space.
 */
#ifndef KERNEL_CONSOLE_H
#define KERNEL_CONSOLE_H

#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>

int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int kvprintf(const char *fmt, va_list ap);
void console_write(const char *s, size_t n);
/* Console input: bytes from the serial port, buffered until read. */
void console_input_init(void);
void console_input_interrupt(void);
/* Copies up to len buffered bytes to user memory at buf, waiting up to
 * timeout_ns for the first one. Returns the count, or -ETIMEDOUT/-EFAULT. */
int64_t console_read(uint64_t buf, uint64_t len, uint64_t timeout_ns);
void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Always-on invariant check that prints both operands (illumos VERIFY3U). */
#define VERIFY(cond)                                                                \
    do {                                                                            \
        if (!(cond))                                                                \
            panic("%s:%d: VERIFY(%s) failed", __FILE__, __LINE__, #cond);           \
    } while (0)
#define VERIFY3U(a, op, b)                                                          \
    do {                                                                            \
        unsigned long long va_ = (a), vb_ = (b);                                    \
        if (!(va_ op vb_))                                                          \
            panic("%s:%d: VERIFY3U(%s %s %s) failed: %#llx %s %#llx", __FILE__,     \
                  __LINE__, #a, #op, #b, va_, #op, vb_);                            \
    } while (0)

#endif
