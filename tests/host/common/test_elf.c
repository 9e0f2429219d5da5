/*
 * Host tests of common/elf.c: a valid static executable built in memory, each
 * refusal rule by mutating one field, every truncation, and a fuzz loop that
 * flips random bytes and compares elf_check with an independent oracle (run
 * under ASan in common_elf_test_asan, with buffers sized exactly).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "test_rng.h"
#include <abi/errno.h>
#include <common/elf.h>

#define USER_LO   0x400000ull
#define USER_HI   0x7ffffffff000ull
#define FILE_SIZE 0x1100
#define MAX_PH    20

struct test_image {
    unsigned char bytes[FILE_SIZE];
};

static struct elf64_ehdr *ehdr(struct test_image *t) { return (struct elf64_ehdr *)t->bytes; }

static struct elf64_phdr *phdr(struct test_image *t, size_t i) { return (struct elf64_phdr *)(t->bytes + 64 + i * 56); }

/*
 * text: file [0, 0x800)  -> 0x400000, R X, entry 0x400100
 * data: file [0x1000, 0x1100) -> 0x402000, memsz 0x3000 (bss), RW
 * a PT_GNU_STACK that must be ignored.
 */
static void build_valid(struct test_image *t)
{
    memset(t, 0, sizeof *t);
    struct elf64_ehdr *e = ehdr(t);
    memcpy(e->e_ident,
           "\x7f"
           "ELF",
           4);
    e->e_ident[4] = ELF_CLASS64;
    e->e_ident[5] = ELF_DATA2LSB;
    e->e_ident[6] = ELF_EV_CURRENT;
    e->e_type = ELF_ET_EXEC;
    e->e_machine = ELF_EM_X86_64;
    e->e_version = ELF_EV_CURRENT;
    e->e_entry = 0x400100;
    e->e_phoff = 64;
    e->e_ehsize = 64;
    e->e_phentsize = 56;
    e->e_phnum = 3;
    *phdr(t, 0) = (struct elf64_phdr){ .p_type = ELF_PT_LOAD,
                                       .p_flags = ELF_SEG_R | ELF_SEG_X,
                                       .p_offset = 0,
                                       .p_vaddr = 0x400000,
                                       .p_paddr = 0x400000,
                                       .p_filesz = 0x800,
                                       .p_memsz = 0x800,
                                       .p_align = 0x1000 };
    *phdr(t, 1) = (struct elf64_phdr){ .p_type = ELF_PT_LOAD,
                                       .p_flags = ELF_SEG_R | ELF_SEG_W,
                                       .p_offset = 0x1000,
                                       .p_vaddr = 0x402000,
                                       .p_paddr = 0x402000,
                                       .p_filesz = 0x100,
                                       .p_memsz = 0x3000,
                                       .p_align = 0x1000 };
    *phdr(t, 2) = (struct elf64_phdr){ .p_type = 0x6474e551, .p_flags = ELF_SEG_R | ELF_SEG_W };
}

/* Runs elf_check on an exactly-sized heap copy, so ASan sees any overread. */
static int check_copy(const void *bytes, size_t size, struct elf_image *out, const char **why)
{
    void *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    memcpy(copy, bytes, size);
    int r = elf_check(copy, size, USER_LO, USER_HI, out, why);
    free(copy);
    return r;
}

static void expect_refused(struct test_image *t, const char *why_part)
{
    struct elf_image img;
    const char *why = NULL;
    assert_int_equal(check_copy(t->bytes, FILE_SIZE, &img, &why), -ENOEXEC);
    assert_non_null(why);
    if (strstr(why, why_part) == NULL)
        fail_msg("refused for \"%s\", expected \"%s\"", why, why_part);
}

