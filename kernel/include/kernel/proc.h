/*
 * Kernel layer: processes. A process is an address space, a handle table,
 * its threads, the segments it owns, its powers (abi/rights.h) and an
 * account in the account tree (kernel/account.h), under its creator's.
 * Processes are named globally by a pid (generation << 32 | slot + 1),
 * which is also the badge the kernel puts on their messages.
 */
#ifndef KERNEL_PROC_H
#define KERNEL_PROC_H

#include <stdint.h>
#include <stdbool.h>
#include <abi/proc.h>
#include <abi/rights.h>
#include <abi/types.h>
#include <arch/trap.h>
#include <common/list.h>
#include <kernel/aspace.h>
#include <kernel/handle.h>
#include <kernel/sched.h>

struct account;
struct notification;
struct segment;
struct endpoint;

struct process {
    uint64_t pid;
    char name[32];
    struct aspace aspace;
    struct handle_table handles;
    struct account *account; /* charged for everything it holds; a reference */
    uint64_t parent_pid;     /* its creator (0: started by the kernel) */
    uint32_t powers;         /* POWER_* */
    struct thread *threads;  /* live threads */
    unsigned live_threads;
    struct list_node segments; /* owned segments */
    struct list_node watches;  /* endpoint watches it made (ipc.c) */
    unsigned watch_count;      /* ... at most PROC_WATCHES_MAX */
    struct sched_share share;  /* its turns in the run queues (sched.c) */
    bool started;              /* has had a thread */
    bool exited;               /* ended: no thread runs user code again */
    bool finished;             /* ... and everything it held is given back: waiters wake */
    int64_t exit_status;
    struct wait_queue waiters; /* SYS_PROC_WAIT */
    uint32_t refs;             /* handles naming it, blocked waiters, + 1 until it has exited */
    uint32_t handle_count;     /* handles naming it: the last one to go ends it if unstarted */
};

#define PROC_MAX         ABI_PROC_MAX
#define PROC_WATCHES_MAX ABI_WATCHES_MAX /* SYS_EP_WATCH: -EDQUOT past it */

void proc_init(void);
/* An empty process (no threads, nothing mapped) under parent (0: a root of
 * the account tree), with powers. -EDQUOT (the parent's subtree is at a
 * limit), -ENOMEM (no process slot or kernel memory). */
int proc_create(const char *name, struct process *parent, uint32_t powers, struct process **out);
/* Starts a process's first thread at entry with rsp = stack_top, rdi = arg. */
int proc_start(struct process *p, uint64_t entry, uint64_t stack_top, uint64_t arg);
/* Loads boot module `module` with memory from the kernel's boot ranges and
 * starts it (the first processes, before the memory server runs). With
 * memsrv_ep, the process gets a send handle to it in its startup block. */
int proc_load_module(unsigned module, const char *args, size_t args_len, struct endpoint *memsrv_ep, uint32_t powers,
                     struct process **out, struct abi_startup **startup);
/* Starts a fresh memory server from its boot module in the segments its
 * predecessor was loaded into (kept when it ended), receiving on the same
 * endpoint. -EBUSY while one runs, -ENOENT if none was ever loaded,
 * -ENOEXEC if its parts are gone. */
int proc_restart_memsrv(const char *args, size_t args_len, struct process **out);
/* The current thread ends (SYS_THREAD_EXIT, or its process ended while it
 * ran); the last one ends its process with status 0, or finishes the end
 * of an ended one. Never returns. */
void proc_thread_exit_current(void) __attribute__((noreturn));
/* Ends a process (all threads) with `status`. Safe on the current process:
 * then it does not return. */
void proc_exit(struct process *p, int64_t status);
/* A CPU exception in user mode: report and kill the process. */
void proc_fault(struct trap_frame *f);
void proc_get(struct process *p);
void proc_put(struct process *p);
/* A handle naming p was made (it takes a reference). */
void proc_handle_added(struct process *p);
/* A handle naming p went away (closed, or its holder ended): the last one
 * ends p if nobody started it. */
void proc_handle_dropped(struct process *p);
/* The object behind handle h p held (of `type`, with `rights`) loses that
 * handle: closed, or p ended (h: HANDLE_NONE). The handle is already out of
 * p's table. */
void proc_drop_handle(struct process *p, handle_t h, void *object, enum handle_type type, rights_t rights);
/* p let go of a handle to dev with `rights` (closed, ended, or moved away
 * in a message): DMA driven through it stops. */
void proc_device_let_go(struct process *p, struct device *dev, rights_t rights);
/* A new handle with `rights` names object (granted, or carried by a
 * message): the object gains a reference for it. */
void object_handle_added(void *object, enum handle_type type, rights_t rights);
struct process *proc_by_pid(uint64_t pid);
/* Called by thread code when a thread of p has died. */
void proc_thread_died(struct process *p, struct thread *t);
uint64_t proc_live_count(void);
/* Pages the process-id table holds now. */
uint32_t proc_id_pages(void);
/* Frees an account object whose last reference went (account_put's
 * release callback). */
void proc_account_free(struct account *a);
struct slab_cache;
/* A kernel object a process causes (an endpoint, a watch, a notification,
 * an interrupt object): zeroed from cache c, its size charged to `a` (0:
 * the kernel's own), and holding a reference to `a` until
 * account_object_free, so the account outlives what it pays for. */
int account_object_alloc(struct account *a, struct slab_cache *c, void **out);
void account_object_free(struct account *a, struct slab_cache *c, void *object);
/* account_object_alloc for an object counted by its field `refs` that names
 * its payer in `account` (an endpoint, a notification, an interrupt
 * object): *out starts with one reference, the caller's. 0 or -E*. */
#define ACCOUNT_OBJECT_CREATE(a, c, out)                                                                               \
    ({                                                                                                                 \
        int err_ = account_object_alloc((a), (c), (void **)(out));                                                     \
        if (!err_) {                                                                                                   \
            (*(out))->refs = 1;                                                                                        \
            (*(out))->account = (a);                                                                                   \
        }                                                                                                              \
        err_;                                                                                                          \
    })
/* Segments wait in the reclaim queue: tell the memory server. */
void proc_notify_memsrv_reclaim(void);
/* Signals IPC_NOTIFY_* bits to the memory server (nothing if none runs). */
void proc_notify_memsrv(uint64_t bits);

/* The memory server, once the kernel has started it, and its endpoint. */
extern struct process *memsrv_process;
extern struct endpoint *memsrv_endpoint;
/* Bound to memsrv_endpoint: the kernel signals exits (IPC_NOTIFY_EXIT). */
extern struct notification *memsrv_notification;

#endif
