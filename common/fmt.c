/*
 * Common layer: the formatter behind the kernel console, libsys printf and
 * host tools (see common/fmt.h). One pass over the format string; output is
 * gathered in a small stack buffer and handed to the sink when it fills, so a
 * serial or IPC sink sees a few large writes rather than one per character.
 * (<limits.h> is not usable under -nostdinc: gcc's copy chains to libc's.)
 */
#include <stdbool.h>
#include <stdint.h>
#include <common/fmt.h>
#include <common/string.h>

enum {
    FL_LEFT = 1,   /* '-' */
    FL_ZERO = 2,   /* '0' */
    FL_PLUS = 4,   /* '+' */
    FL_SPACE = 8,  /* ' ' */
    FL_ALT = 16,   /* '#' */
    FL_UPPER = 32, /* %X */
};

#define OUT_BUF 128

struct out {
    fmt_sink_fn sink;
    void *ctx;
    size_t used;
    size_t total;
    char buf[OUT_BUF];
};

static void out_flush(struct out *o)
{
    if (o->used) {
        o->sink(o->ctx, o->buf, o->used);
        o->used = 0;
    }
}

static void out_put(struct out *o, const char *s, size_t n)
{
    o->total += n;
    if (n > OUT_BUF - o->used) {
        out_flush(o);
        if (n >= OUT_BUF) {
            o->sink(o->ctx, s, n);
            return;
        }
    }
    memcpy(o->buf + o->used, s, n);
    o->used += n;
}

static void out_fill(struct out *o, char c, size_t n)
{
    while (n) {
        if (o->used == OUT_BUF)
            out_flush(o);
        size_t chunk = OUT_BUF - o->used;
        if (chunk > n)
            chunk = n;
        memset(o->buf + o->used, c, chunk);
        o->used += chunk;
        o->total += chunk;
        n -= chunk;
    }
}

/* Emits body (already including any prefix) padded to width. */
static void put_padded(struct out *o, const char *s, size_t n, size_t width, unsigned flags)
{
    size_t pad = width > n ? width - n : 0;
    if (!(flags & FL_LEFT))
        out_fill(o, ' ', pad);
    out_put(o, s, n);
    if (flags & FL_LEFT)
        out_fill(o, ' ', pad);
}

/*
 * One integer conversion: sign or 0x prefix, zeros for precision (or for
 * width under '0'), digits, space padding. prec < 0 means "none given".
 */
static void put_int(struct out *o, uintmax_t v, bool negative, unsigned base, unsigned flags, size_t width, int prec)
{
    const char *digitset = (flags & FL_UPPER) ? "0123456789ABCDEF" : "0123456789abcdef";
    char digits[sizeof(uintmax_t) * __CHAR_BIT__ / 3 + 2];
    size_t ndigits = 0;
    char prefix[2];
    size_t nprefix = 0;

    for (uintmax_t x = v; x; x /= base)
        digits[sizeof digits - ++ndigits] = digitset[x % base];
    /* "%.0d" of 0 prints nothing; without a precision 0 prints "0". */
    if (v == 0 && prec != 0)
        digits[sizeof digits - ++ndigits] = '0';

    if (negative)
        prefix[nprefix++] = '-';
    else if (flags & FL_PLUS)
        prefix[nprefix++] = '+';
    else if (flags & FL_SPACE)
        prefix[nprefix++] = ' ';
    if ((flags & FL_ALT) && base == 16 && v != 0) {
        prefix[nprefix++] = '0';
        prefix[nprefix++] = (flags & FL_UPPER) ? 'X' : 'x';
    }

    size_t zeros = prec > 0 && (size_t)prec > ndigits ? (size_t)prec - ndigits : 0;
    /* '#' with %o: the first digit must be a 0. */
    if ((flags & FL_ALT) && base == 8 && zeros == 0 && (ndigits == 0 || digits[sizeof digits - ndigits] != '0'))
        zeros = 1;
    if ((flags & (FL_ZERO | FL_LEFT)) == FL_ZERO && prec < 0 && width > nprefix + zeros + ndigits)
        zeros = width - nprefix - ndigits;

    size_t len = nprefix + zeros + ndigits;
    size_t pad = width > len ? width - len : 0;
    if (!(flags & FL_LEFT))
        out_fill(o, ' ', pad);
    if (nprefix)
        out_put(o, prefix, nprefix);
    out_fill(o, '0', zeros);
    out_put(o, digits + sizeof digits - ndigits, ndigits);
    if (flags & FL_LEFT)
        out_fill(o, ' ', pad);
}

