/*
 * Kernel layer: system call dispatch. syscall_entry (arch entry.asm) saves a
 * trap frame and calls syscall_dispatch(), which bounds-checks the number,
 * checks the caller's right to make the call, and runs the handler from the
 * table built out of abi/syscall.h and core/syscalls.h.
 */
#include <abi/errno.h>
#include <abi/syscall.h>
#include <kernel/console.h>
#include <kernel/proc.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>
#include "syscalls.h"

static const int syscall_rights[SYS_COUNT] = {
#define SYSCALL_RIGHT(name, num, nargs, who) [name] = who,
    ABI_SYSCALLS(SYSCALL_RIGHT)
#undef SYSCALL_RIGHT
};

static const syscall_fn handlers[SYS_COUNT] = {
#define SYSCALL_ROW(num, fn) [num] = fn,
    SYSCALL_HANDLERS(SYSCALL_ROW)
#undef SYSCALL_ROW
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
    struct process *p = current->proc;
    int64_t result;
    if (num >= SYS_COUNT)
        result = -ENOSYS;
    else if ((syscall_rights[num] == SYSCALL_BOOT && !p->boot_right) ||
             (syscall_rights[num] == SYSCALL_MEMSRV && !p->memsrv_right))
        result = -EPERM;
    else
        result = handlers[num](f->rdi, f->rsi, f->rdx, f->r10, f->r8);
    f->rax = (uint64_t)result;
}
