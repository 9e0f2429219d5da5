/*
 * Kernel layer: the scheduler (see kernel/sched.h). Called by every part of
 * the kernel that blocks or wakes a thread, by the timer tick and the
 * reschedule IPI (arch/trap.c), and by each CPU's idle loop.
 *
 * Each CPU has a run queue and an idle thread of its own (struct
 * sched_cpu); `current` is the thread in its struct cpu's slot. All of it is
 * guarded by the kernel lock (kernel/lock.h), which a CPU keeps across a
 * context switch, so a switch is atomic to the other CPUs.
 *
 * Placement. A thread made runnable goes to the CPU it is pinned to; else
 * to an idle CPU (the one it last ran on first), which is sent a reschedule
 * IPI; else back to the CPU it last ran on. A CPU whose queue is empty
 * takes the oldest thread it may run from the other queue with the most
 * unpinned threads (work stealing) before it idles, and idle CPUs look
 * again on every tick, so busy threads spread over the CPUs within a tick
 * of one going idle.
 *
 * Fairness. CPU time is shared by process, not by thread: each CPU's queue
 * holds at most one thread of a process at a time (a handoff may add one
 * more at its front), and the process's other runnable threads wait on its
 * parked list. When its queued thread leaves the queue, to run or to be
 * stolen, the first parked thread that may run on that CPU goes to the
 * back. A program with 256 spinning threads thus gets one turn a round on
 * each CPU, as a program with one does, instead of 256.
 *
 * Timeouts sit on one list sorted by wake time, served by every CPU's
 * tick and by every return to user mode. Dead threads are reaped by the
 * next thread their CPU runs, since a thread cannot free the stack it is
 * running on. FPU state is saved on every switch away from a user thread
 * and restored on every switch to one: a thread may run on another CPU
 * next.
 */
#include <abi/errno.h>
#include <abi/types.h>
#include <arch/arch.h>
#include <kernel/console.h>
#include <kernel/lock.h>
#include <kernel/paging.h>
#include <kernel/proc.h>
#include <kernel/sched.h>

struct sched_cpu {
    struct thread idle;
    struct list_node run_queue;
    unsigned queued;          /* threads on run_queue (read without the lock as a hint) */
    unsigned stealable;       /* those of them another CPU may take (same) */
    unsigned quantum_left;    /* ticks the running thread has left */
    bool resched_pending;     /* the quantum ran out while the kernel ran */
    struct thread *reap_list; /* dead threads switched away from here */
    uint64_t switches, steals;
};

static struct sched_cpu sched_cpus[SMP_MAX_CPUS];
static struct list_node sleepers = LIST_HEAD_INIT(sleepers); /* sorted by wake_ns */
static uint64_t next_wake_count = UINT64_MAX; /* the first sleeper's wake_ns, as arch_clock_count() reads it */
static uint64_t ticks;
static bool started; /* the BSP entered its idle loop: the other CPUs may run threads */

static struct sched_cpu *this_sched(void) { return &sched_cpus[arch_cpu_id()]; }

static struct thread *queue_first(struct sched_cpu *sc)
{
    struct list_node *n = list_first(&sc->run_queue);
    return n ? LIST_ENTRY(n, struct thread, run_link) : 0;
}

static struct thread *sleeper_first(void)
{
    struct list_node *n = list_first(&sleepers);
    return n ? LIST_ENTRY(n, struct thread, sleep_link) : 0;
}

static void note_next_wake(void)
{
    struct thread *t = sleeper_first();
    __atomic_store_n(&next_wake_count, t ? arch_clock_count_at(t->wake_ns) : UINT64_MAX, __ATOMIC_RELAXED);
}

/* A queue in zero-filled memory is empty until its first use. */
static struct list_node *queue_of(struct wait_queue *wq)
{
    if (!wq->threads.next)
        list_init(&wq->threads);
    return &wq->threads;
}

static void wait_remove(struct thread *t)
{
    if (!t->waiting_on)
        return;
    list_remove(&t->wait_link);
    t->waiting_on = 0;
}

static void sleep_remove(struct thread *t)
{
    if (!t->wake_ns)
        return;
    list_remove(&t->sleep_link);
    t->wake_ns = 0;
    note_next_wake();
}

static void sleep_insert(struct thread *t, uint64_t wake_ns)
{
    t->wake_ns = wake_ns;
    struct list_node *n = sleepers.next;
    while (n != &sleepers && LIST_ENTRY(n, struct thread, sleep_link)->wake_ns <= wake_ns)
        n = n->next;
    list_insert_between(&t->sleep_link, n->prev, n);
    note_next_wake();
}

