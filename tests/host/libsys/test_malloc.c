/*
 * Host tests for libsys/src/malloc.c: every entry point on a private heap
 * over a tracking backend (which checks that put() gets back exactly what
 * get() gave), detected bad frees, and a randomized run against a shadow
 * table of live blocks filled with patterns. Argument: optional seed.
 */
#include "test_rng.h"
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <libsys/malloc.h>

/* ---- tracking backend ---- */

#define TB_MAX 4096
struct tb {
    void *base[TB_MAX];
    size_t size[TB_MAX];
    size_t n, bytes, gets, puts;
    long fail_after; /* gets allowed before failing; -1: never */
    size_t extra;    /* bytes given beyond the request */
    int fatal_calls;
    jmp_buf *fatal_jmp;
};

static int tb_get(void *ctx, size_t min, void **base, size_t *size)
{
    struct tb *t = ctx;
    if (t->fail_after == 0 || t->n == TB_MAX)
        return -2;
    if (t->fail_after > 0)
        t->fail_after--;
    size_t sz = (min + t->extra + 4095) & ~(size_t)4095;
    void *p = aligned_alloc(4096, sz);
    if (!p)
        return -2;
    memset(p, 0xa5, sz); /* the heap must not assume zeroed segments */
    t->base[t->n] = p;
    t->size[t->n] = sz;
    t->n++;
    t->bytes += sz;
    t->gets++;
    *base = p;
    *size = sz;
    return 0;
}

static void tb_put(void *ctx, void *base, size_t size)
{
    struct tb *t = ctx;
    for (size_t i = 0; i < t->n; i++) {
        if (t->base[i] == base) {
            assert_int_equal(t->size[i], size);
            t->base[i] = t->base[t->n - 1];
            t->size[i] = t->size[t->n - 1];
            t->n--;
            t->bytes -= size;
            t->puts++;
            free(base);
            return;
        }
    }
    fail_msg("put of a segment the backend never gave: %p", base);
}

static void tb_fatal(void *ctx, const char *what, void *ptr)
{
    struct tb *t = ctx;
    (void)what;
    (void)ptr;
    t->fatal_calls++;
    if (t->fatal_jmp)
        longjmp(*t->fatal_jmp, 1);
}

struct fixture {
    struct tb tb;
    struct heap h;
    int errors[4];
    void *last_bad;
};

static void on_error(void *ctx, enum malloc_error err, void *p)
{
    struct fixture *f = ctx;
    f->errors[err]++;
    f->last_bad = p;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->tb.fail_after = -1;
    struct malloc_backend b = { tb_get, tb_put, tb_fatal, &f->tb };
    heap_init(&f->h, &b);
    heap_set_error_handler(&f->h, on_error, f);
    *state = f;
    return 0;
}

static void assert_heap_ok(struct heap *h)
{
    const void *where = NULL;
    int rc = heap_check(h, &where);
    if (rc)
        fail_msg("heap_check failed near %p", where);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    assert_heap_ok(&f->h);
    struct heap_stats st;
    heap_stats(&f->h, &st);
    assert_int_equal(st.live_blocks, 0);
    heap_trim(&f->h);
    assert_int_equal(f->tb.bytes, 0); /* everything went back */
    assert_int_equal(f->tb.n, 0);
    free(f);
    return 0;
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)(seed + i * 7);
}

static void verify(const void *p, size_t n, unsigned seed)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != (unsigned char)(seed + i * 7))
            fail_msg("block %p byte %zu changed", p, i);
}

/* ---- unit tests ---- */

