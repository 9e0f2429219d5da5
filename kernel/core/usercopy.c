/*
 * Kernel layer: user pointer checks and copies (see kernel/usercopy.h).
 * A range is first checked to lie wholly in the user half; the copy itself
 * runs in arch code whose page faults are fixed up into -EFAULT (arch
 * usercopy.asm), so a buffer unmapped at any moment, by another thread or
 * by the call itself, costs the caller an error and the kernel nothing.
 */
#include <abi/errno.h>
#include <abi/types.h>
#include <arch/arch.h>
#include <kernel/usercopy.h>

bool user_range_valid(uint64_t addr, size_t len)
{
    if (len == 0)
        return addr <= ABI_USER_TOP;
    uint64_t end = addr + len;
    return end > addr && addr >= ABI_USER_BASE && end <= ABI_USER_TOP;
}

int copy_from_user(void *dst, uint64_t src, size_t len)
{
    if (!user_range_valid(src, len))
        return -EFAULT;
    return arch_user_copy(dst, (const void *)src, len);
}

int copy_to_user(uint64_t dst, const void *src, size_t len)
{
    if (!user_range_valid(dst, len))
        return -EFAULT;
    return arch_user_copy((void *)dst, src, len);
}

int zero_user(uint64_t dst, size_t len)
{
    if (!user_range_valid(dst, len))
        return -EFAULT;
    return arch_user_zero((void *)dst, len);
}