static void queue_push(struct thread *t, unsigned cpu, bool front)
{
    struct sched_cpu *sc = &sched_cpus[cpu];
    t->cpu = cpu;
    t->parked = false;
    t->stealable = t->affinity < 0;
    if (front)
        list_push_front(&sc->run_queue, &t->run_link);
    else
        list_push_back(&sc->run_queue, &t->run_link);
    sc->queued++;
    sc->stealable += t->stealable;
    if (t->proc)
        t->proc->share.queued_on[cpu]++;
}

/* One of the process's threads left CPU cpu's queue: if none is left there,
 * the first parked one that may run there takes a place at the back. */
static void share_refill(struct sched_share *share, unsigned cpu)
{
    if (share->queued_on[cpu])
        return;
    struct list_node *n;
    for (n = share->parked.next; n != &share->parked; n = n->next) {
        struct thread *t = LIST_ENTRY(n, struct thread, run_link);
        if (t->affinity < 0 || (unsigned)t->affinity == cpu) {
            list_remove(&t->run_link);
            queue_push(t, cpu, false);
            return;
        }
    }
}

static void dequeue(struct thread *t)
{
    if (!list_linked(&t->run_link))
        return;
    list_remove(&t->run_link);
    if (t->parked) {
        t->parked = false;
        return;
    }
    sched_cpus[t->cpu].queued--;
    sched_cpus[t->cpu].stealable -= t->stealable;
    if (t->proc) {
        t->proc->share.queued_on[t->cpu]--;
        share_refill(&t->proc->share, t->cpu);
    }
}

void sched_remove(struct thread *t)
{
    dequeue(t);
    wait_remove(t);
    sleep_remove(t);
}

void sched_unqueue(struct thread *t)
{
    wait_remove(t);
    sleep_remove(t);
}

static bool cpu_online(unsigned cpu) { return cpu < SMP_MAX_CPUS && (smp_online_mask() & CPU_MASK(cpu)); }

static bool cpu_idle(unsigned cpu)
{
    return started && cpu_online(cpu) && cpus[cpu].thread == &sched_cpus[cpu].idle && !sched_cpus[cpu].queued;
}

static unsigned place(const struct thread *t)
{
    if (t->affinity >= 0 && cpu_online((unsigned)t->affinity))
        return (unsigned)t->affinity;
    if (cpu_idle(t->cpu))
        return t->cpu;
    for (cpu_mask_t others = smp_online_mask() & ~CPU_MASK(t->cpu); others; others &= others - 1) {
        unsigned cpu = (unsigned)__builtin_ctzll(others);
        if (cpu_idle(cpu))
            return cpu;
    }
    return cpu_online(t->cpu) ? t->cpu : arch_cpu_id();
}

static void enqueue(struct thread *t, unsigned cpu)
{
    if (t->proc && t->proc->share.queued_on[cpu]) {
        /* A thread of its process already waits there: this one waits
         * for that one's turn (share_refill). */
        t->cpu = cpu;
        t->parked = true;
        t->stealable = false;
        list_push_back(&t->proc->share.parked, &t->run_link);
        return;
    }
    queue_push(t, cpu, false);
}

void sched_make_runnable(struct thread *t)
{
    t->state = THREAD_RUNNABLE;
    unsigned cpu = place(t);
    enqueue(t, cpu);
    if (cpu != arch_cpu_id())
        smp_send_reschedule(cpu);
}

void sched_defer_reap(struct thread *t)
{
    struct sched_cpu *sc = this_sched();
    t->reap_next = sc->reap_list;
    sc->reap_list = t;
}

/* Runs on the new thread right after every switch (also a new thread's
 * first instructions, via arch_thread_trampoline), with the kernel lock. */
void sched_after_switch(void);
void sched_after_switch(void)
{
    struct sched_cpu *sc = this_sched();
    while (sc->reap_list) {
        struct thread *t = sc->reap_list;
        sc->reap_list = t->reap_next;
        thread_stack_free(t);
        thread_put(t);
    }
}

