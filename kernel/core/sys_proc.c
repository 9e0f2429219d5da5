/*
 * Kernel layer: system calls of processes and threads, time, the console,
 * handles, accounts, and the boot powers (see core/syscalls.h).
 */
#include <abi/errno.h>
#include <abi/proc.h>
#include <arch/arch.h>
#include <common/string.h>
#include <kernel/account.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/futex.h>
#include <kernel/iommu.h>
#include <kernel/ipc.h>
#include <kernel/lock.h>
#include <kernel/physmem.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/sched.h>
#include <kernel/segment.h>
#include <kernel/usercopy.h>
#include "syscalls.h"

static struct process *self(void) { return current->proc; }

int syscall_process_arg(uint64_t h, rights_t need, struct process **out)
{
    if (h == HANDLE_SELF) {
        *out = self();
        return 0;
    }
    return process_handle_arg(h, need, out);
}

int syscall_reserve_handle(handle_t *h) { return handle_install(&self()->handles, 0, HANDLE_RESERVED, 0, h); }

int64_t syscall_publish_handle(handle_t h, int err, void *object, enum handle_type type, rights_t rights)
{
    if (err) {
        handle_remove(&self()->handles, h, 0);
        return err;
    }
    handle_fill(&self()->handles, h, object, type, rights);
    return (int64_t)h;
}

int64_t syscall_publish_shared(handle_t h, int err, void *object, enum handle_type type, rights_t rights)
{
    if (!err)
        object_handle_added(object, type, rights);
    return syscall_publish_handle(h, err, object, type, rights);
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
    SYSCALL_TRY(syscall_reserve_handle(&h));
    struct thread *t = NULL;
    int err = thread_create(self(), entry, stack_top - 8, arg, &t);
    return syscall_publish_shared(h, err, t, HANDLE_THREAD, RIGHTS_THREAD);
}

int64_t sys_thread_exit(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    proc_thread_exit_current();
}

int64_t sys_thread_affinity(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct thread *t = current;
    if (a0 != HANDLE_NONE) {
        SYSCALL_TRY(thread_arg(a0, RIGHT_WAIT, &t));
        if (t->state == THREAD_DEAD)
            return -EPEER;
    }
    if (a1 != ABI_CPU_SAME) {
        if (a1 != ABI_CPU_ANY && a1 >= SMP_MAX_CPUS)
            return -EINVAL;
        SYSCALL_TRY(sched_set_affinity(t, a1 == ABI_CPU_ANY ? -1 : (int)a1));
    }
    return (int64_t)t->cpu;
}

static void thread_put_object(void *t) { thread_put(t); }

