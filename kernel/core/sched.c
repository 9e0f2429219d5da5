/*
 * Kernel layer: the scheduler (see kernel/sched.h). Round robin over one run
 * queue; the idle thread runs when the queue is empty. Timeouts sit on one
 * list sorted by wake tick. Dead threads are reaped by whoever runs next,
 * since a thread cannot free the stack it is running on.
 */
#include <abi/errno.h>
#include <abi/types.h>
#include <arch/arch.h>
#include <kernel/console.h>
#include <kernel/paging.h>
#include <kernel/proc.h>
#include <kernel/sched.h>

struct thread *current;
static struct thread idle_thread;
static struct thread *run_head, *run_tail;
static struct thread *sleepers; /* sorted by wake_ns */
static struct thread *reap_list;
static struct thread *fpu_owner;
static uint64_t ticks;
static unsigned quantum_left;
static bool resched_pending; /* the quantum ran out while the kernel ran */

static void run_push(struct thread *t)
{
    t->run_next = 0;
    t->run_prev = run_tail;
    if (run_tail)
        run_tail->run_next = t;
    else
        run_head = t;
    run_tail = t;
}

static bool on_run_queue(struct thread *t) { return t->run_prev || run_head == t; }

static void run_remove(struct thread *t)
{
    if (!on_run_queue(t))
        return;
    if (t->run_prev)
        t->run_prev->run_next = t->run_next;
    else
        run_head = t->run_next;
    if (t->run_next)
        t->run_next->run_prev = t->run_prev;
    else
        run_tail = t->run_prev;
    t->run_next = t->run_prev = 0;
}

static void wait_remove(struct thread *t)
{
    struct wait_queue *wq = t->waiting_on;
    if (!wq)
        return;
    if (t->wait_prev)
        t->wait_prev->wait_next = t->wait_next;
    else
        wq->head = t->wait_next;
    if (t->wait_next)
        t->wait_next->wait_prev = t->wait_prev;
    else
        wq->tail = t->wait_prev;
    t->wait_next = t->wait_prev = 0;
    t->waiting_on = 0;
}

static void sleep_remove(struct thread *t)
{
    if (!t->wake_ns)
        return;
    for (struct thread **pp = &sleepers; *pp; pp = &(*pp)->sleep_next) {
        if (*pp == t) {
            *pp = t->sleep_next;
            break;
        }
    }
    t->sleep_next = 0;
    t->wake_ns = 0;
}

static void sleep_insert(struct thread *t, uint64_t wake_ns)
{
    t->wake_ns = wake_ns;
    struct thread **pp = &sleepers;
    while (*pp && (*pp)->wake_ns <= wake_ns)
        pp = &(*pp)->sleep_next;
    t->sleep_next = *pp;
    *pp = t;
}

void sched_remove(struct thread *t)
{
    run_remove(t);
    wait_remove(t);
    sleep_remove(t);
    if (fpu_owner == t)
        fpu_owner = 0;
}

void sched_unqueue(struct thread *t)
{
    wait_remove(t);
    sleep_remove(t);
}

void sched_make_runnable(struct thread *t)
{
    t->state = THREAD_RUNNABLE;
    run_push(t);
}

void sched_defer_reap(struct thread *t)
{
    t->reap_next = reap_list;
    reap_list = t;
}

/* Runs on the new thread right after every switch (also a new thread's
 * first instructions, via arch_thread_trampoline). */
void sched_after_switch(void);
void sched_after_switch(void)
{
    while (reap_list) {
        struct thread *t = reap_list;
        reap_list = t->reap_next;
        thread_free_stack(t);
        thread_put(t);
    }
}

static void switch_to(struct thread *next)
{
    struct thread *prev = current;
    resched_pending = false;
    if (next == prev)
        return;
    if (next->proc) {
        aspace_activate(&next->proc->aspace);
        if (fpu_owner != next) {
            if (fpu_owner)
                arch_fpu_save(fpu_owner->fpu);
            arch_fpu_restore(next->fpu);
            fpu_owner = next;
        }
    }
    arch_set_kernel_stack(next->kstack_top);
    quantum_left = SCHED_QUANTUM_TICKS;
    current = next;
    arch_context_switch(&prev->ksp, next->ksp);
    sched_after_switch();
}

