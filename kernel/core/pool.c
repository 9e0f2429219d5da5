/*
 * Kernel layer: the kernel frame pool (see kernel/pool.h). Free frames form
 * a singly linked stack threaded through the frames themselves (reached via
 * the direct map), so allocation and free are O(1) and the pool needs no
 * metadata of its own.
 */
#include <arch/arch.h>
#include <kernel/console.h>
#include <kernel/pool.h>
#include <kernel/vmarea.h>

static uint64_t free_head; /* physical address of the first free frame, 0 if none */
static uint64_t free_count, total_count, pool_lo, pool_hi;

void pool_init(uint64_t base, uint64_t size)
{
    pool_lo = base;
    pool_hi = base + size;
    for (uint64_t f = pool_hi; f > pool_lo;) {
        f -= PAGE_SIZE;
        *(uint64_t *)phys_to_virt(f) = free_head;
        free_head = f;
        free_count++;
    }
    total_count = free_count;
}

uint64_t pool_alloc_frame(void)
{
    uint64_t f = free_head;
    if (!f)
        return 0;
    free_head = *(uint64_t *)phys_to_virt(f);
    free_count--;
    return f;
}

void pool_free_frame(uint64_t phys)
{
    VERIFY(phys >= pool_lo && phys < pool_hi && !(phys & (PAGE_SIZE - 1)));
    *(uint64_t *)phys_to_virt(phys) = free_head;
    free_head = phys;
    free_count++;
}

uint64_t pool_free_frames(void) { return free_count; }
uint64_t pool_total_frames(void) { return total_count; }
uint64_t pool_base(void) { return pool_lo; }
uint64_t pool_size(void) { return pool_hi - pool_lo; }

static void *vmarea_page_get(void *ctx)
{
    (void)ctx;
    uint64_t frame = pool_alloc_frame();
    if (!frame)
        return 0;
    arch_zero_pages(phys_to_virt(frame), PAGE_SIZE);
    return phys_to_virt(frame);
}

static void vmarea_page_put(void *ctx, void *page)
{
    (void)ctx;
    pool_free_frame(virt_to_phys(page));
}

const struct vmarea_pages pool_vmarea_pages = { vmarea_page_get, vmarea_page_put, 0 };