/* Inline in its two callers: every call and reply switches threads. */
static inline __attribute__((always_inline)) void switch_to(struct thread *next)
{
    struct thread *prev = current;
    unsigned cpu = arch_cpu_id();
    struct sched_cpu *sc = &sched_cpus[cpu];
    sc->resched_pending = false;
    if (next == prev)
        return;
    if (prev->proc && prev->state != THREAD_DEAD)
        arch_fpu_save(prev->fpu);
    if (next->proc) {
        aspace_activate(&next->proc->aspace);
        arch_fpu_restore(next->fpu);
    } else {
        aspace_activate(0); /* idle: the kernel's tables, so no CPU idles in a dying space */
    }
    arch_set_kernel_stack(next->kstack_top);
    /* A thread handed the CPU (a call to a server, its reply) runs on what
     * is left of the giver's quantum: a pair calling each other shares one,
     * and the tick still ends it, so the threads queued behind get their
     * turn. */
    if (next->slice_given)
        next->slice_given = false;
    else
        sc->quantum_left = SCHED_QUANTUM_TICKS;
    sc->switches++;
    prev->on_cpu = false;
    next->on_cpu = true;
    next->cpu = cpu;
    THIS_CPU_WRITE(thread, next);
    arch_context_switch(&prev->ksp, next->ksp);
    if (this_sched()->reap_list)
        sched_after_switch();
}

/* The oldest thread this CPU may run from the other queue with the most
 * threads no CPU is pinned to. (A thread pinned to this CPU is queued
 * here, never elsewhere: placement and sched_set_affinity see to it.) */
static struct thread *steal(unsigned self)
{
    struct sched_cpu *victim = 0;
    for (cpu_mask_t others = smp_online_mask() & ~CPU_MASK(self); others; others &= others - 1) {
        struct sched_cpu *sc = &sched_cpus[__builtin_ctzll(others)];
        if (sc->stealable && (!victim || sc->stealable > victim->stealable))
            victim = sc;
    }
    if (!victim)
        return 0;
    struct list_node *n;
    for (n = victim->run_queue.next; n != &victim->run_queue; n = n->next) {
        struct thread *t = LIST_ENTRY(n, struct thread, run_link);
        if (t->affinity < 0 || (unsigned)t->affinity == self) {
            dequeue(t);
            this_sched()->steals++;
            return t;
        }
    }
    return 0;
}

static struct thread *pick_next(void)
{
    struct sched_cpu *sc = this_sched();
    struct thread *next = queue_first(sc);
    if (next) {
        dequeue(next);
        return next;
    }
    return started ? steal(arch_cpu_id()) : 0;
}

/* Picks the next thread; the current one must already be queued, blocked or
 * dead. */
static void schedule(void)
{
    struct thread *next = pick_next();
    switch_to(next ? next : &this_sched()->idle);
}

/* Marks the current thread blocked on wq (may be 0) until timeout_ns; the
 * caller then switches away. */
static void block_current(struct thread *t, struct wait_queue *wq, uint64_t timeout_ns)
{
    t->state = THREAD_BLOCKED;
    t->blocks++;
    t->wait_result = -ETIMEDOUT;
    if (wq) {
        t->waiting_on = wq;
        list_push_back(queue_of(wq), &t->wait_link);
    }
    if (timeout_ns != TIMEOUT_FOREVER) {
        /* Timeouts follow the clock SYS_CLOCK reads, checked every tick, so
         * a wait never ends early by that clock. */
        uint64_t now = arch_time_ns();
        sleep_insert(t, timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns);
    }
}

int64_t sched_block(struct wait_queue *wq, uint64_t timeout_ns)
{
    struct thread *t = current;
    if (timeout_ns == TIMEOUT_POLL)
        return -ETIMEDOUT;
    block_current(t, wq, timeout_ns);
    schedule();
    return t->wait_result;
}

int64_t sched_block_handoff(struct wait_queue *wq, uint64_t timeout_ns, struct thread *to, int64_t result)
{
    struct thread *t = current;
    VERIFY(to->state == THREAD_BLOCKED && to != t && timeout_ns != TIMEOUT_POLL);
    wait_remove(to);
    sleep_remove(to);
    to->wait_result = result;
    block_current(t, wq, timeout_ns);
    if (to->affinity >= 0 && (unsigned)to->affinity != arch_cpu_id()) {
        /* It may not run here: wake it where it may, and wait. */
        sched_make_runnable(to);
        schedule();
        return t->wait_result;
    }
    to->state = THREAD_RUNNABLE;
    to->slice_given = true;
    switch_to(to);
    return t->wait_result;
}

void sched_wake(struct thread *t, int64_t result)
{
    if (t->state != THREAD_BLOCKED)
        return;
    wait_remove(t);
    sleep_remove(t);
    t->wait_result = result;
    sched_make_runnable(t);
}

