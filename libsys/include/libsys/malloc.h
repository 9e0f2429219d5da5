/*
 * libsys layer: the user-space heap (malloc and friends) on memsrv segments.
 * Called by every user program, directly or through the small libc; it calls
 * nothing but the backend it was given (in the guest: the memsrv client API).
 * The theory statement (layout, invariants, what is detected) is at the top
 * of libsys/src/malloc.c; docs/libsys-allocators.md is the overview.
 *
 * A heap is an instance (struct heap) so tests and servers can build private
 * ones; malloc()/free()/... operate on one default instance set up with
 * malloc_init(). An instance is not thread-safe (callers lock around it);
 * the default one is: its entry points take one mutex (libsys/sync.h).
 *
 * Host builds (TESSERA_HOST) link the C library, so the default-instance
 * entry points are renamed libsys_malloc, libsys_free, ... there, to keep
 * them from interposing on the host's malloc. In the guest they are the
 * standard names.
 */
#ifndef LIBSYS_MALLOC_H
#define LIBSYS_MALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/*
 * Where segments come from. get() returns 0 and a segment of at least
 * min_bytes (a multiple of 4096, 4096-aligned) in *base and *size, or a negative
 * error; put() gives back exactly a segment get() returned (same base and
 * size). fatal() is the default error handler's last resort (may be NULL:
 * then the heap traps). ctx is passed to all three.
 */
struct malloc_backend {
    int (*get)(void *ctx, size_t min_bytes, void **base, size_t *size);
    void (*put)(void *ctx, void *base, size_t size);
    void (*fatal)(void *ctx, const char *what, void *ptr);
    void *ctx;
};

/* What the heap detected on a free()/realloc() of a pointer it did not expect. */
enum malloc_error {
    MALLOC_ERR_FOREIGN = 1, /* pointer lies in no segment of this heap, or is
                               not where an allocation could start */
    MALLOC_ERR_DOUBLE_FREE, /* the block's in-use bit (or bitmap bit) is clear */
    MALLOC_ERR_CORRUPT,     /* header or neighbour's tag inconsistent */
};

typedef void (*malloc_error_fn)(void *ctx, enum malloc_error err, void *ptr);

/* Counters, exact at all times. */
struct heap_stats {
    size_t segments;         /* segments held from the backend (excluding registry) */
    size_t segment_bytes;    /* their total size */
    size_t registry_bytes;   /* the segment registry's own segment (0 when empty) */
    size_t live_blocks;      /* allocations not yet freed */
    size_t live_bytes;       /* sum of their usable sizes */
    size_t small_pages;      /* bitmap pages in use */
    size_t chunk_free_bytes; /* bytes in free chunks */
};

/* ---- tuning constants, justified in malloc.c ---- */
#define HEAP_ALIGN         16u  /* every pointer returned */
#define HEAP_SMALL_MAX     256u /* largest bitmap-block request */
#define HEAP_SMALL_CLASSES 12u
#define HEAP_LARGE_MIN     (256u * 1024u)    /* own segment from here on */
#define HEAP_CHUNK_SEG     (1024u * 1024u)   /* usual chunk segment size */
#define HEAP_SMALL_SEG     (64u * 1024u)     /* 16 bitmap pages */
#define HEAP_BINS          64u               /* segregated free lists */
#define HEAP_MAX_REQUEST   ((size_t)1 << 46) /* above: refused, no backend call */

struct heap_seg;
struct heap_page;
struct heap_chunk;

struct heap {
    struct malloc_backend backend;
    malloc_error_fn on_error;
    void *on_error_ctx;
    /* segment registry: sorted array of segment headers, in its own segment */
    struct heap_seg **reg;
    size_t reg_count, reg_cap, reg_bytes;
    /* segregated fits: bin i non-empty <=> bit i of bin_map */
    uint64_t bin_map;
    struct heap_chunk *bins[HEAP_BINS];
    /* bitmap allocator: pages with free blocks, per class; segments with free pages */
    struct heap_page *partial[HEAP_SMALL_CLASSES];
    struct heap_seg *small_segs_free;
    /* hysteresis: at most one empty segment of each kind is kept */
    struct heap_seg *spare_chunk_seg;
    struct heap_seg *spare_small_seg;
    struct heap_stats st;
    bool ready;
};

/* Instance API. heap_init never fails and takes no memory. */
void heap_init(struct heap *h, const struct malloc_backend *backend);
void heap_set_error_handler(struct heap *h, malloc_error_fn fn, void *ctx);
void *heap_alloc(struct heap *h, size_t n);
/* align: a power of two (any size; <= 16 is plain heap_alloc). NULL if not. */
void *heap_alloc_aligned(struct heap *h, size_t align, size_t n);
void *heap_calloc(struct heap *h, size_t count, size_t n);
void *heap_realloc(struct heap *h, void *p, size_t n);
void heap_free(struct heap *h, void *p);
/* Bytes usable at p (>= what was asked). p must be live; 0 if invalid. */
size_t heap_usable_size(struct heap *h, void *p);
/* Returns the spare empty segments to the backend. */
void heap_trim(struct heap *h);
/* Walks every structure; 0 if consistent, -EINVAL otherwise (and *where, if
 * non-NULL, gets an address near the first fault). O(heap size). */
int heap_check(struct heap *h, const void **where);
void heap_stats(const struct heap *h, struct heap_stats *out);

/* The default instance. */
#ifdef TESSERA_HOST
#define LIBSYS_C_NAME(name) libsys_##name
#else
#define LIBSYS_C_NAME(name) name
#endif

void malloc_init(const struct malloc_backend *backend);
/* Guest: the default heap on memsrv segments (heap_memsrv.c); libsys_start
 * calls it before main, and no memory is taken until the first malloc. */
void malloc_init_memsrv(void);
void malloc_set_error_handler(malloc_error_fn fn, void *ctx);
void *LIBSYS_C_NAME(malloc)(size_t n);
void LIBSYS_C_NAME(free)(void *p);
void *LIBSYS_C_NAME(calloc)(size_t count, size_t n);
void *LIBSYS_C_NAME(realloc)(void *p, size_t n);
void *malloc_aligned(size_t align, size_t n);
void malloc_trim(void);
int malloc_check(void);
struct heap *malloc_default_heap(void);

#endif
