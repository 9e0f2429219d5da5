/*
 * Kernel layer: threads and the scheduler. Each CPU runs threads from a run
 * queue of its own, with work stealing when it runs dry; all of it under
 * the kernel lock (kernel/lock.h). The kernel runs with interrupts off and
 * is never preempted, so a thread leaves its CPU only by blocking,
 * yielding, exiting, being preempted by the timer while in user mode (or
 * in the idle loop), or at a preemption point a long kernel operation
 * offers between bounded steps (sched_preempt_point).
 */
#ifndef KERNEL_SCHED_H
#define KERNEL_SCHED_H

#include <stdint.h>
#include <stdbool.h>
#include <abi/ipc.h>
#include <abi/rights.h>
#include <arch/arch.h>
#include <common/list.h>
#include <kernel/ref.h>

struct account;
struct process;
struct thread;
struct segment;

/* Threads blocked on something, in FIFO order. A zero-filled queue (as
 * slab objects come) is a valid empty one. */
struct wait_queue {
    struct list_node threads;
};

enum thread_state { THREAD_RUNNABLE, THREAD_BLOCKED, THREAD_DEAD };

/* A process's share of the CPUs (sched.c, "Fairness"): each CPU's queue
 * holds at most one of its threads in turn, the rest wait parked here.
 * Zero-filled and then list_init'd by proc_create. */
struct sched_share {
    struct list_node parked;          /* runnable threads waiting for their process's turn */
    uint16_t queued_on[SMP_MAX_CPUS]; /* its threads in each CPU's queue */
};

enum ipc_phase { IPC_IDLE, IPC_SENDING, IPC_RECEIVING, IPC_AWAIT_REPLY };

/* A thread's side of a message exchange (kernel/ipc.h). */
struct ipc_state {
    struct ipc_msg msg;  /* outgoing while sending, incoming once delivered */
    struct segment *seg; /* the segment the outgoing message carries (in flight) */
    rights_t seg_rights; /* the rights it is to keep */
    bool has_caps;       /* the outgoing message carries handles */
    uint32_t recv_flags; /* IPC_RECV_* for what this thread receives */
    enum ipc_phase phase;
    bool is_call;
    struct thread *reply_to; /* a caller this thread owes a reply (holds a reference) */
    /* A caller this thread replied to and will wake once it has read its
     * receive flags (ipc.c, receive), with the reply's reference, and the
     * count of that caller's blocks then: set only while that read may wait. */
    struct thread *answered;
    uint32_t answered_wait;
};

/*
 * Lifetimes across a block. A thread that blocks never keeps a bare
 * pointer to an object it will touch when it wakes: it holds a reference
 * (a wait hold, dropped when the wait ends or the thread dies) or looks the
 * object up again by handle or id. Every blocking path, and what it holds:
 *   - IPC send, call or receive (ipc.c): its endpoint (hold) for the
 *     whole call, since a copy from or to its buffer may wait for a page
 *     being migrated (segment_fault_wait, segment_wait_idle); the segment
 *     its message carries is in flight, which keeps it from going away
 *     (segment.h); handles the message carries are looked up by value at
 *     delivery;
 *   - IPC call awaiting its reply: its endpoint still (the hold above);
 *     the server holds a reference on the caller thread (ipc.reply_to);
 *   - IPC receive after a reply, reading its flags: the caller it
 *     answered, in ipc.answered, woken should this thread die;
 *   - SYS_PROC_WAIT (sys_proc.c): the process (hold), whose status it
 *     reads after waking;
 *   - SYS_THREAD_WAIT: the thread (hold);
 *   - SYS_NOTIFY_WAIT (notification.c): the notification (hold);
 *   - SYS_FUTEX_WAIT (futex.c): nothing but its own process (it cannot
 *     end while one of its threads runs);
 *   - SYS_CONSOLE_READ, SYS_SLEEP: nothing;
 *   - preemption points (sched_preempt_point): the caller holds no state
 *     another thread could trip over.
 */
