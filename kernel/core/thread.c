/*
 * Kernel layer: thread objects and their kernel stacks. Each thread gets a
 * 16 KiB kernel stack in its own slot of the kernel stack area, below which
 * an unmapped 16 KiB guard catches overflows (the double-fault handler runs
 * on its own stack and panics). Stack frames come from the kernel pool.
 *
 * A thread is charged to its process's account: RES_THREADS while it lives,
 * RES_KMEM for its object and stack until the object is freed.
 */
#include <abi/errno.h>
#include <arch/arch.h>
#include <common/string.h>
#include <kernel/account.h>
#include <kernel/console.h>
#include <kernel/ipc.h>
#include <kernel/kmem.h>
#include <kernel/paging.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/ref.h>
#include <kernel/sched.h>
#include <kernel/slab.h>

static struct slab_cache thread_cache = SLAB_CACHE("thread", sizeof(struct thread));
static uint8_t kstack_slot_used[KSTACK_SLOTS / 8];  /* mapped, or stale */
static uint8_t kstack_slot_stale[KSTACK_SLOTS / 8]; /* unmapped here; other CPUs may still cache it */
static unsigned stale_slots;
static uint64_t stale_lo, stale_hi; /* the addresses the stale slots cover */
static uint64_t next_thread_id = 1;
static uint64_t live_threads;

#define KSTACK_FRAMES (KSTACK_SIZE / PAGE_SIZE)

/*
 * Freed stacks' slots are flushed lazily. A dead thread's stack is unmapped
 * on the CPU that frees it and its frames go back to the pool at once, but
 * other CPUs may keep its translations cached: nothing reads or writes a
 * dead thread's stack, so those entries are never used, and the slot's
 * address is not given to a new stack until one shootdown has flushed
 * every CPU for all the stale slots together (Linux frees vmalloc pages
 * the same way). Every CPU includes the one that purges: it may cache a
 * slot another CPU freed (it created that stack, or ran its thread), and
 * would otherwise write the slot's next stack through the old translation,
 * into a frame the pool has given to something else, while the new
 * thread's CPU reads the new frame (seen under Bochs on 2 CPUs: a new
 * thread's first switch returned to address 0). One shootdown per freed
 * stack, all under the kernel lock, made 8 virtual CPUs on 2 host cores
 * spend most of their time waiting for the lock while a CPU the host was
 * not running held up the shootdown (docs/smp.md has the figures).
 */
#define KSTACK_STALE_MAX 64u

static void kstack_purge(void)
{
    if (stale_slots == 0)
        return;
    paging_flush_kernel_all(stale_lo, stale_hi - stale_lo);
    for (unsigned i = 0; i < KSTACK_SLOTS / 8; i++) {
        kstack_slot_used[i] &= (uint8_t)~kstack_slot_stale[i];
        kstack_slot_stale[i] = 0;
    }
    stale_slots = 0;
}

static unsigned kstack_free_slot(void)
{
    for (unsigned i = 0; i < KSTACK_SLOTS; i++)
        if (!(kstack_slot_used[i / 8] & (1u << (i % 8))))
            return i;
    return KSTACK_SLOTS;
}

static int kstack_alloc(struct thread *t)
{
    unsigned slot = kstack_free_slot();
    if (slot == KSTACK_SLOTS && stale_slots != 0) {
        kstack_purge();
        slot = kstack_free_slot();
    }
    if (slot == KSTACK_SLOTS)
        return -ENOMEM;
    /* The area's page tables exist from boot (paging_init). */
    if (pool_free_frames() < KSTACK_FRAMES)
        return -ENOMEM;
    uint64_t base = KSTACK_AREA_BASE + (uint64_t)slot * KSTACK_SLOT_SIZE + (KSTACK_SLOT_SIZE - KSTACK_SIZE);
    for (unsigned i = 0; i < KSTACK_FRAMES; i++) {
        uint64_t frame = pool_alloc_frame();
        VERIFY(frame && paging_map_kernel(base + i * PAGE_SIZE, frame, PAGE_SIZE) == 0);
    }
    kstack_slot_used[slot / 8] |= (uint8_t)(1u << (slot % 8));
    t->kstack_slot = slot;
    t->kstack_top = base + KSTACK_SIZE;
    return 0;
}

