/*
 * Kernel layer: system calls for user-mode drivers (see core/syscalls.h and
 * kernel/device.h). Init opens a device (boot right) and grants the handle
 * to a driver, which may then reach the device's configuration space and
 * map its memory BARs, uncached, into its own address space.
 */
#include <abi/errno.h>
#include <abi/seg.h>
#include <arch/arch.h>
#include <kernel/device.h>
#include <kernel/paging.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/usercopy.h>
#include "syscalls.h"

static struct device *device_arg(uint64_t h) { return handle_lookup(&current->proc->handles, h, HANDLE_DEVICE); }

int64_t sys_dev_open(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    if (a0 > 0xffff || a1 > 0xffff || a2 > 0xffff)
        return -EINVAL;
    handle_t h;
    int err = handle_install(&current->proc->handles, 0, HANDLE_RESERVED, &h);
    if (err)
        return err;
    struct device *d;
    err = device_open((uint16_t)a0, (uint16_t)a1, (unsigned)a2, &d);
    if (err) {
        handle_remove(&current->proc->handles, h, 0);
        return err;
    }
    handle_fill(&current->proc->handles, h, d, HANDLE_DEVICE);
    return (int64_t)h;
}

int64_t sys_dev_config_read(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d = device_arg(a0);
    if (!d)
        return -EBADH;
    if (a1 > 0xff || a2 > 4)
        return -EINVAL;
    uint32_t value;
    int err = device_config_read(d, (unsigned)a1, (unsigned)a2, &value);
    return err ? err : (int64_t)value;
}

int64_t sys_dev_config_write(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d = device_arg(a0);
    if (!d)
        return -EBADH;
    if (a1 > 0xff || a2 > 4 || a3 > 0xffffffffu)
        return -EINVAL;
    return device_config_write(d, (unsigned)a1, (unsigned)a2, (uint32_t)a3);
}

int64_t sys_dev_map_bar(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct device *d = device_arg(a0);
    if (!d)
        return -EBADH;
    if (a1 > 5)
        return -EINVAL;
    if (!user_range_ok(a2, sizeof(struct abi_bar_info), true))
        return -EFAULT;
    uint64_t phys, size;
    int err = device_bar(d, (unsigned)a1, &phys, &size);
    if (err)
        return err;
    /* A BAR smaller than a page may share its page with another device's
     * registers: mapping it would hand those out too. */
    if (size < PAGE_SIZE)
        return -ENOTSUP;
    /* Whole pages: the driver sees the BAR from its first byte. */
    uint64_t offset = phys & (PAGE_SIZE - 1);
    uint64_t map_base = phys - offset;
    uint64_t map_size = (offset + size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    struct process *p = current->proc;
    uint64_t vaddr;
    err = vmareas_alloc(&p->areas, map_size, &vaddr);
    if (err)
        return err;
    err = paging_map(p->root, vaddr, map_base, map_size, MAP_USER | MAP_WRITE | MAP_UNCACHED);
    if (err) {
        vmareas_free(&p->areas, vaddr, 0);
        return err;
    }
    struct abi_bar_info info = { .vaddr = vaddr + offset, .size = size, .phys = phys };
    return copy_to_user(a2, &info, sizeof(info));
}
