/*
 * Kernel layer: processes (see kernel/proc.h). Called by the system call
 * layer, by trap handling (user faults) and by kmain (the first processes).
 *
 * Loading a boot module checks the whole ELF image before anything is
 * allocated; every later step that can fail runs before the process has a
 * thread, and a failure tears down what was built. Exit gives back
 * everything the process held: its segments go to the memory server (or,
 * while there is none, back to the kernel's boot ranges), pinned ones stay
 * quarantined; the process object lives on while handles name it, so that
 * its exit status can be read.
 */
#include <abi/errno.h>
#include <abi/ipc.h>
#include <abi/proc.h>
#include <arch/arch.h>
#include <common/elf.h>
#include <common/string.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/ipc.h>
#include <kernel/paging.h>
#include <kernel/physmem.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/segment.h>
#include <kernel/slab.h>

struct process *memsrv_process;
struct endpoint *memsrv_endpoint;

static struct slab_cache proc_cache;
static struct process *proc_table[PROC_MAX];
static uint32_t proc_generation[PROC_MAX];
static uint64_t live_processes;

void proc_init(void)
{
    slab_cache_init(&proc_cache, "process", sizeof(struct process));
    for (unsigned i = 0; i < PROC_MAX; i++)
        proc_generation[i] = 1;
}

uint64_t proc_live_count(void) { return live_processes; }

struct process *proc_by_pid(uint64_t pid)
{
    uint64_t slot = pid & 0xffffffffu;
    if (slot == 0 || slot > PROC_MAX)
        return 0;
    struct process *p = proc_table[slot - 1];
    return p && p->pid == pid ? p : 0;
}

int proc_create(const char *name, struct process **out)
{
    unsigned slot = PROC_MAX;
    for (unsigned i = 0; i < PROC_MAX; i++) {
        if (!proc_table[i]) {
            slot = i;
            break;
        }
    }
    if (slot == PROC_MAX)
        return -ENOMEM;
    struct process *p = slab_alloc(&proc_cache);
    if (!p)
        return -ENOMEM;
    int err = paging_create(&p->root);
    if (!err) {
        err = handle_table_init(&p->handles);
        if (!err) {
            err = vmareas_init(&p->areas, ABI_USER_BASE, ABI_USER_TOP, &pool_vmarea_pages);
            if (err)
                handle_table_destroy(&p->handles);
        }
        if (err)
            paging_destroy(p->root);
    }
    if (err) {
        slab_free(&proc_cache, p);
        return err;
    }
    strlcpy(p->name, name, sizeof(p->name));
    p->pid = ((uint64_t)proc_generation[slot] << 32) | (slot + 1);
    p->refs = 1;
    proc_table[slot] = p;
    live_processes++;
    *out = p;
    return 0;
}

int proc_start(struct process *p, uint64_t entry, uint64_t stack_top, uint64_t arg)
{
    if (p->started || p->exited)
        return -EINVAL;
    struct thread *t;
    int err = thread_create(p, entry, stack_top, arg, &t);
    if (err)
        return err;
    p->started = true;
    return 0;
}

/* Where the segments of an ended process go. */
static bool route_segment(struct segment *s, struct process *p)
{
    if (memsrv_process && !memsrv_process->exited && p != memsrv_process) {
        segment_reclaim(s, p->pid);
        return true;
    }
    if (s->pins) {
        /* No memory server to tell: the kernel keeps it out of reuse. */
        segment_reclaim(s, p->pid);
        return false;
    }
    physmem_free(s->phys, s->size);
    segment_destroy(s);
    return false;
}

static void put_handle_object(void *object, enum handle_type type)
{
    switch (type) {
    case HANDLE_PROCESS: proc_handle_dropped(object); break;
    case HANDLE_THREAD: thread_put(object); break;
    case HANDLE_ENDPOINT: endpoint_put(object); break;
    case HANDLE_DEVICE: device_put(object); break;
    default: panic("handle of type %d left in a table", type);
    }
}

/* Gives back everything but the process object. */
static void proc_release(struct process *p)
{
    bool notify = false;
    while (p->segments) {
        struct segment *s = p->segments;
        segment_detach(s);
        notify |= route_segment(s, p);
    }
    if (notify)
        ipc_notify(memsrv_endpoint, IPC_NOTIFY_EXIT);
    handle_table_drain(&p->handles, put_handle_object);
    handle_table_destroy(&p->handles);
    vmareas_destroy(&p->areas);
    paging_destroy(p->root);
    p->root = 0;
    unsigned slot = (unsigned)(p->pid & 0xffffffffu) - 1;
    proc_table[slot] = 0;
    if (++proc_generation[slot] == 0)
        proc_generation[slot] = 1;
    live_processes--;
    if (p == memsrv_process)
        kprintf("tessera: the memory server ended (status %ld); memory goes back to the kernel\n", p->exit_status);
}

void proc_get(struct process *p) { p->refs++; }

void proc_handle_dropped(struct process *p)
{
    /* A process nobody started and nobody can name any more would hold its
     * segments for ever. */
    if (!p->started && !p->exited)
        proc_exit(p, ABI_EXIT_KILLED);
    proc_put(p);
}

