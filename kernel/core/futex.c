/*
 * Kernel layer: futexes (see kernel/futex.h). Waiters sit in one of
 * FUTEX_BUCKETS wait queues chosen by a hash of (process, address); a wake
 * scans its bucket for threads of the same process waiting on the same
 * address. Checking the word and blocking happen with no switch in between
 * (the kernel is not preempted there), so a wake cannot fall between them.
 */
#include <abi/errno.h>
#include <kernel/futex.h>
#include <kernel/proc.h>
#include <kernel/sched.h>
#include <kernel/usercopy.h>

#define FUTEX_BUCKETS 64u

static struct wait_queue buckets[FUTEX_BUCKETS];

static struct wait_queue *bucket(const struct process *p, uint64_t addr)
{
    uint64_t key = (uint64_t)(uintptr_t)p ^ (addr * 0x9e3779b97f4a7c15ull);
    return &buckets[(key >> 32) % FUTEX_BUCKETS];
}

struct futex_key {
    const struct process *proc;
    uint64_t addr;
};

static bool same_word(const struct thread *t, const void *ctx)
{
    const struct futex_key *k = ctx;
    return t->proc == k->proc && t->futex_addr == k->addr;
}

int64_t futex_wait(uint64_t addr, uint32_t expected, uint64_t timeout_ns)
{
    if (addr & 3)
        return -EINVAL;
    uint32_t now;
    int err = copy_from_user(&now, addr, sizeof(now));
    if (err)
        return err;
    if (now != expected)
        return -EAGAIN;
    current->futex_addr = addr;
    int64_t r = sched_block(bucket(current->proc, addr), timeout_ns);
    current->futex_addr = 0;
    return r;
}

int64_t futex_wake(uint64_t addr, uint64_t count)
{
    if (addr & 3)
        return -EINVAL;
    if (!user_range_valid(addr, sizeof(uint32_t)))
        return -EFAULT;
    struct futex_key key = { current->proc, addr };
    unsigned max = count > UINT32_MAX ? UINT32_MAX : (unsigned)count;
    return sched_wake_matching(bucket(current->proc, addr), same_word, &key, max, 0);
}
