/*
 * Kernel layer: system calls of processes and threads, time, the console,
 * handles, and the boot right (see core/syscalls.h).
 */
#include <abi/errno.h>
#include <abi/proc.h>
#include <arch/arch.h>
#include <common/string.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/ipc.h>
#include <kernel/physmem.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/sched.h>
#include <kernel/segment.h>
#include <kernel/usercopy.h>
#include "syscalls.h"

static struct process *self(void) { return current->proc; }

struct process *syscall_process_arg(uint64_t h)
{
    if (h == HANDLE_SELF)
        return self();
    return handle_lookup(&self()->handles, h, HANDLE_PROCESS);
}

int64_t sys_exit(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    int64_t status = (int64_t)a0;
    if (status < 0)
        status = 0x7fffffff; /* negative statuses are the kernel's own */
    proc_exit(self(), status);
    return 0;
}

static bool user_code_address(uint64_t a) { return a >= ABI_USER_BASE && a < ABI_USER_TOP; }

int64_t sys_thread_create(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    uint64_t entry = a0, stack_top = a1, arg = a2;
    if (!user_code_address(entry) || stack_top < ABI_USER_BASE + 8 || stack_top > ABI_USER_TOP)
        return -EFAULT;
    /* The thread enters `entry` as a called function would: rsp + 8 aligned
     * as the stack top is, and a null return address on top. */
    uint64_t no_return = 0;
    if (copy_to_user(stack_top - 8, &no_return, sizeof(no_return)) != 0)
        return -EFAULT;
    handle_t h;
    int err = handle_install(&self()->handles, 0, HANDLE_RESERVED, &h);
    if (err)
        return err;
    struct thread *t;
    err = thread_create(self(), entry, stack_top - 8, arg, &t);
    if (err) {
        handle_remove(&self()->handles, h, 0);
        return err;
    }
    thread_get(t);
    handle_fill(&self()->handles, h, t, HANDLE_THREAD);
    return (int64_t)h;
}

int64_t sys_thread_exit(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
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

int64_t sys_thread_wait(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct thread *t = handle_lookup(&self()->handles, a0, HANDLE_THREAD);
    if (!t)
        return -EBADH;
    if (t == current)
        return -EINVAL;
    if (t->state == THREAD_DEAD)
        return 0;
    return sched_block(&t->joiners, a1);
}

int64_t sys_yield(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    sched_yield();
    return 0;
}

int64_t sys_sleep(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    if (a0)
        sched_block(0, a0);
    return 0;
}

int64_t sys_clock(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    return (int64_t)arch_time_ns();
}

#define CONSOLE_WRITE_MAX (64 * 1024)

int64_t sys_console_write(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
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

int64_t sys_console_read(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    if (a1 == 0)
        return -EINVAL;
    if (a1 > CONSOLE_WRITE_MAX)
        return -E2BIG;
    return console_read(a0, a1, a2);
}

int64_t sys_handle_close(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    enum handle_type type;
    struct handle_table *table = &self()->handles;
    /* A segment is not closed but given back to the memory server. */
    if (handle_lookup(table, a0, HANDLE_SEGMENT))
        return -EINVAL;
    void *object = handle_remove(table, a0, &type);
    if (!object)
        return -EBADH;
    switch (type) {
    case HANDLE_PROCESS: proc_handle_dropped(object); break;
    case HANDLE_THREAD: thread_put(object); break;
    case HANDLE_ENDPOINT: endpoint_put(object); break;
    case HANDLE_DEVICE: device_put(object); break;
    default: panic("sys_handle_close: handle type %d", type);
    }
    return 0;
}

int64_t sys_handle_grant(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct process *to = syscall_process_arg(a0);
    if (!to)
        return -EBADH;
    if (to->exited)
        return -EPEER;
    struct handle_table *mine = &self()->handles;
    void *object;
    enum handle_type type;
    if ((object = handle_lookup(mine, a1, HANDLE_ENDPOINT)))
        type = HANDLE_ENDPOINT;
    else if ((object = handle_lookup(mine, a1, HANDLE_DEVICE)))
        type = HANDLE_DEVICE;
    else
        return -EBADH;
    handle_t h;
    int err = handle_install(&to->handles, object, type, &h);
    if (err)
        return err;
    if (type == HANDLE_ENDPOINT)
        endpoint_get(object);
    else
        device_get(object);
    return (int64_t)h;
}

int64_t sys_kinfo(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct abi_kinfo k = {
        .pool_frames_total = pool_total_frames(),
        .pool_frames_free = pool_free_frames(),
        .user_bytes_free = physmem_handed_over() ? 0 : physmem_free_bytes(),
        .processes = proc_live_count(),
        .threads = thread_live_count(),
        .ticks = sched_ticks(),
        .tsc_per_us = arch_tsc_per_us(),
        .ncpus_present = arch_cpu_count_hint(),
    };
    return copy_to_user(a0, &k, sizeof(k));
}

int64_t sys_proc_wait(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
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

int64_t sys_proc_kill(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct process *p = handle_lookup(&self()->handles, a0, HANDLE_PROCESS);
    if (!p)
        return -EBADH;
    proc_exit(p, ABI_EXIT_KILLED);
    return 0;
}

int64_t sys_proc_create(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    char name[32];
    if (a1 >= sizeof(name))
        return -E2BIG;
    if (copy_from_user(name, a0, a1) != 0)
        return -EFAULT;
    name[a1] = 0;
    handle_t h;
    int err = handle_install(&self()->handles, 0, HANDLE_RESERVED, &h);
    if (err)
        return err;
    struct process *p;
    err = proc_create(name, &p);
    if (err) {
        handle_remove(&self()->handles, h, 0);
        return err;
    }
    proc_get(p);
    handle_fill(&self()->handles, h, p, HANDLE_PROCESS);
    return (int64_t)h;
}

int64_t sys_proc_start(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct process *p = handle_lookup(&self()->handles, a0, HANDLE_PROCESS);
    if (!p)
        return -EBADH;
    if (!user_code_address(a1) || a2 < ABI_USER_BASE || a2 > ABI_USER_TOP)
        return -EFAULT;
    return proc_start(p, a1, a2, a3);
}

int64_t sys_module_info(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    if (a0 >= boot_module_count)
        return -ENOENT;
    const struct boot_module *m = &boot_modules[a0];
    struct abi_module_info info = { .size = m->size };
    if (m->seg->owner == self()) {
        info.seg = m->seg->handle;
        info.vaddr = m->seg->vaddr;
    }
    memcpy(info.name, m->name, sizeof(info.name));
    memcpy(info.args, m->args, sizeof(info.args));
    return copy_to_user(a1, &info, sizeof(info));
}

int64_t sys_shutdown(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    int status = (int)(a0 & 0xff);
    kprintf("tessera: shutdown status %d\n", status);
    arch_shutdown(status);
}
