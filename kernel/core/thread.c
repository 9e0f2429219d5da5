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
static uint8_t kstack_slot_used[KSTACK_SLOTS / 8];
static uint64_t next_thread_id = 1;
static uint64_t live_threads;

#define KSTACK_FRAMES (KSTACK_SIZE / PAGE_SIZE)

static int kstack_alloc(struct thread *t)
{
    unsigned slot = KSTACK_SLOTS;
    for (unsigned i = 0; i < KSTACK_SLOTS; i++) {
        if (!(kstack_slot_used[i / 8] & (1u << (i % 8)))) {
            slot = i;
            break;
        }
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

/* A stack waiting in a batch: written into its own first frame, reached
 * through the direct map since its stack address is already unmapped. */
struct parked_stack {
    uint64_t next_first_frame; /* the next parked stack's first frame */
    uint64_t frames[KSTACK_FRAMES];
    unsigned slot;
};

void thread_stack_park(struct kstack_batch *batch, struct thread *t)
{
    if (!t->kstack_top)
        return;
    uint64_t base = t->kstack_top - KSTACK_SIZE;
    struct parked_stack parked = { .next_first_frame = batch->first_frame, .slot = t->kstack_slot };
    for (unsigned i = 0; i < KSTACK_FRAMES; i++)
        VERIFY(paging_translate(paging_kernel_root(), base + i * PAGE_SIZE, &parked.frames[i], 0));
    /* Other CPUs may still cache the old translations: the slot stays
     * taken and the frames stay out of the pool until the batch's one
     * shootdown (thread_stacks_release). */
    paging_unmap_kernel_here(base, KSTACK_SIZE);
    *(struct parked_stack *)phys_to_virt(parked.frames[0]) = parked;
    batch->first_frame = parked.frames[0];
    batch->lo = batch->count == 0 || base < batch->lo ? base : batch->lo;
    batch->hi = batch->count == 0 || base + KSTACK_SIZE > batch->hi ? base + KSTACK_SIZE : batch->hi;
    batch->count++;
    t->kstack_top = 0;
}

void thread_stacks_release(struct kstack_batch *batch)
{
    if (batch->count == 0)
        return;
    /* One round of IPIs for the whole batch: a process that exits with
     * thousands of threads would otherwise hold the kernel lock through
     * one round per stack. */
    paging_flush_kernel_others(batch->lo, batch->hi - batch->lo);
    for (unsigned n = 0; n < batch->count; n++) {
        struct parked_stack parked = *(const struct parked_stack *)phys_to_virt(batch->first_frame);
        for (unsigned i = 0; i < KSTACK_FRAMES; i++)
            pool_free_frame(parked.frames[i]);
        kstack_slot_used[parked.slot / 8] &= (uint8_t) ~(1u << (parked.slot % 8));
        batch->first_frame = parked.next_first_frame;
    }
    *batch = (struct kstack_batch){ 0 };
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