/* One conversion specification, %[flags][width][.precision][length]conv. */
enum length { LEN_INT, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_Z, LEN_J, LEN_T };

struct spec {
    unsigned flags;
    size_t width;
    int prec; /* -1: none */
    enum length length;
    char conv; /* 0 when the format ended inside the spec */
};

/* The helpers below take the va_list by pointer: one that took va_arg from
 * its own copy would leave the caller's list indeterminate. */

static const char *parse_flags(const char *fmt, unsigned *flags)
{
    for (;; fmt++) {
        if (*fmt == '-')
            *flags |= FL_LEFT;
        else if (*fmt == '0')
            *flags |= FL_ZERO;
        else if (*fmt == '+')
            *flags |= FL_PLUS;
        else if (*fmt == ' ')
            *flags |= FL_SPACE;
        else if (*fmt == '#')
            *flags |= FL_ALT;
        else
            return fmt;
    }
}

static const char *parse_width(const char *fmt, va_list *ap, struct spec *sp)
{
    if (*fmt == '*') {
        int w = va_arg(*ap, int);
        if (w < 0) {
            sp->flags |= FL_LEFT; /* as C says: a negative width is '-' */
            sp->width = (size_t) - (long)w;
        } else {
            sp->width = (size_t)w;
        }
        return fmt + 1;
    }
    while (*fmt >= '0' && *fmt <= '9') {
        if (sp->width < __INT_MAX__)
            sp->width = sp->width * 10 + (size_t)(*fmt - '0');
        fmt++;
    }
    return fmt;
}

static const char *parse_precision(const char *fmt, va_list *ap, int *prec)
{
    *prec = -1;
    if (*fmt != '.')
        return fmt;
    fmt++;
    *prec = 0;
    if (*fmt == '*') {
        int p = va_arg(*ap, int);
        *prec = p < 0 ? -1 : p; /* a negative precision is "none" */
        return fmt + 1;
    }
    while (*fmt >= '0' && *fmt <= '9') {
        if (*prec < __INT_MAX__ / 10)
            *prec = *prec * 10 + (*fmt - '0');
        fmt++;
    }
    return fmt;
}

static const char *parse_length(const char *fmt, enum length *length)
{
    static const struct {
        char c;
        enum length single, doubled;
    } mods[] = { { 'h', LEN_H, LEN_HH },
                 { 'l', LEN_L, LEN_LL },
                 { 'z', LEN_Z, LEN_Z },
                 { 'j', LEN_J, LEN_J },
                 { 't', LEN_T, LEN_T } };

    *length = LEN_INT;
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
        if (*fmt != mods[i].c)
            continue;
        /* Only hh and ll are modifiers when doubled. */
        if (mods[i].single != mods[i].doubled && fmt[1] == mods[i].c) {
            *length = mods[i].doubled;
            return fmt + 2;
        }
        *length = mods[i].single;
        return fmt + 1;
    }
    return fmt;
}

/* fmt points just past the '%'; returns where the spec ends. */
static const char *parse_spec(const char *fmt, va_list *ap, struct spec *sp)
{
    sp->flags = 0;
    sp->width = 0;
    fmt = parse_flags(fmt, &sp->flags);
    fmt = parse_width(fmt, ap, sp);
    fmt = parse_precision(fmt, ap, &sp->prec);
    fmt = parse_length(fmt, &sp->length);
    sp->conv = *fmt;
    return sp->conv ? fmt + 1 : fmt;
}

static intmax_t signed_arg(enum length length, va_list *ap)
{
    switch (length) {
    case LEN_HH: return (signed char)va_arg(*ap, int);
    case LEN_H: return (short)va_arg(*ap, int);
    case LEN_L: return va_arg(*ap, long);
    case LEN_LL: return va_arg(*ap, long long);
    case LEN_Z: return va_arg(*ap, ptrdiff_t); /* signed size_t */
    case LEN_J: return va_arg(*ap, intmax_t);
    case LEN_T: return va_arg(*ap, ptrdiff_t);
    default: return va_arg(*ap, int);
    }
}