struct wait_hold {
    void (*put)(void *object);
    void *object;
};

struct thread {
    uint8_t fpu[ARCH_FPU_AREA_SIZE] __attribute__((aligned(16)));
    struct process *proc;    /* 0 for the idle thread */
    struct account *account; /* charged for it; a reference */
    uint64_t id;
    enum thread_state state;
    uint32_t blocks; /* times it has blocked: a waker that dropped the lock tells the same wait */
    uint64_t ksp;    /* saved kernel stack pointer while switched out */
    uint64_t kstack_top;
    unsigned kstack_slot;
    uint32_t refs; /* handles naming this thread, + 1 while alive */

    struct list_node run_link;     /* run queue or parked list (RUNNABLE, not running) */
    struct thread *proc_next;      /* the process's live threads */
    struct wait_queue *waiting_on; /* where it is blocked, if anywhere */
    struct list_node wait_link;
    uint64_t wake_ns;            /* timeout by arch_time_ns(); 0 = none */
    struct list_node sleep_link; /* the timeout list, sorted by wake_ns */
    int64_t wait_result;
    struct wait_hold hold; /* released when the wait ends */
    uint64_t futex_addr;   /* the word it waits on in SYS_FUTEX_WAIT */

    struct ipc_state ipc;
    struct wait_queue joiners; /* SYS_THREAD_WAIT */
    struct thread *reap_next;

    unsigned cpu;      /* the CPU it runs on, last ran on, or is queued for */
    int affinity;      /* the only CPU it may run on; -1: any */
    bool on_cpu;       /* running (its kernel stack is live) */
    bool exiting;      /* its process ended while it ran: it dies on its way out */
    bool slice_given;  /* runs next on the rest of the waker's quantum (handoff) */
    bool stealable;    /* queued unpinned: counted in its queue's stealable */
    bool parked;       /* runnable, on its process's parked list rather than a CPU's queue */
    bool copy_no_wait; /* a user copy that faults on a migrating page fails (-EFAULT) instead of waiting */
};

#define SCHED_HZ            1000u
#define SCHED_TICK_NS       (1000000000ull / SCHED_HZ)
#define SCHED_QUANTUM_TICKS 10u

/* The thread running on this CPU (the scheduler's slot in struct cpu). */
#define current THIS_CPU_READ(thread)

/* The BSP's scheduler and idle thread; boot code runs as that thread, with
 * the kernel lock taken before the other CPUs start. */
void sched_init(void);
/* The BSP, done booting: drops the kernel lock, lets the other CPUs run
 * threads, and becomes its idle loop. */
void sched_start(void) __attribute__((noreturn));
/* An application processor, once up: idles until the BSP starts
 * scheduling, then runs threads. */
void sched_ap_start(void) __attribute__((noreturn));
void sched_make_runnable(struct thread *t);
/* Blocks the current thread on `wq` (may be 0) for at most timeout_ns
 * (TIMEOUT_FOREVER: no limit). Returns the value given to sched_wake, or
 * -ETIMEDOUT. */
int64_t sched_block(struct wait_queue *wq, uint64_t timeout_ns);
/* From now until sched_release_wait_hold, the current thread holds a
 * reference (taken by the caller) on object: if the thread dies in the
 * meantime (killed while blocked), put drops it. */
static inline void sched_hold(void (*put)(void *), void *object)
{
    struct thread *t = current;
    VERIFY(!t->hold.put);
    t->hold = (struct wait_hold){ put, object };
}
/* Drops a thread's hold, if any: the owner when done with the object, or
 * the thread's death. (Inline: every IPC receive ends with it.) */
