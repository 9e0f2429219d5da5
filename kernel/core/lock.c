/*
 * Kernel layer: the kernel lock and spinlocks (kernel/lock.h has the
 * locking model). Called on every way into and out of the kernel.
 */
#include <arch/arch.h>
#include <kernel/lock.h>

static void relax(void)
{
    /* The holder may wait for this CPU to acknowledge a call (a TLB
     * shootdown) while this CPU, interrupts off, waits for the lock. */
    smp_serve_calls();
    __asm__ volatile("pause");
}

void spin_lock(struct spinlock *l)
{
    uint32_t ticket = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
    while (__atomic_load_n(&l->serving, __ATOMIC_ACQUIRE) != ticket)
        relax();
}

bool spin_trylock(struct spinlock *l)
{
    uint32_t serving = __atomic_load_n(&l->serving, __ATOMIC_RELAXED);
    uint32_t expected = serving;
    return __atomic_compare_exchange_n(&l->next, &expected, serving + 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

void spin_unlock(struct spinlock *l) { __atomic_store_n(&l->serving, l->serving + 1, __ATOMIC_RELEASE); }

static struct spinlock big;
static volatile unsigned owner; /* holding CPU's id + 1; 0 when free */
static uint64_t acquired, contended, wait_ns;

/* Out of line: every system call takes the lock, and most find it free. */
static void __attribute__((noinline)) wait_for_turn(uint32_t ticket)
{
    uint64_t start = arch_time_ns();
    while (__atomic_load_n(&big.serving, __ATOMIC_ACQUIRE) != ticket)
        relax();
    contended++;
    wait_ns += arch_time_ns() - start;
}

void kernel_lock(void)
{
    uint32_t ticket = __atomic_fetch_add(&big.next, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&big.serving, __ATOMIC_ACQUIRE) != ticket)
        wait_for_turn(ticket);
    owner = arch_cpu_id() + 1;
    acquired++;
}

void kernel_unlock(void)
{
    owner = 0;
    spin_unlock(&big);
}

bool kernel_lock_held(void) { return owner == arch_cpu_id() + 1; }

void kernel_lock_break(void)
{
    kernel_unlock();
    arch_irq_enable();
    __asm__ volatile("nop");
    arch_irq_disable();
    kernel_lock();
}

void kernel_lock_stats(uint64_t *acquired_out, uint64_t *contended_out, uint64_t *wait_ns_out)
{
    *acquired_out = acquired;
    *contended_out = contended;
    *wait_ns_out = wait_ns;
}
