/*
 * libsys: printf and puts on the serial console (see libsys/stdio.h).
 */
#include <common/string.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

struct line_buffer {
    char data[1024];
    size_t used;
};

static void flush(struct line_buffer *b)
{
    if (b->used)
        sys_console_write(b->data, b->used);
    b->used = 0;
}

static void sink(void *ctx, const char *s, size_t n)
{
    struct line_buffer *b = ctx;
    while (n) {
        if (b->used == sizeof(b->data))
            flush(b);
        size_t room = sizeof(b->data) - b->used;
        size_t take = n < room ? n : room;
        memcpy(b->data + b->used, s, take);
        b->used += take;
        s += take;
        n -= take;
    }
}

int vprintf(const char *fmt, va_list ap)
{
    struct line_buffer b;
    b.used = 0;
    int n = fmt_vformat(sink, &b, fmt, ap);
    flush(&b);
    return n;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int puts(const char *s) { return printf("%s\n", s); }
