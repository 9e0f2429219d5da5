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
 *
 * Accounts: a process's account is a child of its creator's; creating it
 * charges RES_PROCESSES, and every kernel object it causes is charged as
 * RES_KMEM (kernel/kmem.h). The account object itself is charged to the
 * parent (an account cannot pay for itself and still reach zero). Ending
 * a process gives back everything but the process object, which lives on
 * (still charged) while handles name it.
 */
#include <abi/errno.h>
#include <abi/ipc.h>
#include <abi/proc.h>
#include <arch/arch.h>
#include <common/elf.h>
#include <common/idtable.h>
#include <common/string.h>
#include <kernel/account.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/ipc.h>
#include <kernel/irq.h>
#include <kernel/kmem.h>
#include <kernel/notification.h>
#include <kernel/physmem.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/ref.h>
#include <kernel/segment.h>
#include <kernel/slab.h>

struct process *memsrv_process;
struct endpoint *memsrv_endpoint;

/* Whole pages of slots below PROC_MAX: every pid's slot stays below it
 * (memsrv indexes its clients by slot), which leaves the header slots'
 * four out of the processes alive at once. */
#define PID_PAGES (PROC_MAX / ID_SLOTS_PER_PAGE)
_Static_assert(PROC_MAX % ID_SLOTS_PER_PAGE == 0, "pid slots end on a page boundary");

static struct slab_cache proc_cache, account_cache;
static struct id_slot *pid_directory[PID_PAGES];
static uint64_t pid_pages_with_free[ID_BITMAP_WORDS(PID_PAGES)];
static struct id_table pids;
static uint64_t live_processes;

static int pid_page_get(void *ctx, void **page) { return kmem_frame_alloc(ctx, page); }
static void pid_page_put(void *ctx, void *page) { kmem_frame_free(ctx, page); }

void proc_init(void)
{
    slab_cache_init(&proc_cache, "process", sizeof(struct process));
    slab_cache_init(&account_cache, "account", sizeof(struct account));
    const struct id_pages provider = { pid_page_get, pid_page_put, 0 };
    idt_init_with_directory(&pids, pid_directory, pid_pages_with_free, PID_PAGES, &provider);
}

uint64_t proc_live_count(void) { return live_processes; }

uint32_t proc_id_pages(void) { return pids.npages; }

struct process *proc_by_pid(uint64_t pid)
{
    struct id_slot *e = idt_slot(&pids, pid);
    return e ? e->object : 0;
}

void proc_account_free(struct account *a) { kmem_slab_free(a->parent, &account_cache, a); }

int account_object_alloc(struct account *a, struct slab_cache *c, void **out)
{
    int err = kmem_slab_alloc(a, c, out);
    if (!err && a)
        account_get(a);
    return err;
}

void account_object_free(struct account *a, struct slab_cache *c, void *object)
{
    kmem_slab_free(a, c, object);
    if (a)
        account_put(a, proc_account_free);
}

/* A new account under parent's, charged for one process. */
static int account_new(struct account *parent, struct account **out)
{
    if (parent && !account_fits(parent, RES_PROCESSES, 1))
        return -EDQUOT;
    struct account *a;
    int err = kmem_slab_alloc(parent, &account_cache, (void **)&a);
    if (err)
        return err;
    account_init(a, parent);
    VERIFY(account_charge(a, RES_PROCESSES, 1) == 0);
    *out = a;
    return 0;
}

/* Undoes account_new (the process never existed, or it has ended). */
static void account_end(struct account *a)
{
    account_uncharge(a, RES_PROCESSES, 1);
    account_put(a, proc_account_free);
}

