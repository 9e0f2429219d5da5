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

bool user_range_valid(uint64_t addr, size_t len);
int copy_from_user(void *dst, uint64_t src, size_t len);
int copy_to_user(uint64_t dst, const void *src, size_t len);
int zero_user(uint64_t dst, size_t len);

#endif