int64_t sys_thread_wait(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct thread *t;
    SYSCALL_TRY(thread_arg(a0, RIGHT_WAIT, &t));
    if (t == current)
        return -EINVAL;
    if (t->state == THREAD_DEAD)
        return 0;
    /* Another thread may close the handle meanwhile: the wait holds its own
     * reference. */
    thread_get(t);
    sched_hold(thread_put_object, t);
    int64_t r = sched_block(&t->joiners, a1);
    sched_release_wait_hold(current);
    return r;
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
#define CONSOLE_CHUNK     256

int64_t sys_console_write(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    uint64_t buf = a0, len = a1;
    if (len > CONSOLE_WRITE_MAX)
        return -E2BIG;
    if (!user_range_valid(buf, len))
        return -EFAULT;
    /* In bounded chunks, with a preemption point after each: a slow serial
     * line never keeps interrupts off for the whole write. Each chunk goes
     * out with the kernel lock let go (a real 115200-baud UART takes about
     * 87 us a byte, 22 ms a chunk): the chunk is on this stack, so nothing
     * another CPU does meanwhile can touch it, and the other CPUs' calls
     * need not wait for the line. The output lock alone keeps a chunk
     * whole among other writers. */
    char chunk[CONSOLE_CHUNK];
    uint64_t done = 0;
    while (done < len) {
        size_t n = len - done < sizeof(chunk) ? len - done : sizeof(chunk);
        if (copy_from_user(chunk, buf + done, n) != 0)
            return done ? (int64_t)done : -EFAULT;
        kernel_unlock();
        console_write(chunk, n);
        kernel_lock();
        done += n;
        if (current->exiting)
            break; /* killed meanwhile: its process waits for it to leave */
        if (done < len)
            sched_preempt_point();
    }
    return (int64_t)done;
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
    rights_t rights;
    struct handle_table *table = &self()->handles;
    if (!handle_describe(table, a0, &type, &rights))
        return -EBADH;
    /* A segment is not closed but given back to the memory server. */
    if (type == HANDLE_SEGMENT)
        return -EINVAL;
    void *object = handle_remove(table, a0, &type);
    /* A device's register mappings made through it go with it. */
    if (type == HANDLE_DEVICE)
        aspace_revoke_handle(&self()->aspace, a0);
    proc_drop_handle(self(), a0, object, type, rights);
    return 0;
}

/* What may be granted: every kind but segments (they move: SYS_SEG_GIVE,
 * or a message) and threads (they belong to their process). */
static bool grantable(enum handle_type type)
{
    return type == HANDLE_ENDPOINT || type == HANDLE_DEVICE || type == HANDLE_PROCESS || type == HANDLE_NOTIFICATION ||
           type == HANDLE_IRQ;
}

int64_t sys_handle_grant(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct process *to;
    SYSCALL_TRY(syscall_process_arg(a0, RIGHT_CONTROL, &to));
    if (to->exited)
        return -EPEER;
    if (a2 & ~(uint64_t)RIGHTS_ALL)
        return -EINVAL;
    struct handle_table *mine = &self()->handles;
    enum handle_type type;
    rights_t held;
    if (!handle_describe(mine, a1, &type, &held) || !grantable(type))
        return -EBADH;
    if (!(held & RIGHT_GRANT))
        return -EPERM;
    rights_t give = held & (a2 ? (rights_t)a2 : RIGHTS_ALL);
    /* The receive right is never copied: asked for, it moves whole, and
     * the giver keeps a send-only handle. Unasked, it stays. */
    bool move_recv = type == HANDLE_ENDPOINT && (give & RIGHT_RECV) && a2 && (a2 & RIGHT_RECV);
    give &= move_recv ? ~0u : ~(rights_t)RIGHT_RECV;
    void *object = handle_lookup(mine, a1, type);
    if (move_recv && to == self())
        return -EINVAL; /* to oneself, it would be a copy */
    handle_t h;
    SYSCALL_TRY(handle_install(&to->handles, object, type, give, &h));
    object_handle_added(object, type, give);
    if (move_recv) {
        handle_restrict(mine, a1, ~(rights_t)RIGHT_RECV);
        endpoint_receiver_moved(object);
    }
    return (int64_t)h;
}

/* What SYS_HANDLE_INFO calls each type of handle a process can hold. */
static const enum abi_handle_kind abi_kinds[] = {
    [HANDLE_PROCESS] = ABI_HANDLE_PROCESS,   [HANDLE_THREAD] = ABI_HANDLE_THREAD,
    [HANDLE_ENDPOINT] = ABI_HANDLE_ENDPOINT, [HANDLE_SEGMENT] = ABI_HANDLE_SEGMENT,
    [HANDLE_DEVICE] = ABI_HANDLE_DEVICE,     [HANDLE_NOTIFICATION] = ABI_HANDLE_NOTIFICATION,
    [HANDLE_IRQ] = ABI_HANDLE_IRQ,
};

int64_t sys_handle_info(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    enum handle_type type;
    rights_t rights;
    if (!handle_describe(&self()->handles, a0, &type, &rights) || type >= sizeof(abi_kinds) / sizeof(abi_kinds[0]) ||
        !abi_kinds[type])
        return -EBADH;
    struct abi_handle_info info = { .kind = abi_kinds[type], .rights = rights };
    void *object = handle_lookup(&self()->handles, a0, type);
    if (type == HANDLE_PROCESS)
        info.id = ((struct process *)object)->pid;
    else if (type == HANDLE_SEGMENT)
        info.id = ((struct segment *)object)->sid;
    return copy_to_user(a1, &info, sizeof(info));
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
        .tsc_at_boot = arch_tsc_at_boot(),
        .ncpus_present = smp_cpus_present(),
        .ncpus_online = smp_cpus_online(),
        .flags = iommu_present() ? KINFO_IOMMU : 0,
        .id_table_pages = segment_id_pages() + proc_id_pages(),
    };
    ktest_counts(&k.selftests_passed, &k.selftests_failed, &k.selftests_skipped);
    kernel_lock_stats(&k.lock_acquired, &k.lock_contended, &k.lock_wait_ns);
    return copy_to_user(a0, &k, sizeof(k));
}

