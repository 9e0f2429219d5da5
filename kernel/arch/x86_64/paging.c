/*
 * Architecture layer (x86-64): four-level page tables behind
 * kernel/paging.h. Table pages come from the kernel frame pool and are
 * reached through the direct map.
 *
 * All-or-nothing: paging_map() first counts the table pages the range is
 * missing and checks that the pool has them, then maps in a step that cannot
 * fail (the kernel runs on one CPU and is not preemptible, so nobody takes
 * those frames in between; the other CPUs only idle).
 */
#include <arch/arch.h>
#include <abi/errno.h>
#include <common/string.h>
#include <kernel/console.h>
#include <kernel/paging.h>
#include <kernel/physmem.h>
#include <kernel/pool.h>

#define PTE_P    (1ull << 0)
#define PTE_W    (1ull << 1)
#define PTE_U    (1ull << 2)
#define PTE_PWT  (1ull << 3)
#define PTE_PCD  (1ull << 4)
#define PTE_PS   (1ull << 7)
#define PTE_G    (1ull << 8)
#define PTE_NX   (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull

#define PML4_USER_SLOTS 256

static uint64_t kernel_root;
static uint64_t nx_bit;

static inline uint64_t *table(uint64_t phys) { return (uint64_t *)phys_to_virt(phys & PTE_ADDR); }
static inline unsigned idx(uint64_t va, int level) { return (va >> (12 + 9 * level)) & 511; }

static uint64_t leaf_bits(unsigned flags)
{
    uint64_t bits = PTE_P;
    if (flags & MAP_WRITE)
        bits |= PTE_W;
    if (flags & MAP_USER)
        bits |= PTE_U;
    else
        bits |= PTE_G;
    if (!(flags & MAP_EXEC))
        bits |= nx_bit;
    if (flags & MAP_UNCACHED)
        bits |= PTE_PCD | PTE_PWT;
    return bits;
}

static uint64_t new_table(void)
{
    uint64_t phys = pool_alloc_frame();
    if (phys)
        arch_zero_pages(phys_to_virt(phys), PAGE_SIZE);
    return phys;
}

/* Returns the table at `level` - 1 below entry `e`, creating it if `create`.
 * Intermediate entries are permissive (user, writable, executable); the
 * leaf decides. */
static uint64_t *next_level(uint64_t *e, bool create)
{
    if (!(*e & PTE_P)) {
        if (!create)
            return 0;
        uint64_t t = new_table();
        if (!t)
            panic("paging: pool ran dry after its reservation");
        *e = t | PTE_P | PTE_W | PTE_U;
    }
    return table(*e);
}

static bool large_fits(uint64_t va, uint64_t pa, uint64_t remaining)
{
    return ((va | pa) & (LARGE_PAGE_SIZE - 1)) == 0 && remaining >= LARGE_PAGE_SIZE;
}

static uint64_t tables_needed_walk(uint64_t root, uint64_t va, uint64_t pa, uint64_t size);

/* Table pages that mapping the range would have to create. */
uint64_t paging_tables_needed(uint64_t root, uint64_t va, uint64_t pa, uint64_t size)
{
    if (!size || va + size < va)
        return 0;
    return tables_needed_walk(root, va, pa, size);
}

static uint64_t tables_needed_walk(uint64_t root, uint64_t va, uint64_t pa, uint64_t size)
{
    uint64_t need = 0, end = va + size;
    /* Walk one 2 MiB window at a time; tables created earlier in the walk are
     * tracked by remembering the last window's missing levels. */
    uint64_t last_pdpt = ~0ull, last_pd = ~0ull, last_pt = ~0ull;
    while (va < end) {
        uint64_t *pml4e = &table(root)[idx(va, 3)];
        uint64_t pdpt_key = va >> 39, pd_key = va >> 30, pt_key = va >> 21;
        bool have_pdpt = *pml4e & PTE_P;
        bool have_pd = have_pdpt && (table(*pml4e)[idx(va, 2)] & PTE_P);
        bool have_pt = have_pd && (table(table(*pml4e)[idx(va, 2)])[idx(va, 1)] & PTE_P);
        if (!have_pdpt && pdpt_key != last_pdpt) {
            need++;
            last_pdpt = pdpt_key;
        }
        if (!have_pd && pd_key != last_pd) {
            need++;
            last_pd = pd_key;
        }
        uint64_t step = LARGE_PAGE_SIZE - (va & (LARGE_PAGE_SIZE - 1));
        if (step > end - va)
            step = end - va;
        if (!large_fits(va, pa, end - va) && !have_pt && pt_key != last_pt) {
            need++;
            last_pt = pt_key;
        }
        va += step;
        pa += step;
    }
    return need;
}

