/*
 * init: the memory server's supervisor (proto/init.h). init.c's main starts
 * it (supervise_start); its requests are handlers in init.c's service
 * tables (supervise_restart, _status, _fault).
 *
 * A thread of init waits on memsrv's process handle. When memsrv ends, the
 * thread notes how, counts the end as a crash unless init asked for it,
 * gives up at INIT_MS_CRASHES_MAX crashes within INIT_MS_CRASH_WINDOW_NS
 * (a server that cannot stay up would otherwise take the machine's time
 * for ever, and its clients wait in vain), sleeps the backoff, and starts
 * a successor with SYS_MS_RESTART, which rebuilds its books from the
 * kernel before it answers anyone. Then it calls the successor with
 * MS_RECOVERY and the time it saw the end: that call waits in the
 * endpoint's queue from the restart on, and the reply says when the
 * successor's very first answer went out.
 *
 * The thread never calls memsrv through libsys's client, which waits for a
 * successor when the server is down: the thread that starts successors
 * must not be one of those waiting. It allocates nothing.
 */
#include <proto/init.h>
#include <proto/memsrv.h>
#include <abi/proc.h>
#include <common/fmt.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/sync.h>
#include <libsys/syscall.h>

#include "supervise.h"

#define BACKOFF_FIRST_NS      (25ul * NS_PER_MS)
#define SUPERVISOR_STACK_SIZE 16384

static uint8_t supervisor_stack[SUPERVISOR_STACK_SIZE] __attribute__((aligned(16)));

/* Shared between the supervisor thread and the service threads. */
static struct {
    struct mutex lock;
    struct condvar restarted;
    bool active;          /* a supervisor thread runs */
    handle_t server;      /* memsrv's process; HANDLE_NONE while it is down */
    bool answered;        /* the server running has answered init (or started at boot) */
    bool asked;           /* the end now awaited is one init asked for */
    uint64_t restarts;    /* successors that answered init */
    uint64_t last_number; /* the last one's memsrv.restart=N */
    int64_t last_status;  /* how the last server ended */
    uint64_t last_recovery_ns;
    uint64_t answered_ns;                   /* when the server running answered (0: since boot) */
    uint64_t crash_ns[INIT_MS_CRASHES_MAX]; /* the latest crashes, a ring */
    unsigned crashes;                       /* ever */
} sup;

static void describe_end(int64_t status, char *out, size_t len)
{
    if (status == ABI_EXIT_KILLED)
        fmt_snprintf(out, len, "killed");
    else if (ABI_EXIT_IS_FAULT(status))
        fmt_snprintf(out, len, "CPU exception %ld", (long)ABI_EXIT_FAULT_VECTOR(status));
    else
        fmt_snprintf(out, len, "exit status %ld", (long)status);
}

/* Crashes within the window that ends at now (the lock is held). */
static unsigned crashes_in_window(uint64_t now)
{
    unsigned n = 0, i;

    for (i = 0; i < INIT_MS_CRASHES_MAX && i < sup.crashes; i++)
        if (now - sup.crash_ns[i] < INIT_MS_CRASH_WINDOW_NS)
            n++;
    return n;
}

static __attribute__((noreturn)) void give_up(const char *why)
{
    printf("init: giving up on the memory server: %s; powering off with status %d\n", why, INIT_SHUTDOWN_MEMSRV_LOST);
    sys_shutdown(INIT_SHUTDOWN_MEMSRV_LOST);
    for (;;)
        sys_sleep(TIMEOUT_FOREVER);
}

/* Counts a crash at now: the backoff before the next start, or gives up. */
static uint64_t crashed(uint64_t now, const char *what)
{
    unsigned n;

    mutex_lock(&sup.lock);
    sup.crash_ns[sup.crashes++ % INIT_MS_CRASHES_MAX] = now;
    n = crashes_in_window(now);
    mutex_unlock(&sup.lock);
    if (n >= INIT_MS_CRASHES_MAX) {
        char why[120];
        fmt_snprintf(why, sizeof(why), "%u crashes within %llu s, the last: %s", n,
                     INIT_MS_CRASH_WINDOW_NS / (1000 * NS_PER_MS), what);
        give_up(why);
    }
    return n <= 1 ? 0 : BACKOFF_FIRST_NS << (n - 2);
}

/* A successor, after `delay`; a start that fails is a crash too. */
static handle_t start_successor(uint64_t delay)
{
    for (;;) {
        int64_t h;
        if (delay != 0) {
            printf("init: restarting the memory server in %lu ms\n", delay / NS_PER_MS);
            sys_sleep(delay);
        }
        h = sys_ms_restart();
        if (h >= 0)
            return (handle_t)h;
        printf("init: starting a new memory server failed: %s\n", sys_strerror(h));
        if (h == -ENOENT || h == -E2BIG)
            give_up("the kernel cannot start another (no kept image, or arguments too long)");
        delay = crashed(sys_clock(), "a failed start");
    }
}

