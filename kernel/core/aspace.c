/*
 * Kernel layer: address spaces (see kernel/aspace.h). Called by segment.c,
 * the device system calls and proc.c.
 *
 * Page-table accounting. paging_map creates tables from the pool; how many
 * a mapping will take is known beforehand (paging_tables_needed), so a
 * reservation charges that many frames and aspace_map measures what the
 * pool actually gave (two reservations pending in one address space may
 * share tables) and refunds the difference. The kernel lock is held
 * between the measurement's two readings, so nothing else takes frames in
 * between.
 *
 * TLB shootdown. Each address space knows the CPUs that may cache its
 * translations: those that have loaded it and not loaded another since
 * (aspace_activate keeps the mask, under the kernel lock). Whatever takes a
 * translation away (unmapping, suspending for a migration, a large page
 * replacing an emptied table) flushes this CPU and then every CPU of the
 * mask, and waits for them, before it returns: from then on no CPU can
 * reach the old frames through this address space.
 */
#include <abi/errno.h>
#include <arch/arch.h>
#include <kernel/account.h>
#include <kernel/aspace.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/kmem.h>
#include <kernel/paging.h>
#include <kernel/pool.h>
#include <kernel/slab.h>

static struct slab_cache mapping_cache = SLAB_CACHE("device mapping", sizeof(struct device_mapping));
static struct aspace *loaded[SMP_MAX_CPUS]; /* the address space each CPU has in CR3 (0: the kernel's) */

static void flush_others(struct aspace *as, uint64_t va, uint64_t size)
{
    uint64_t others = as->cpus & ~CPU_MASK(arch_cpu_id());
    if (others)
        paging_flush_others(others, va, size);
}

/* Frees the tables a mapping replaced, once no CPU can cache them. */
static uint64_t release_tables(struct aspace *as, uint64_t va, uint64_t size)
{
    flush_others(as, va, size);
    return (uint64_t)paging_release_tables() * PAGE_SIZE;
}

static void *area_page_get(void *ctx)
{
    struct aspace *as = ctx;
    void *page;
    return kmem_frame_alloc(as->account, &page) == 0 ? page : 0;
}

static void area_page_put(void *ctx, void *page)
{
    struct aspace *as = ctx;
    kmem_frame_free(as->account, page);
}

int aspace_init(struct aspace *as, struct account *account)
{
    *as = (struct aspace){ .account = account };
    int err = kmem_charge(account, PAGE_SIZE, 1);
    if (err)
        return err;
    err = paging_create(&as->root);
    if (err) {
        kmem_uncharge(account, PAGE_SIZE);
        return err;
    }
    as->table_bytes = PAGE_SIZE;
    const struct vmarea_pages pages = { area_page_get, area_page_put, as };
    err = vmareas_init(&as->areas, ABI_USER_BASE, ABI_USER_TOP, &pages);
    if (err) {
        paging_destroy(as->root);
        kmem_uncharge(account, PAGE_SIZE);
        as->root = 0;
        return err == -EDQUOT ? err : -ENOMEM;
    }
    return 0;
}

void aspace_destroy(struct aspace *as)
{
    if (!as->root)
        return;
    /* Its threads are gone, and a CPU switches away from an address space
     * when it leaves its last thread: only this one may still have it. */
    VERIFY((as->cpus & ~CPU_MASK(arch_cpu_id())) == 0);
    if (loaded[arch_cpu_id()] == as)
        aspace_activate(0);
    while (as->device_maps)
        aspace_unmap_device(as, as->device_maps->device, as->device_maps->bar);
    vmareas_destroy(&as->areas);
    paging_pt_hint_forget(&as->pt_hint);
    paging_destroy(as->root);
    kmem_uncharge(as->account, as->table_bytes);
    as->table_bytes = 0;
    as->root = 0;
}

void aspace_activate(struct aspace *as)
{
    unsigned me = arch_cpu_id();
    struct aspace *old = loaded[me];
    if (old == as)
        return;
    cpu_mask_t mask = CPU_MASK(me);
    if (old)
        old->cpus &= ~mask;
    loaded[me] = as;
    if (!as) {
        paging_activate(paging_kernel_root());
        return;
    }
    as->cpus |= mask;
    paging_activate(as->root);
}