static inline void sched_release_wait_hold(struct thread *t)
{
    struct wait_hold hold = t->hold;
    t->hold = (struct wait_hold){ 0 };
    if (hold.put)
        hold.put(hold.object);
}
void sched_wake(struct thread *t, int64_t result);
/* sched_wake for a thread the caller hands the CPU to next (a reply whose
 * server is about to receive again): it goes to the front of this CPU's
 * queue, with no IPI, where the caller's next block or yield finds it (or
 * an idle CPU steals it). Where its affinity forbids this CPU, a plain
 * sched_wake. */
void sched_wake_next(struct thread *t, int64_t result);
/* Wakes the blocked thread `to` with `result` and runs it at once, on the
 * rest of this quantum, while the current thread blocks as sched_block
 * would (timeout_ns not TIMEOUT_POLL): a call hands the CPU straight to the
 * server it called, a reply-and-receive straight back to the caller. Where
 * to's affinity forbids this CPU, it is woken there instead. */
int64_t sched_block_handoff(struct wait_queue *wq, uint64_t timeout_ns, struct thread *to, int64_t result);
void sched_wake_all(struct wait_queue *wq, int64_t result);
/* The thread that has waited longest on wq, or 0 (a zero-filled queue has
 * no list yet). On every IPC path, hence inline. */
static inline struct thread *sched_first_waiter(struct wait_queue *wq)
{
    struct list_node *n = wq->threads.next;
    return n && n != &wq->threads ? LIST_ENTRY(n, struct thread, wait_link) : 0;
}
/* Wakes, oldest first, at most max waiters of wq that match accepts, with
 * result; returns how many. */
unsigned sched_wake_matching(struct wait_queue *wq, bool (*match)(const struct thread *, const void *), const void *ctx,
                             unsigned max, int64_t result);
void sched_yield(void);
/* Called by long kernel work between bounded steps: lets pending
 * interrupts run and gives the CPU away if the quantum ran out meanwhile.
 * The caller must hold no state another thread could trip over, and
 * accept never coming back (its process may be killed meanwhile). */
void sched_preempt_point(void);
/* Every CPU's timer tick; takes the kernel lock only when there is work. */
void sched_tick(struct trap_frame *f);
/* The reschedule IPI: an exiting thread or a waiting one gets the CPU. */
void sched_reschedule_ipi(struct trap_frame *f);
/* The way back to user mode, with the kernel lock: an exiting thread dies
 * here; a pending reschedule yields; then the lock is dropped. */
void sched_return_to_user(void);
/* Pins a thread to a CPU (-1: any); -EINVAL for a CPU that is not online. */
int sched_set_affinity(struct thread *t, int cpu);
void sched_cpu_stats(unsigned cpu, uint64_t *switches, uint64_t *steals);
uint64_t sched_ticks(void);
/* Takes a thread off every queue (it must not be running). */
void sched_remove(struct thread *t);
/* Takes a blocked thread off its wait queue and timeout, leaving it blocked
 * (a caller whose message was taken now waits for the reply). */
void sched_unqueue(struct thread *t);
/* Switches away from the current thread, which is DEAD: never returns. */
void sched_exit_current(void) __attribute__((noreturn));
/* Frees the kernel stack of a dead thread once it is off the CPU. */
void sched_defer_reap(struct thread *t);

/* Threads (thread.c). */
int thread_create(struct process *p, uint64_t entry, uint64_t user_stack, uint64_t arg, struct thread **out);
/* Frees a dead thread whose last reference went (thread_put). */
void thread_free(struct thread *t);
/* Inline: a call takes a reference on its caller, and the reply drops it. */
static inline void thread_get(struct thread *t) { t->refs++; }
static inline void thread_put(struct thread *t) /* drops a reference */
{
    if (ref_drop(&t->refs))
        thread_free(t);
}
void thread_mark_dead(struct thread *t); /* off every queue, joiners woken */
/* Frees a dead thread's kernel stack: unmapped on this CPU, its frames
 * back in the pool; its slot is reused only after one shootdown for many
 * freed slots (thread.c). */
void thread_stack_free(struct thread *t);
uint64_t thread_live_count(void);

#endif
