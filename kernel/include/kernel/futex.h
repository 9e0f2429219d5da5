/*
 * Kernel layer: waiting on a word of user memory (futexes), the primitive
 * libsys builds its mutexes and condition variables on. A thread waits on
 * an address of its own process while the 32-bit word there holds an
 * expected value; another thread of the process wakes waiters on that
 * address. Words are private to a process (segments have one owner).
 */
#ifndef KERNEL_FUTEX_H
#define KERNEL_FUTEX_H

#include <stdint.h>

/* 0 when woken, -EAGAIN if the word did not hold `expected`, -ETIMEDOUT,
 * -EFAULT, -EINVAL (unaligned). */
int64_t futex_wait(uint64_t addr, uint32_t expected, uint64_t timeout_ns);
/* Wakes up to count waiters on addr in the calling process; returns how many. */
int64_t futex_wake(uint64_t addr, uint64_t count);

#endif
