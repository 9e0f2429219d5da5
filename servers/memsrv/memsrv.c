/*
 * memsrv: the memory server's process. Started by the kernel from the boot
 * module "memsrv" with the memory-server right, before init. This file and
 * libsys's server loop make its system calls: it implements the kernel
 * operations the server core needs (ms_server.h) with the SYS_MS_* calls,
 * takes over memory (boot.c), and starts its threads:
 *   - MS_SERVICE_THREADS threads (main among them) run libsys's server loop
 *     on the endpoint in handles[ABI_STARTUP_MEMSRV] (dispatch.c's table;
 *     IPC_RECV_NOMAP, so a freed segment arrives as a handle, never mapped
 *     into the server). Each owes the reply to its own request, so one may
 *     wait (COMPACT FULL, MS_ALLOC_WAIT) while the others serve;
 *   - the compactor thread, which takes memsrv_compactor_step after step,
 *     sleeps when there is nothing to do (a request wakes it), and pauses
 *     to keep to its share of the CPU (compact.c, "Discipline").
 */
#include <common/string.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

#include "ms_server.h"

static int64_t k_bootinfo(void *ctx, unsigned index, struct abi_mem_range *out)
{
    (void)ctx;
    return sys_ms_bootinfo(index, out);
}
static int64_t k_seg_create(void *ctx, uint64_t phys, uint64_t size, uint64_t payer, uint64_t *sid)
{
    (void)ctx;
    return sys_ms_seg_create(phys, size, payer, sid);
}
static int64_t k_seg_info(void *ctx, handle_t seg, struct abi_seg_info *out)
{
    (void)ctx;
    return sys_seg_info(seg, out);
}
static int64_t k_seg_map_self(void *ctx, handle_t seg)
{
    (void)ctx;
    return sys_seg_give(seg, HANDLE_SELF, 0, RIGHT_READ | RIGHT_WRITE);
}
static int64_t k_seg_destroy(void *ctx, uint64_t sid)
{
    (void)ctx;
    return sys_ms_seg_destroy(sid);
}
static int64_t k_seg_revoke(void *ctx, uint64_t sid)
{
    (void)ctx;
    return sys_ms_seg_revoke(sid);
}
static int64_t k_seg_migrate(void *ctx, uint64_t sid, uint64_t new_phys)
{
    (void)ctx;
    return sys_ms_seg_migrate(sid, new_phys);
}
static int64_t k_seg_query(void *ctx, uint64_t sid, struct abi_seg_info *out)
{
    (void)ctx;
    return sys_ms_seg_query(sid, out);
}
static int64_t k_seg_give(void *ctx, uint64_t pid, struct abi_seg_give *v, unsigned n)
{
    (void)ctx;
    return sys_ms_seg_give(pid, v, n);
}
static int64_t k_seg_free(void *ctx, uint64_t pid, struct abi_seg_free *v, unsigned n)
{
    (void)ctx;
    return sys_ms_seg_free(pid, v, n);
}
static int64_t k_seg_charge(void *ctx, uint64_t sid, uint64_t pid)
{
    (void)ctx;
    return sys_ms_seg_charge(sid, pid);
}
static int64_t k_reclaimed(void *ctx, struct abi_reclaim *out, unsigned max)
{
    (void)ctx;
    return sys_ms_reclaimed(out, max);
}
static int64_t k_segments(void *ctx, uint64_t from, struct abi_seg_record *out, unsigned max)
{
    (void)ctx;
    return sys_ms_segments(from, out, max);
}

static int64_t k_dma_changes(void *ctx, struct abi_dma_change *out, unsigned max)
{
    (void)ctx;
    return sys_ms_dma_changes(out, max);
}

static uint64_t k_clock_ns(void *ctx)
{
    (void)ctx;
    return clock_ns(); /* read on every request: not worth a kernel entry */
}
static void k_console(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    sys_console_write(text, len);
}
static void k_yield(void *ctx)
{
    (void)ctx;
    sys_yield();
}

static const struct ms_kernel_ops kernel_ops = { MS_KERNEL_OPS(MS_KERNEL_OP_K) };

static struct memsrv server;

/* Stacks of the threads main starts (main runs on the process's own). */
#define THREAD_STACK (64 * 1024)
static uint8_t stacks[MS_SERVICE_THREADS][THREAD_STACK] __attribute__((aligned(16)));

static void serve(uint64_t unused)
{
    int64_t err;

    (void)unused;
    err = server_run(&server.srv);
    /* Receiving fails only if the endpoint is gone: a kernel bug. */
    printf("memsrv: a service thread stopped: %s\n", sys_strerror(err));
    sys_thread_exit();
}

static void compactor(uint64_t unused)
{
    (void)unused;
    for (;;) {
        if (!memsrv_compactor_step(&server)) {
            memsrv_compactor_idle(&server);
            continue;
        }
        memsrv_compactor_rest(&server);
        sys_yield(); /* a request woken by our unlock gets the books first */
    }
}

int main(int argc, char **argv)
{
    handle_t ep;
    int err;

    (void)argc;
    (void)argv;
    if (libsys_startup == NULL) {
        printf("memsrv: no startup block\n");
        return 1;
    }
    ep = libsys_startup->handles[ABI_STARTUP_MEMSRV];
    if (ep == HANDLE_NONE) {
        printf("memsrv: no endpoint in handles[%d]\n", ABI_STARTUP_MEMSRV);
        return 1;
    }
    err = memsrv_start(&server, &kernel_ops, libsys_startup->args, libsys_pid);
    if (err != 0) {
        printf("memsrv: cannot start: %s\n", sys_strerror(err));
        return 1;
    }
    map_print(&server, MS_MAP_COLUMNS_DEFAULT);
    server.srv.ep = ep;
    /* The compactor on stacks[0], the other service threads on the rest;
     * main serves too. A thread that cannot start leaves fewer to spare
     * for requests that wait (COMPACT FULL, MS_ALLOC_WAIT). On another
     * CPU a new thread may take a request at once: the count is settled,
     * under the lock, before any request can read it. */
    mutex_lock(&server.lock);
    server.service_threads = 1;
    if (sys_thread_create(compactor, stacks[0] + THREAD_STACK, 0) < 0)
        printf("memsrv: no compactor thread: compaction only on requests\n");
    for (unsigned i = 1; i < MS_SERVICE_THREADS; i++)
        if (sys_thread_create(serve, stacks[i] + THREAD_STACK, 0) >= 0)
            server.service_threads++;
    mutex_unlock(&server.lock);
    serve(0);
    return 0;
}
