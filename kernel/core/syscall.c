/*
 * Kernel layer: system call dispatch and the calls of the process layer.
 * syscall_entry (entry.asm) saves a trap frame and calls syscall_dispatch(),
 * which bounds-checks the number, checks the caller's right to make the call
 * and runs the handler. Handlers validate every argument before they change
 * anything.
 */
#include <abi/errno.h>
#include <abi/proc.h>
#include <abi/syscall.h>
#include <arch/arch.h>
#include <common/string.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/physmem.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>
#include <kernel/usercopy.h>

typedef int64_t (*syscall_fn)(uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4);

#define ARGS uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4
#define UNUSED_ARGS (void)a0, (void)a1, (void)a2, (void)a3, (void)a4

static struct process *self(void) { return current->proc; }

static int64_t sys_exit(ARGS)
{
    UNUSED_ARGS;
    int64_t status = (int64_t)a0;
    if (status < 0)
        status = 0x7fffffff; /* negative statuses are the kernel's own */
    proc_exit(self(), status);
    return 0;
}

static int64_t sys_thread_create(ARGS)
{
    UNUSED_ARGS;
    uint64_t entry = a0, stack_top = a1, arg = a2;
    if (entry < ABI_USER_BASE || entry >= ABI_USER_TOP || stack_top < ABI_USER_BASE || stack_top > ABI_USER_TOP)
        return -EFAULT;
    struct thread *t;
    int err = thread_create(self(), entry, stack_top, arg, &t);
    if (err)
        return err;
    t->refs++;
    handle_t h;
    err = handle_install(&self()->handles, t, HANDLE_THREAD, &h);
    if (err) {
        thread_put(t); /* the thread runs on, unnamed */
        return err;
    }
    return (int64_t)h;
}

static int64_t sys_thread_exit(ARGS)
{
    UNUSED_ARGS;
    struct process *p = self();
    if (p->live_threads == 1) {
        proc_exit(p, 0);
        return 0;
    }
    struct thread *t = current;
    proc_thread_died(p, t);
    thread_mark_dead(t);
    sched_exit_current();
}

static int64_t sys_thread_wait(ARGS)
{
    UNUSED_ARGS;
    struct thread *t = handle_lookup(&self()->handles, a0, HANDLE_THREAD);
    if (!t)
        return -EBADH;
    if (t == current)
        return -EINVAL;
    if (t->state == THREAD_DEAD)
        return 0;
    return sched_block(&t->joiners, a1);
}

static int64_t sys_yield(ARGS)
{
    UNUSED_ARGS;
    sched_yield();
    return 0;
}

static int64_t sys_sleep(ARGS)
{
    UNUSED_ARGS;
    if (a0 == 0)
        return 0;
    sched_block(0, a0);
    return 0;
}

static int64_t sys_clock(ARGS)
{
    UNUSED_ARGS;
    return (int64_t)arch_time_ns();
}

#define CONSOLE_WRITE_MAX (64 * 1024)

static int64_t sys_console_write(ARGS)
{
    UNUSED_ARGS;
    uint64_t buf = a0, len = a1;
    if (len > CONSOLE_WRITE_MAX)
        return -E2BIG;
    if (!user_range_ok(buf, len, false))
        return -EFAULT;
    char chunk[256];
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < sizeof(chunk) ? len - done : sizeof(chunk);
        copy_from_user(chunk, buf + done, n);
        console_write(chunk, n);
        done += n;
    }
    return (int64_t)len;
}

static int64_t sys_handle_close(ARGS)
{
    UNUSED_ARGS;
    enum handle_type type;
    void *object = handle_remove(&self()->handles, a0, &type);
    if (!object)
        return -EBADH;
    if (type == HANDLE_PROCESS)
        proc_put(object);
    else if (type == HANDLE_THREAD)
        thread_put(object);
    return 0;
}

static int64_t sys_kinfo(ARGS)
{
    UNUSED_ARGS;
    struct abi_kinfo k = {
        .pool_frames_total = pool_total_frames(),
        .pool_frames_free = pool_free_frames(),
        .user_bytes_free = physmem_free_bytes(),
        .processes = proc_live_count(),
        .threads = thread_live_count(),
        .ticks = sched_ticks(),
        .tsc_per_us = arch_tsc_per_us(),
        .ncpus_present = arch_cpu_count_hint(),
    };
    return copy_to_user(a0, &k, sizeof(k));
}