static void test_valid(void **state)
{
    (void)state;
    struct test_image t;
    struct elf_image img;
    const char *why = NULL;
    build_valid(&t);
    assert_int_equal(check_copy(t.bytes, FILE_SIZE, &img, &why), 0);
    assert_int_equal(img.entry, 0x400100);
    assert_int_equal(img.nsegments, 2);
    assert_int_equal(img.seg[0].vaddr, 0x400000);
    assert_int_equal(img.seg[0].memsz, 0x800);
    assert_int_equal(img.seg[0].offset, 0);
    assert_int_equal(img.seg[0].filesz, 0x800);
    assert_int_equal(img.seg[0].flags, ELF_SEG_R | ELF_SEG_X);
    assert_int_equal(img.seg[1].vaddr, 0x402000);
    assert_int_equal(img.seg[1].memsz, 0x3000);
    assert_int_equal(img.seg[1].offset, 0x1000);
    assert_int_equal(img.seg[1].filesz, 0x100);
    assert_int_equal(img.seg[1].flags, ELF_SEG_R | ELF_SEG_W);

    /* Unsorted program headers come out sorted. */
    struct elf64_phdr tmp = *phdr(&t, 0);
    *phdr(&t, 0) = *phdr(&t, 1);
    *phdr(&t, 1) = tmp;
    assert_int_equal(check_copy(t.bytes, FILE_SIZE, &img, &why), 0);
    assert_int_equal(img.seg[0].vaddr, 0x400000);
    assert_int_equal(img.seg[1].vaddr, 0x402000);

    /* A memsz == 0 PT_LOAD is ignored. */
    build_valid(&t);
    phdr(&t, 2)->p_type = ELF_PT_LOAD;
    phdr(&t, 2)->p_vaddr = 0x1234567;
    assert_int_equal(check_copy(t.bytes, FILE_SIZE, &img, &why), 0);
    assert_int_equal(img.nsegments, 2);

    /* Unaligned image. */
    build_valid(&t);
    unsigned char *odd = malloc(FILE_SIZE + 1);
    assert_non_null(odd);
    memcpy(odd + 1, t.bytes, FILE_SIZE);
    assert_int_equal(elf_check(odd + 1, FILE_SIZE, USER_LO, USER_HI, &img, NULL), 0);
    free(odd);
}

static void test_each_refusal(void **state)
{
    (void)state;
    struct test_image t;
    struct elf_image img;
    const char *why;

#define MUTATE(stmt, part)                                                                                             \
    do {                                                                                                               \
        build_valid(&t);                                                                                               \
        stmt;                                                                                                          \
        expect_refused(&t, part);                                                                                      \
    } while (0)
    MUTATE(t.bytes[0] = 0x7e, "magic");
    MUTATE(t.bytes[3] = 'f', "magic");
    MUTATE(t.bytes[4] = 1, "64-bit");
    MUTATE(t.bytes[5] = 2, "little-endian");
    MUTATE(t.bytes[6] = 0, "version");
    MUTATE(ehdr(&t)->e_version = 2, "version");
    MUTATE(ehdr(&t)->e_type = 3, "ET_EXEC");
    MUTATE(ehdr(&t)->e_machine = 3, "e_machine");
    MUTATE(ehdr(&t)->e_phentsize = 64, "e_phentsize");
    MUTATE(ehdr(&t)->e_phnum = 0xffff, "extended");
    MUTATE(ehdr(&t)->e_phoff = FILE_SIZE, "program header table");
    MUTATE(ehdr(&t)->e_phoff = FILE_SIZE - 56 * 3 + 1, "program header table");
    MUTATE(ehdr(&t)->e_phoff = UINT64_MAX - 8, "program header table");
    MUTATE(ehdr(&t)->e_phnum = 200, "program header table");
    MUTATE(ehdr(&t)->e_phnum = 0, "no PT_LOAD");
    MUTATE((phdr(&t, 0)->p_type = 6, phdr(&t, 1)->p_type = 4), "no PT_LOAD");
    MUTATE(phdr(&t, 2)->p_type = ELF_PT_INTERP, "dynamic");
    MUTATE(phdr(&t, 2)->p_type = ELF_PT_DYNAMIC, "dynamic");
    MUTATE(phdr(&t, 0)->p_filesz = 0x801, "filesz > memsz");
    MUTATE((phdr(&t, 2)->p_type = ELF_PT_LOAD, phdr(&t, 2)->p_filesz = 1), "filesz > memsz");
    MUTATE(phdr(&t, 1)->p_filesz = 0x101, "outside the file");
    MUTATE(phdr(&t, 1)->p_offset = FILE_SIZE + 0x1000, "outside the file");
    MUTATE((phdr(&t, 1)->p_offset = UINT64_MAX - 0xfff, phdr(&t, 1)->p_vaddr = 0x402000 + 0x1000 * 0),
           "outside the file");
    MUTATE(phdr(&t, 0)->p_vaddr = 0x3ff000, "outside user space");
    MUTATE((phdr(&t, 1)->p_vaddr = USER_HI - 0x2000), "outside user space");
    MUTATE((phdr(&t, 1)->p_vaddr = USER_HI - 0x3000, phdr(&t, 1)->p_memsz = 0x3001), "outside user space");
    MUTATE((phdr(&t, 1)->p_vaddr = 0xfffffffffffff000ull, phdr(&t, 1)->p_memsz = 0x2000), "wraps");
    MUTATE((phdr(&t, 1)->p_vaddr = 0xffffffffffffe000ull, phdr(&t, 1)->p_memsz = 0x1ff0), "wraps");
    MUTATE(phdr(&t, 1)->p_vaddr = 0x402800, "modulo the page size");
    MUTATE(phdr(&t, 1)->p_vaddr = 0x400000, "overlap");
    MUTATE((phdr(&t, 1)->p_vaddr = 0x400000 + 0x1000, phdr(&t, 1)->p_offset = 0x0, phdr(&t, 0)->p_memsz = 0x1001),
           "overlap");
    /* Sharing one page is an overlap too: text ends at 0x400800, data on the same page. */
    MUTATE((phdr(&t, 1)->p_vaddr = 0x400800, phdr(&t, 1)->p_offset = 0x800, phdr(&t, 1)->p_filesz = 0x100), "overlap");
    MUTATE(ehdr(&t)->e_entry = 0x402000, "entry");
    MUTATE(ehdr(&t)->e_entry = 0x400800, "entry");
    MUTATE(ehdr(&t)->e_entry = 0x3fffff, "entry");
    MUTATE(phdr(&t, 0)->p_flags = ELF_SEG_R, "entry");
#undef MUTATE

    /* More than ELF_MAX_SEGMENTS PT_LOAD: 17 one-page segments, 16 accepted. */
    for (int n = 16; n <= 17; n++) {
        static unsigned char big[64 + 56 * 17 + 0x1000];
        memset(big, 0, sizeof big);
        build_valid(&t);
        memcpy(big, t.bytes, 64);
        struct elf64_ehdr *e = (struct elf64_ehdr *)big;
        e->e_phnum = (uint16_t)n;
        e->e_entry = 0x400000;
        for (int i = 0; i < n; i++) {
            struct elf64_phdr ph = { .p_type = ELF_PT_LOAD,
                                     .p_flags = ELF_SEG_R | ELF_SEG_X,
                                     .p_offset = 0x1000 * (uint64_t)(i == 0 ? 0 : 1),
                                     .p_vaddr = 0x400000 + 0x2000 * (uint64_t)i,
                                     .p_filesz = 0x10,
                                     .p_memsz = 0x10 };
            memcpy(big + 64 + 56 * i, &ph, sizeof ph);
        }
        int r = check_copy(big, sizeof big, &img, &why);
        if (n == 16) {
            if (r != 0)
                fail_msg("16 segments refused: %s", why);
            assert_int_equal(img.nsegments, 16);
        } else {
            assert_int_equal(r, -ENOEXEC);
            assert_non_null(strstr(why, "too many"));
        }
    }

    /* *out untouched on failure; why may be NULL. */
    build_valid(&t);
    ehdr(&t)->e_machine = 0;
    memset(&img, 0x5a, sizeof img);
    assert_int_equal(elf_check(t.bytes, FILE_SIZE, USER_LO, USER_HI, &img, NULL), -ENOEXEC);
    assert_int_equal(img.nsegments, 0x5a5a5a5a5a5a5a5aull);
    assert_int_equal(elf_check(NULL, 0, USER_LO, USER_HI, &img, &why), -ENOEXEC);
}

