/*
 * libsys layer: malloc, free, realloc, calloc on segments from a backend
 * (in the guest, memsrv segments; in host tests, a tracking fake). Called by
 * every user program; calls only the backend. Interface: <libsys/malloc.h>.
 *
 * BIG THEORY STATEMENT
 *
 * 1. Three kinds of memory, one kind per segment.
 *    Every byte the heap hands out lies in a segment obtained with
 *    backend.get() (4096-aligned, size a multiple of 4096). A segment begins
 *    with a 64-byte header (struct heap_seg: magic, kind, size, links) and is
 *    of exactly one kind:
 *      SMALL  requests 0..256 bytes: 12 size classes (16..128 by 16, then
 *             160..256 by 32) carved from 4 KiB pages with a bitmap header;
 *      CHUNK  requests 257 bytes .. 256 KiB - 1: segregated fits with
 *             boundary tags (dlmalloc-style chunks) in 1 MiB segments;
 *      LARGE  requests >= 256 KiB: a segment of their own.
 *    Every segment is entered in the registry, a sorted array of segment
 *    header addresses kept in a segment of its own (it grows by doubling).
 *    free(p) first finds p's segment by binary search: O(log #segments), and
 *    the only way a pointer not from this heap can be told apart without
 *    reading memory that may not be mapped.
 *
 * 2. Chunk layout (CHUNK segments). A chunk at 16-aligned address c:
 *        c+0   prev_size  size of the previous chunk; meaningful ONLY while
 *                         that chunk is free (it is its footer), otherwise
 *                         it is the last 8 bytes of the previous chunk's
 *                         user data
 *        c+8   head       size | PINUSE (bit 1) | CINUSE (bit 0); size is a
 *                         multiple of 16 so bits 0..3 are free for flags
 *        c+16  user data (in use), or next/prev free-list links (free)
 *    A chunk of size S spans [c, c+S) and offers S-8 usable bytes (its user
 *    area runs into the next chunk's prev_size word). Minimum chunk: 32
 *    (head, two links, footer). Segment: [header 64][chunk 0 at +64 ...]
 *    [fence at end-16]; the fence is a size-0 chunk marked in use, so
 *    coalescing stops there, and its prev_size is the last chunk's footer.
 *    Chunk 0 has PINUSE set (nothing before it can be free).
 *    Invariants: chunks tile [base+64, end-16) exactly; PINUSE of each chunk
 *    equals CINUSE of its predecessor; no two free chunks are adjacent;
 *    every free chunk is on bin bin_of(size) and has a correct footer.
 *    Free: O(1) coalescing with both neighbours through prev_size and the
 *    next chunk's head. If the result spans the whole segment, the segment
 *    is empty and goes back to the backend (see 5).
 *
 * 3. Segregated free lists: 64 bins, four per power of two (bin =
 *    4*(log2(size)-5) + next two bits of size), bin 63 catches everything
 *    bigger. A bitmap of non-empty bins gives the next usable bin with one
 *    count-trailing-zeros. Allocation scans at most 8 chunks of its own bin
 *    (first fit), then takes the head of the next non-empty bin above, every
 *    chunk of which is big enough: constant time. Remainders >= 32 bytes are
 *    split off and binned.
 *
 * 4. Bitmap pages (SMALL segments of 64 KiB = 16 pages). Page i has a
 *    64-byte header at its start (page 0: at +64, after the segment header):
 *    magic, class, first-block offset, block count, free count, links, and a
 *    256-bit map (1 = free). 256 bits cover the worst case, 16-byte blocks:
 *    (4096-64)/16 = 252. A block costs no header at all; its page is
 *    p & ~4095. Pages with a free block sit on the per-class partial list;
 *    a page whose last block is freed goes back to its segment's free-page
 *    list; a segment whose pages are all free is empty.
 *
 * 5. Returning memory. An empty segment is returned at once, except that one
 *    empty CHUNK and one empty SMALL segment are kept as spares, so a
 *    program that mallocs and frees one block in a loop does not make a
 *    memsrv round trip each time. heap_trim() returns the spares. When the
 *    last segment goes, the registry's segment goes too: an idle, trimmed
 *    heap holds nothing from the backend.
 *
 * 6. What free()/realloc() detect, reported through the error handler
 *    (default: backend.fatal, else a trap); if the handler returns, the call
 *    does nothing (realloc returns NULL) and the heap is unchanged:
 *      FOREIGN      p in no segment of this heap; p not 16-aligned; in a
 *                   SMALL page, p not on a block boundary; in a LARGE
 *                   segment, p not the block's start; p in a segment header.
 *      DOUBLE_FREE  chunk with CINUSE clear; bitmap bit already free; p in a
 *                   bitmap page that has been released.
 *      CORRUPT      bad segment or page magic; chunk size not a multiple of
 *                   16, < 32 or running past the fence; next chunk's PINUSE
 *                   clear; previous-free chunk whose footer disagrees with
 *                   its head; next free chunk whose size/footer disagree.
 *    Not detected: a pointer into the middle of a live chunk whose
 *    preceding words happen to form a consistent header; overruns that keep
 *    headers consistent; use after free. heap_check() finds the rest.
 *
 * 7. Constants. 16-byte alignment is max_align_t on x86-64. Small classes
 *    stop at 256: above it a 16-byte-granular chunk wastes <= 15 bytes plus
 *    8 of header (< 9%), less than class rounding would. 256 KiB large
 *    threshold: rounding such a request to pages wastes < 1.6%, and a 1 MiB
 *    chunk segment still holds three of the biggest chunks. 1 MiB chunk and
 *    64 KiB small segments: one backend call (a memsrv round trip) per that
 *    much memory, while an idle spare costs at most that much.
 *
 * 8. Failure modes: backend.get() failing gives NULL with the heap
 *    unchanged (a segment obtained but not registrable is put back). Requests
 *    above HEAP_MAX_REQUEST (64 TiB, beyond any user address space) and
 *    calloc overflow give NULL without a backend call.
 *
 * 9. Threads. A heap instance is not thread-safe; the default instance
 *    (malloc, free, ...) is: one mutex (libsys/sync.h) serialises its calls,
 *    backend calls included. Its error handler runs with the mutex held and
 *    must not call back into the default heap.
 */
