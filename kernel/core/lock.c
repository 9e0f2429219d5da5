/*
 * Kernel layer: the kernel lock and spinlocks (kernel/lock.h has the
 * locking model). Called on every way into and out of the kernel.
 */
#include <arch/arch.h>
#include <kernel/console.h>
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

/*
 * The kernel lock is test-and-test-and-set, not a ticket lock: a ticket
 * lock hands itself to the next ticket in line, and under a hypervisor
 * that preempts virtual CPUs (more virtual CPUs than host cores, common
 * under QEMU) a waiter that is not running then stalls every CPU
 * behind it until the host runs it again. Measured with two 4-CPU guests
 * on 2 host cores, 1,000 system calls went from about 1 ms to 9-29 s that
 * way. Whoever finds the lock free takes it; so that no CPU starves, one
 * that has waited STARVE_SPINS marks itself (`starving`), and then only it
 * may take the lock next.
 */
#define STARVE_SPINS 20000u

/* Every hold is bounded (kernel/lock.h), so a wait this long means the
 * holder is stuck: the waiter says so, with where the holder is, and goes
 * on waiting (again every as long). */
#define STUCK_REPORT_NS (30ull * 1000000000ull)

static uint32_t held;           /* 1 while a CPU holds the lock */
static uint32_t starving;       /* the id + 1 of a CPU that waited too long, or 0 */
static uint32_t waiting;        /* CPUs in wait_for_turn */
static volatile unsigned owner; /* holding CPU's id + 1; 0 when free */
static uint64_t acquired, contended, wait_ns;

static bool may_take(uint32_t self)
{
    uint32_t first = __atomic_load_n(&starving, __ATOMIC_RELAXED);
    return !__atomic_load_n(&held, __ATOMIC_RELAXED) && (first == 0 || first == self) &&
           !__atomic_exchange_n(&held, 1, __ATOMIC_ACQUIRE);
}

static void __attribute__((noinline, cold)) report_stuck(uint64_t waited_ns)
{
    unsigned holder = owner;
    uint64_t seconds = waited_ns / 1000000000ull;
    if (holder == 0) {
        kprintf("lock: CPU %u has waited %lu s for the kernel lock, which no CPU holds now\n", arch_cpu_id(), seconds);
        return;
    }
    kprintf("lock: CPU %u has waited %lu s for the kernel lock, which CPU %u holds\n", arch_cpu_id(), seconds,
            holder - 1);
    smp_report_where(CPU_MASK(holder - 1));
}

/* Out of line: every system call takes the lock, and most find it free. */
static void __attribute__((noinline)) wait_for_turn(uint32_t self)
{
    uint64_t start = arch_time_ns(), report_at = start + STUCK_REPORT_NS;
    __atomic_add_fetch(&waiting, 1, __ATOMIC_RELAXED);
    for (unsigned spins = 0; !may_take(self); spins++) {
        uint32_t none = 0;
        if (spins >= STARVE_SPINS && __atomic_load_n(&starving, __ATOMIC_RELAXED) == 0)
            __atomic_compare_exchange_n(&starving, &none, self, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
        if (spins % 4096 == 0 && arch_time_ns() > report_at) {
            report_stuck(arch_time_ns() - start);
            report_at = arch_time_ns() + STUCK_REPORT_NS;
        }
        relax();
    }
    __atomic_sub_fetch(&waiting, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&starving, __ATOMIC_RELAXED) == self)
        __atomic_store_n(&starving, 0, __ATOMIC_RELAXED);
    contended++;
    wait_ns += arch_time_ns() - start;
}

void kernel_lock(void)
{
    uint32_t self = arch_cpu_id() + 1;
    if (__atomic_load_n(&starving, __ATOMIC_RELAXED) != 0 || __atomic_exchange_n(&held, 1, __ATOMIC_ACQUIRE))
        wait_for_turn(self);
    owner = self;
    acquired++;
}

void kernel_unlock(void)
{
    owner = 0;
    __atomic_store_n(&held, 0, __ATOMIC_RELEASE);
}

bool kernel_lock_held(void) { return owner == arch_cpu_id() + 1; }

/* Spins a lock break gives a waiting CPU to take the lock before this one
 * takes it back (a waiter that the host is not running gets no more). */
#define BREAK_SPINS 2000u

void kernel_lock_break(void)
{
    kernel_unlock();
    arch_irq_enable();
    __asm__ volatile("nop");
    arch_irq_disable();
    /* Free for the taking, the lock would most likely come straight back
     * here: leave it to a waiter first. */
    for (unsigned spins = 0; spins < BREAK_SPINS && __atomic_load_n(&waiting, __ATOMIC_RELAXED) != 0 &&
                             !__atomic_load_n(&held, __ATOMIC_RELAXED);
         spins++)
        relax();
    kernel_lock();
}

void kernel_lock_stats(uint64_t *acquired_out, uint64_t *contended_out, uint64_t *wait_ns_out)
{
    *acquired_out = acquired;
    *contended_out = contended;
    *wait_ns_out = wait_ns;
}
