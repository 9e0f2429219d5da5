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

int zero_user(uint64_t dst, size_t len)
{
    if (!user_range_valid(dst, len))
        return -EFAULT;
    return arch_user_zero((void *)dst, len);
}