int aspace_reserve(struct aspace *as, uint64_t vaddr, uint64_t size, uint64_t phys, struct aspace_reservation *out)
{
    int err;
    if (vaddr) {
        err = vmareas_reserve(&as->areas, vaddr, size);
        if (err == -ERANGE || err == -EINVAL || err == -EEXIST)
            err = -EFAULT;
    } else {
        /* A segment over ABI_SEG_UNALIGNED_MAX goes at its memory's offset
         * from a 2 MiB boundary, so that wherever it was placed its inside
         * maps with large pages (memsrv's compaction moves a few MiB at a
         * time, never one that big). A smaller one is 2 MiB aligned: if
         * its memory is not, it maps small (at most 16,384 entries) until
         * memsrv's realignment moves the memory, and the remap at the same
         * address then has large pages. */
        uint64_t phase = size > ABI_SEG_UNALIGNED_MAX ? phys : 0;
        err = vmareas_alloc_phased(&as->areas, size, phase, &vaddr);
    }
    if (err)
        return err;
    /* The common case, one small page into a table that exists, walks the
     * tables once here, and owes nothing. */
    uint64_t *small_entry = size == PAGE_SIZE ? paging_small_entry(as->root, vaddr, &as->pt_hint) : 0;
    uint64_t tables = small_entry ? 0 : paging_tables_needed(as->root, vaddr, phys, size);
    if (tables && (err = kmem_charge(as->account, tables * PAGE_SIZE, tables)) != 0) {
        vmareas_free(&as->areas, vaddr, 0);
        return err;
    }
    *out = (struct aspace_reservation){
        .vaddr = vaddr, .size = size, .table_bytes = tables * PAGE_SIZE, .small_entry = small_entry
    };
    return 0;
}

void aspace_cancel(struct aspace *as, const struct aspace_reservation *r)
{
    vmareas_free(&as->areas, r->vaddr, 0);
    kmem_uncharge(as->account, r->table_bytes);
}

/* Maps and settles the table charge: `charged` bytes were paid beforehand. */
static void map_and_settle(struct aspace *as, uint64_t vaddr, uint64_t phys, uint64_t size, unsigned flags,
                           uint64_t charged)
{
    uint64_t before = pool_free_frames();
    if (size >= LARGE_PAGE_SIZE)
        paging_pt_hint_forget(&as->pt_hint); /* a large page may replace that table */
    VERIFY(paging_map(as->root, vaddr, phys, size, flags) == 0);
    uint64_t after = pool_free_frames();
    /* The common case, a small segment into tables that exist: no table
     * was paid for or taken, and below 2 MiB no large page replaced one
     * (paging_release_tables), so there is nothing to settle and no CPU to
     * flush: a new translation replaces none that a TLB may hold. */
    if (!charged && size < LARGE_PAGE_SIZE) {
        VERIFY3U(after, ==, before);
        return;
    }
    uint64_t taken = before >= after ? (before - after) * PAGE_SIZE : 0;
    uint64_t returned = after > before ? (after - before) * PAGE_SIZE : 0;
    /* A large page may have replaced an emptied table: a frame back. */
    if (size >= LARGE_PAGE_SIZE)
        returned += release_tables(as, vaddr, size);
    if (taken && returned) {
        uint64_t both = taken < returned ? taken : returned;
        taken -= both;
        returned -= both;
    }
    VERIFY3U(taken, <=, charged);
    kmem_uncharge(as->account, charged - taken);
    as->table_bytes += taken;
    if (returned) {
        VERIFY3U(returned, <=, as->table_bytes);
        as->table_bytes -= returned;
        kmem_uncharge(as->account, returned);
    }
}

void aspace_map(struct aspace *as, const struct aspace_reservation *r, uint64_t phys, unsigned flags)
{
    if (r->small_entry) {
        paging_map_small_entry(r->small_entry, phys, flags);
        return;
    }
    map_and_settle(as, r->vaddr, phys, r->size, flags, r->table_bytes);
}

void aspace_unmap(struct aspace *as, uint64_t vaddr, uint64_t size)
{
    paging_unmap(as->root, vaddr, size, &as->pt_hint);
    flush_others(as, vaddr, size);
    if (!as->ending)
        VERIFY(vmareas_free(&as->areas, vaddr, 0) == 0);
}

void aspace_suspend(struct aspace *as, uint64_t vaddr, uint64_t size)
{
    paging_unmap(as->root, vaddr, size, &as->pt_hint);
    flush_others(as, vaddr, size);
}

