/*
 * libsys layer: the default heap's backend on memory-server segments. Every
 * user program's malloc() reaches memsrv through here; it calls only the
 * memsrv client API (memsrv_client.c). malloc.c keeps the heap's design;
 * this file only answers its get()/put() with MS_ALLOC and MS_FREE.
 *
 * Why a table: malloc.c gives a segment back by its base address and size,
 * but memsrv takes it back by handle. The heap uses every byte of a segment
 * (its header sits at the base), so the handle cannot live in the segment;
 * it lives in a table sorted by base (binary search on put). The first
 * SEG_TABLE_INLINE rows are in .bss, enough for a program whose heap holds a
 * few dozen segments; past that the table moves into a segment of its own,
 * doubling as it grows, and comes back to .bss when the heap is empty, so a
 * program whose every block is freed (and trimmed) holds nothing from memsrv.
 *
 * Lazy: malloc_init_memsrv() only points the default heap at this backend
 * (it takes no memory and makes no call); libsys_start calls it before main,
 * and the first malloc() makes the first MS_ALLOC. Calling it again is
 * harmless. Not thread-safe, like the heap it serves.
 */
#include <common/string.h>
#include <libsys/malloc.h>
#include <libsys/memsrv.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

/* 32 rows cover a heap of 32 MiB in chunk segments, or a few dozen large
 * blocks, for 512 bytes of .bss. */
#define SEG_TABLE_INLINE 32u

struct seg_row {
    uintptr_t base;
    handle_t handle;
};

static struct seg_row inline_rows[SEG_TABLE_INLINE];

static struct {
    struct seg_row *rows; /* sorted by base */
    size_t count, cap;
    handle_t table_seg; /* the segment holding rows, or HANDLE_NONE (inline) */
    bool ready;
} segs;

static size_t row_upper(uintptr_t base)
{
    size_t lo = 0, hi = segs.count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (segs.rows[mid].base <= base)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Makes room for one more row: the table moves to a segment twice as big. */
static int table_grow(void)
{
    struct ms_segment seg;
    uint64_t bytes = (uint64_t)segs.cap * 2 * sizeof(struct seg_row);
    int64_t err = ms_alloc(bytes < ABI_PAGE_SIZE ? ABI_PAGE_SIZE : bytes, 0, 0, 0, &seg);
    if (err < 0)
        return (int)err;
    memcpy(seg.addr, segs.rows, segs.count * sizeof(struct seg_row));
    if (segs.table_seg != HANDLE_NONE)
        ms_free(segs.table_seg);
    segs.rows = seg.addr;
    segs.cap = seg.size / sizeof(struct seg_row);
    segs.table_seg = seg.handle;
    return 0;
}

static void table_shrink_if_empty(void)
{
    if (segs.count != 0 || segs.table_seg == HANDLE_NONE)
        return;
    ms_free(segs.table_seg);
    segs.table_seg = HANDLE_NONE;
    segs.rows = inline_rows;
    segs.cap = SEG_TABLE_INLINE;
}

static int memsrv_get(void *ctx, size_t min_bytes, void **base, size_t *size)
{
    struct ms_segment seg;
    (void)ctx;
    /* Grow first: a segment the table could not record could never go back. */
    if (segs.count == segs.cap) {
        int err = table_grow();
        if (err < 0)
            return err;
    }
    int64_t err = ms_alloc(min_bytes, 0, 0, 0, &seg);
    if (err < 0) {
        table_shrink_if_empty();
        return (int)err;
    }
    uintptr_t at = (uintptr_t)seg.addr;
    size_t i = row_upper(at);
    memmove(&segs.rows[i + 1], &segs.rows[i], (segs.count - i) * sizeof(struct seg_row));
    segs.rows[i] = (struct seg_row){ at, seg.handle };
    segs.count++;
    *base = seg.addr;
    *size = seg.size;
    return 0;
}

static void memsrv_put(void *ctx, void *base, size_t size)
{
    uintptr_t at = (uintptr_t)base;
    size_t i = row_upper(at);
    (void)ctx;
    if (i == 0 || segs.rows[i - 1].base != at) {
        printf("malloc: segment %p (%zu bytes) given back but never handed out\n", base, size);
        return;
    }
    handle_t h = segs.rows[i - 1].handle;
    memmove(&segs.rows[i - 1], &segs.rows[i], (segs.count - i) * sizeof(struct seg_row));
    segs.count--;
    int64_t err = ms_free(h);
    if (err < 0)
        printf("malloc: memsrv refused segment %p back: %s\n", base, sys_strerror(err));
    table_shrink_if_empty();
}

static void memsrv_fatal(void *ctx, const char *what, void *ptr)
{
    (void)ctx;
    printf("malloc: %s (%p); stopping\n", what, ptr);
}

void malloc_init_memsrv(void)
{
    static const struct malloc_backend backend = {
        .get = memsrv_get,
        .put = memsrv_put,
        .fatal = memsrv_fatal,
    };
    if (segs.ready)
        return;
    segs.rows = inline_rows;
    segs.cap = SEG_TABLE_INLINE;
    segs.table_seg = HANDLE_NONE;
    segs.ready = true;
    malloc_init(&backend);
}