void sched_wake_next(struct thread *t, int64_t result)
{
    unsigned self = arch_cpu_id();
    if (t->state != THREAD_BLOCKED)
        return;
    if (t->affinity >= 0 && (unsigned)t->affinity != self) {
        sched_wake(t, result);
        return;
    }
    wait_remove(t);
    sleep_remove(t);
    t->wait_result = result;
    t->state = THREAD_RUNNABLE;
    t->slice_given = true;
    queue_push(t, self, true);
}

unsigned sched_wake_matching(struct wait_queue *wq, bool (*match)(const struct thread *, const void *), const void *ctx,
                             unsigned max, int64_t result)
{
    unsigned woken = 0;
    struct list_node *n, *next;
    LIST_FOR_EACH_SAFE(n, next, queue_of(wq))
    {
        struct thread *t = LIST_ENTRY(n, struct thread, wait_link);
        if (woken == max)
            break;
        if (match(t, ctx)) {
            sched_wake(t, result);
            woken++;
        }
    }
    return woken;
}

void sched_wake_all(struct wait_queue *wq, int64_t result)
{
    struct thread *t;
    while ((t = sched_first_waiter(wq)) != 0)
        sched_wake(t, result);
}

/* Whether another thread waits for this CPU. (Threads waiting on other
 * CPUs' queues are theirs, or an idle CPU's to steal.) */
static bool others_waiting(void) { return this_sched()->queued != 0; }

/* A quantum that ran out ends the turns that rode on it: threads handed
 * the CPU (sched_wake_next) and still waiting at the front of the queue go
 * to their place at the back. Otherwise a program whose threads keep
 * handing the CPU on to each other (a reply, then a receive that does not
 * wait) would run on this CPU tick after tick while the queue's others
 * wait, since a handed-on thread never starts a quantum of its own. */
static void demote_handed_on(struct sched_cpu *sc, unsigned cpu)
{
    struct thread *f;
    for (unsigned n = sc->queued; n-- && (f = queue_first(sc)) != 0 && f->slice_given;) {
        dequeue(f);
        f->slice_given = false;
        enqueue(f, cpu);
    }
}

void sched_yield(void)
{
    struct thread *t = current;
    if (t == &this_sched()->idle || !others_waiting())
        return;
    if (this_sched()->quantum_left == 0)
        demote_handed_on(this_sched(), arch_cpu_id());
    t->state = THREAD_RUNNABLE;
    enqueue(t, t->affinity >= 0 ? (unsigned)t->affinity : arch_cpu_id());
    schedule();
}

void sched_exit_current(void)
{
    VERIFY(current->state == THREAD_DEAD);
    sched_defer_reap(current);
    schedule();
    panic("sched: a dead thread was scheduled");
}

/* Wakes the sleepers whose time has come: on any CPU's tick, and on
 * every return to user mode, since a host that runs the virtual CPUs on
 * fewer cores delivers a few ticks a second instead of a thousand (seen:
 * 21), while the system calls keep coming. */
static void wake_sleepers(void)
{
    uint64_t now = arch_time_ns();
    struct thread *t;
    while ((t = sleeper_first()) != 0 && t->wake_ns <= now)
        sched_wake(t, -ETIMEDOUT);
}

void sched_return_to_user(void)
{
    struct thread *t = current;
    if (arch_clock_count() >= __atomic_load_n(&next_wake_count, __ATOMIC_RELAXED))
        wake_sleepers();
    if (t->exiting)
        proc_thread_exit_current();
    if (this_sched()->resched_pending)
        sched_yield();
    kernel_unlock();
}

void sched_tick(struct trap_frame *f)
{
    if (!__atomic_load_n(&started, __ATOMIC_ACQUIRE))
        return; /* boot: kmain holds the lock and the CPUs run no threads yet */
    struct sched_cpu *sc = this_sched();
    bool bsp = arch_cpu_id() == 0;
    bool timeouts = __atomic_load_n(&next_wake_count, __ATOMIC_RELAXED) <= arch_clock_count();
    if (bsp)
        ticks++;
    bool idle = current == &sc->idle;
    if (!idle && sc->quantum_left)
        sc->quantum_left--;
    /* The lock only when there is work for it: a quantum that ran out with
     * another thread to run, or timeouts due. */
    bool expired = !idle && sc->quantum_left == 0;
    if (!timeouts && !expired)
        return;
    bool took = !kernel_lock_held();
    if (took)
        kernel_lock();
    if (timeouts)
        wake_sleepers();
    if (expired && others_waiting()) {
        /* The kernel is switched away from only at points of its choosing,
         * never in the middle of a change. */
        if (trap_from_user(f))
            sched_yield();
        else
            sc->resched_pending = true;
    }
    /* From user mode the trap's way out drops the lock (trap.c). */
    if (took && !trap_from_user(f))
        kernel_unlock();
}