/* This CPU's TLB entries for the range. Past FLUSH_PAGES_MAX pages one
 * whole flush is cheaper than a page at a time: for a user range a CR3
 * reload (the global kernel entries stay); kernel entries are global where
 * the CPU has global pages, so for them turning CR4.PGE off and on again,
 * which drops every entry (writing CR4 unchanged would drop none). */
#define FLUSH_PAGES_MAX 64

static void flush_here(uint64_t va, uint64_t size, bool kernel)
{
    if (size > FLUSH_PAGES_MAX * PAGE_SIZE) {
        uint64_t cr4 = read_cr4();
        if (kernel && (cr4 & CR4_PGE)) {
            write_cr4(cr4 & ~CR4_PGE);
            write_cr4(cr4);
        } else {
            write_cr3(read_cr3());
        }
        return;
    }
    for (uint64_t off = 0; off < size; off += PAGE_SIZE)
        invlpg(va + off);
}

static void flush_range(uint64_t root, uint64_t va, uint64_t size)
{
    if (root != read_cr3() && !(va >= DIRECT_MAP_BASE))
        return;
    flush_here(va, size, false);
}

struct shootdown {
    uint64_t va, size;
    bool kernel;
};

static void shootdown_call(void *arg)
{
    const struct shootdown *s = arg;
    flush_here(s->va, s->size, s->kernel);
}

void paging_flush_others(uint64_t targets, uint64_t va, uint64_t size)
{
    struct shootdown s = { va, size, va >= DIRECT_MAP_BASE }; /* the kernel half starts there */
    /* smp_call returns once every target ran the flush: from then on no
     * CPU of the set can reach the old translations. */
    smp_call(targets, shootdown_call, &s);
}

/* Page tables a large page replaced: other CPUs may cache the directory
 * entry that pointed at them until a flush, so they go back to the pool
 * only after one (paging_release_tables). Chained through their first
 * word. */
static uint64_t released_tables;

static void defer_table_free(uint64_t frame)
{
    *(uint64_t *)phys_to_virt(frame) = released_tables;
    released_tables = frame;
}

unsigned paging_release_tables(void)
{
    unsigned n = 0;
    while (released_tables) {
        uint64_t frame = released_tables;
        released_tables = *(uint64_t *)phys_to_virt(frame);
        pool_free_frame(frame);
        n++;
    }
    return n;
}

static bool table_empty(const uint64_t *t)
{
    for (unsigned i = 0; i < 512; i++)
        if (t[i] & PTE_P)
            return false;
    return true;
}

static void map_range(uint64_t root, uint64_t va, uint64_t pa, uint64_t size, unsigned flags, bool allow_large)
{
    uint64_t bits = leaf_bits(flags), end = va + size;
    while (va < end) {
        uint64_t *pdpt = next_level(&table(root)[idx(va, 3)], true);
        uint64_t *pd = next_level(&pdpt[idx(va, 2)], true);
        uint64_t *pde = &pd[idx(va, 1)];
        if (allow_large && large_fits(va, pa, end - va) && (*pde & PTE_P) && !(*pde & PTE_PS) &&
            table_empty(table(*pde))) {
            /* A page table left empty by an earlier unmap: a large page
             * replaces it, so a realigned segment gets large pages back.
             * Other CPUs are flushed before the table is freed
             * (paging_release_tables); this one may cache the directory
             * entry that pointed at it (a paging-structure cache may hold
             * one even when every entry of the table is clear), and
             * INVLPG drops that. */
            defer_table_free(*pde & PTE_ADDR);
            *pde = 0;
            if (root == read_cr3())
                invlpg(va);
        }
        if (allow_large && large_fits(va, pa, end - va) && !(*pde & PTE_P)) {
            *pde = pa | bits | PTE_PS;
            va += LARGE_PAGE_SIZE;
            pa += LARGE_PAGE_SIZE;
            continue;
        }
        if (*pde & PTE_PS)
            panic("paging: 4 KiB mapping over a large page at %#lx", va);
        uint64_t *pt = next_level(pde, true);
        pt[idx(va, 0)] = pa | bits;
        va += PAGE_SIZE;
        pa += PAGE_SIZE;
    }
}