/* Picks the next thread; the current one must already be queued, blocked or
 * dead. */
static void schedule(void)
{
    struct thread *next = run_head;
    if (next)
        run_remove(next);
    else
        next = &idle_thread;
    switch_to(next);
}

int64_t sched_block(struct wait_queue *wq, uint64_t timeout_ns)
{
    struct thread *t = current;
    if (timeout_ns == TIMEOUT_POLL)
        return -ETIMEDOUT;
    t->state = THREAD_BLOCKED;
    t->wait_result = -ETIMEDOUT;
    if (wq) {
        t->waiting_on = wq;
        t->wait_next = 0;
        t->wait_prev = wq->tail;
        if (wq->tail)
            wq->tail->wait_next = t;
        else
            wq->head = t;
        wq->tail = t;
    }
    if (timeout_ns != TIMEOUT_FOREVER) {
        /* Timeouts follow the clock SYS_CLOCK reads, checked every tick, so
         * a wait never ends early by that clock. */
        uint64_t now = arch_time_ns();
        sleep_insert(t, timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns);
    }
    schedule();
    return t->wait_result;
}

void sched_release_wait_hold(struct thread *t)
{
    struct wait_hold hold = t->hold;
    t->hold = (struct wait_hold){ 0 };
    if (hold.put)
        hold.put(hold.object);
}

void sched_hold(void (*put)(void *), void *object)
{
    VERIFY(!current->hold.put);
    current->hold = (struct wait_hold){ put, object };
}

int64_t sched_block_handoff(struct thread *to, int64_t result)
{
    struct thread *t = current;
    VERIFY(to->state == THREAD_BLOCKED && to != t);
    wait_remove(to);
    sleep_remove(to);
    to->wait_result = result;
    to->state = THREAD_RUNNABLE;
    t->state = THREAD_BLOCKED;
    t->wait_result = -ETIMEDOUT;
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

void sched_wake_all(struct wait_queue *wq, int64_t result)
{
    while (wq->head)
        sched_wake(wq->head, result);
}

void sched_yield(void)
{
    if (!run_head)
        return;
    if (current != &idle_thread)
        sched_make_runnable(current);
    schedule();
}

void sched_exit_current(void)
{
    VERIFY(current->state == THREAD_DEAD);
    if (fpu_owner == current)
        fpu_owner = 0;
    sched_defer_reap(current);
    schedule();
    panic("sched: a dead thread was scheduled");
}

void sched_tick(struct trap_frame *f)
{
    ticks++;
    uint64_t now = arch_time_ns();
    while (sleepers && sleepers->wake_ns <= now)
        sched_wake(sleepers, -ETIMEDOUT);
    if (current == &idle_thread) {
        /* The idle loop picks up newly runnable threads itself. */
        return;
    }
    if (quantum_left)
        quantum_left--;
    if (quantum_left == 0 && run_head) {
        /* The kernel is switched away from only at points of its choosing
         * (sched_preempt_point), never in the middle of a change. */
        if (trap_from_user(f))
            sched_yield();
        else
            resched_pending = true;
    }
}

void sched_preempt_point(void)
{
    /* Let a pending tick or device interrupt in. */
    arch_irq_enable();
    __asm__ volatile("nop");
    arch_irq_disable();
    if (resched_pending) {
        resched_pending = false;
        sched_yield();
    }
}

uint64_t sched_ticks(void) { return ticks; }

extern char boot_stack_top[];

void sched_init(void)
{
    idle_thread.id = 0;
    idle_thread.kstack_top = (uint64_t)boot_stack_top;
    idle_thread.state = THREAD_RUNNABLE;
    idle_thread.refs = 1;
    current = &idle_thread;
}

void sched_start(void)
{
    for (;;) {
        if (run_head)
            schedule();
        else
            arch_wait_for_interrupt();
    }
}
