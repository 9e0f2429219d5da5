/*
 * libsys layer: mutexes and condition variables (libsys/sync.h says what
 * they promise). Calls the futex system calls, or Linux's futex in host
 * builds.
 *
 * The mutex is the three-state futex mutex (free, held, contended): a
 * waiter marks the word contended before it sleeps, so the holder's unlock
 * knows to wake someone, and a woken thread takes the mutex as contended,
 * because it cannot know whether others still sleep. The kernel compares
 * the word and blocks without a switch in between, so an unlock cannot fall
 * between a waiter's look and its sleep.
 */
#include <abi/errno.h>
#include <abi/types.h>
#include <libsys/sync.h>

#ifdef TESSERA_HOST
/* Not <errno.h>: its macros would clash with the ABI's error names. */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern int *__errno_location(void);
#define LINUX_ETIMEDOUT 110

static int futex_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    struct timespec ts = { (time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u) };
    long r =
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout_ns == TIMEOUT_FOREVER ? NULL : &ts, NULL, 0);
    return r == 0 ? 0 : *__errno_location() == LINUX_ETIMEDOUT ? -ETIMEDOUT : -EAGAIN;
}

static void futex_wake(uint32_t *word, int count)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}
#else
#include <libsys/syscall.h>

static int futex_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    int64_t r = sys_futex_wait(word, expected, timeout_ns);
    return r == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

static void futex_wake(uint32_t *word, int count) { sys_futex_wake(word, (uint64_t)count); }
#endif

enum { FREE = 0, HELD = 1, CONTENDED = 2 };

static uint32_t cas(uint32_t *word, uint32_t expected, uint32_t desired)
{
    __atomic_compare_exchange_n(word, &expected, desired, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    return expected; /* the value found */
}

bool mutex_trylock(struct mutex *m) { return cas(&m->state, FREE, HELD) == FREE; }

void mutex_lock(struct mutex *m)
{
    uint32_t found = cas(&m->state, FREE, HELD);
    if (found == FREE)
        return;
    if (found != CONTENDED)
        found = __atomic_exchange_n(&m->state, CONTENDED, __ATOMIC_ACQUIRE);
    while (found != FREE) {
        futex_wait(&m->state, CONTENDED, TIMEOUT_FOREVER);
        found = __atomic_exchange_n(&m->state, CONTENDED, __ATOMIC_ACQUIRE);
    }
}

int mutex_unlock(struct mutex *m)
{
    uint32_t was = __atomic_exchange_n(&m->state, FREE, __ATOMIC_RELEASE);
    if (was == FREE)
        return -EPERM;
    if (was == CONTENDED)
        futex_wake(&m->state, 1);
    return 0;
}

int condvar_wait_timeout(struct condvar *c, struct mutex *m, uint64_t timeout_ns)
{
    uint32_t seq = __atomic_load_n(&c->seq, __ATOMIC_RELAXED);
    mutex_unlock(m);
    int r = futex_wait(&c->seq, seq, timeout_ns);
    /* Others may sleep on m too: take it as contended, so that our unlock
     * wakes one of them. */
    while (__atomic_exchange_n(&m->state, CONTENDED, __ATOMIC_ACQUIRE) != FREE)
        futex_wait(&m->state, CONTENDED, TIMEOUT_FOREVER);
    return r == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

void condvar_wait(struct condvar *c, struct mutex *m) { condvar_wait_timeout(c, m, TIMEOUT_FOREVER); }

void condvar_signal(struct condvar *c)
{
    __atomic_add_fetch(&c->seq, 1, __ATOMIC_RELEASE);
    futex_wake(&c->seq, 1);
}

void condvar_broadcast(struct condvar *c)
{
    __atomic_add_fetch(&c->seq, 1, __ATOMIC_RELEASE);
    futex_wake(&c->seq, 0x7fffffff);
}