static bool range_ok(uint64_t va, uint64_t pa, uint64_t size)
{
    return size && !((va | pa | size) & (PAGE_SIZE - 1)) && va + size > va;
}

int paging_map(uint64_t root, uint64_t va, uint64_t pa, uint64_t size, unsigned flags)
{
    if (!range_ok(va, pa, size))
        return -EINVAL;
    map_range(root, va, pa, size, flags, true); /* next_level panics if the reservation was wrong */
    return 0;
}

static uint64_t *walk_small_entry(uint64_t root, uint64_t va)
{
    uint64_t e = table(root)[idx(va, 3)];
    if (!(e & PTE_P))
        return 0;
    e = table(e)[idx(va, 2)];
    if (!(e & PTE_P))
        return 0;
    e = table(e)[idx(va, 1)];
    if (!(e & PTE_P) || (e & PTE_PS))
        return 0;
    return &table(e)[idx(va, 0)];
}

uint64_t *paging_small_entry(uint64_t root, uint64_t va, struct paging_pt_hint *hint)
{
    if (hint && hint->table && hint->window == va / LARGE_PAGE_SIZE)
        return &hint->table[idx(va, 0)];
    uint64_t *entry = walk_small_entry(root, va);
    if (hint && entry) {
        hint->window = va / LARGE_PAGE_SIZE;
        hint->table = entry - idx(va, 0);
    }
    return entry;
}

void paging_map_small_entry(uint64_t *entry, uint64_t pa, unsigned flags)
{
    VERIFY(!(*entry & PTE_P) && !(pa & (PAGE_SIZE - 1)));
    *entry = pa | leaf_bits(flags);
}

void paging_unmap(uint64_t root, uint64_t va, uint64_t size, struct paging_pt_hint *hint)
{
    uint64_t *small = size == PAGE_SIZE ? paging_small_entry(root, va, hint) : 0;
    if (small) {
        /* One walk for the common case: a single small page. */
        *small = 0;
        flush_range(root, va, size);
        return;
    }
    uint64_t end = va + size, start = va;
    while (va < end) {
        uint64_t *pml4e = &table(root)[idx(va, 3)];
        if (!(*pml4e & PTE_P)) {
            va = (va | ((1ull << 39) - 1)) + 1;
            continue;
        }
        uint64_t *pdpte = &table(*pml4e)[idx(va, 2)];
        if (!(*pdpte & PTE_P)) {
            va = (va | ((1ull << 30) - 1)) + 1;
            continue;
        }
        uint64_t *pde = &table(*pdpte)[idx(va, 1)];
        if (!(*pde & PTE_P)) {
            va = (va | (LARGE_PAGE_SIZE - 1)) + 1;
            continue;
        }
        if (*pde & PTE_PS) {
            if ((va & (LARGE_PAGE_SIZE - 1)) || end - va < LARGE_PAGE_SIZE)
                panic("paging: partial unmap of a large page at %#lx", va);
            *pde = 0;
            va += LARGE_PAGE_SIZE;
            continue;
        }
        table(*pde)[idx(va, 0)] = 0;
        va += PAGE_SIZE;
    }
    flush_range(root, start, size);
}