#include <libsys/malloc.h>
#include <libsys/sync.h>
#include <common/check.h>
#include <common/string.h>
#include <abi/errno.h>
#include "bins.h"

#define PAGE       4096u
#define SEG_HDR    64u
#define SEG_MAGIC  0x5e65a11cu
#define PAGE_MAGIC 0xb17a9e01u
#define PAGE_FREE  0xb17afee0u
#define CINUSE     ((size_t)1)
#define PINUSE     ((size_t)2)
#define FLAGS      ((size_t)15)
#define MIN_CHUNK  32u
#define CHUNK_HDR  16u /* c to user pointer */
#define BIN_SCAN   8
#define SMALL_HDR  64u

enum seg_kind { SEG_SMALL = 1, SEG_CHUNK = 2, SEG_LARGE = 3 };

struct heap_seg {
    uint32_t magic;
    uint32_t kind;
    size_t size;
    struct heap_seg *next, *prev; /* SMALL: list of segments with free pages */
    union {
        struct {
            struct heap_page *free_pages;
            uint32_t nfree, npages;
        } small;
        struct {
            size_t offset; /* user pointer - base */
        } large;
    } u;
    uint64_t pad[2];
};
_Static_assert(sizeof(struct heap_seg) == SEG_HDR, "segment header is 64 bytes");

struct heap_page {
    uint32_t magic;
    uint16_t cls, first; /* class; offset of block 0 from the page start */
    uint16_t nblocks, nfree;
    uint32_t pad;
    struct heap_page *next, *prev;
    uint64_t map[4]; /* 1 = free */
};
_Static_assert(sizeof(struct heap_page) == SMALL_HDR, "page header is 64 bytes");

struct heap_chunk {
    size_t prev_size;
    size_t head;
    struct heap_chunk *next, *prev; /* free chunks only */
};