/* At worst one page table per 2 MiB window the range touches, where large
 * pages become small ones, plus a directory at each end. */
static uint64_t resume_tables_worst(uint64_t size) { return size / LARGE_PAGE_SIZE + 4; }

bool aspace_can_resume(uint64_t size) { return kmem_pool_has(0, resume_tables_worst(size)); }

/* A suspended small page whose page table is still there (the common
 * case: only a large mapping over its window could have replaced it, and
 * the area is held): its entry written again, no table to pay for or
 * settle, and no CPU to flush (the suspension did). */
static bool resume_small(struct aspace *as, uint64_t vaddr, uint64_t size, uint64_t phys, unsigned flags)
{
    uint64_t *entry = size == PAGE_SIZE ? paging_small_entry(as->root, vaddr, &as->pt_hint) : 0;
    if (entry)
        paging_map_small_entry(entry, phys, flags);
    return entry != 0;
}

void aspace_resume(struct aspace *as, uint64_t vaddr, uint64_t size, uint64_t phys, unsigned flags)
{
    if (resume_small(as, vaddr, size, phys, flags))
        return;
    uint64_t worst = resume_tables_worst(size);
    VERIFY(kmem_pool_has(0, worst));
    if (as->account)
        account_charge_force(as->account, RES_KMEM, worst * PAGE_SIZE);
    map_and_settle(as, vaddr, phys, size, flags, worst * PAGE_SIZE);
}

void aspace_restore(struct aspace *as, uint64_t vaddr, uint64_t size, uint64_t phys, unsigned flags)
{
    /* The same frames in the same tables (a large page comes back as the
     * directory entry it was): nothing to pay. */
    if (!resume_small(as, vaddr, size, phys, flags))
        map_and_settle(as, vaddr, phys, size, flags, 0);
}

bool aspace_translate(struct aspace *as, uint64_t vaddr, uint64_t *phys, unsigned *flags)
{
    return paging_translate(as->root, vaddr, phys, flags);
}

/* ---- device mappings ------------------------------------------------ */

static struct device_mapping **find_device_map(struct aspace *as, const struct device *d, unsigned bar)
{
    struct device_mapping **link = &as->device_maps;
    while (*link && !((*link)->device == d && (*link)->bar == bar))
        link = &(*link)->next;
    return link;
}

bool aspace_device_mapped(const struct aspace *as, const struct device *d, unsigned bar)
{
    return *find_device_map((struct aspace *)as, d, bar) != 0;
}

int aspace_map_device(struct aspace *as, struct device *d, handle_t h, unsigned bar, uint64_t phys, uint64_t size,
                      uint64_t *vaddr)
{
    if (aspace_device_mapped(as, d, bar))
        return -EEXIST;
    int err = kmem_charge(as->account, sizeof(struct device_mapping), 1);
    if (err)
        return err;
    struct device_mapping *m = slab_alloc(&mapping_cache);
    if (!m) {
        kmem_uncharge(as->account, sizeof(struct device_mapping));
        return -ENOMEM;
    }
    struct aspace_reservation r;
    err = aspace_reserve(as, 0, size, phys, &r);
    if (err) {
        slab_free(&mapping_cache, m);
        kmem_uncharge(as->account, sizeof(struct device_mapping));
        return err;
    }
    aspace_map(as, &r, phys, MAP_USER | MAP_WRITE | MAP_UNCACHED);
    device_get(d);
    *m = (struct device_mapping){
        .device = d, .handle = h, .bar = bar, .vaddr = r.vaddr, .size = size, .next = as->device_maps
    };
    as->device_maps = m;
    *vaddr = r.vaddr;
    return 0;
}

int aspace_unmap_device(struct aspace *as, struct device *d, unsigned bar)
{
    struct device_mapping **link = find_device_map(as, d, bar);
    struct device_mapping *m = *link;
    if (!m)
        return -ENOENT;
    *link = m->next;
    aspace_unmap(as, m->vaddr, m->size);
    device_put(m->device);
    slab_free(&mapping_cache, m);
    kmem_uncharge(as->account, sizeof(struct device_mapping));
    return 0;
}

void aspace_revoke_handle(struct aspace *as, handle_t h)
{
    struct device_mapping *m = as->device_maps;
    while (m) {
        struct device_mapping *next = m->next;
        if (m->handle == h)
            aspace_unmap_device(as, m->device, m->bar);
        m = next;
    }
}