int proc_create(const char *name, struct process *parent, uint32_t powers, struct process **out)
{
    struct account *a;
    int err = account_new(parent ? parent->account : 0, &a);
    if (err)
        return err;
    struct process *p;
    err = kmem_slab_alloc(a, &proc_cache, (void **)&p);
    if (err) {
        account_end(a);
        return err;
    }
    p->account = a;
    uint64_t pid = 0;
    err = aspace_init(&p->aspace, a);
    if (!err) {
        err = handle_table_init(&p->handles, a);
        if (!err) {
            err = idt_alloc(&pids, p, 1, &pid);
            if (err)
                handle_table_destroy(&p->handles);
        }
        if (err)
            aspace_destroy(&p->aspace);
    }
    if (err) {
        kmem_slab_free(a, &proc_cache, p);
        account_end(a);
        return err;
    }
    strlcpy(p->name, name, sizeof(p->name));
    p->pid = pid;
    a->pid = pid;
    p->parent_pid = parent ? parent->pid : 0;
    p->powers = powers;
    p->refs = 1;
    list_init(&p->segments);
    list_init(&p->watches);
    list_init(&p->share.parked);
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

struct notification *memsrv_notification;

void proc_notify_memsrv(uint64_t bits)
{
    if (memsrv_notification)
        notification_signal(memsrv_notification, bits);
}

void proc_notify_memsrv_reclaim(void) { proc_notify_memsrv(IPC_NOTIFY_EXIT); }

/*
 * The memory server's own parts (its image and stack segments). They are
 * kept when it ends, ownerless and apart from everything reclaimed, so a
 * successor can be loaded into them: once the server has taken over
 * memory the kernel has no frames of its own to load one into.
 */
#define MODULE_PARTS_MAX (ELF_MAX_SEGMENTS + 1)
static struct segment *memsrv_parts[MODULE_PARTS_MAX];
static unsigned memsrv_nparts;
static unsigned memsrv_module_index;

static bool memsrv_part(const struct segment *s)
{
    for (unsigned i = 0; i < memsrv_nparts; i++)
        if (memsrv_parts[i] == s)
            return true;
    return false;
}

/* Where the segments of an ended process go. Returns whether the memory
 * server has something to hear about. */
static bool route_segment(struct segment *s, struct process *p)
{
    /* The memory server's own image and stack wait for its successor. */
    if (p == memsrv_process && memsrv_part(s))
        return false;
    /* Once the server owns memory, everything goes back through it, even
     * while it is down (its successor finds the queue); a segment a device
     * may reach never goes straight back to the boot ranges either. */
    if (physmem_handed_over() || s->dma_device) {
        segment_reclaim(s, p->pid);
        return true;
    }
    physmem_free(s->phys, s->size);
    segment_destroy(s);
    return false;
}

static struct process *draining; /* the process whose handles proc_release drops */

static void put_handle_object(void *object, enum handle_type type, rights_t rights)
{
    proc_drop_handle(draining, HANDLE_NONE, object, type, rights);
}

void object_handle_added(void *object, enum handle_type type, rights_t rights)
{
    switch (type) {
    case HANDLE_PROCESS: proc_handle_added(object); break;
    case HANDLE_THREAD: thread_get(object); break;
    case HANDLE_ENDPOINT:
        endpoint_get(object);
        endpoint_handle_added(object, rights);
        break;
    case HANDLE_DEVICE: device_get(object); break;
    case HANDLE_NOTIFICATION: notification_get(object); break;
    case HANDLE_IRQ: irq_get(object); break;
    default: panic("a handle of type %d added", type);
    }
}

void proc_device_let_go(struct process *p, struct device *dev, rights_t rights)
{
    /* Whoever drove the device's DMA through this handle lets go of it:
     * the device stops mastering, which releases what it could reach. */
    if (rights & RIGHT_DMA) {
        if (device_driver_gone(dev, p->pid))
            segment_device_quiesced(dev);
        segment_dma_owner_gone(dev, p->account);
    }
}

void proc_drop_handle(struct process *p, handle_t h, void *object, enum handle_type type, rights_t rights)
{
    switch (type) {
    case HANDLE_PROCESS: proc_handle_dropped(object); break;
    case HANDLE_THREAD: thread_put(object); break;
    case HANDLE_ENDPOINT: endpoint_handle_dropped(object, rights, p, h); break;
    case HANDLE_NOTIFICATION: notification_put(object); break;
    case HANDLE_IRQ: irq_handle_dropped(object); break;
    case HANDLE_DEVICE:
        proc_device_let_go(p, object, rights);
        device_put(object);
        break;
    default: panic("handle of type %d left in a table", type);
    }
}

/* Gives back everything but the process object. */
static void proc_release(struct process *p)
{
    bool notify = false;
    struct list_node *n;
    aspace_ending(&p->aspace);
    while ((n = list_first(&p->segments)) != 0) {
        struct segment *s = LIST_ENTRY(n, struct segment, link);
        segment_detach(s);
        notify |= route_segment(s, p);
    }
    if (notify)
        proc_notify_memsrv_reclaim();
    ipc_watcher_gone(p);
    /* A handle to an unstarted child ends it, and its release runs inside
     * this one's drain. */
    struct process *outer = draining;
    draining = p;
    handle_table_drain(&p->handles, put_handle_object);
    draining = outer;
    handle_table_destroy(&p->handles);
    aspace_destroy(&p->aspace);
    idt_free(&pids, p->pid);
    live_processes--;
    account_uncharge(p->account, RES_PROCESSES, 1);
    if (p == memsrv_process) {
        /* Its segments stay where they are: clients keep theirs, its own
         * wait in the reclaim queue or (image and stack) for a successor.
         * Calls on its endpoint fail with -EPEER until one receives. */
        kprintf("tessera: the memory server ended (status %ld); its memory is kept for a successor\n", p->exit_status);
        memsrv_process = 0;
    }
}

void proc_get(struct process *p) { p->refs++; }

void proc_handle_added(struct process *p)
{
    p->handle_count++;
    proc_get(p);
}

void proc_handle_dropped(struct process *p)
{
    VERIFY(p->handle_count > 0);
    /* A process nobody started and nobody can name any more would hold its
     * segments for ever. */
    if (--p->handle_count == 0 && !p->started && !p->exited)
        proc_exit(p, ABI_EXIT_KILLED);
    proc_put(p);
}

void proc_put(struct process *p)
{
    if (!ref_drop(&p->refs))
        return;
    VERIFY(p->exited);
    struct account *a = p->account;
    kmem_slab_free(a, &proc_cache, p);
    account_put(a, proc_account_free);
}

/* A part for p at vaddr: part number `index` of the predecessor's (reuse)
 * or fresh frames from the kernel's boot ranges; zero-filled and mapped. */
static int load_segment(struct process *p, uint64_t vaddr, uint64_t size, rights_t rights, bool reuse, unsigned index,
                        struct segment **out)
{
    struct segment *s;
    int err;
    if (reuse) {
        s = index < memsrv_nparts ? memsrv_parts[index] : 0;
        if (!s || s->owner || s->size != size)
            return -ENOEXEC; /* the image no longer fits what it was loaded into */
        arch_zero_pages(phys_to_virt(s->phys), size);
        err = segment_attach(s, p, true, vaddr, rights);
    } else {
        uint64_t align = (size >= LARGE_PAGE_SIZE && !(vaddr & (LARGE_PAGE_SIZE - 1))) ? LARGE_PAGE_SIZE : PAGE_SIZE;
        uint64_t phys;
        err = physmem_alloc(size, align, ~0ull, &phys);
        if (err && align != PAGE_SIZE)
            err = physmem_alloc(size, PAGE_SIZE, ~0ull, &phys);
        if (err)
            return err;
        err = segment_create(phys, size, 0, p->account, &s);
        if (err) {
            physmem_free(phys, size);
            return err;
        }
        arch_zero_pages(phys_to_virt(phys), size);
        err = segment_attach(s, p, true, vaddr, rights);
        if (err) {
            segment_destroy(s);
            physmem_free(phys, size);
            return err;
        }
    }
    if (err)
        return err;
    *out = s;
    return 0;
}

/* The parts a module is being loaded into, in load order (the ELF
 * segments, then the stack): a reload of the memory server takes them from
 * its predecessor's kept parts in the same order. */
struct module_load {
    struct process *p;
    bool reuse;
    unsigned nparts;
    struct segment *parts[MODULE_PARTS_MAX];
};

static int load_part(struct module_load *ld, uint64_t vaddr, uint64_t size, rights_t rights, struct segment **out)
{
    int err = load_segment(ld->p, vaddr, size, rights, ld->reuse, ld->nparts, out);

    if (err)
        return err;
    ld->parts[ld->nparts++] = *out;
    return 0;
}

/* Boot module `module`'s image, if it is an executable this kernel can
 * load; a refusal is logged, since nothing else will say why. */
static int module_image(unsigned module, size_t args_len, const struct boot_module **m, const void **image,
                        struct elf_image *elf)
{
    const char *why = "";

    if (module >= boot_module_count)
        return -ENOENT;
    if (args_len >= ABI_ARGS_MAX)
        return -E2BIG;
    *m = &boot_modules[module];
    *image = phys_to_virt((*m)->seg->phys);
    if (elf_check(*image, (*m)->size, ABI_USER_BASE, ABI_STACK_TOP - ABI_STACK_SIZE, elf, &why) != 0) {
        kprintf("load: module %s refused: %s\n", (*m)->name, why);
        return -ENOEXEC;
    }
    return 0;
}

/* Each ELF segment gets whole pages of its own, with the rights its flags
 * ask for; the bytes past its file size stay zero (the part is zero-filled). */
static int load_elf_segments(struct module_load *ld, const void *image, const struct elf_image *elf)
{
    for (size_t i = 0; i < elf->nsegments; i++) {
        const struct elf_segment *e = &elf->seg[i];
        if (!e->memsz)
            continue;
        uint64_t page_start = e->vaddr & ~(PAGE_SIZE - 1);
        uint64_t page_end = (e->vaddr + e->memsz + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
        rights_t rights = RIGHT_READ | RIGHT_PIN | ((e->flags & ELF_SEG_W) ? RIGHT_WRITE : 0) |
                          ((e->flags & ELF_SEG_X) ? RIGHT_EXEC : 0);
        struct segment *s;
        int err = load_part(ld, page_start, page_end - page_start, rights, &s);
        if (err)
            return err;
        memcpy((char *)phys_to_virt(s->phys) + (e->vaddr - page_start), (const char *)image + e->offset, e->filesz);
    }
    return 0;
}

/* The handle to the memory server's endpoint every process starts with
 * (HANDLE_NONE while there is none, as for memsrv's first start). */
static int grant_memsrv_endpoint(struct process *p, struct endpoint *memsrv_ep, uint32_t powers, handle_t *out)
{
    *out = HANDLE_NONE;
    if (!memsrv_ep)
        return 0;
    /* The memory server receives on its endpoint; everyone else may only
     * send (and init may pass that on). */
    rights_t rights = (powers & POWER_MEMSRV) ? RIGHT_SEND | RIGHT_RECV : RIGHT_SEND | RIGHT_GRANT;
    int err = handle_install(&p->handles, memsrv_ep, HANDLE_ENDPOINT, rights, out);
    if (err)
        return err;
    endpoint_get(memsrv_ep);
    endpoint_handle_added(memsrv_ep, rights);
    return 0;
}

/* The stack, with the startup block (arguments and initial handles) at
 * ABI_STARTUP_ADDR inside it, where the process's entry finds it. */
static int load_stack(struct module_load *ld, const char *args, size_t args_len, handle_t memsrv_handle,
                      struct abi_startup **out)
{
    const uint64_t stack_base = ABI_STACK_TOP - ABI_STACK_SIZE;
    struct segment *stack;
    int err = load_part(ld, stack_base, ABI_STACK_SIZE, RIGHT_READ | RIGHT_WRITE | RIGHT_PIN, &stack);
    if (err)
        return err;
    struct abi_startup *st =
        (struct abi_startup *)((char *)phys_to_virt(stack->phys) + (ABI_STARTUP_ADDR - stack_base));
    st->magic = ABI_STARTUP_MAGIC;
    st->args_len = args_len;
    st->handles[ABI_STARTUP_MEMSRV] = memsrv_handle;
    memcpy(st->args, args, args_len);
    st->args[args_len] = 0;
    *out = st;
    return 0;
}

static void abandon_load(struct module_load *ld)
{
    /* Reused parts go back to the keep, fresh ones to the boot ranges. */
    if (ld->reuse)
        for (unsigned i = 0; i < ld->nparts; i++)
            segment_detach(ld->parts[i]);
    ld->p->exited = true;
    proc_release(ld->p);
    proc_put(ld->p);
}

/* Remembers the memory server's parts, so that a successor can be loaded
 * into them (see memsrv_parts). */
static void keep_memsrv_parts(const struct module_load *ld, unsigned module)
{
    for (unsigned i = 0; i < ld->nparts; i++)
        memsrv_parts[i] = ld->parts[i];
    memsrv_nparts = ld->nparts;
    memsrv_module_index = module;
}

/* Loads boot module `module` (reuse: into the memory server's kept
 * parts) and starts it. */
static int load_module(unsigned module, const char *args, size_t args_len, struct endpoint *memsrv_ep, uint32_t powers,
                       bool reuse, struct process **out, struct abi_startup **startup_out)
{
    const struct boot_module *m;
    const void *image;
    struct elf_image elf;
    int err = module_image(module, args_len, &m, &image, &elf);
    if (err)
        return err;

    struct module_load ld = { .reuse = reuse };
    err = proc_create(m->name, 0, powers, &ld.p);
    if (err)
        return err;
    handle_t memsrv_handle = HANDLE_NONE;
    struct abi_startup *st = NULL;
    err = load_elf_segments(&ld, image, &elf);
    if (!err)
        err = grant_memsrv_endpoint(ld.p, memsrv_ep, powers, &memsrv_handle);
    if (!err)
        err = load_stack(&ld, args, args_len, memsrv_handle, &st);
    if (!err)
        err = proc_start(ld.p, elf.entry, ABI_STARTUP_ADDR, ABI_STARTUP_ADDR);
    if (err) {
        abandon_load(&ld);
        return err;
    }
    if (powers & POWER_MEMSRV)
        keep_memsrv_parts(&ld, module);
    *out = ld.p;
    if (startup_out)
        *startup_out = st;
    return 0;
}

int proc_load_module(unsigned module, const char *args, size_t args_len, struct endpoint *memsrv_ep, uint32_t powers,
                     struct process **out, struct abi_startup **startup)
{
    return load_module(module, args, args_len, memsrv_ep, powers, false, out, startup);
}

int proc_restart_memsrv(const char *args, size_t args_len, struct process **out)
{
    if (memsrv_process)
        return -EBUSY;
    if (!memsrv_nparts)
        return -ENOENT;
    struct process *p;
    int err = load_module(memsrv_module_index, args, args_len, memsrv_endpoint, POWER_MEMSRV, true, &p, 0);
    if (err)
        return err;
    memsrv_process = p;
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

/* An ended process whose last thread is gone gives everything back. */
static void proc_finish(struct process *p)
{
    if (p->threads)
        return; /* threads still running on other CPUs: the last one finishes it */
    proc_release(p);
    p->finished = true;
    sched_wake_all(&p->waiters, 0);
    proc_put(p); /* the reference it held on itself while running */
}

void proc_exit(struct process *p, int64_t status)
{
    if (p->exited)
        return;
    p->exited = true;
    p->exit_status = status;
    for (struct thread *t = p->threads, *next; t; t = next) {
        next = t->proc_next;
        if (t == current)
            continue;
        if (t->on_cpu) {
            /* Running on another CPU: it cannot be stopped from here (its
             * kernel stack is live). It dies on its way out of the kernel,
             * which the reschedule IPI makes soon; the address space stays
             * until it has. */
            t->exiting = true;
            smp_send_reschedule(t->cpu);
            continue;
        }
        proc_thread_died(p, t);
        thread_mark_dead(t);
        thread_stack_free(t);
        thread_put(t);
    }
    if (current->proc == p)
        proc_thread_exit_current();
    proc_finish(p);
}

void proc_thread_exit_current(void)
{
    struct thread *t = current;
    struct process *p = t->proc;
    if (!p->exited && p->live_threads == 1) {
        p->exited = true; /* the last thread: the process ends with it */
        p->exit_status = 0;
    }
    proc_thread_died(p, t);
    thread_mark_dead(t);
    if (p->exited)
        proc_finish(p);
    sched_exit_current();
}

/* A fault loop (a program that spawns faulting children) must not drown
 * the console: past a burst, reports are counted, not printed. */
#define FAULT_REPORTS_PER_SECOND 16u

void proc_fault(struct trap_frame *f)
{
    static uint64_t window_start_ns, reports, suppressed;
    struct process *p = current->proc;
    uint64_t now = arch_time_ns();
    if (now - window_start_ns >= 1000000000ull) {
        if (suppressed)
            kprintf("user fault: %lu more fault reports suppressed\n", suppressed);
        window_start_ns = now;
        reports = suppressed = 0;
    }
    if (reports < FAULT_REPORTS_PER_SECOND) {
        reports++;
        kprintf("user fault: process %s (pid %#lx) thread %lu killed\n", p->name, p->pid, current->id);
        trap_print_frame(f);
    } else {
        suppressed++;
    }
    proc_exit(p, ABI_EXIT_FAULT(f->vector));
}
