/*
 * Kernel layer: system call dispatch. syscall_entry (arch entry.asm) saves a
 * trap frame and calls syscall_dispatch(), which bounds-checks the number,
 * checks that the caller holds the powers the call needs, and runs the
 * handler from the table built out of abi/syscall.h's list (the handler of
 * SYS_X with short name x is sys_x: one list, and a missing handler does
 * not link).
 *
 * Every call runs under the kernel lock (kernel/lock.h), taken here and
 * dropped on the way out by sched_return_to_user; a handler may break it
 * for long work.
 */
#include <abi/errno.h>
#include <abi/syscall.h>
#include <kernel/console.h>
#include <kernel/lock.h>
#include <kernel/proc.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>
#include "syscalls.h"

static const uint32_t syscall_powers[SYS_COUNT] = {
#define SYSCALL_POWERS(name, short_name, num, nargs, powers) [name] = powers,
    ABI_SYSCALLS(SYSCALL_POWERS)
#undef SYSCALL_POWERS
};

static const syscall_fn handlers[SYS_COUNT] = {
#define SYSCALL_ROW(name, short_name, num, nargs, powers) [name] = sys_##short_name,
    ABI_SYSCALLS(SYSCALL_ROW)
#undef SYSCALL_ROW
};

void syscall_init(void)
{
    /* Numbers must be dense: a gap would be a null handler. */
    for (unsigned i = 0; i < SYS_COUNT; i++)
        if (!handlers[i])
            panic("syscall %u has no handler", i);
}

void syscall_dispatch(struct trap_frame *f)
{
    uint64_t num = f->rax;
    kernel_lock();
    struct thread *self = current;
    /* Its process may have ended while it waited for the lock. */
    if (self->exiting)
        proc_thread_exit_current();
    struct process *p = self->proc;
    int64_t result;
    if (num >= SYS_COUNT)
        result = -ENOSYS;
    else if (syscall_powers[num] & ~p->powers)
        result = -EPERM;
    else
        result = handlers[num](f->rdi, f->rsi, f->rdx, f->r10, f->r8);
    f->rax = (uint64_t)result;
    sched_return_to_user();
}