static uintmax_t unsigned_arg(enum length length, va_list *ap)
{
    switch (length) {
    case LEN_HH: return (unsigned char)va_arg(*ap, unsigned);
    case LEN_H: return (unsigned short)va_arg(*ap, unsigned);
    case LEN_L: return va_arg(*ap, unsigned long);
    case LEN_LL: return va_arg(*ap, unsigned long long);
    case LEN_Z: return va_arg(*ap, size_t);
    case LEN_J: return va_arg(*ap, uintmax_t);
    case LEN_T: return va_arg(*ap, size_t); /* unsigned ptrdiff_t */
    default: return va_arg(*ap, unsigned);
    }
}

/* Writes one conversion; false if conv is none this formatter knows. */
static bool put_conversion(struct out *o, const struct spec *sp, va_list *ap)
{
    unsigned flags = sp->flags;

    switch (sp->conv) {
    case 'd':
    case 'i': {
        intmax_t v = signed_arg(sp->length, ap);
        /* Negate in unsigned arithmetic: INTMAX_MIN has no positive twin. */
        uintmax_t mag = v < 0 ? -(uintmax_t)v : (uintmax_t)v;
        put_int(o, mag, v < 0, 10, flags, sp->width, sp->prec);
        return true;
    }
    case 'u':
    case 'x':
    case 'X':
    case 'o': {
        uintmax_t v = unsigned_arg(sp->length, ap);
        unsigned base = sp->conv == 'u' ? 10 : sp->conv == 'o' ? 8 : 16;
        if (sp->conv == 'X')
            flags |= FL_UPPER;
        /* '+' and ' ' apply to signed conversions only. */
        put_int(o, v, false, base, flags & ~(unsigned)(FL_PLUS | FL_SPACE), sp->width, sp->prec);
        return true;
    }
    case 'p': {
        void *p = va_arg(*ap, void *);
        if (p == NULL)
            put_padded(o, "(nil)", 5, sp->width, flags);
        else
            put_int(o, (uintptr_t)p, false, 16, flags | FL_ALT, sp->width, sp->prec);
        return true;
    }
    case 's': {
        const char *s = va_arg(*ap, const char *);
        if (s == NULL)
            s = "(null)";
        /* With a precision, s need not be NUL-terminated. */
        size_t n = sp->prec >= 0 ? strnlen(s, (size_t)sp->prec) : strlen(s);
        put_padded(o, s, n, sp->width, flags);
        return true;
    }
    case 'c': {
        char c = (char)va_arg(*ap, int);
        put_padded(o, &c, 1, sp->width, flags);
        return true;
    }
    case '%': out_put(o, "%", 1); return true;
    default: return false;
    }
}

int fmt_vformat(fmt_sink_fn sink, void *ctx, const char *fmt, va_list ap)
{
    struct out o;
    va_list args;

    o.sink = sink; /* not an initializer: that would clear the buffer too */
    o.ctx = ctx;
    o.used = 0;
    o.total = 0;

    va_copy(args, ap);
    while (*fmt) {
        if (*fmt != '%') {
            const char *lit = fmt;
            while (*fmt && *fmt != '%')
                fmt++;
            out_put(&o, lit, (size_t)(fmt - lit));
            continue;
        }
        const char *spec = fmt;
        struct spec sp;
        fmt = parse_spec(fmt + 1, &args, &sp);
        /* Unknown or missing conversion: show the spec as written. */
        if (!put_conversion(&o, &sp, &args))
            out_put(&o, spec, (size_t)(fmt - spec));
    }
    va_end(args);
    out_flush(&o);
    return o.total > __INT_MAX__ ? __INT_MAX__ : (int)o.total;
}

int fmt_format(fmt_sink_fn sink, void *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = fmt_vformat(sink, ctx, fmt, ap);
    va_end(ap);
    return n;
}

struct buf_sink {
    char *buf;
    size_t room; /* bytes that may still be written, the NUL excluded */
};

static void buf_sink_put(void *ctx, const char *s, size_t n)
{
    struct buf_sink *b = ctx;
    size_t take = n < b->room ? n : b->room;
    if (take == 0)
        return; /* buf may be NULL when size is 0 */
    memcpy(b->buf, s, take);
    b->buf += take;
    b->room -= take;
}

int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct buf_sink b = { buf, size ? size - 1 : 0 };
    int n = fmt_vformat(buf_sink_put, &b, fmt, ap);
    if (size)
        *b.buf = '\0';
    return n;
}

int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = fmt_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
