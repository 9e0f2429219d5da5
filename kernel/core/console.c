/*
 * Kernel layer: the console. Formats with common/fmt and writes to the
 * architecture's serial port. Called by every part of the kernel.
 */
#include <arch/arch.h>
#include <common/fmt.h>
#include <kernel/console.h>

static void console_sink(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    arch_serial_write(s, n);
}

void console_write(const char *s, size_t n) { arch_serial_write(s, n); }

int kvprintf(const char *fmt, va_list ap) { return fmt_vformat(console_sink, 0, fmt, ap); }

int kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kvprintf(fmt, ap);
    va_end(ap);
    return n;
}

void panic(const char *fmt, ...)
{
    arch_irq_disable();
    va_list ap;
    va_start(ap, fmt);
    kprintf("PANIC: ");
    kvprintf(fmt, ap);
    kprintf("\n");
    va_end(ap);
    kprintf("tessera: shutdown status 3\n");
    arch_shutdown(3);
}