static void test_truncation(void **state)
{
    (void)state;
    struct test_image t;
    struct elf_image img;
    const char *why;
    build_valid(&t);
    /* The data segment's file bytes end the file: any shorter size is refused. */
    for (size_t size = 0; size < FILE_SIZE; size++)
        assert_int_equal(check_copy(t.bytes, size, &img, &why), -ENOEXEC);
    assert_int_equal(check_copy(t.bytes, FILE_SIZE, &img, &why), 0);
}

/*
 * The oracle: the rules of common/elf.h restated with 128-bit arithmetic
 * (nothing can wrap) and pairwise overlap checks.
 */
typedef unsigned __int128 u128;

static bool oracle(const unsigned char *b, size_t size, struct elf_image *want)
{
    struct elf64_ehdr e;
    if (size < 64)
        return false;
    memcpy(&e, b, 64);
    if (memcmp(e.e_ident,
               "\x7f"
               "ELF",
               4) ||
        e.e_ident[4] != 2 || e.e_ident[5] != 1 || e.e_ident[6] != 1 || e.e_version != 1 || e.e_type != 2 ||
        e.e_machine != 62 || e.e_phentsize != 56 || e.e_phnum == 0xffff)
        return false;
    if ((u128)e.e_phoff + (u128)e.e_phnum * 56 > size)
        return false;
    struct elf_segment segs[MAX_PH + 64];
    size_t n = 0;
    for (size_t i = 0; i < e.e_phnum; i++) {
        struct elf64_phdr p;
        memcpy(&p, b + e.e_phoff + 56 * i, 56);
        if (p.p_type == 2 || p.p_type == 3)
            return false;
        if (p.p_type != 1)
            continue;
        if (p.p_filesz > p.p_memsz)
            return false;
        if (p.p_memsz == 0)
            continue;
        if ((u128)p.p_offset + p.p_filesz > size)
            return false;
        u128 lo = p.p_vaddr & ~(u128)0xfff;
        u128 hi = ((u128)p.p_vaddr + p.p_memsz + 0xfff) & ~(u128)0xfff;
        if (lo < USER_LO || hi > USER_HI)
            return false;
        if (p.p_vaddr % 4096 != p.p_offset % 4096)
            return false;
        if (n == ELF_MAX_SEGMENTS)
            return false;
        segs[n++] = (struct elf_segment){ p.p_vaddr, p.p_memsz, p.p_offset, p.p_filesz, p.p_flags & 7 };
    }
    if (n == 0)
        return false;
    bool entry_ok = false;
    for (size_t i = 0; i < n; i++) {
        u128 ilo = segs[i].vaddr / 4096, ihi = ((u128)segs[i].vaddr + segs[i].memsz + 4095) / 4096;
        for (size_t j = 0; j < n; j++) {
            u128 jlo = segs[j].vaddr / 4096;
            u128 jhi = ((u128)segs[j].vaddr + segs[j].memsz + 4095) / 4096;
            if (i != j && ilo < jhi && jlo < ihi)
                return false;
        }
        if ((segs[i].flags & 1) && e.e_entry >= segs[i].vaddr && (u128)e.e_entry < (u128)segs[i].vaddr + segs[i].memsz)
            entry_ok = true;
    }
    if (!entry_ok)
        return false;
    /* Sorted copy: selection by smallest vaddr. */
    want->entry = e.e_entry;
    want->nsegments = n;
    for (size_t k = 0; k < n; k++) {
        size_t best = k;
        for (size_t j = k + 1; j < n; j++)
            if (segs[j].vaddr < segs[best].vaddr)
                best = j;
        struct elf_segment s = segs[best];
        segs[best] = segs[k];
        segs[k] = s;
        want->seg[k] = s;
    }
    return true;
}

