/*
 * Kernel layer: the console. Formats with common/fmt and writes to the
 * architecture's serial port; called by every part of the kernel. Input
 * arrives by interrupt into a ring buffer that SYS_CONSOLE_READ drains; when
 * the ring is full, newer bytes are dropped (and counted), never older ones.
 */
#include <arch/arch.h>
#include <common/fmt.h>
#include <abi/errno.h>
#include <common/console.h>
#include <kernel/console.h>
#include <kernel/lock.h>
#include <kernel/sched.h>
#include <kernel/usercopy.h>

static void console_sink(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    arch_serial_write(s, n);
}

/* Output from several CPUs: one message at a time, so lines do not mix. A
 * panic takes the console over (its CPU may have held the lock when it
 * faulted). */
static struct spinlock output;
static volatile int panic_cpu = -1;

bool panic_in_progress(void) { return panic_cpu >= 0; }

static bool output_lock(void)
{
    if (panic_cpu >= 0)
        return false;
    spin_lock(&output);
    return true;
}

static void output_unlock(bool locked)
{
    if (locked)
        spin_unlock(&output);
}

void console_write(const char *s, size_t n)
{
    bool locked = output_lock();
    arch_serial_write(s, n);
    output_unlock(locked);
}

int kvprintf(const char *fmt, va_list ap)
{
    bool locked = output_lock();
    int n = fmt_vformat(console_sink, 0, fmt, ap);
    output_unlock(locked);
    return n;
}

int kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kvprintf(fmt, ap);
    va_end(ap);
    return n;
}

#define INPUT_RING 4096u

static uint8_t input_ring[INPUT_RING];
static uint32_t input_head, input_tail; /* bytes [tail, head) are buffered */
static uint64_t input_dropped;
static struct wait_queue input_readers;

void console_input_init(void)
{
    arch_serial_enable_input();
    arch_irq_unmask(ARCH_IRQ_SERIAL);
}

void console_input_interrupt(void)
{
    int c;
    while ((c = arch_serial_read_byte()) >= 0) {
        if (input_head - input_tail == INPUT_RING) {
            input_dropped++;
            continue;
        }
        input_ring[input_head++ % INPUT_RING] = (uint8_t)c;
    }
    sched_wake_all(&input_readers, 0);
}

int64_t console_read(uint64_t buf, uint64_t len, uint64_t timeout_ns)
{
    if (!user_range_valid(buf, len))
        return -EFAULT;
    /* Bytes leave the ring only once they are in the caller's buffer: a
     * buffer that vanished while it waited loses nothing. The copy itself
     * may wait (a page of a segment being moved), and another reader may
     * take the same bytes meanwhile: they are then that reader's, and
     * this one counts only what it took before (or starts again). */
    uint8_t chunk[256];
    uint64_t n = 0, now = arch_time_ns();
    uint64_t deadline = timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns; /* one, however often it waits */
    for (;;) {
        while (input_head == input_tail) {
            if (n)
                return (int64_t)n;
            now = arch_time_ns();
            uint64_t left = timeout_ns == TIMEOUT_FOREVER ? TIMEOUT_FOREVER : deadline > now ? deadline - now : 0;
            int64_t r = sched_block(&input_readers, left);
            if (r < 0 && input_head == input_tail)
                return r;
        }
        if (n == len)
            return (int64_t)n;
        uint32_t from = input_tail;
        uint64_t k = 0;
        while (k < sizeof(chunk) && n + k < len && from + k != input_head) {
            chunk[k] = input_ring[(from + k) % INPUT_RING];
            k++;
        }
        if (copy_to_user(buf + n, chunk, k) != 0)
            return n ? (int64_t)n : -EFAULT;
        if (input_tail != from)
            continue; /* taken by another reader while the copy waited */
        input_tail += (uint32_t)k;
        n += k;
    }
}

void refuse_machine(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kprintf(CONSOLE_REFUSED " ");
    kvprintf(fmt, ap);
    kprintf("; halting\n");
    va_end(ap);
    arch_halt_forever();
}

void panic(const char *fmt, ...)
{
    arch_irq_disable();
    int expected = -1;
    if (!__atomic_compare_exchange_n(&panic_cpu, &expected, (int)arch_cpu_id(), false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        arch_halt_forever(); /* another CPU is reporting its own */
    smp_stop_others();
    va_list ap;
    va_start(ap, fmt);
    kprintf("PANIC: ");
    kvprintf(fmt, ap);
    kprintf("\n");
    va_end(ap);
    kprintf("tessera: shutdown status 3\n");
    arch_shutdown(3);
}

static uint32_t ktests[3];

bool ktest_report(const char *group, const char *name, enum ktest_outcome outcome, const char *fmt, ...)
{
    static const char *const tags[] = { CONSOLE_PASS, CONSOLE_FAIL, CONSOLE_SKIP };
    ktests[outcome]++;
    if (outcome == KTEST_PASS || !fmt) {
        kprintf("%s %s.%s\n", tags[outcome], group, name);
        return outcome == KTEST_PASS;
    }
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    kprintf("%s %s.%s: %s\n", tags[outcome], group, name, why);
    return false;
}

void ktest_counts(uint32_t *passed, uint32_t *failed, uint32_t *skipped)
{
    *passed = ktests[KTEST_PASS];
    *failed = ktests[KTEST_FAIL];
    *skipped = ktests[KTEST_SKIP];
}
