/*
 * Kernel layer: moving bytes across the user boundary. Every pointer a
 * system call receives goes through these: the range must lie in the user
 * half and not wrap (else -EFAULT, nothing copied), and a page that is not
 * mapped, or not writable for a copy out, ends the copy with -EFAULT
 * (possibly after part of it: a caller that needs all or nothing copies
 * into the kernel first, or out of it last).
 */
#ifndef KERNEL_USERCOPY_H
#define KERNEL_USERCOPY_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <abi/errno.h>
#include <abi/types.h>
#include <arch/arch.h>

/* Inline, as are the copies: every message is copied in and out. */
static inline bool user_range_valid(uint64_t addr, size_t len)
{
    if (len == 0)
        return addr <= ABI_USER_TOP;
    /* addr + len <= ABI_USER_TOP, without a sum that could wrap: two
     * compares when len is a constant. */
    return len <= ABI_USER_TOP && addr >= ABI_USER_BASE && addr <= ABI_USER_TOP - len;
}

static inline int copy_from_user(void *dst, uint64_t src, size_t len)
{
    if (!user_range_valid(src, len))
        return -EFAULT;
    return arch_user_copy(dst, (const void *)src, len);
}

static inline int copy_to_user(uint64_t dst, const void *src, size_t len)
{
    if (!user_range_valid(dst, len))
        return -EFAULT;
    return arch_user_copy((void *)dst, src, len);
}

int zero_user(uint64_t dst, size_t len);

#endif
