/*
 * Kernel layer: processes. A process is an address space (page tables and
 * the areas in it), a handle table, its threads and the segments it owns.
 * Processes are named globally by a pid (generation << 32 | slot + 1), which
 * is also the badge the kernel puts on their messages.
 */
#ifndef KERNEL_PROC_H
#define KERNEL_PROC_H

#include <stdint.h>
#include <stdbool.h>
#include <abi/proc.h>
#include <abi/types.h>
#include <arch/trap.h>
#include <kernel/handle.h>
#include <kernel/sched.h>
#include <kernel/vmarea.h>

struct segment;
struct endpoint;

struct process {
    uint64_t pid;
    char name[32];
    uint64_t root;                /* page-table root */
    struct vmareas areas;         /* the user half's areas */
    struct handle_table handles;
    struct thread *threads;       /* live threads */
    unsigned live_threads;
    struct segment *segments;     /* owned segments */
    uint64_t unmap_generation;    /* advances whenever a user mapping goes away */
    bool boot_right;              /* may make SYSCALL_BOOT calls (init) */
    bool memsrv_right;            /* may make SYSCALL_MEMSRV calls (memsrv) */
    bool started;                 /* has had a thread */
    bool exited;
    int64_t exit_status;
    struct wait_queue waiters;    /* SYS_PROC_WAIT */
    uint32_t refs;                /* handles naming it, + 1 until it has exited */
};

#define PROC_MAX 1024u

void proc_init(void);
/* An empty process: no threads, nothing mapped. */
int proc_create(const char *name, struct process **out);
/* Starts a process's first thread at entry with rsp = stack_top, rdi = arg. */
int proc_start(struct process *p, uint64_t entry, uint64_t stack_top, uint64_t arg);
/* Loads boot module `module` with memory from the kernel's boot ranges and
 * starts it (the first processes, before the memory server runs). With
 * memsrv_ep, the process gets a handle to it in its startup block. */
int proc_load_module(unsigned module, const char *args, size_t args_len, struct endpoint *memsrv_ep,
                     struct process **out);
/* Ends a process (all threads) with `status`. Safe on the current process:
 * then it does not return. */
void proc_exit(struct process *p, int64_t status);
/* A CPU exception in user mode: report and kill the process. */
void proc_fault(struct trap_frame *f);
void proc_get(struct process *p);
void proc_put(struct process *p);
/* A handle naming p went away (closed, or its holder ended). */
void proc_handle_dropped(struct process *p);
struct process *proc_by_pid(uint64_t pid);
/* Called by thread code when a thread of p has died. */
void proc_thread_died(struct process *p, struct thread *t);
uint64_t proc_live_count(void);

/* The memory server, once the kernel has started it, and its endpoint. */
extern struct process *memsrv_process;
extern struct endpoint *memsrv_endpoint;

#endif