bool paging_translate(uint64_t root, uint64_t va, uint64_t *pa, unsigned *flags)
{
    uint64_t e = table(root)[idx(va, 3)];
    if (!(e & PTE_P))
        return false;
    e = table(e)[idx(va, 2)];
    if (!(e & PTE_P))
        return false;
    e = table(e)[idx(va, 1)];
    if (!(e & PTE_P))
        return false;
    uint64_t page_mask = PAGE_SIZE - 1;
    unsigned extra = 0;
    if (e & PTE_PS) {
        page_mask = LARGE_PAGE_SIZE - 1;
        extra = MAP_LARGE;
    } else {
        e = table(e)[idx(va, 0)];
        if (!(e & PTE_P))
            return false;
    }
    if (pa)
        *pa = (e & PTE_ADDR & ~page_mask) | (va & page_mask);
    if (flags)
        *flags = extra | ((e & PTE_W) ? MAP_WRITE : 0) | ((e & PTE_U) ? MAP_USER : 0) |
                 ((e & nx_bit) && nx_bit ? 0 : MAP_EXEC);
    return true;
}

int paging_create(uint64_t *root)
{
    uint64_t r = new_table();
    if (!r)
        return -ENOMEM;
    memcpy(&table(r)[PML4_USER_SLOTS], &table(kernel_root)[PML4_USER_SLOTS], 256 * sizeof(uint64_t));
    *root = r;
    return 0;
}

static void free_tables(uint64_t t, int level)
{
    uint64_t *entries = table(t);
    if (level > 0) {
        for (unsigned i = 0; i < 512; i++)
            if ((entries[i] & PTE_P) && !(entries[i] & PTE_PS))
                free_tables(entries[i] & PTE_ADDR, level - 1);
    }
    pool_free_frame(t & PTE_ADDR);
}

void paging_destroy(uint64_t root)
{
    if (read_cr3() == root)
        write_cr3(kernel_root);
    uint64_t *pml4 = table(root);
    for (unsigned i = 0; i < PML4_USER_SLOTS; i++)
        if (pml4[i] & PTE_P)
            free_tables(pml4[i] & PTE_ADDR, 2);
    pool_free_frame(root);
}

uint64_t paging_kernel_root(void) { return kernel_root; }

int paging_map_kernel(uint64_t va, uint64_t pa, uint64_t size)
{
    return paging_map_kernel_flags(va, pa, size, MAP_WRITE);
}

int paging_map_kernel_flags(uint64_t va, uint64_t pa, uint64_t size, unsigned flags)
{
    if (!range_ok(va, pa, size) || (flags & MAP_USER))
        return -EINVAL;
    if (tables_needed_walk(kernel_root, va, pa, size) > pool_free_frames())
        return -ENOMEM;
    map_range(kernel_root, va, pa, size, flags, false);
    return 0;
}

static void flush_kernel_others(uint64_t va, uint64_t size)
{
    paging_flush_others(smp_online_mask() & ~CPU_MASK(arch_cpu_id()), va, size);
}

void paging_unmap_kernel(uint64_t va, uint64_t size)
{
    paging_unmap_kernel_here(va, size);
    flush_kernel_others(va, size);
}

void paging_unmap_kernel_here(uint64_t va, uint64_t size)
{
    paging_unmap(kernel_root, va, size, 0);
    /* Kernel entries are global: only invlpg or a CR4.PGE toggle drops
     * them, whatever CR3 holds. */
    flush_here(va, size, true);
}

void paging_flush_kernel_all(uint64_t va, uint64_t size)
{
    flush_here(va, size, true);
    flush_kernel_others(va, size);
}

int paging_trampoline_create(uint64_t *root)
{
    if (pool_free_frames() < 3)
        return -ENOMEM;
    uint64_t r = new_table(), pdpt = new_table(), pd = new_table();
    memcpy(&table(r)[PML4_USER_SLOTS], &table(kernel_root)[PML4_USER_SLOTS], 256 * sizeof(uint64_t));
    /* Executable and not global: an entry left in a TLB would otherwise
     * survive CR3 loads and map the null page. */
    table(pd)[0] = PTE_P | PTE_W | PTE_PS;
    table(pdpt)[0] = pd | PTE_P | PTE_W;
    table(r)[0] = pdpt | PTE_P | PTE_W;
    *root = r;
    return 0;
}

