/*
 * Kernel layer: system calls for user-mode drivers (see core/syscalls.h and
 * kernel/device.h). Init opens a device (POWER_DEVICES) and grants the
 * handle to a driver, with the rights it needs: CONFIG to reach the
 * configuration space, MMIO to map its memory BARs (uncached, tracked in
 * the address space, revoked with the handle), DMA to pin segments for it
 * and to switch its bus mastering, which the kernel owns.
 */
#include <abi/errno.h>
#include <abi/seg.h>
#include <arch/arch.h>
#include <kernel/aspace.h>
#include <kernel/device.h>
#include <kernel/irq.h>
#include <kernel/notification.h>
#include <kernel/proc.h>
#include <kernel/segment.h>
#include <kernel/usercopy.h>
#include "syscalls.h"

#define PCI_BAR_MAX 5u

/* The device and BAR index a BAR call names; mapping needs the MMIO right. */
static int bar_arg(uint64_t h, uint64_t bar, struct device **d)
{
    SYSCALL_TRY(device_arg(h, RIGHT_MMIO, d));
    return bar > PCI_BAR_MAX ? -EINVAL : 0;
}

int64_t sys_dev_open(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    if (a0 > 0xffff || a1 > 0xffff || a2 > 0xffff)
        return -EINVAL;
    handle_t h;
    SYSCALL_TRY(syscall_reserve_handle(&h));
    struct device *d = NULL;
    int err = device_open((uint16_t)a0, (uint16_t)a1, (unsigned)a2, &d);
    return syscall_publish_handle(h, err, d, HANDLE_DEVICE, RIGHTS_DEVICE);
}

int64_t sys_dev_config_read(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d;
    SYSCALL_TRY(device_arg(a0, RIGHT_CONFIG, &d));
    if (a1 > 0xff || a2 > 4)
        return -EINVAL;
    uint32_t value;
    int err = device_config_read(d, (unsigned)a1, (unsigned)a2, &value);
    return err ? err : (int64_t)value;
}

int64_t sys_dev_config_write(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d;
    SYSCALL_TRY(device_arg(a0, RIGHT_CONFIG, &d));
    if (a1 > 0xff || a2 > 4 || a3 > 0xffffffffu)
        return -EINVAL;
    return device_config_write(d, (unsigned)a1, (unsigned)a2, (uint32_t)a3);
}

int64_t sys_dev_map_bar(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d;
    SYSCALL_TRY(bar_arg(a0, a1, &d));
    if (!user_range_valid(a2, sizeof(struct abi_bar_info)))
        return -EFAULT;
    struct aspace *as = &current->proc->aspace;
    if (aspace_device_mapped(as, d, (unsigned)a1))
        return -EEXIST;
    uint64_t phys, size;
    SYSCALL_TRY(device_bar(d, (unsigned)a1, &phys, &size));
    /* A BAR smaller than a page may share its page with another device's
     * registers: mapping it would hand those out too. */
    if (size < PAGE_SIZE)
        return -ENOTSUP;
    /* Whole pages: the driver sees the BAR from its first byte. */
    uint64_t offset = phys & (PAGE_SIZE - 1);
    uint64_t map_base = phys - offset;
    uint64_t map_size = (offset + size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    uint64_t vaddr;
    SYSCALL_TRY(aspace_map_device(as, d, a0, (unsigned)a1, map_base, map_size, &vaddr));
    struct abi_bar_info info = { .vaddr = vaddr + offset, .size = size, .phys = phys };
    int err = copy_to_user(a2, &info, sizeof(info));
    if (err)
        aspace_unmap_device(as, d, (unsigned)a1); /* nobody learnt where it is */
    return err;
}

int64_t sys_dev_unmap_bar(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d;
    SYSCALL_TRY(bar_arg(a0, a1, &d));
    return aspace_unmap_device(&current->proc->aspace, d, (unsigned)a1);
}

int64_t sys_dev_dma(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d;
    SYSCALL_TRY(device_arg(a0, RIGHT_DMA, &d));
    if (a1 > 1)
        return -EINVAL;
    int err = device_set_bus_master(d, a1 == 1);
    device_set_master_by(d, a1 == 1 && !err ? current->proc->pid : 0);
    /* Off, the device can reach nothing: what it could reach is released. */
    if (a1 == 0)
        segment_device_quiesced(d);
    return err;
}

/* Interrupts. */

int64_t sys_dev_irq(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d;
    SYSCALL_TRY(device_arg(a0, RIGHT_IRQ, &d));
    handle_t h;
    SYSCALL_TRY(syscall_reserve_handle(&h));
    struct irq_object *o = NULL;
    int err = irq_create(d, current->proc->account, &o);
    return syscall_publish_handle(h, err, o, HANDLE_IRQ, RIGHTS_IRQ);
}

int64_t sys_irq_bind(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct irq_object *o;
    struct notification *n;
    SYSCALL_TRY(syscall_binding_args(a0, HANDLE_IRQ, RIGHT_CONTROL, (void **)&o, a1, a2, &n));
    return irq_bind(o, n, (unsigned)a2);
}

int64_t sys_irq_ack(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct irq_object *o;
    int err = irq_arg(a0, RIGHT_CONTROL, &o);
    return err ? err : irq_ack(o);
}

int64_t sys_dev_fault_bind(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d;
    struct notification *n;
    SYSCALL_TRY(syscall_binding_args(a0, HANDLE_DEVICE, RIGHT_DMA, (void **)&d, a1, a2, &n));
    return device_fault_bind(d, n, (unsigned)a2, current->proc->pid);
}