void thread_stack_free(struct thread *t)
{
    if (!t->kstack_top)
        return;
    uint64_t base = t->kstack_top - KSTACK_SIZE, frames[KSTACK_FRAMES];
    for (unsigned i = 0; i < KSTACK_FRAMES; i++)
        VERIFY(paging_translate(paging_kernel_root(), base + i * PAGE_SIZE, &frames[i], 0));
    paging_unmap_kernel_here(base, KSTACK_SIZE);
    for (unsigned i = 0; i < KSTACK_FRAMES; i++)
        pool_free_frame(frames[i]);
    unsigned slot = t->kstack_slot;
    kstack_slot_stale[slot / 8] |= (uint8_t)(1u << (slot % 8));
    stale_lo = stale_slots == 0 || base < stale_lo ? base : stale_lo;
    stale_hi = stale_slots == 0 || base + KSTACK_SIZE > stale_hi ? base + KSTACK_SIZE : stale_hi;
    stale_slots++;
    t->kstack_top = 0;
    if (stale_slots >= KSTACK_STALE_MAX)
        kstack_purge();
}

#define THREAD_KMEM_BYTES (sizeof(struct thread) + KSTACK_SIZE)

int thread_create(struct process *p, uint64_t entry, uint64_t user_stack, uint64_t arg, struct thread **out)
{
    /* The object's slab and the stack's frames. */
    int err = kmem_charge(p->account, THREAD_KMEM_BYTES, 1 + KSTACK_FRAMES);
    if (err)
        return err;
    err = account_charge(p->account, RES_THREADS, 1);
    if (err) {
        kmem_uncharge(p->account, THREAD_KMEM_BYTES);
        return err;
    }
    struct thread *t = slab_alloc(&thread_cache);
    if (t && (err = kstack_alloc(t)) != 0) {
        slab_free(&thread_cache, t);
        t = 0;
    }
    if (!t) {
        account_uncharge(p->account, RES_THREADS, 1);
        kmem_uncharge(p->account, THREAD_KMEM_BYTES);
        return err ? err : -ENOMEM;
    }
    t->account = p->account;
    account_get(t->account);
    struct trap_frame *frame;
    t->ksp = arch_prepare_kernel_stack(t->kstack_top, &frame);
    trap_frame_init_user(frame, entry, user_stack, arg, p->pid);
    arch_fpu_init_area(t->fpu);
    t->proc = p;
    t->id = next_thread_id++;
    t->refs = 1; /* alive */
    t->affinity = -1;
    t->cpu = arch_cpu_id();
    t->proc_next = p->threads;
    p->threads = t;
    p->live_threads++;
    live_threads++;
    sched_make_runnable(t);
    *out = t;
    return 0;
}

void thread_free(struct thread *t)
{
    VERIFY(t->state == THREAD_DEAD && !t->kstack_top);
    struct account *a = t->account;
    slab_free(&thread_cache, t);
    if (a) {
        kmem_uncharge(a, THREAD_KMEM_BYTES);
        account_put(a, proc_account_free);
    }
}

void thread_mark_dead(struct thread *t)
{
    VERIFY(t == current || !t->on_cpu);
    if (t != current)
        sched_remove(t);
    t->state = THREAD_DEAD;
    live_threads--;
    if (t->account)
        account_uncharge(t->account, RES_THREADS, 1);
    ipc_thread_dead(t);
    sched_release_wait_hold(t);
    sched_wake_all(&t->joiners, 0);
}

uint64_t thread_live_count(void) { return live_threads; }