static void proc_put_object(void *p) { proc_put(p); }

int64_t sys_proc_wait(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct process *p;
    SYSCALL_TRY(process_handle_arg(a0, RIGHT_WAIT, &p));
    if (a2 && !user_range_valid(a2, sizeof(int64_t)))
        return -EFAULT;
    /* The handle may be closed while we wait (and the slot reused): the
     * wait holds its own reference, and reads the status through it. It
     * waits for the end of the process's last thread, which may still be
     * leaving another CPU after the process was ended: once the wait
     * returns, everything the process held is back. */
    proc_get(p);
    sched_hold(proc_put_object, p);
    int64_t r = p->finished ? 0 : sched_block(&p->waiters, a1);
    bool ended = p->finished;
    int64_t status = p->exit_status;
    sched_release_wait_hold(current);
    if (r < 0 && !ended)
        return r;
    return a2 ? copy_to_user(a2, &status, sizeof(status)) : 0;
}

int64_t sys_proc_kill(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct process *p;
    SYSCALL_TRY(process_handle_arg(a0, RIGHT_CONTROL, &p));
    proc_exit(p, ABI_EXIT_KILLED);
    return 0;
}

int64_t sys_proc_create(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    char name[32];
    if (a1 >= sizeof(name))
        return -E2BIG;
    if (a2 & ~(uint64_t)POWERS_INHERITABLE)
        return -EINVAL;
    /* Powers only shrink: a child gets at most its creator's. */
    if ((uint32_t)a2 & ~self()->powers)
        return -EPERM;
    if (copy_from_user(name, a0, a1) != 0)
        return -EFAULT;
    name[a1] = 0;
    handle_t h;
    SYSCALL_TRY(syscall_reserve_handle(&h));
    struct process *p = NULL;
    int err = proc_create(name, self(), (uint32_t)a2, &p);
    return syscall_publish_shared(h, err, p, HANDLE_PROCESS, RIGHTS_PROCESS);
}

int64_t sys_proc_start(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct process *p;
    SYSCALL_TRY(process_handle_arg(a0, RIGHT_CONTROL, &p));
    if (!user_code_address(a1) || a2 < ABI_USER_BASE || a2 > ABI_USER_TOP)
        return -EFAULT;
    return proc_start(p, a1, a2, a3);
}

int64_t sys_proc_limit(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct process *p;
    /* Only over another: a process may not lift its own limits. */
    if (a0 == HANDLE_SELF)
        return -EPERM;
    SYSCALL_TRY(process_handle_arg(a0, RIGHT_CONTROL, &p));
    if (a1 >= RES_COUNT)
        return -EINVAL;
    if (p->exited)
        return -EPEER;
    return account_set_limit(p->account, (enum abi_resource)a1, a2);
}

int64_t sys_account_info(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct process *p;
    SYSCALL_TRY(syscall_process_arg(a0, RIGHT_WAIT, &p));
    struct abi_account info = { 0 };
    for (unsigned r = 0; r < RES_COUNT; r++) {
        info.used[r] = p->account->used[r];
        info.limit[r] = p->account->limit[r];
    }
    return copy_to_user(a1, &info, sizeof(info));
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

int64_t sys_futex_wait(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    if (a1 > UINT32_MAX)
        return -EINVAL;
    return futex_wait(a0, (uint32_t)a1, a2);
}

int64_t sys_futex_wake(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    return futex_wake(a0, a1);
}