void paging_trampoline_destroy(uint64_t root)
{
    uint64_t pdpt = table(root)[0] & PTE_ADDR;
    uint64_t pd = table(pdpt)[0] & PTE_ADDR;
    pool_free_frame(pd);
    pool_free_frame(pdpt);
    pool_free_frame(root);
}

extern char kernel_phys_start[], kernel_end[];

void paging_init(const struct mb_info *info)
{
    nx_bit = arch_has_nx() ? PTE_NX : 0;
    if (arch_has_pge())
        write_cr4(read_cr4() | CR4_PGE); /* global kernel entries */
    kernel_root = new_table();
    if (!kernel_root)
        panic("paging: no frame for the kernel's root table");

    /* Every kernel-half PML4 slot gets its PDPT now, so that address spaces
     * created later share the kernel half by copying the slots. */
    uint64_t ram_top = 0;
    for (size_t i = 0; i < info->nregions; i++)
        if (info->regions[i].type == MB_MEM_RAM && info->regions[i].base + info->regions[i].len > ram_top)
            ram_top = info->regions[i].base + info->regions[i].len;
    if (ram_top > DIRECT_MAP_LIMIT)
        ram_top = DIRECT_MAP_LIMIT;
    unsigned direct_slots = (unsigned)((ram_top + (1ull << 39) - 1) >> 39);
    for (unsigned i = PML4_USER_SLOTS; i < 512; i++) {
        bool used = i < PML4_USER_SLOTS + direct_slots || i == idx(KSTACK_AREA_BASE, 3) ||
                    i == idx(IOREMAP_AREA_BASE, 3) || i == 511;
        if (!used)
            continue;
        uint64_t t = new_table();
        if (!t)
            panic("paging: kernel frame pool too small for the kernel half");
        table(kernel_root)[i] = t | PTE_P | PTE_W;
    }

    /* Every table of the kernel stack area exists from boot, so mapping a
     * stack needs only its frames and the pool's count is the same before a
     * thread is born and after it is gone. */
    uint64_t kstack_area = (uint64_t)KSTACK_SLOTS * KSTACK_SLOT_SIZE;
    for (uint64_t va = KSTACK_AREA_BASE; va < KSTACK_AREA_BASE + kstack_area; va += LARGE_PAGE_SIZE) {
        if (tables_needed_walk(kernel_root, va, 0, PAGE_SIZE) > pool_free_frames())
            panic("paging: kernel frame pool too small for the kernel stack area");
        uint64_t *pdpt = next_level(&table(kernel_root)[idx(va, 3)], true);
        uint64_t *pd = next_level(&pdpt[idx(va, 2)], true);
        next_level(&pd[idx(va, 1)], true);
    }

    /* The kernel image, 2 MiB pages from physical 0 (covers the low boot area). */
    uint64_t image_end = ((uint64_t)kernel_end - KERNEL_VMA + LARGE_PAGE_SIZE - 1) & ~(LARGE_PAGE_SIZE - 1);
    if (tables_needed_walk(kernel_root, KERNEL_VMA, 0, image_end) > pool_free_frames())
        panic("paging: kernel frame pool too small for the image");
    map_range(kernel_root, KERNEL_VMA, 0, image_end, MAP_WRITE | MAP_EXEC, true);

    /* The direct map follows RAM, not the highest physical address. */
    for (size_t i = 0; i < info->nregions; i++) {
        struct phys_range ram;
        if (!physmem_ram_pages(&info->regions[i], &ram))
            continue;
        uint64_t va = DIRECT_MAP_BASE + ram.base;
        if (tables_needed_walk(kernel_root, va, ram.base, ram.len) > pool_free_frames())
            panic("paging: kernel frame pool too small for the direct map");
        map_range(kernel_root, va, ram.base, ram.len, MAP_WRITE, true);
    }
    write_cr3(kernel_root);
}