void sched_reschedule_ipi(struct trap_frame *f)
{
    /* In the idle loop the loop itself looks again; in user mode, the
     * thread may have been asked to exit or another may be waiting. */
    if (!trap_from_user(f))
        return;
    if (!current->exiting && !this_sched()->queued)
        return;
    if (!kernel_lock_held())
        kernel_lock();
    if (!current->exiting)
        sched_yield();
}

void sched_preempt_point(void)
{
    kernel_lock_break();
    if (this_sched()->resched_pending)
        sched_yield();
}

uint64_t sched_ticks(void) { return ticks; }

int sched_set_affinity(struct thread *t, int cpu)
{
    if (cpu >= 0 && !cpu_online((unsigned)cpu))
        return -EINVAL;
    t->affinity = cpu;
    if (list_linked(&t->run_link) && !t->parked) {
        sched_cpus[t->cpu].stealable -= t->stealable;
        t->stealable = cpu < 0;
        sched_cpus[t->cpu].stealable += t->stealable;
    }
    if (cpu < 0 || t->cpu == (unsigned)cpu)
        return 0;
    if (t == current) {
        /* Off this CPU now: queued where it may run, which takes it. */
        t->state = THREAD_RUNNABLE;
        enqueue(t, (unsigned)cpu);
        smp_send_reschedule((unsigned)cpu);
        schedule();
    } else if (list_linked(&t->run_link)) {
        dequeue(t);
        enqueue(t, (unsigned)cpu);
        smp_send_reschedule((unsigned)cpu);
    }
    /* Running on another CPU: it goes where it may at its next switch
     * (sched_yield and wakes place it by its affinity). */
    return 0;
}

void sched_cpu_stats(unsigned cpu, uint64_t *switches, uint64_t *steals)
{
    *switches = sched_cpus[cpu].switches;
    *steals = sched_cpus[cpu].steals;
}

/* This CPU's idle thread: what runs when nothing else does, on the stack
 * the CPU came up on. */
static void idle_init(void)
{
    struct sched_cpu *sc = this_sched();
    list_init(&sc->run_queue);
    sc->idle.id = 0;
    sc->idle.kstack_top = this_cpu()->idle_stack_top;
    sc->idle.state = THREAD_RUNNABLE;
    sc->idle.refs = 1;
    sc->idle.affinity = (int)arch_cpu_id();
    sc->idle.cpu = arch_cpu_id();
    sc->idle.on_cpu = true;
    THIS_CPU_WRITE(thread, &sc->idle);
}

extern char boot_stack_top[];

void sched_init(void)
{
    for (unsigned cpu = 0; cpu < SMP_MAX_CPUS; cpu++)
        list_init(&sched_cpus[cpu].run_queue);
    this_cpu()->idle_stack_top = (uint64_t)boot_stack_top;
    idle_init();
}

static void __attribute__((noreturn)) idle_loop(void)
{
    struct sched_cpu *sc = this_sched();
    for (;;) {
        /* The lock only when there may be something to run here: a thread
         * on this queue, or one on another CPU's that this one may steal
         * (threads pinned elsewhere are no work for it: an idle CPU that
         * took the lock for them would only slow their CPU down). */
        bool work = sc->reap_list != 0 || __atomic_load_n(&sc->queued, __ATOMIC_RELAXED) != 0;
        for (unsigned cpu = 0; !work && cpu < SMP_MAX_CPUS; cpu++)
            work = __atomic_load_n(&sched_cpus[cpu].stealable, __ATOMIC_RELAXED) != 0;
        if (work) {
            kernel_lock();
            sched_after_switch();
            struct thread *next = pick_next();
            if (next)
                switch_to(next); /* back here, lock held, when this CPU has nothing else */
            kernel_unlock();
            continue;
        }
        arch_wait_for_interrupt();
    }
}

void sched_start(void)
{
    VERIFY(kernel_lock_held());
    __atomic_store_n(&started, true, __ATOMIC_RELEASE);
    kernel_unlock();
    idle_loop();
}

void sched_ap_start(void)
{
    /* Until the BSP starts scheduling (boot, self-tests), idle as before:
     * ticks and calls only. */
    while (!__atomic_load_n(&started, __ATOMIC_ACQUIRE))
        arch_wait_for_interrupt();
    idle_init();
    idle_loop();
}