/* Values that sit on the boundaries the checks care about. */
static uint64_t interesting(void)
{
    static const uint64_t v[] = {
        0,
        1,
        56,
        64,
        0xfff,
        0x1000,
        0x1001,
        0x1100,
        0x400000,
        0x400100,
        0x402000,
        0x7fffffffe000,
        0x7ffffffff000,
        0xffffffffffffffff,
        0xfffffffffffff000,
        0x8000000000000000,
    };
    return v[test_rnd() % (sizeof v / sizeof v[0])] + (test_rnd() % 4 == 0 ? test_rnd() % 3 - 1 : 0);
}

static void test_fuzz_against_oracle(void **state)
{
    (void)state;
    struct test_image base, t;
    int accepted = 0;
    build_valid(&base);
    phdr(&base, 2)->p_type = ELF_PT_LOAD; /* a memsz == 0 LOAD to play with */
    test_rng_seed(0x243f6a8885a308d3ull);

    for (int iter = 0; iter < 300000; iter++) {
        t = base;
        int flips = 1 + (int)(test_rnd() % 4);
        for (int f = 0; f < flips; f++) {
            if (test_rnd() % 2) {
                /* A byte within the headers, where nearly every bit matters. */
                t.bytes[test_rnd() % (64 + 56 * 3)] ^= (unsigned char)(1u << (test_rnd() % 8));
            } else {
                /* A whole header field set to a boundary value. */
                size_t field = 24 + 8 * (test_rnd() % 3); /* entry, phoff, shoff */
                if (test_rnd() % 4) {
                    size_t ph = test_rnd() % 3;
                    field = 64 + 56 * ph + 8 + 8 * (test_rnd() % 6); /* offset..align */
                }
                uint64_t v = interesting();
                memcpy(t.bytes + field, &v, 8);
            }
        }
        size_t size = test_rnd() % 8 == 0 ? (size_t)(test_rnd() % (FILE_SIZE + 1)) : FILE_SIZE;

        struct elf_image got, want;
        const char *why = NULL;
        memset(&got, 0, sizeof got);
        int r = check_copy(t.bytes, size, &got, &why);
        bool ok = oracle(t.bytes, size, &want);
        if ((r == 0) != ok)
            fail_msg("iteration %d: elf_check %d (%s), oracle %s", iter, r, r ? why : "-", ok ? "accepts" : "refuses");
        if (r != 0) {
            assert_int_equal(r, -ENOEXEC);
            assert_non_null(why);
            continue;
        }
        accepted++;
        assert_int_equal(got.entry, want.entry);
        assert_int_equal(got.nsegments, want.nsegments);
        for (size_t i = 0; i < got.nsegments; i++) {
            assert_int_equal(got.seg[i].vaddr, want.seg[i].vaddr);
            assert_int_equal(got.seg[i].memsz, want.seg[i].memsz);
            assert_int_equal(got.seg[i].offset, want.seg[i].offset);
            assert_int_equal(got.seg[i].filesz, want.seg[i].filesz);
            assert_int_equal(got.seg[i].flags, want.seg[i].flags);
        }
    }
    /* Both outcomes must be well represented or the loop proves little. */
    assert_true(accepted > 10000);
    assert_true(accepted < 290000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_each_refusal),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_fuzz_against_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
