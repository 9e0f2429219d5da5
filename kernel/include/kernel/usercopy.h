/*
 * Kernel layer: moving bytes across the user boundary. Every pointer a
 * system call receives goes through these: the range must lie in the user
 * half, must not wrap, and every page must be mapped for user access
 * (writable, for copies out). Anything else is -EFAULT and nothing is copied.
 */
#ifndef KERNEL_USERCOPY_H
#define KERNEL_USERCOPY_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

bool user_range_ok(uint64_t addr, size_t len, bool write);
int copy_from_user(void *dst, uint64_t src, size_t len);
int copy_to_user(uint64_t dst, const void *src, size_t len);

#endif