/* Waits for the successor's answer to MS_RECOVERY and records it. */
static void await_first_answer(uint64_t ended)
{
    struct ipc_msg m = { .label = MS_RECOVERY, .seg = HANDLE_NONE };
    ms_recovery_req_put(&m, (struct ms_recovery_req){ .ended_ns = ended });
    int64_t err = sys_ipc_call(ms_endpoint(), &m, TIMEOUT_FOREVER);

    if (err == 0)
        err = (int64_t)m.label;
    if (err < 0) {
        /* It ended before answering: the wait for its end sees that next. */
        printf("init: the new memory server did not answer: %s\n", sys_strerror(err));
        return;
    }
    const struct ms_recovery_reply r = ms_recovery_reply_get(&m);
    printf("init: memory server restart %lu: %lu.%03lu ms from the end to its first answer "
           "(books rebuilt in %lu.%03lu ms)\n",
           r.restart, r.recovery_ns / NS_PER_MS, r.recovery_ns / 1000 % 1000, r.rebuild_ns / NS_PER_MS,
           r.rebuild_ns / 1000 % 1000);
    mutex_lock(&sup.lock);
    sup.answered = true;
    sup.answered_ns = sys_clock();
    sup.restarts++;
    sup.last_number = r.restart;
    sup.last_recovery_ns = r.recovery_ns;
    condvar_broadcast(&sup.restarted);
    mutex_unlock(&sup.lock);
}

static void supervise(uint64_t unused)
{
    (void)unused;
    for (;;) {
        int64_t status = 0, err;
        handle_t server;
        uint64_t ended, delay = 0;
        bool asked;
        char what[48];

        mutex_lock(&sup.lock);
        server = sup.server;
        mutex_unlock(&sup.lock);
        err = sys_proc_wait(server, TIMEOUT_FOREVER, &status);
        if (err < 0) {
            printf("init: cannot wait for the memory server (%s): it is not supervised\n", sys_strerror(err));
            mutex_lock(&sup.lock);
            sup.active = false;
            condvar_broadcast(&sup.restarted);
            mutex_unlock(&sup.lock);
            sys_thread_exit();
        }
        ended = sys_clock();
        mutex_lock(&sup.lock);
        asked = sup.asked;
        sup.asked = false;
        sup.server = HANDLE_NONE;
        sup.last_status = status;
        mutex_unlock(&sup.lock);
        sys_handle_close(server);
        describe_end(status, what, sizeof(what));
        printf("init: the memory server ended (%s)%s\n", what, asked ? ", as asked" : "");
        if (!asked)
            delay = crashed(ended, what);
        server = start_successor(delay);
        mutex_lock(&sup.lock);
        sup.server = server;
        sup.answered = false;
        mutex_unlock(&sup.lock);
        await_first_answer(ended);
    }
}

void supervise_start(void)
{
    handle_t server = startup_handle(ABI_STARTUP_SUPERVISE);

    if (server == HANDLE_NONE) {
        printf("init: no memory server to supervise\n");
        return;
    }
    sup.server = server;
    sup.answered = true;
    sup.active = true;
    if (sys_thread_create(supervise, supervisor_stack + SUPERVISOR_STACK_SIZE, 0) < 0) {
        printf("init: no thread to supervise the memory server with\n");
        sup.active = false;
    }
}

int64_t supervise_restart(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t flags = init_ms_restart_req_get(req).flags;
    int64_t err = 0;
    uint64_t target = 0;

    (void)srv;
    if (flags & ~(uint64_t)INIT_MS_RESTART_WAIT)
        return -EINVAL;
    mutex_lock(&sup.lock);
    /* Only this asker's thread waits (each program has its own). */
    for (;;) {
        uint64_t now = sys_clock(), up_until = sup.answered_ns + INIT_MS_UP_FACTOR * sup.last_recovery_ns;
        if (!sup.active || sup.server == HANDLE_NONE || !sup.answered || now >= up_until)
            break;
        mutex_unlock(&sup.lock);
        sys_sleep(up_until - now);
        mutex_lock(&sup.lock);
    }
    if (!sup.active) {
        err = -ENOSYS;
    } else if (sup.server == HANDLE_NONE || !sup.answered) {
        /* Until the successor answered, its restart is not over (and a
         * waiter's count would be met by it). */
        err = -EBUSY;
    } else {
        target = sup.restarts + 1;
        sup.asked = true;
        err = sys_proc_kill(sup.server);
        if (err < 0)
            sup.asked = false;
        while (err == 0 && (flags & INIT_MS_RESTART_WAIT) && sup.restarts < target && sup.active)
            condvar_wait(&sup.restarted, &sup.lock);
        if (err == 0 && sup.restarts < target && (flags & INIT_MS_RESTART_WAIT))
            err = -ENOSYS; /* the supervisor stopped */
    }
    if (err == 0)
        init_ms_restart_reply_put(
            reply, (struct init_ms_restart_reply){
                       .restart = target, .recovery_ns = (flags & INIT_MS_RESTART_WAIT) ? sup.last_recovery_ns : 0 });
    mutex_unlock(&sup.lock);
    return err;
}

int64_t supervise_status(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)srv;
    (void)req;
    mutex_lock(&sup.lock);
    init_ms_status_reply_put(reply, (struct init_ms_status_reply){ .restarts = sup.restarts,
                                                                   .last_status = (uint64_t)sup.last_status,
                                                                   .crashes = crashes_in_window(sys_clock()),
                                                                   .recovery_ns = sup.last_recovery_ns });
    mutex_unlock(&sup.lock);
    return 0;
}

int64_t supervise_fault(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct ipc_msg call = { .label = MS_FAULT, .seg = HANDLE_NONE };
    ms_fault_req_put(&call, ms_fault_req_get(req));
    int64_t err = sys_ipc_call(ms_endpoint(), &call, TIMEOUT_FOREVER);

    (void)srv;
    if (err == -EPEER) {
        /* it ended holding the request, as MS_FAULT_NOW does */
        init_ms_fault_reply_put(reply, (struct init_ms_fault_reply){ .ended = 1 });
        return 0;
    }
    if (call.seg != HANDLE_NONE) /* not memsrv's way with this request: give it back */
        ms_free(call.seg);
    return err < 0 ? err : (int64_t)call.label;
}
