/*
 * Kernel layer: formatted output on the serial console, and panic. Every
 * kernel message goes through kprintf(); panic() is for broken kernel
 * invariants only, never for bad input from user space.
 */
#ifndef KERNEL_CONSOLE_H
#define KERNEL_CONSOLE_H

#include <stdbool.h>
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
/* A machine the kernel cannot run on (a CPU feature or memory it lacks):
 * one line, `tessera: cannot run here: WHY; halting` (CONSOLE_REFUSED),
 * then this CPU halts for good. Boot only, before other CPUs start. */
void refuse_machine(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A panic is being reported (the other CPUs stop at their next NMI). */
bool panic_in_progress(void);

/*
 * The kernel's boot-time self-tests (iommu.selftest, smp.selftest) report
 * each check in the suite's form, `[PASS] GROUP.NAME`, `[FAIL] GROUP.NAME:
 * why` or `[SKIP] GROUP.NAME: why` (common/console.h), and the kernel keeps
 * the counts, which SYS_KINFO reports: the in-guest suite adds them to its
 * own, so its closing line covers every check the console shows.
 */
enum ktest_outcome { KTEST_PASS, KTEST_FAIL, KTEST_SKIP };
/* Prints and counts one check; fmt (may be 0 for a pass) explains a
 * failure or a skip. Returns whether it passed. */
bool ktest_report(const char *group, const char *name, enum ktest_outcome outcome, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ktest_counts(uint32_t *passed, uint32_t *failed, uint32_t *skipped);

/*
 * Invariant checks, two levels as in illumos's sys/debug.h: VERIFY is
 * always on (a broken invariant here would corrupt state worth more than
 * the check costs); ASSERT is compiled only into debug builds
 * (TESSERA_DEBUG), for checks on hot paths. The 3U forms print both
 * operands. Neither is ever for input from user space: that gets an error.
 */
#define VERIFY(cond)                                                                                                   \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            panic("%s:%d: VERIFY(%s) failed", __FILE__, __LINE__, #cond);                                              \
    } while (0)
#define VERIFY3U(a, op, b)                                                                                             \
    do {                                                                                                               \
        unsigned long long va_ = (a), vb_ = (b);                                                                       \
        if (!(va_ op vb_))                                                                                             \
            panic("%s:%d: VERIFY3U(%s %s %s) failed: %#llx %s %#llx", __FILE__, __LINE__, #a, #op, #b, va_, #op, vb_); \
    } while (0)

#ifdef TESSERA_DEBUG
#define ASSERT(cond)       VERIFY(cond)
#define ASSERT3U(a, op, b) VERIFY3U(a, op, b)
#else
#define ASSERT(cond)       ((void)sizeof(cond))
#define ASSERT3U(a, op, b) ((void)sizeof((a)op(b)))
#endif

#endif