static void test_zero_and_null(void **state)
{
    struct fixture *f = *state;
    void *a = heap_alloc(&f->h, 0), *b = heap_alloc(&f->h, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_true(heap_usable_size(&f->h, a) >= 1);
    heap_free(&f->h, NULL);
    heap_free(&f->h, a);
    heap_free(&f->h, b);
    assert_int_equal(f->errors[1] + f->errors[2] + f->errors[3], 0);
}

static void test_sizes_alignment(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[] = {
        1,   8,    15,   16,   17,   100,   128,    129,    200,    255,    256,     257,
        300, 1000, 4000, 4096, 5000, 65536, 100000, 262143, 262144, 300000, 1 << 20, 3 << 20
    };
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    void *p[N];
    for (unsigned i = 0; i < N; i++) {
        p[i] = heap_alloc(&f->h, sizes[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        size_t u = heap_usable_size(&f->h, p[i]);
        assert_true(u >= sizes[i]);
        fill(p[i], u, i);
        assert_heap_ok(&f->h);
    }
    for (unsigned i = 0; i < N; i++) {
        verify(p[i], heap_usable_size(&f->h, p[i]), i);
        heap_free(&f->h, p[i]);
        assert_heap_ok(&f->h);
    }
}

static void test_calloc_zero_overflow(void **state)
{
    struct fixture *f = *state;
    size_t gets = f->tb.gets;
    assert_null(heap_calloc(&f->h, SIZE_MAX / 2, 3));
    assert_null(heap_calloc(&f->h, (size_t)1 << 33, (size_t)1 << 33));
    assert_int_equal(f->tb.gets, gets); /* refused without asking the backend */
    /* dirty memory, free it, calloc the same sizes: must be zero */
    static const size_t sizes[] = { 24, 200, 2000, 300000 };
    for (unsigned i = 0; i < 4; i++) {
        void *p = heap_alloc(&f->h, sizes[i]);
        memset(p, 0xee, sizes[i]);
        heap_free(&f->h, p);
        unsigned char *q = heap_calloc(&f->h, 1, sizes[i]);
        assert_non_null(q);
        for (size_t k = 0; k < sizes[i]; k++)
            assert_int_equal(q[k], 0);
        heap_free(&f->h, q);
    }
    void *z = heap_calloc(&f->h, 0, 10);
    assert_non_null(z);
    heap_free(&f->h, z);
}

static void test_huge_and_backend_failure(void **state)
{
    struct fixture *f = *state;
    size_t gets = f->tb.gets;
    assert_null(heap_alloc(&f->h, SIZE_MAX));
    assert_null(heap_alloc(&f->h, HEAP_MAX_REQUEST + 1));
    assert_null(heap_alloc_aligned(&f->h, 4096, SIZE_MAX - 100));
    assert_int_equal(f->tb.gets, gets);
    /* backend refuses: NULL, heap unchanged */
    f->tb.fail_after = 0;
    assert_null(heap_alloc(&f->h, 10));
    assert_null(heap_alloc(&f->h, 1000));
    assert_null(heap_alloc(&f->h, 1 << 20));
    assert_heap_ok(&f->h);
    assert_int_equal(f->tb.bytes, 0);
    /* the segment arrives but the registry cannot grow: the segment goes back */
    f->tb.fail_after = 1;
    assert_null(heap_alloc(&f->h, 1000));
    assert_int_equal(f->tb.bytes, 0);
    assert_heap_ok(&f->h);
    f->tb.fail_after = -1;
    void *p = heap_alloc(&f->h, 1000);
    assert_non_null(p);
    /* realloc that cannot get memory leaves the block alone */
    fill(p, 1000, 3);
    f->tb.fail_after = 0;
    assert_null(heap_realloc(&f->h, p, 1 << 20));
    verify(p, 1000, 3);
    f->tb.fail_after = -1;
    heap_free(&f->h, p);
}

static void test_realloc_paths(void **state)
{
    struct fixture *f = *state;
    /* NULL -> malloc; grow through all three kinds keeping the contents */
    char *p = heap_realloc(&f->h, NULL, 10);
    assert_non_null(p);
    fill(p, 10, 1);
    size_t steps[] = { 20, 200, 1000, 50000, 300000, 2 << 20 };
    size_t prev = 10;
    for (unsigned i = 0; i < 6; i++) {
        p = heap_realloc(&f->h, p, steps[i]);
        assert_non_null(p);
        verify(p, prev, 1);
        fill(p, steps[i], 1);
        prev = steps[i];
        assert_heap_ok(&f->h);
    }
    /* large shrink within half: in place */
    char *q = heap_realloc(&f->h, p, 1 << 20);
    assert_ptr_equal(q, p);
    /* and back down to small */
    p = heap_realloc(&f->h, q, 5);
    verify(p, 5, 1);
    /* p, 0: frees, returns NULL */
    assert_null(heap_realloc(&f->h, p, 0));
    struct heap_stats st;
    heap_stats(&f->h, &st);
    assert_int_equal(st.live_blocks, 0);

    /* chunk shrink in place, then grow in place into the freed tail */
    char *a = heap_alloc(&f->h, 8000), *b = heap_alloc(&f->h, 8000), *c = heap_alloc(&f->h, 600);
    fill(a, 8000, 9);
    assert_ptr_equal(heap_realloc(&f->h, a, 1000), a);
    verify(a, 1000, 9);
    assert_heap_ok(&f->h);
    assert_ptr_equal(heap_realloc(&f->h, a, 7000), a);
    verify(a, 1000, 9);
    /* grow into a freed neighbour */
    heap_free(&f->h, b);
    assert_ptr_equal(heap_realloc(&f->h, a, 15000), a);
    verify(a, 1000, 9);
    assert_heap_ok(&f->h);
    /* small: same class stays */
    char *s = heap_alloc(&f->h, 40);
    assert_ptr_equal(heap_realloc(&f->h, s, 48), s);
    heap_free(&f->h, s);
    heap_free(&f->h, a);
    heap_free(&f->h, c);
}

static void test_aligned(void **state)
{
    struct fixture *f = *state;
    void *p[128];
    unsigned n = 0;
    for (size_t align = 1; align <= ((size_t)1 << 20); align <<= 1) {
        static const size_t sizes[] = { 1, 100, 3000, 70000 };
        for (unsigned i = 0; i < 4; i++) {
            void *q = heap_alloc_aligned(&f->h, align, sizes[i]);
            assert_non_null(q);
            assert_int_equal((uintptr_t)q % align, 0);
            assert_int_equal((uintptr_t)q % 16, 0);
            assert_true(heap_usable_size(&f->h, q) >= sizes[i]);
            memset(q, 0x11, sizes[i]);
            p[n++] = q;
            assert_heap_ok(&f->h);
        }
    }
    assert_null(heap_alloc_aligned(&f->h, 0, 10));
    assert_null(heap_alloc_aligned(&f->h, 48, 10));
    for (unsigned i = 0; i < n; i++) {
        heap_free(&f->h, p[i]);
        assert_heap_ok(&f->h);
    }
}

static void test_bad_frees(void **state)
{
    struct fixture *f = *state;
    int local;
    char *small = heap_alloc(&f->h, 32), *chunk = heap_alloc(&f->h, 1000);
    char *chunk2 = heap_alloc(&f->h, 1000), *large = heap_alloc(&f->h, 1 << 20);
    void *libc = malloc(64);
    struct heap_stats before, after;
    heap_stats(&f->h, &before);

    heap_free(&f->h, &local);
    heap_free(&f->h, libc);
    assert_int_equal(f->errors[MALLOC_ERR_FOREIGN], 2);
    heap_free(&f->h, small + 8);  /* not on a block boundary */
    heap_free(&f->h, large + 16); /* not the start of the large block */
    heap_free(&f->h, chunk + 1);  /* misaligned */
    assert_int_equal(f->errors[MALLOC_ERR_FOREIGN], 5);
    assert_null(heap_realloc(&f->h, &local, 10));
    assert_int_equal(f->errors[MALLOC_ERR_FOREIGN], 6);
    assert_int_equal(heap_usable_size(&f->h, &local), 0);
    assert_int_equal(f->errors[MALLOC_ERR_FOREIGN], 7);

    /* corrupted header: the chunk's size word */
    size_t *head = (size_t *)(void *)(chunk - 8), saved = *head;
    *head = saved + 4096 * 1024;
    heap_free(&f->h, chunk);
    assert_int_equal(f->errors[MALLOC_ERR_CORRUPT], 1);
    *head = saved;
    heap_stats(&f->h, &after);
    assert_memory_equal(&before, &after, sizeof(before));
    assert_heap_ok(&f->h);

    /* double frees (keep a neighbour so the segments stay) */
    char *small2 = heap_alloc(&f->h, 32);
    heap_free(&f->h, small);
    heap_free(&f->h, small);
    heap_free(&f->h, chunk);
    heap_free(&f->h, chunk);
    assert_int_equal(f->errors[MALLOC_ERR_DOUBLE_FREE], 2);
    assert_heap_ok(&f->h);
    heap_free(&f->h, chunk2);
    heap_free(&f->h, large);
    heap_free(&f->h, small2);
    /* small2's page is gone now: freeing into a released page */
    heap_free(&f->h, small2);
    assert_int_equal(f->errors[MALLOC_ERR_DOUBLE_FREE], 3);
    /* large block's segment is gone: foreign */
    heap_free(&f->h, large);
    assert_int_equal(f->errors[MALLOC_ERR_FOREIGN], 8);
    free(libc);
}

static void test_default_handler_calls_fatal(void **state)
{
    struct fixture *f = *state;
    jmp_buf jb;
    int local;
    heap_set_error_handler(&f->h, NULL, NULL);
    f->tb.fatal_jmp = &jb;
    if (setjmp(jb) == 0) {
        heap_free(&f->h, &local);
        fail_msg("default handler returned");
    }
    assert_int_equal(f->tb.fatal_calls, 1);
    f->tb.fatal_jmp = NULL;
}

static void test_segments_returned(void **state)
{
    struct fixture *f = *state;
    enum { N = 3000 };
    static void *p[N];
    for (unsigned i = 0; i < N; i++) {
        size_t sz = i % 3 == 0 ? 24 : i % 3 == 1 ? 700 : 5000;
        p[i] = heap_alloc(&f->h, sz);
        assert_non_null(p[i]);
    }
    assert_true(f->tb.n > 4);
    assert_heap_ok(&f->h);
    for (unsigned i = 0; i < N; i += 2)
        heap_free(&f->h, p[i]);
    assert_heap_ok(&f->h);
    for (unsigned i = 1; i < N; i += 2)
        heap_free(&f->h, p[i]);
    assert_heap_ok(&f->h);
    /* at most one spare of each kind plus the registry remain */
    assert_true(f->tb.n <= 3);
    struct heap_stats st;
    heap_stats(&f->h, &st);
    assert_true(st.segments <= 2);
    assert_int_equal(st.live_bytes, 0);
    heap_trim(&f->h);
    assert_int_equal(f->tb.bytes, 0);
}

static void test_backend_gives_more(void **state)
{
    struct fixture *f = *state;
    f->tb.extra = 3 << 20; /* segments far bigger than asked */
    void *a = heap_alloc(&f->h, 30), *b = heap_alloc(&f->h, 3000), *c = heap_alloc(&f->h, 400000);
    void *d = heap_alloc(&f->h, 200000);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    assert_heap_ok(&f->h);
    heap_free(&f->h, a);
    heap_free(&f->h, b);
    heap_free(&f->h, c);
    heap_free(&f->h, d);
    f->tb.extra = 0;
}

static void test_default_instance(void **state)
{
    struct fixture *f = *state;
    struct malloc_backend b = { tb_get, tb_put, tb_fatal, &f->tb };
    malloc_init(&b);
    malloc_set_error_handler(on_error, f);
    char *p = libsys_malloc(100);
    assert_non_null(p);
    p = libsys_realloc(p, 5000);
    char *q = libsys_calloc(10, 10);
    void *r = malloc_aligned(256, 100);
    assert_int_equal((uintptr_t)r % 256, 0);
    assert_int_equal(malloc_check(), 0);
    assert_ptr_equal(malloc_default_heap()->backend.ctx, &f->tb);
    libsys_free(p);
    libsys_free(q);
    libsys_free(r);
    malloc_trim();
    assert_int_equal(malloc_check(), 0);
    assert_int_equal(f->tb.bytes, 0);
}

/* ---- randomized, against a shadow table ---- */

static size_t random_size(void)
{
    unsigned k = (unsigned)(test_rnd() % 100);
    if (k < 55)
        return test_rnd() % 257;
    if (k < 90)
        return 257 + test_rnd() % 4000;
    if (k < 99)
        return test_rnd() % 200000;
    return 200000 + test_rnd() % 800000;
}

static void test_random(void **state)
{
    struct fixture *f = *state;
    enum { SLOTS = 1500, OPS = 150000 };
    static struct {
        char *p;
        size_t n;
        unsigned seed;
    } s[SLOTS];
    memset(s, 0, sizeof(s));
    for (unsigned op = 0; op < OPS; op++) {
        unsigned i = (unsigned)(test_rnd() % SLOTS), k = (unsigned)(test_rnd() % 10);
        if (s[i].p)
            verify(s[i].p, s[i].n, s[i].seed);
        if (!s[i].p || k < 4) {
            if (s[i].p)
                heap_free(&f->h, s[i].p);
            size_t n = random_size();
            size_t align = k == 0 ? (size_t)1 << (test_rnd() % 14) : 0;
            s[i].p = align    ? heap_alloc_aligned(&f->h, align, n)
                     : k == 1 ? heap_calloc(&f->h, 1, n)
                              : heap_alloc(&f->h, n);
            assert_non_null(s[i].p);
            if (align)
                assert_int_equal((uintptr_t)s[i].p % align, 0);
            if (k == 1)
                for (size_t b = 0; b < n; b++)
                    assert_int_equal(s[i].p[b], 0);
            s[i].n = n;
        } else if (k < 7) {
            size_t n = test_rnd() % 2 ? random_size() : s[i].n + test_rnd() % 64;
            char *q = heap_realloc(&f->h, s[i].p, n);
            if (n == 0) {
                assert_null(q);
                s[i].p = NULL;
                continue;
            }
            assert_non_null(q);
            verify(q, n < s[i].n ? n : s[i].n, s[i].seed);
            s[i].p = q;
            s[i].n = n;
        } else {
            heap_free(&f->h, s[i].p);
            s[i].p = NULL;
            continue;
        }
        assert_true(heap_usable_size(&f->h, s[i].p) >= s[i].n);
        s[i].seed = (unsigned)test_rnd();
        fill(s[i].p, s[i].n, s[i].seed);
        if (op % 5000 == 0)
            assert_heap_ok(&f->h);
    }
    assert_heap_ok(&f->h);
    assert_int_equal(f->errors[1] + f->errors[2] + f->errors[3], 0);
    for (unsigned i = 0; i < SLOTS; i++) {
        if (s[i].p) {
            verify(s[i].p, s[i].n, s[i].seed);
            heap_free(&f->h, s[i].p);
        }
    }
    assert_heap_ok(&f->h);
    assert_true(f->tb.n <= 3);
    heap_trim(&f->h);
    assert_int_equal(f->tb.bytes, 0);
}

int main(int argc, char **argv)
{
    test_rng_seed(argc > 1 ? strtoull(argv[1], NULL, 0) : 0x7e55e7a5eedull);
    printf("seed=%llu\n", (unsigned long long)test_rng_state);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_zero_and_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes_alignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calloc_zero_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_and_backend_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_realloc_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aligned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_frees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_handler_calls_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_gives_more, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
