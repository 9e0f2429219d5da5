/*
 * libsys layer: mutexes and condition variables for the threads of one
 * process. Built on the kernel's futex words (SYS_FUTEX_WAIT and
 * SYS_FUTEX_WAKE: sleep while a word holds a value, wake who sleeps on it);
 * on the host, for the unit tests, on Linux's futex. Used by malloc's default
 * heap and by any program with several threads.
 *
 * A mutex is one 32-bit word: 0 free, 1 held, 2 held and perhaps waited
 * for. Taking a free mutex or releasing one nobody waits for is a single
 * atomic instruction and no system call; only contention sleeps in the
 * kernel. Not recursive: a thread that takes a mutex it holds waits for
 * ever. Not fair: a thread woken by an unlock competes with newcomers.
 *
 * A condition variable is a sequence number: a waiter notes it, releases
 * the mutex, and sleeps until the number moves; signal and broadcast move it
 * and wake one or all. Waits may return without a signal (as with POSIX):
 * callers re-check their condition in a loop.
 *
 * Zero-filled memory is a free mutex and a condition variable with no
 * waiters, so static ones need no initialisation.
 */
#ifndef LIBSYS_SYNC_H
#define LIBSYS_SYNC_H

#include <stdbool.h>
#include <stdint.h>

struct mutex {
    uint32_t state;
};

struct condvar {
    uint32_t seq;
};

#define MUTEX_INIT                                                                                                     \
    {                                                                                                                  \
        0                                                                                                              \
    }
#define CONDVAR_INIT                                                                                                   \
    {                                                                                                                  \
        0                                                                                                              \
    }

void mutex_lock(struct mutex *m);
/* Takes the mutex if it is free; never waits. */
bool mutex_trylock(struct mutex *m);
/* 0, or -EPERM if the mutex was not held (it is left free). */
int mutex_unlock(struct mutex *m);

/* Releases m (which the caller holds), waits for a signal and takes m again. */
void condvar_wait(struct condvar *c, struct mutex *m);
/* As condvar_wait, for at most timeout_ns: 0, or -ETIMEDOUT (m is held
 * again either way). */
int condvar_wait_timeout(struct condvar *c, struct mutex *m, uint64_t timeout_ns);
void condvar_signal(struct condvar *c);
void condvar_broadcast(struct condvar *c);

#endif
