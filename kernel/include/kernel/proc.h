/*
 * Kernel layer: processes. A process is an address space, a handle table,
 * its threads and the user memory it holds. Processes are named globally by
 * a pid (generation << 32 | slot + 1), which is also the badge the kernel
 * puts on their messages.
 */
#ifndef KERNEL_PROC_H
#define KERNEL_PROC_H

#include <stdint.h>
#include <stdbool.h>
#include <abi/types.h>
#include <arch/trap.h>
#include <kernel/handle.h>
#include <kernel/sched.h>

/* A physically contiguous span of user memory mapped in one process. */
struct user_span {
    uint64_t phys, size, vaddr;
    struct user_span *next;
};

struct process {
    uint64_t pid;
    char name[32];
    uint64_t root;                /* page-table root */
    struct handle_table handles;
    struct thread *threads;       /* live threads */
    unsigned live_threads;
    struct user_span *spans;
    bool boot_right;              /* may call SYSCALL_BOOT system calls */
    bool exited;
    int64_t exit_status;
    struct wait_queue waiters;    /* SYS_PROC_WAIT */
    uint32_t refs;                /* handles naming it, + 1 until it has exited */
};

#define PROC_MAX 1024u
#define USER_STACK_TOP  0x00007fffffff0000ull
#define USER_STACK_SIZE (64 * 1024ull)

void proc_init(void);
/* Loads boot module `module` into a new process and starts it. */
int proc_spawn_module(unsigned module, const char *args, size_t args_len, bool boot_right, struct process **out);
/* Ends a process (all threads) with `status`. Safe on the current process:
 * then it does not return. */
void proc_exit(struct process *p, int64_t status);
/* A CPU exception in user mode: report and kill the process. */
void proc_fault(struct trap_frame *f);
void proc_put(struct process *p);
/* Called by thread code when a thread of p has died. */
void proc_thread_died(struct process *p, struct thread *t);
uint64_t proc_live_count(void);

#endif
