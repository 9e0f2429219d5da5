/*
 * Architecture layer (x86-64): the kernel's window for device registers
 * and firmware tables (see kernel/ioremap.h). Addresses come from an area
 * allocator (kernel/vmarea.h) over IOREMAP_AREA_*, whose PML4 slot
 * paging_init fills at boot, so every address space sees the window's
 * mappings. Register pages are mapped PCD|PWT (uncached, strongly ordered),
 * tables write-back and read-only; both global and not executable.
 */
#include <abi/errno.h>
#include <arch/arch.h>
#include <kernel/console.h>
#include <kernel/ioremap.h>
#include <kernel/paging.h>
#include <kernel/pool.h>
#include <kernel/vmarea.h>

static struct vmareas window;
static bool window_ready;
static unsigned phys_bits;

/* CPUID 0x80000008 gives the physical address width; 36 bits when the CPU
 * does not say (the architectural minimum with PAE). */
static unsigned physical_address_bits(void)
{
    if (!phys_bits) {
        uint32_t a, b, c, d;
        cpuid(0x80000000u, 0, &a, &b, &c, &d);
        phys_bits = 36;
        if (a >= 0x80000008u) {
            cpuid(0x80000008u, 0, &a, &b, &c, &d);
            if ((a & 0xff) >= 32 && (a & 0xff) <= 52)
                phys_bits = a & 0xff;
        }
    }
    return phys_bits;
}

bool ioremap_phys_ok(uint64_t phys, uint64_t size)
{
    uint64_t limit = 1ull << physical_address_bits();
    return size && phys < limit && size <= limit - phys;
}

int ioremap(uint64_t phys, uint64_t size, enum ioremap_kind kind, void **out)
{
    if (!ioremap_phys_ok(phys, size))
        return -EINVAL;
    uint64_t base = phys & ~(PAGE_SIZE - 1);
    uint64_t len = (phys + size - base + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    if (len > IOREMAP_AREA_SIZE)
        return -ENOSPC;
    int err;
    if (!window_ready) {
        if ((err = vmareas_init(&window, IOREMAP_AREA_BASE, IOREMAP_AREA_BASE + IOREMAP_AREA_SIZE,
                                &pool_vmarea_pages)) != 0)
            return err;
        window_ready = true;
    }
    uint64_t va;
    if ((err = vmareas_alloc(&window, len, &va)) != 0)
        return err;
    unsigned flags = kind == IOREMAP_MMIO ? MAP_WRITE | MAP_UNCACHED : 0;
    if ((err = paging_map_kernel_flags(va, base, len, flags)) != 0) {
        vmareas_free(&window, va, 0);
        return err;
    }
    *out = (void *)(va + (phys - base));
    return 0;
}

void iounmap(void *va)
{
    uint64_t start, size;
    VERIFY(window_ready && vmareas_find(&window, (uint64_t)va, &start, &size) == 0);
    paging_unmap_kernel(start, size);
    VERIFY(vmareas_free(&window, start, 0) == 0);
}