void proc_put(struct process *p)
{
    VERIFY(p->refs > 0);
    if (--p->refs)
        return;
    VERIFY(p->exited);
    if (p == memsrv_process)
        memsrv_process = 0;
    slab_free(&proc_cache, p);
}

/* Allocates, zero-fills and maps a segment at vaddr in p, from the kernel's
 * boot ranges. */
static int load_segment(struct process *p, uint64_t vaddr, uint64_t size, unsigned prot, struct segment **out)
{
    uint64_t align = (size >= LARGE_PAGE_SIZE && !(vaddr & (LARGE_PAGE_SIZE - 1))) ? LARGE_PAGE_SIZE : PAGE_SIZE;
    uint64_t phys;
    int err = physmem_alloc(size, align, ~0ull, &phys);
    if (err && align != PAGE_SIZE)
        err = physmem_alloc(size, PAGE_SIZE, ~0ull, &phys);
    if (err)
        return err;
    struct segment *s;
    err = segment_create(phys, size, 0, &s);
    if (err) {
        physmem_free(phys, size);
        return err;
    }
    memset(phys_to_virt(phys), 0, size);
    err = segment_attach(s, p, true, vaddr, prot);
    if (err) {
        segment_destroy(s);
        physmem_free(phys, size);
        return err;
    }
    *out = s;
    return 0;
}

int proc_load_module(unsigned module, const char *args, size_t args_len, struct endpoint *memsrv_ep,
                     struct process **out)
{
    if (module >= boot_module_count)
        return -ENOENT;
    if (args_len >= ABI_ARGS_MAX)
        return -E2BIG;
    const struct boot_module *m = &boot_modules[module];
    const void *image = phys_to_virt(m->seg->phys);
    struct elf_image elf;
    const char *why = "";
    if (elf_check(image, m->size, ABI_USER_BASE, ABI_STACK_TOP - ABI_STACK_SIZE, &elf, &why) != 0) {
        kprintf("load: module %s refused: %s\n", m->name, why);
        return -ENOEXEC;
    }

    struct process *p;
    int err = proc_create(m->name, &p);
    if (err)
        return err;
    for (size_t i = 0; i < elf.nsegments && !err; i++) {
        const struct elf_segment *e = &elf.seg[i];
        if (!e->memsz)
            continue;
        uint64_t page_start = e->vaddr & ~(PAGE_SIZE - 1);
        uint64_t page_end = (e->vaddr + e->memsz + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
        unsigned prot = ((e->flags & ELF_SEG_W) ? SEG_PROT_WRITE : 0) | ((e->flags & ELF_SEG_X) ? SEG_PROT_EXEC : 0);
        struct segment *s;
        err = load_segment(p, page_start, page_end - page_start, prot, &s);
        if (!err)
            memcpy((char *)phys_to_virt(s->phys) + (e->vaddr - page_start), (const char *)image + e->offset, e->filesz);
    }
    handle_t memsrv_handle = HANDLE_NONE;
    if (!err && memsrv_ep) {
        err = handle_install(&p->handles, memsrv_ep, HANDLE_ENDPOINT, &memsrv_handle);
        if (!err)
            endpoint_get(memsrv_ep);
    }
    struct segment *stack = 0;
    if (!err)
        err = load_segment(p, ABI_STACK_TOP - ABI_STACK_SIZE, ABI_STACK_SIZE, SEG_PROT_WRITE, &stack);
    uint64_t startup_va = ABI_STARTUP_ADDR;
    if (!err) {
        struct abi_startup *st = (struct abi_startup *)((char *)phys_to_virt(stack->phys) +
                                                        (startup_va - (ABI_STACK_TOP - ABI_STACK_SIZE)));
        st->magic = ABI_STARTUP_MAGIC;
        st->args_len = args_len;
        st->handles[ABI_STARTUP_MEMSRV] = memsrv_handle;
        memcpy(st->args, args, args_len);
        st->args[args_len] = 0;
    }
    if (!err)
        err = proc_start(p, elf.entry, startup_va, startup_va);
    if (err) {
        p->exited = true;
        proc_release(p);
        proc_put(p);
        return err;
    }
    *out = p;
    return 0;
}

void proc_thread_died(struct process *p, struct thread *t)
{
    for (struct thread **pp = &p->threads; *pp; pp = &(*pp)->proc_next) {
        if (*pp == t) {
            *pp = t->proc_next;
            break;
        }
    }
    p->live_threads--;
}

void proc_exit(struct process *p, int64_t status)
{
    if (p->exited)
        return;
    bool self = current->proc == p;
    p->exited = true;
    p->exit_status = status;
    while (p->threads) {
        struct thread *t = p->threads;
        proc_thread_died(p, t);
        thread_mark_dead(t);
        if (t != current) {
            thread_free_stack(t);
            thread_put(t);
        }
    }
    proc_release(p);
    sched_wake_all(&p->waiters, 0);
    proc_put(p); /* the reference it held on itself while running */
    if (self)
        sched_exit_current();
}

void proc_fault(struct trap_frame *f)
{
    struct process *p = current->proc;
    kprintf("user fault: process %s (pid %#lx) thread %lu killed\n", p->name, p->pid, current->id);
    trap_print_frame(f);
    proc_exit(p, ABI_EXIT_FAULT(f->vector));
}
