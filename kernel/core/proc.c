/*
 * Kernel layer: processes (see kernel/proc.h). Spawning loads a boot module:
 * the ELF image is checked whole before anything is allocated, then every
 * step that can fail runs before the process becomes visible, and a failure
 * tears down what was built. Exit releases everything the process held and
 * wakes its waiters; the process object itself lives on while handles name
 * it, so that its exit status can be read.
 */
#include <abi/errno.h>
#include <abi/proc.h>
#include <arch/arch.h>
#include <common/elf.h>
#include <common/string.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/paging.h>
#include <kernel/physmem.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/slab.h>

static struct slab_cache proc_cache, span_cache;
static struct process *proc_table[PROC_MAX];
static uint32_t proc_generation[PROC_MAX];
static uint64_t live_processes;

void proc_init(void)
{
    slab_cache_init(&proc_cache, "process", sizeof(struct process));
    slab_cache_init(&span_cache, "user span", sizeof(struct user_span));
    for (unsigned i = 0; i < PROC_MAX; i++)
        proc_generation[i] = 1;
}

uint64_t proc_live_count(void) { return live_processes; }

static int proc_alloc(const char *name, struct process **out)
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
    if (paging_create(&p->root) != 0) {
        slab_free(&proc_cache, p);
        return -ENOMEM;
    }
    if (handle_table_init(&p->handles) != 0) {
        paging_destroy(p->root);
        slab_free(&proc_cache, p);
        return -ENOMEM;
    }
    strlcpy(p->name, name, sizeof(p->name));
    p->pid = ((uint64_t)proc_generation[slot] << 32) | (slot + 1);
    p->refs = 1;
    proc_table[slot] = p;
    live_processes++;
    *out = p;
    return 0;
}

/* Allocates, zero-fills and maps [vaddr, vaddr+size) in p. */
static int proc_add_span(struct process *p, uint64_t vaddr, uint64_t size, unsigned flags, uint64_t *phys_out)
{
    struct user_span *s = slab_alloc(&span_cache);
    if (!s)
        return -ENOMEM;
    uint64_t align = (size >= LARGE_PAGE_SIZE && !(vaddr & (LARGE_PAGE_SIZE - 1))) ? LARGE_PAGE_SIZE : PAGE_SIZE;
    uint64_t phys;
    int err = physmem_alloc(size, align, ~0ull, &phys);
    if (err && align != PAGE_SIZE)
        err = physmem_alloc(size, PAGE_SIZE, ~0ull, &phys);
    if (err) {
        slab_free(&span_cache, s);
        return err;
    }
    memset(phys_to_virt(phys), 0, size);
    err = paging_map(p->root, vaddr, phys, size, flags | MAP_USER);
    if (err) {
        physmem_free(phys, size);
        slab_free(&span_cache, s);
        return err;
    }
    *s = (struct user_span){ .phys = phys, .size = size, .vaddr = vaddr, .next = p->spans };
    p->spans = s;
    *phys_out = phys;
    return 0;
}

static void put_handle_object(void *object, enum handle_type type)
{
    if (type == HANDLE_PROCESS)
        proc_put(object);
    else if (type == HANDLE_THREAD)
        thread_put(object);
}

/* Gives back everything but the process object. */
static void proc_release(struct process *p)
{
    handle_table_drain(&p->handles, put_handle_object);
    handle_table_destroy(&p->handles);
    while (p->spans) {
        struct user_span *s = p->spans;
        p->spans = s->next;
        physmem_free(s->phys, s->size);
        slab_free(&span_cache, s);
    }
    paging_destroy(p->root);
    p->root = 0;
    unsigned slot = (unsigned)(p->pid & 0xffffffffu) - 1;
    proc_table[slot] = 0;
    if (++proc_generation[slot] == 0)
        proc_generation[slot] = 1;
    live_processes--;
}

void proc_put(struct process *p)
{
    VERIFY(p->refs > 0);
    if (--p->refs)
        return;
    VERIFY(p->exited);
    slab_free(&proc_cache, p);
}

int proc_spawn_module(unsigned module, const char *args, size_t args_len, bool boot_right, struct process **out)
{
    if (module >= boot_module_count)
        return -ENOENT;
    if (args_len >= ABI_ARGS_MAX)
        return -E2BIG;
    const struct boot_module *m = &boot_modules[module];
    const void *image = phys_to_virt(m->start);
    struct elf_image elf;
    const char *why = "";
    if (elf_check(image, m->end - m->start, ABI_USER_BASE, USER_STACK_TOP - USER_STACK_SIZE, &elf, &why) != 0) {
        kprintf("spawn: module %s refused: %s\n", m->name, why);
        return -ENOEXEC;
    }

    struct process *p;
    int err = proc_alloc(m->name, &p);
    if (err)
        return err;
    for (size_t i = 0; i < elf.nsegments && !err; i++) {
        const struct elf_segment *s = &elf.seg[i];
        if (!s->memsz)
            continue;
        uint64_t page_start = s->vaddr & ~(PAGE_SIZE - 1);
        uint64_t page_end = (s->vaddr + s->memsz + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
        unsigned flags = ((s->flags & ELF_SEG_W) ? MAP_WRITE : 0) | ((s->flags & ELF_SEG_X) ? MAP_EXEC : 0);
        uint64_t phys;
        err = proc_add_span(p, page_start, page_end - page_start, flags, &phys);
        if (!err)
            memcpy((char *)phys_to_virt(phys) + (s->vaddr - page_start), (const char *)image + s->offset, s->filesz);
    }
    uint64_t stack_phys = 0;
    if (!err)
        err = proc_add_span(p, USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_SIZE, MAP_WRITE, &stack_phys);
    uint64_t startup_va = (USER_STACK_TOP - sizeof(struct abi_startup)) & ~15ull;
    if (!err) {
        struct abi_startup *st = (struct abi_startup *)((char *)phys_to_virt(stack_phys) +
                                                        (startup_va - (USER_STACK_TOP - USER_STACK_SIZE)));
        st->magic = ABI_STARTUP_MAGIC;
        st->self_pid = p->pid;
        st->args_len = args_len;
        memcpy(st->args, args, args_len);
        st->args[args_len] = 0;
    }
    struct thread *t;
    if (!err)
        err = thread_create(p, elf.entry, startup_va, startup_va, &t);
    if (err) {
        p->exited = true;
        proc_release(p);
        proc_put(p);
        return err;
    }
    p->boot_right = boot_right;
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