static int64_t sys_proc_wait(ARGS)
{
    UNUSED_ARGS;
    struct process *p = handle_lookup(&self()->handles, a0, HANDLE_PROCESS);
    if (!p)
        return -EBADH;
    if (a2 && !user_range_ok(a2, sizeof(int64_t), true))
        return -EFAULT;
    if (!p->exited) {
        int64_t r = sched_block(&p->waiters, a1);
        if (r < 0 && !p->exited)
            return r;
    }
    return a2 ? copy_to_user(a2, &p->exit_status, sizeof(int64_t)) : 0;
}

static int64_t sys_proc_kill(ARGS)
{
    UNUSED_ARGS;
    struct process *p = handle_lookup(&self()->handles, a0, HANDLE_PROCESS);
    if (!p)
        return -EBADH;
    proc_exit(p, ABI_EXIT_KILLED);
    return 0;
}

static int64_t sys_module_info(ARGS)
{
    UNUSED_ARGS;
    if (a0 >= boot_module_count)
        return -ENOENT;
    const struct boot_module *m = &boot_modules[a0];
    struct abi_module_info info = { .size = m->end - m->start };
    memcpy(info.name, m->name, sizeof(info.name));
    memcpy(info.args, m->args, sizeof(info.args));
    return copy_to_user(a1, &info, sizeof(info));
}

static int64_t sys_proc_spawn(ARGS)
{
    UNUSED_ARGS;
    uint64_t module = a0, args = a1, args_len = a2;
    if (args_len >= ABI_ARGS_MAX)
        return -E2BIG;
    char text[ABI_ARGS_MAX];
    int err = copy_from_user(text, args, args_len);
    if (err)
        return err;
    if (module >= boot_module_count)
        return -ENOENT;
    handle_t h;
    struct handle_table *table = &self()->handles;
    /* Reserve the handle first, so a full table fails before the spawn. */
    err = handle_install(table, 0, HANDLE_PROCESS, &h);
    if (err)
        return err;
    struct process *p;
    err = proc_spawn_module((unsigned)module, text, args_len, false, &p);
    if (err) {
        handle_remove(table, h, 0);
        return err;
    }
    p->refs++;
    handle_set_object(table, h, p);
    return (int64_t)h;
}

static int64_t sys_shutdown(ARGS)
{
    UNUSED_ARGS;
    int status = (int)(a0 & 0xff);
    kprintf("tessera: shutdown status %d\n", status);
    arch_shutdown(status);
}

static const struct {
    syscall_fn fn;
    int who;
} syscall_table[SYS_COUNT] = {
#define SYSCALL_ROW(name, num, nargs, who_may) [name] = { 0, who_may },
    ABI_SYSCALLS(SYSCALL_ROW)
#undef SYSCALL_ROW
};

static syscall_fn handlers[SYS_COUNT] = {
    [SYS_EXIT] = sys_exit,
    [SYS_THREAD_CREATE] = sys_thread_create,
    [SYS_THREAD_EXIT] = sys_thread_exit,
    [SYS_THREAD_WAIT] = sys_thread_wait,
    [SYS_YIELD] = sys_yield,
    [SYS_SLEEP] = sys_sleep,
    [SYS_CLOCK] = sys_clock,
    [SYS_CONSOLE_WRITE] = sys_console_write,
    [SYS_HANDLE_CLOSE] = sys_handle_close,
    [SYS_KINFO] = sys_kinfo,
    [SYS_PROC_WAIT] = sys_proc_wait,
    [SYS_PROC_KILL] = sys_proc_kill,
    [SYS_MODULE_INFO] = sys_module_info,
    [SYS_PROC_SPAWN] = sys_proc_spawn,
    [SYS_SHUTDOWN] = sys_shutdown,
};

void syscall_init(void)
{
    for (unsigned i = 0; i < SYS_COUNT; i++)
        if (!handlers[i])
            panic("syscall %u has no handler", i);
}

void syscall_dispatch(struct trap_frame *f)
{
    uint64_t num = f->rax;
    int64_t result;
    if (num >= SYS_COUNT)
        result = -ENOSYS;
    else if (syscall_table[num].who == SYSCALL_BOOT && !self()->boot_right)
        result = -EPERM;
    else
        result = handlers[num](f->rdi, f->rsi, f->rdx, f->r10, f->r8);
    f->rax = (uint64_t)result;
}
