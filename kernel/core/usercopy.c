/*
 * Kernel layer: user pointer checks and copies (see kernel/usercopy.h). The
 * check walks the current address space's page tables; because the kernel is
 * single-CPU and not preemptible, nothing can unmap the range between the
 * check and the copy.
 */
#include <abi/errno.h>
#include <abi/types.h>
#include <arch/layout.h>
#include <common/string.h>
#include <kernel/paging.h>
#include <kernel/proc.h>
#include <kernel/usercopy.h>

bool user_range_ok(uint64_t addr, size_t len, bool write)
{
    if (len == 0)
        return addr <= ABI_USER_TOP;
    uint64_t end = addr + len;
    if (end < addr || addr < ABI_USER_BASE || end > ABI_USER_TOP)
        return false;
    if (!current->proc)
        return false;
    for (uint64_t page = addr & ~(PAGE_SIZE - 1); page < end; page += PAGE_SIZE) {
        unsigned flags;
        if (!paging_translate(current->proc->root, page, 0, &flags))
            return false;
        if (!(flags & MAP_USER) || (write && !(flags & MAP_WRITE)))
            return false;
    }
    return true;
}

int copy_from_user(void *dst, uint64_t src, size_t len)
{
    if (!user_range_ok(src, len, false))
        return -EFAULT;
    memcpy(dst, (const void *)src, len);
    return 0;
}

int copy_to_user(uint64_t dst, const void *src, size_t len)
{
    if (!user_range_ok(dst, len, true))
        return -EFAULT;
    memcpy((void *)dst, src, len);
    return 0;
}