static const uint16_t class_size[HEAP_SMALL_CLASSES] = {
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256,
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static inline uintptr_t addr(const void *p) { return (uintptr_t)p; }
static inline size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

static inline size_t csize(const struct heap_chunk *c) { return c->head & ~FLAGS; }
static inline struct heap_chunk *chunk_at(uintptr_t a) { return (struct heap_chunk *)a; }
static inline struct heap_chunk *chunk_next(struct heap_chunk *c) { return chunk_at(addr(c) + csize(c)); }
static inline void *chunk_mem(struct heap_chunk *c) { return (char *)c + CHUNK_HDR; }
static inline struct heap_chunk *mem_chunk(void *p) { return chunk_at(addr(p) - CHUNK_HDR); }
static inline struct heap_chunk *seg_first(struct heap_seg *s) { return chunk_at(addr(s) + SEG_HDR); }
static inline struct heap_chunk *seg_fence(struct heap_seg *s) { return chunk_at(addr(s) + s->size - 16); }

/* chunk size serving an n-byte request */
static inline size_t chunk_size_for(size_t n)
{
    size_t cs = align_up(n + 8, 16);
    return cs < MIN_CHUNK ? MIN_CHUNK : cs;
}

static unsigned bin_of(size_t size)
{
    unsigned fl = 63u - (unsigned)__builtin_clzll(size);
    unsigned sl = (unsigned)(size >> (fl - 2)) & 3u;
    unsigned b = (fl - 5u) * 4u + sl;
    return b < HEAP_BINS ? b : HEAP_BINS - 1;
}

static unsigned class_of(size_t n)
{
    if (n <= 128)
        return n == 0 ? 0 : (unsigned)((n + 15) / 16 - 1);
    return 7u + (unsigned)((n - 128 + 31) / 32);
}

/* ------------------------------------------------------------------ */
/* errors                                                               */

static const char *const error_text[] = {
    [MALLOC_ERR_FOREIGN] = "free of a pointer not from this heap",
    [MALLOC_ERR_DOUBLE_FREE] = "double free",
    [MALLOC_ERR_CORRUPT] = "heap header corrupted",
};

static void report(struct heap *h, enum malloc_error err, void *p)
{
    if (h->on_error) {
        h->on_error(h->on_error_ctx, err, p);
        return;
    }
    if (h->backend.fatal)
        h->backend.fatal(h->backend.ctx, error_text[err], p);
    __builtin_trap();
}

/* ------------------------------------------------------------------ */
/* registry of segments                                                 */

/* index of the first entry with base > p */
static size_t reg_upper(const struct heap *h, uintptr_t p)
{
    size_t lo = 0, hi = h->reg_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr(h->reg[mid]) <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct heap_seg *reg_find(const struct heap *h, const void *p)
{
    size_t i = reg_upper(h, addr(p));
    if (i == 0)
        return NULL;
    struct heap_seg *s = h->reg[i - 1];
    return addr(p) - addr(s) < s->size ? s : NULL;
}

static int reg_insert(struct heap *h, struct heap_seg *s)
{
    if (h->reg_count == h->reg_cap) {
        size_t nbytes = h->reg_bytes ? h->reg_bytes * 2 : PAGE;
        void *base;
        size_t got;
        if (h->backend.get(h->backend.ctx, nbytes, &base, &got) < 0)
            return -ENOMEM;
        if (h->reg)
            memcpy(base, h->reg, h->reg_count * sizeof(h->reg[0]));
        if (h->reg)
            h->backend.put(h->backend.ctx, h->reg, h->reg_bytes);
        h->reg = base;
        h->reg_bytes = got;
        h->reg_cap = got / sizeof(h->reg[0]);
        h->st.registry_bytes = got;
    }
    size_t i = reg_upper(h, addr(s));
    memmove(&h->reg[i + 1], &h->reg[i], (h->reg_count - i) * sizeof(h->reg[0]));
    h->reg[i] = s;
    h->reg_count++;
    return 0;
}

static void reg_remove(struct heap *h, struct heap_seg *s)
{
    size_t i = reg_upper(h, addr(s)) - 1; /* s is registered */
    memmove(&h->reg[i], &h->reg[i + 1], (h->reg_count - i - 1) * sizeof(h->reg[0]));
    h->reg_count--;
    if (h->reg_count == 0) {
        h->backend.put(h->backend.ctx, h->reg, h->reg_bytes);
        h->reg = NULL;
        h->reg_bytes = h->reg_cap = 0;
        h->st.registry_bytes = 0;
    }
}

static struct heap_seg *seg_get(struct heap *h, size_t min, enum seg_kind kind)
{
    void *base;
    size_t got;
    if (!h->ready || min > HEAP_MAX_REQUEST + 2 * PAGE)
        return NULL;
    if (h->backend.get(h->backend.ctx, min, &base, &got) < 0)
        return NULL;
    if ((addr(base) & (PAGE - 1)) || got < min || (got & (PAGE - 1))) {
        h->backend.put(h->backend.ctx, base, got); /* backend broke its contract */
        return NULL;
    }
    struct heap_seg *s = base;
    if (reg_insert(h, s) < 0) {
        h->backend.put(h->backend.ctx, base, got);
        return NULL;
    }
    memset(s, 0, sizeof(*s));
    s->magic = SEG_MAGIC;
    s->kind = kind;
    s->size = got;
    h->st.segments++;
    h->st.segment_bytes += got;
    return s;
}

static void seg_put(struct heap *h, struct heap_seg *s)
{
    size_t size = s->size;
    s->magic = 0;
    h->st.segments--;
    h->st.segment_bytes -= size;
    reg_remove(h, s);
    h->backend.put(h->backend.ctx, s, size);
}

/* ------------------------------------------------------------------ */
/* segregated fits                                                      */

static void bin_insert(struct heap *h, struct heap_chunk *c)
{
    unsigned b = bin_of(csize(c));
    BINS_PUSH(h->bins, h->bin_map, b, c);
    h->st.chunk_free_bytes += csize(c);
}

static void bin_unlink(struct heap *h, struct heap_chunk *c)
{
    unsigned b = bin_of(csize(c));
    BINS_UNLINK(h->bins, h->bin_map, b, c);
    h->st.chunk_free_bytes -= csize(c);
}

/* c (size sz) follows an in-use chunk and becomes free, merged with the
 * chunk after it if that one is free; returns the chunk that now follows
 * c, told that its predecessor is free. c is not binned yet. */
static struct heap_chunk *chunk_free_forward(struct heap *h, struct heap_chunk *c, size_t sz)
{
    struct heap_chunk *n = chunk_at(addr(c) + sz);
    if (!(n->head & CINUSE)) {
        bin_unlink(h, n);
        sz += csize(n);
        n = chunk_at(addr(c) + sz);
    }
    c->head = sz | PINUSE;
    n->prev_size = sz;
    n->head &= ~PINUSE;
    return n;
}

/* t (size tsize) follows an in-use chunk and becomes free, merging forward. */
static void chunk_free_tail(struct heap *h, struct heap_chunk *t, size_t tsize)
{
    chunk_free_forward(h, t, tsize);
    bin_insert(h, t);
}

/* Makes in-use chunk c exactly cs bytes if the rest is worth a chunk. */
static void chunk_trim(struct heap *h, struct heap_chunk *c, size_t cs)
{
    size_t sz = csize(c);
    if (sz - cs < MIN_CHUNK)
        return;
    c->head = cs | (c->head & FLAGS);
    chunk_free_tail(h, chunk_at(addr(c) + cs), sz - cs);
}

static struct heap_chunk *chunk_new_segment(struct heap *h, size_t cs)
{
    size_t need = align_up(cs + SEG_HDR + 16, PAGE);
    struct heap_seg *s = seg_get(h, need > HEAP_CHUNK_SEG ? need : HEAP_CHUNK_SEG, SEG_CHUNK);
    if (!s)
        return NULL;
    struct heap_chunk *c = seg_first(s), *f = seg_fence(s);
    size_t sz = addr(f) - addr(c);
    c->head = sz | PINUSE;
    f->prev_size = sz;
    f->head = 0 | CINUSE;
    bin_insert(h, c);
    return c;
}

/* An in-use chunk of at least cs bytes, or NULL. */
static struct heap_chunk *chunk_alloc(struct heap *h, size_t cs)
{
    unsigned b = bin_of(cs);
    struct heap_chunk *c = h->bins[b];
    for (int k = 0; c && k < BIN_SCAN; c = c->next, k++)
        if (csize(c) >= cs)
            break;
    if (c && csize(c) < cs)
        c = NULL;
    if (!c) {
        uint64_t above = b + 1 < HEAP_BINS ? h->bin_map & ~((2ull << b) - 1) : 0;
        if (above)
            c = h->bins[__builtin_ctzll(above)];
        else if (!(c = chunk_new_segment(h, cs)))
            return NULL;
    }
    bin_unlink(h, c);
    if (h->spare_chunk_seg && c == seg_first(h->spare_chunk_seg))
        h->spare_chunk_seg = NULL;
    size_t sz = csize(c);
    if (sz - cs >= MIN_CHUNK) {
        c->head = cs | CINUSE | (c->head & PINUSE);
        struct heap_chunk *r = chunk_at(addr(c) + cs);
        r->head = (sz - cs) | PINUSE;
        chunk_next(r)->prev_size = sz - cs;
        bin_insert(h, r);
    } else {
        c->head |= CINUSE;
        chunk_next(c)->head |= PINUSE;
    }
    return c;
}

/* Checks that p may be the user pointer of a live chunk of s. */
static enum malloc_error chunk_validate(struct heap_seg *s, void *p)
{
    struct heap_chunk *c = mem_chunk(p), *first = seg_first(s), *fence = seg_fence(s);
    if ((addr(p) & 15) || addr(c) < addr(first) || addr(c) >= addr(fence))
        return MALLOC_ERR_FOREIGN;
    size_t head = c->head, sz = head & ~FLAGS;
    if (!(head & CINUSE))
        return MALLOC_ERR_DOUBLE_FREE;
    if (sz < MIN_CHUNK || sz > addr(fence) - addr(c))
        return MALLOC_ERR_CORRUPT;
    struct heap_chunk *n = chunk_at(addr(c) + sz);
    if (!(n->head & PINUSE))
        return MALLOC_ERR_CORRUPT;
    if (!(n->head & CINUSE)) {
        size_t nsz = csize(n);
        if (nsz < MIN_CHUNK || nsz > addr(fence) - addr(n) || chunk_at(addr(n) + nsz)->prev_size != nsz)
            return MALLOC_ERR_CORRUPT;
    }
    if (!(head & PINUSE)) {
        size_t ps = c->prev_size;
        if (ps < MIN_CHUNK || (ps & 15) || ps > addr(c) - addr(first))
            return MALLOC_ERR_CORRUPT;
        struct heap_chunk *pc = chunk_at(addr(c) - ps);
        if (csize(pc) != ps || (pc->head & CINUSE))
            return MALLOC_ERR_CORRUPT;
    }
    return 0;
}

static void chunk_free(struct heap *h, struct heap_seg *s, struct heap_chunk *c)
{
    size_t sz = csize(c);
    if (!(c->head & PINUSE)) {
        struct heap_chunk *pc = chunk_at(addr(c) - c->prev_size);
        bin_unlink(h, pc);
        sz += csize(pc);
        c = pc;
    }
    struct heap_chunk *n = chunk_free_forward(h, c, sz);
    if (c == seg_first(s) && n == seg_fence(s)) {
        if (!h->spare_chunk_seg) {
            h->spare_chunk_seg = s;
            bin_insert(h, c);
        } else {
            seg_put(h, s);
        }
        return;
    }
    bin_insert(h, c);
}

/* ------------------------------------------------------------------ */
/* bitmap pages                                                         */

static inline struct heap_page *page_of(struct heap_seg *s, uintptr_t p)
{
    uintptr_t pg = p & ~(uintptr_t)(PAGE - 1);
    return (struct heap_page *)(pg == addr(s) ? pg + SEG_HDR : pg);
}

static inline uintptr_t page_start(struct heap_page *pg) { return addr(pg) & ~(uintptr_t)(PAGE - 1); }

static void seg_free_list_add(struct heap *h, struct heap_seg *s)
{
    s->prev = NULL;
    s->next = h->small_segs_free;
    if (s->next)
        s->next->prev = s;
    h->small_segs_free = s;
}

static void seg_free_list_del(struct heap *h, struct heap_seg *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        h->small_segs_free = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

static struct heap_seg *small_new_segment(struct heap *h)
{
    struct heap_seg *s = seg_get(h, HEAP_SMALL_SEG, SEG_SMALL);
    if (!s)
        return NULL;
    s->u.small.npages = (uint32_t)(s->size / PAGE);
    for (uint32_t i = s->u.small.npages; i-- > 0;) {
        struct heap_page *pg = page_of(s, addr(s) + (uintptr_t)i * PAGE);
        pg->magic = PAGE_FREE;
        pg->next = s->u.small.free_pages;
        s->u.small.free_pages = pg;
    }
    s->u.small.nfree = s->u.small.npages;
    seg_free_list_add(h, s);
    return s;
}

static void partial_add(struct heap *h, struct heap_page *pg)
{
    pg->prev = NULL;
    pg->next = h->partial[pg->cls];
    if (pg->next)
        pg->next->prev = pg;
    h->partial[pg->cls] = pg;
}

static void partial_del(struct heap *h, struct heap_page *pg)
{
    if (pg->prev)
        pg->prev->next = pg->next;
    else
        h->partial[pg->cls] = pg->next;
    if (pg->next)
        pg->next->prev = pg->prev;
}

static struct heap_page *small_new_page(struct heap *h, unsigned cls)
{
    struct heap_seg *s = h->small_segs_free;
    if (!s && !(s = small_new_segment(h)))
        return NULL;
    if (s == h->spare_small_seg)
        h->spare_small_seg = NULL;
    struct heap_page *pg = s->u.small.free_pages;
    s->u.small.free_pages = pg->next;
    if (--s->u.small.nfree == 0)
        seg_free_list_del(h, s);
    unsigned size = class_size[cls];
    unsigned first = (unsigned)(addr(pg) - page_start(pg)) + SMALL_HDR;
    unsigned n = (PAGE - first) / size;
    pg->magic = PAGE_MAGIC;
    pg->cls = (uint16_t)cls;
    pg->first = (uint16_t)first;
    pg->nblocks = pg->nfree = (uint16_t)n;
    for (unsigned w = 0; w < 4; w++) {
        unsigned lo = w * 64;
        pg->map[w] = n >= lo + 64 ? ~0ull : n > lo ? (1ull << (n - lo)) - 1 : 0;
    }
    partial_add(h, pg);
    h->st.small_pages++;
    return pg;
}

static void *small_alloc(struct heap *h, size_t n)
{
    unsigned cls = class_of(n);
    struct heap_page *pg = h->partial[cls];
    if (!pg && !(pg = small_new_page(h, cls)))
        return NULL;
    unsigned w = 0;
    while (!pg->map[w])
        w++;
    unsigned bit = (unsigned)__builtin_ctzll(pg->map[w]);
    pg->map[w] &= ~(1ull << bit);
    if (--pg->nfree == 0)
        partial_del(h, pg);
    h->st.live_blocks++;
    h->st.live_bytes += class_size[cls];
    return (void *)(page_start(pg) + pg->first + (uintptr_t)(w * 64 + bit) * class_size[cls]);
}

/* Block index of p in its page, or a negative error. */
static long small_validate(struct heap_seg *s, void *p, struct heap_page **out)
{
    struct heap_page *pg = page_of(s, addr(p));
    if (addr(p) < addr(pg) + SMALL_HDR)
        return -MALLOC_ERR_FOREIGN; /* in a header */
    if (pg->magic == PAGE_FREE)
        return -MALLOC_ERR_DOUBLE_FREE;
    if (pg->magic != PAGE_MAGIC || pg->cls >= HEAP_SMALL_CLASSES || pg->first != addr(pg) - page_start(pg) + SMALL_HDR)
        return -MALLOC_ERR_CORRUPT;
    size_t size = class_size[pg->cls], off = addr(p) - page_start(pg) - pg->first;
    if (off % size || off / size >= pg->nblocks)
        return -MALLOC_ERR_FOREIGN;
    size_t i = off / size;
    if (pg->map[i / 64] & (1ull << (i % 64)))
        return -MALLOC_ERR_DOUBLE_FREE;
    *out = pg;
    return (long)i;
}

static void small_free(struct heap *h, struct heap_seg *s, struct heap_page *pg, size_t i)
{
    pg->map[i / 64] |= 1ull << (i % 64);
    h->st.live_blocks--;
    h->st.live_bytes -= class_size[pg->cls];
    if (pg->nfree++ == 0)
        partial_add(h, pg);
    if (pg->nfree < pg->nblocks)
        return;
    /* page empty: back to its segment */
    partial_del(h, pg);
    h->st.small_pages--;
    pg->magic = PAGE_FREE;
    pg->next = s->u.small.free_pages;
    s->u.small.free_pages = pg;
    if (s->u.small.nfree++ == 0)
        seg_free_list_add(h, s);
    if (s->u.small.nfree < s->u.small.npages)
        return;
    if (!h->spare_small_seg) {
        h->spare_small_seg = s;
        return;
    }
    seg_free_list_del(h, s);
    seg_put(h, s);
}

/* ------------------------------------------------------------------ */
/* large blocks                                                         */

static void *large_alloc(struct heap *h, size_t n, size_t align)
{
    size_t extra = align <= SEG_HDR ? SEG_HDR : align <= PAGE ? align : align + SEG_HDR;
    struct heap_seg *s = seg_get(h, align_up(n + extra, PAGE), SEG_LARGE);
    if (!s)
        return NULL;
    uintptr_t p = align_up(addr(s) + SEG_HDR, align < HEAP_ALIGN ? HEAP_ALIGN : align);
    s->u.large.offset = p - addr(s);
    h->st.live_blocks++;
    h->st.live_bytes += s->size - s->u.large.offset;
    return (void *)p;
}

/* ------------------------------------------------------------------ */
/* entry points                                                         */

void heap_init(struct heap *h, const struct malloc_backend *backend)
{
    memset(h, 0, sizeof(*h));
    h->backend = *backend;
    h->ready = backend->get && backend->put;
}

void heap_set_error_handler(struct heap *h, malloc_error_fn fn, void *ctx)
{
    h->on_error = fn;
    h->on_error_ctx = ctx;
}

static void *chunk_alloc_mem(struct heap *h, size_t n)
{
    struct heap_chunk *c = chunk_alloc(h, chunk_size_for(n));
    if (!c)
        return NULL;
    h->st.live_blocks++;
    h->st.live_bytes += csize(c) - 8;
    return chunk_mem(c);
}

void *heap_alloc(struct heap *h, size_t n)
{
    if (n <= HEAP_SMALL_MAX)
        return small_alloc(h, n);
    if (n < HEAP_LARGE_MIN)
        return chunk_alloc_mem(h, n);
    if (n > HEAP_MAX_REQUEST)
        return NULL;
    return large_alloc(h, n, HEAP_ALIGN);
}

void *heap_alloc_aligned(struct heap *h, size_t align, size_t n)
{
    if (align == 0 || (align & (align - 1)) || align > HEAP_MAX_REQUEST || n > HEAP_MAX_REQUEST)
        return NULL;
    if (align <= HEAP_ALIGN)
        return heap_alloc(h, n);
    if (n + 2 * align + MIN_CHUNK >= HEAP_LARGE_MIN)
        return large_alloc(h, n, align);
    /* over-allocate a chunk, free the misaligned lead and the excess tail */
    struct heap_chunk *c = chunk_alloc(h, chunk_size_for(n + 2 * align + MIN_CHUNK));
    if (!c)
        return NULL;
    uintptr_t user = addr(chunk_mem(c)), a = align_up(user, align);
    if (a != user && a - user < MIN_CHUNK)
        a += align; /* the lead must hold a free chunk; align >= 32 */
    if (a != user) {
        size_t lead = a - user, sz = csize(c);
        struct heap_chunk *nc = mem_chunk((void *)a);
        c->head = lead | (c->head & PINUSE); /* free; its predecessor is in use */
        nc->prev_size = lead;
        nc->head = (sz - lead) | CINUSE;
        bin_insert(h, c);
        c = nc;
    }
    chunk_trim(h, c, chunk_size_for(n));
    h->st.live_blocks++;
    h->st.live_bytes += csize(c) - 8;
    return chunk_mem(c);
}

void *heap_calloc(struct heap *h, size_t count, size_t n)
{
    size_t total;
    if (__builtin_mul_overflow(count, n, &total))
        return NULL;
    void *p = heap_alloc(h, total);
    if (p)
        memset(p, 0, total);
    return p;
}

/*
 * Finds p's segment and checks p. Returns the segment, or NULL after
 * reporting. For SMALL, *pg and *idx describe the block.
 */
static struct heap_seg *locate(struct heap *h, void *p, struct heap_page **pg, size_t *idx)
{
    struct heap_seg *s = reg_find(h, p);
    enum malloc_error err = 0;
    if (!s) {
        err = MALLOC_ERR_FOREIGN;
    } else if (s->magic != SEG_MAGIC) {
        err = MALLOC_ERR_CORRUPT;
    } else if (s->kind == SEG_SMALL) {
        long i = small_validate(s, p, pg);
        if (i < 0)
            err = (enum malloc_error) - i;
        else
            *idx = (size_t)i;
    } else if (s->kind == SEG_CHUNK) {
        err = chunk_validate(s, p);
    } else if (s->kind == SEG_LARGE) {
        if (addr(p) != addr(s) + s->u.large.offset)
            err = MALLOC_ERR_FOREIGN;
    } else {
        err = MALLOC_ERR_CORRUPT;
    }
    if (err) {
        report(h, err, p);
        return NULL;
    }
    return s;
}

static void free_located(struct heap *h, struct heap_seg *s, void *p, struct heap_page *pg, size_t idx)
{
    if (s->kind == SEG_SMALL) {
        small_free(h, s, pg, idx);
    } else if (s->kind == SEG_CHUNK) {
        struct heap_chunk *c = mem_chunk(p);
        h->st.live_blocks--;
        h->st.live_bytes -= csize(c) - 8;
        chunk_free(h, s, c);
    } else {
        h->st.live_blocks--;
        h->st.live_bytes -= s->size - s->u.large.offset;
        seg_put(h, s);
    }
}

void heap_free(struct heap *h, void *p)
{
    struct heap_page *pg = NULL;
    size_t idx = 0;
    if (!p)
        return;
    struct heap_seg *s = locate(h, p, &pg, &idx);
    if (s)
        free_located(h, s, p, pg, idx);
}

static size_t usable(struct heap_seg *s, void *p, struct heap_page *pg)
{
    if (s->kind == SEG_SMALL)
        return class_size[pg->cls];
    if (s->kind == SEG_CHUNK)
        return csize(mem_chunk(p)) - 8;
    return s->size - s->u.large.offset;
}

size_t heap_usable_size(struct heap *h, void *p)
{
    struct heap_page *pg = NULL;
    size_t idx = 0;
    if (!p)
        return 0;
    struct heap_seg *s = locate(h, p, &pg, &idx);
    return s ? usable(s, p, pg) : 0;
}

/* Resizes the chunk under p in place if it can; true on success. */
static bool chunk_resize(struct heap *h, void *p, size_t n)
{
    struct heap_chunk *c = mem_chunk(p);
    size_t old = csize(c), cs = chunk_size_for(n);
    if (cs > old) {
        struct heap_chunk *nx = chunk_at(addr(c) + old);
        if ((nx->head & CINUSE) || old + csize(nx) < cs)
            return false;
        bin_unlink(h, nx);
        c->head = (old + csize(nx)) | (c->head & FLAGS);
        chunk_next(c)->head |= PINUSE;
    }
    chunk_trim(h, c, cs);
    h->st.live_bytes = h->st.live_bytes - old + csize(c);
    return true;
}

void *heap_realloc(struct heap *h, void *p, size_t n)
{
    struct heap_page *pg = NULL;
    size_t idx = 0;
    if (!p)
        return heap_alloc(h, n);
    struct heap_seg *s = locate(h, p, &pg, &idx);
    if (!s)
        return NULL;
    if (n == 0) {
        free_located(h, s, p, pg, idx);
        return NULL;
    }
    if (n > HEAP_MAX_REQUEST)
        return NULL;
    size_t have = usable(s, p, pg);
    if (s->kind == SEG_SMALL && n <= HEAP_SMALL_MAX && class_of(n) == pg->cls)
        return p;
    if (s->kind == SEG_CHUNK && n > HEAP_SMALL_MAX && n < HEAP_LARGE_MIN && chunk_resize(h, p, n))
        return p;
    if (s->kind == SEG_LARGE && n <= have && n >= HEAP_LARGE_MIN / 2)
        return p;
    void *q = heap_alloc(h, n);
    if (!q)
        return NULL; /* p untouched */
    memcpy(q, p, n < have ? n : have);
    free_located(h, s, p, pg, idx);
    return q;
}

void heap_trim(struct heap *h)
{
    struct heap_seg *s = h->spare_chunk_seg;
    if (s) {
        h->spare_chunk_seg = NULL;
        bin_unlink(h, seg_first(s));
        seg_put(h, s);
    }
    s = h->spare_small_seg;
    if (s) {
        h->spare_small_seg = NULL;
        seg_free_list_del(h, s);
        seg_put(h, s);
    }
}

void heap_stats(const struct heap *h, struct heap_stats *out) { *out = h->st; }

/* ------------------------------------------------------------------ */
/* checker                                                              */

#define CHECK(cond, at) CHECK_OR_REFUSE(cond, where, (const void *)(at))

static int check_chunks(struct heap_seg *s, size_t *nfree, size_t *free_bytes, size_t *live, size_t *live_bytes,
                        const void **where)
{
    struct heap_chunk *c = seg_first(s), *fence = seg_fence(s);
    bool prev_inuse = true;
    CHECK(fence->head == (CINUSE | (fence->head & PINUSE)), fence);
    while (c != fence) {
        size_t sz = csize(c);
        CHECK(sz >= MIN_CHUNK && !(sz & 15) && sz <= addr(fence) - addr(c), c);
        CHECK(!!(c->head & PINUSE) == prev_inuse, c);
        struct heap_chunk *n = chunk_next(c);
        if (c->head & CINUSE) {
            (*live)++;
            *live_bytes += sz - 8;
        } else {
            CHECK(prev_inuse, c);
            CHECK(n->prev_size == sz, n);
            (*nfree)++;
            *free_bytes += sz;
        }
        prev_inuse = c->head & CINUSE;
        c = n;
    }
    CHECK(!!(fence->head & PINUSE) == prev_inuse, fence);
    return 0;
}

static int check_small(struct heap *h, struct heap_seg *s, size_t *partial, size_t *pages, size_t *live,
                       size_t *live_bytes, const void **where)
{
    uint32_t nfree = 0;
    for (uint32_t i = 0; i < s->u.small.npages; i++) {
        struct heap_page *pg = page_of(s, addr(s) + (uintptr_t)i * PAGE);
        if (pg->magic == PAGE_FREE) {
            nfree++;
            continue;
        }
        CHECK(pg->magic == PAGE_MAGIC && pg->cls < HEAP_SMALL_CLASSES, pg);
        unsigned size = class_size[pg->cls];
        CHECK(pg->first == addr(pg) - page_start(pg) + SMALL_HDR, pg);
        CHECK(pg->nblocks == (PAGE - pg->first) / size, pg);
        unsigned bits = 0;
        for (unsigned w = 0; w < 4; w++) {
            bits += (unsigned)__builtin_popcountll(pg->map[w]);
            for (unsigned b = 0; b < 64; b++)
                CHECK(!((pg->map[w] >> b) & 1) || w * 64 + b < pg->nblocks, pg);
        }
        CHECK(bits == pg->nfree && pg->nfree < pg->nblocks, pg);
        if (pg->nfree)
            (*partial)++;
        (*pages)++;
        *live += pg->nblocks - pg->nfree;
        *live_bytes += (size_t)(pg->nblocks - pg->nfree) * size;
    }
    CHECK(nfree == s->u.small.nfree, s);
    size_t listed = 0;
    for (struct heap_page *pg = s->u.small.free_pages; pg && listed <= nfree; pg = pg->next)
        listed++;
    CHECK(listed == nfree, s);
    bool on_list = false;
    for (struct heap_seg *t = h->small_segs_free; t; t = t->next)
        on_list |= t == s;
    CHECK(on_list == (nfree > 0), s);
    CHECK(nfree < s->u.small.npages || h->spare_small_seg == s, s);
    return 0;
}

int heap_check(struct heap *h, const void **where)
{
    size_t nfree = 0, free_bytes = 0, partial = 0, pages = 0, live = 0, live_bytes = 0, bytes = 0;
    int err;
    for (size_t i = 0; i < h->reg_count; i++) {
        struct heap_seg *s = h->reg[i];
        CHECK(s->magic == SEG_MAGIC && !(addr(s) & (PAGE - 1)) && s->size && !(s->size & (PAGE - 1)), s);
        CHECK(i == 0 || addr(h->reg[i - 1]) + h->reg[i - 1]->size <= addr(s), s);
        bytes += s->size;
        if (s->kind == SEG_CHUNK) {
            if ((err = check_chunks(s, &nfree, &free_bytes, &live, &live_bytes, where)))
                return err;
            struct heap_chunk *c = seg_first(s);
            bool empty = !(c->head & CINUSE) && chunk_next(c) == seg_fence(s);
            CHECK(!empty || h->spare_chunk_seg == s, s);
        } else if (s->kind == SEG_SMALL) {
            if ((err = check_small(h, s, &partial, &pages, &live, &live_bytes, where)))
                return err;
        } else {
            CHECK(s->kind == SEG_LARGE && s->u.large.offset >= SEG_HDR && s->u.large.offset < s->size, s);
            live++;
            live_bytes += s->size - s->u.large.offset;
        }
    }
    /* every free chunk is in the right bin, and the bins hold nothing else */
    size_t binned = 0, binned_bytes = 0;
    for (unsigned b = 0; b < HEAP_BINS; b++) {
        CHECK(!!h->bins[b] == !!(h->bin_map & (1ull << b)), &h->bins[b]);
        struct heap_chunk *prev = NULL;
        for (struct heap_chunk *c = h->bins[b]; c; prev = c, c = c->next) {
            CHECK(binned <= nfree, c);
            struct heap_seg *s = reg_find(h, c);
            CHECK(s && s->kind == SEG_CHUNK && !(c->head & CINUSE) && bin_of(csize(c)) == b, c);
            CHECK(c->prev == prev, c);
            binned++;
            binned_bytes += csize(c);
        }
    }
    CHECK(binned == nfree && binned_bytes == free_bytes && free_bytes == h->st.chunk_free_bytes, h);
    size_t on_partial = 0;
    for (unsigned k = 0; k < HEAP_SMALL_CLASSES; k++)
        for (struct heap_page *pg = h->partial[k]; pg && on_partial <= partial; pg = pg->next) {
            CHECK(pg->magic == PAGE_MAGIC && pg->cls == k && pg->nfree > 0, pg);
            on_partial++;
        }
    CHECK(on_partial == partial && pages == h->st.small_pages, h);
    CHECK(live == h->st.live_blocks && live_bytes == h->st.live_bytes, h);
    CHECK(bytes == h->st.segment_bytes && h->reg_count == h->st.segments, h);
    CHECK(!h->spare_chunk_seg || reg_find(h, h->spare_chunk_seg) == h->spare_chunk_seg, h);
    CHECK(!h->spare_small_seg || reg_find(h, h->spare_small_seg) == h->spare_small_seg, h);
    return 0;
}

/* ------------------------------------------------------------------ */
/* the default instance                                                 */

static struct heap default_heap;
static struct mutex default_lock;

#define LOCKED(expr)                                                                                                   \
    ({                                                                                                                 \
        mutex_lock(&default_lock);                                                                                     \
        __typeof__(expr) locked_result_ = (expr);                                                                      \
        mutex_unlock(&default_lock);                                                                                   \
        locked_result_;                                                                                                \
    })

void malloc_init(const struct malloc_backend *backend) { heap_init(&default_heap, backend); }
void malloc_set_error_handler(malloc_error_fn fn, void *ctx)
{
    mutex_lock(&default_lock);
    heap_set_error_handler(&default_heap, fn, ctx);
    mutex_unlock(&default_lock);
}
void *LIBSYS_C_NAME(malloc)(size_t n) { return LOCKED(heap_alloc(&default_heap, n)); }
void LIBSYS_C_NAME(free)(void *p)
{
    mutex_lock(&default_lock);
    heap_free(&default_heap, p);
    mutex_unlock(&default_lock);
}
void *LIBSYS_C_NAME(calloc)(size_t count, size_t n) { return LOCKED(heap_calloc(&default_heap, count, n)); }
void *LIBSYS_C_NAME(realloc)(void *p, size_t n) { return LOCKED(heap_realloc(&default_heap, p, n)); }
void *malloc_aligned(size_t align, size_t n) { return LOCKED(heap_alloc_aligned(&default_heap, align, n)); }
void malloc_trim(void)
{
    mutex_lock(&default_lock);
    heap_trim(&default_heap);
    mutex_unlock(&default_lock);
}
int malloc_check(void) { return LOCKED(heap_check(&default_heap, NULL)); }
/* The instance itself, unlocked: for a caller that runs alone (tests). */
struct heap *malloc_default_heap(void) { return &default_heap; }
