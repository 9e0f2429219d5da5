/*
 * Kernel layer: the scheduler (see kernel/sched.h). Round robin over one run
 * queue; the idle thread runs when the queue is empty. Timeouts sit on one
 * list sorted by wake time. Queues are common/list.h lists. Dead threads are reaped by whoever runs next,
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
static struct list_node run_queue = LIST_HEAD_INIT(run_queue);
static struct list_node sleepers = LIST_HEAD_INIT(sleepers); /* sorted by wake_ns */
static struct thread *reap_list;
static struct thread *fpu_owner;
static uint64_t ticks;
static unsigned quantum_left;
static bool resched_pending; /* the quantum ran out while the kernel ran */

static struct thread *run_first(void)
{
    struct list_node *n = list_first(&run_queue);
    return n ? LIST_ENTRY(n, struct thread, run_link) : 0;
}

static struct thread *sleeper_first(void)
{
    struct list_node *n = list_first(&sleepers);
    return n ? LIST_ENTRY(n, struct thread, sleep_link) : 0;
}

/* A queue in zero-filled memory is empty until its first use. */
static struct list_node *queue_of(struct wait_queue *wq)
{
    if (!wq->threads.next)
        list_init(&wq->threads);
    return &wq->threads;
}

struct thread *sched_first_waiter(struct wait_queue *wq)
{
    struct list_node *n = list_first(queue_of(wq));
    return n ? LIST_ENTRY(n, struct thread, wait_link) : 0;
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
}

static void sleep_insert(struct thread *t, uint64_t wake_ns)
{
    t->wake_ns = wake_ns;
    struct list_node *n = sleepers.next;
    while (n != &sleepers && LIST_ENTRY(n, struct thread, sleep_link)->wake_ns <= wake_ns)
        n = n->next;
    list_insert_between(&t->sleep_link, n->prev, n);
}

void sched_remove(struct thread *t)
{
    list_remove(&t->run_link);
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
    list_push_back(&run_queue, &t->run_link);
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
    struct thread *next = run_first();
    if (next)
        list_remove(&next->run_link);
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
        list_push_back(queue_of(wq), &t->wait_link);
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

unsigned sched_wake_matching(struct wait_queue *wq, bool (*match)(const struct thread *, const void *),
                             const void *ctx, unsigned max, int64_t result)
{
    unsigned woken = 0;
    struct list_node *n, *next;
    LIST_FOR_EACH_SAFE(n, next, queue_of(wq)) {
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

void sched_yield(void)
{
    if (list_empty(&run_queue))
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
    struct thread *t;
    while ((t = sleeper_first()) != 0 && t->wake_ns <= now)
        sched_wake(t, -ETIMEDOUT);
    if (current == &idle_thread) {
        /* The idle loop picks up newly runnable threads itself. */
        return;
    }
    if (quantum_left)
        quantum_left--;
    if (quantum_left == 0 && !list_empty(&run_queue)) {
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
        if (!list_empty(&run_queue))
            schedule();
        else
            arch_wait_for_interrupt();
    }
}
