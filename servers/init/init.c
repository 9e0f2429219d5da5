/*
 * init: the first user process, started by the kernel from the boot module
 * named "init" with the kernel command line as its arguments. It holds the
 * boot right (boot modules, devices, shutdown) and the boot modules' images,
 * mapped read-only; it starts programs from them with the libsys loader
 * (programs.c).
 *
 * It starts the name service first (servers/names/, docs/names.md). Then,
 * without test= or bench=, it starts the boot modules listed by `boot=` in
 * its own module command line (tessera_user_program's BOOT), giving each a
 * service endpoint of its own (proto/init.h) that a thread of init serves:
 * the console (`console=`, memctl) starts, lists and ends programs through
 * it and powers the machine off. With test= or bench= it starts the
 * in-guest suite, the boot module t_suite (tests/guest/suite), with the
 * whole command line, the powers to start processes and open devices, a
 * registrar for the names under "test", and a delegate endpoint
 * (proto/init.h) for what stays init's: the boot modules' images, memsrv's
 * init-only requests and powering off. The suite powers off with the
 * result.
 */
#include <proto/init.h>
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/loader.h>
#include <libsys/memsrv.h>
#include <libsys/names.h>
#include <libsys/server.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include "init.h"
#include "supervise.h"

/* One endpoint init serves, with libsys's server loop (libsys/server.h)
 * on a thread of its own. The delegate (proto/init.h): t_suite's process,
 * which receives what it asks for on the delegate endpoint; HANDLE_NONE
 * on every other endpoint. The console's endpoint also takes INIT_RUN and
 * the other console requests. */
struct service {
    struct server srv;
    handle_t delegate;
    bool console;
};

static const struct service *service_of(const struct server *srv) { return srv->ctx; }

static int64_t poweroff(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t status = init_poweroff_req_get(req).status;
    (void)srv;
    (void)reply;
    if (status > INIT_POWEROFF_STATUS_MAX)
        return -EINVAL;
    printf("init: power off with status %lu, asked by pid %#lx\n", status, req->badge);
    sys_shutdown((int)status); /* no reply: the machine is off */
}

/* INIT_MODULE: the module's image goes to the delegate, read-only. */
static int64_t give_module(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t index = init_module_req_get(req).index;
    struct abi_module_info info;
    if (index > UINT32_MAX || sys_module_info((unsigned)index, &info) != 0)
        return -ENOENT;
    if (strcmp(info.name, "init") == 0 || strcmp(info.name, "memsrv") == 0)
        return -EPERM;
    if (!info.vaddr)
        return -EEXIST;
    int64_t vaddr = sys_seg_give(info.seg, service_of(srv)->delegate, 0, 0);
    if (vaddr < 0)
        return vaddr;
    init_module_reply_put(reply, (struct init_module_reply){ .addr = (uint64_t)vaddr, .size = info.size });
    size_t len = strnlen(info.name, sizeof(info.name) - 1);
    memcpy(reply->payload, info.name, len);
    reply->payload[len] = 0;
    reply->len = (uint32_t)len + 1;
    return 0;
}

/* memsrv's init-only request (MS_REVOKE), passed on as init's: memsrv
 * checks its words. */
static int64_t forward_to_memsrv(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)srv;
    struct ipc_msg call = { .label = req->label, .seg = HANDLE_NONE };
    memcpy(call.w, req->w, sizeof(call.w));
    int64_t err = sys_ipc_call(ms_endpoint(), &call, TIMEOUT_FOREVER);
    if (err < 0)
        return err;
    if (call.seg != HANDLE_NONE) /* not memsrv's way with these: give it back */
        ms_free(call.seg);
    if ((int64_t)call.label >= 0)
        memcpy(reply->w, call.w, sizeof(reply->w));
    return (int64_t)call.label;
}

/* INIT_MS_FAULT on an endpoint other than the delegate's. */
static int64_t delegate_only(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)srv;
    (void)req;
    (void)reply;
    return -ENOSYS;
}

/* The console's requests: SERVER_OP_TRUSTED, and the endpoint is the
 * capability (init gives the console's to the console alone), so whoever
 * sends on it is trusted there and nowhere else (-EPERM). */
static bool console_endpoint(const struct server *srv, uint64_t badge)
{
    (void)badge;
    return service_of(srv)->console;
}

/* The loop refuses before a handler runs (-EINVAL) a request with a
 * segment (nothing here takes one: it goes back), a payload where none is
 * taken, or a word past its request's struct (proto/init.h) that is not 0;
 * the console's requests on another endpoint get -EPERM. */
#define CHECKED    (SERVER_OP_SEG_REFUSED | SERVER_OP_NO_PAYLOAD | SERVER_OP_WORDS)
#define CONSOLE    SERVER_OP_TRUSTED
#define WORDS(req) PROTO_WORDS_USED(req)

/* What every endpoint serves; ms_fault is the INIT_MS_FAULT handler. */
#define SERVICE_OPS(ms_fault)                                                                                          \
    { INIT_POWEROFF, poweroff, "poweroff", CHECKED, WORDS(init_poweroff_req) },                                        \
        { INIT_MS_RESTART, supervise_restart, "ms_restart", CHECKED, WORDS(init_ms_restart_req) },                     \
        { INIT_MS_STATUS, supervise_status, "ms_status", CHECKED, 0 },                                                 \
        { INIT_MS_FAULT, ms_fault, "ms_fault", CHECKED, WORDS(ms_fault_req) },                                         \
        { INIT_RUN, programs_run, "run", CONSOLE | SERVER_OP_SEG_REFUSED | SERVER_OP_WORDS, 0 },                       \
        { INIT_PS, programs_ps, "ps", CONSOLE | CHECKED, WORDS(init_cursor_req) },                                     \
        { INIT_KILL, programs_kill, "kill", CONSOLE | CHECKED, WORDS(init_kill_req) },                                 \
    {                                                                                                                  \
        INIT_PROGRAMS, programs_list, "programs", CONSOLE | CHECKED, WORDS(init_cursor_req)                            \
    }

static const struct server_op program_ops[] = { SERVICE_OPS(delegate_only) };

/* The delegate's endpoint: the same, with what stays init's. */
static const struct server_op delegate_ops[] = {
    SERVICE_OPS(supervise_fault),
    { INIT_MODULE, give_module, "module", CHECKED, WORDS(init_module_req) },
    { MS_REVOKE, forward_to_memsrv, "ms_revoke", SERVER_OP_SEG_REFUSED | SERVER_OP_NO_PAYLOAD, 0 },
};

/*
 * Each program started at boot gets an endpoint of its own, so that one
 * program receiving on its endpoint (a server) cannot take requests meant
 * for init from another. The kernel has no wait on several endpoints, so a
 * thread of init serves each one.
 */
#define SERVICE_THREADS_MAX 16
#define SERVICE_STACK_SIZE  16384

static uint8_t service_stacks[SERVICE_THREADS_MAX][SERVICE_STACK_SIZE] __attribute__((aligned(16)));
static struct service services[SERVICE_THREADS_MAX];
static unsigned nservices;

static void service_thread(uint64_t index)
{
    int64_t err = server_run(&services[index].srv);
    printf("init: service endpoint: %s; no more requests\n", sys_strerror(err));
    sys_thread_exit();
}

/* Serves endpoint on a thread of its own (delegate: HANDLE_NONE but for
 * the suite's); false if there is no room for one. */
static bool serve_on_thread(handle_t endpoint, handle_t delegate, bool console)
{
    if (nservices == SERVICE_THREADS_MAX)
        return false;
    struct service *sv = &services[nservices];
    if (delegate != HANDLE_NONE)
        server_init(&sv->srv, "init", endpoint, delegate_ops, sizeof(delegate_ops) / sizeof(delegate_ops[0]), sv);
    else
        server_init(&sv->srv, "init", endpoint, program_ops, sizeof(program_ops) / sizeof(program_ops[0]), sv);
    sv->srv.recv_flags = IPC_RECV_NOMAP;
    sv->srv.trusted = console_endpoint;
    sv->delegate = delegate;
    sv->console = console;
    uint8_t *stack_top = service_stacks[nservices] + SERVICE_STACK_SIZE;
    if (sys_thread_create(service_thread, stack_top, nservices) < 0)
        return false;
    nservices++;
    return true;
}

/* The modules named by `boot=` in init's module command line, in order. */
static void start_boot_programs(void)
{
    struct abi_module_info self, info;
    const char *list = "";
    size_t len = 0;
    if (programs_module("init", &self) < 0 || !cmdline_get(self.args, "boot", &list, &len))
        printf("init: no boot= list in init's module command line: no program to start\n");
    while (len > 0) {
        char name[ABI_MODULE_NAME_MAX];
        size_t n = 0;
        while (n < len && list[n] != ',')
            n++;
        fmt_snprintf(name, sizeof(name), "%.*s", (int)n, list);
        list += n < len ? n + 1 : n;
        len -= n < len ? n + 1 : n;
        if (programs_module(name, &info) < 0) {
            printf("init: boot program %s is not a boot module\n", name);
            continue;
        }
        int64_t ep = nservices < SERVICE_THREADS_MAX ? sys_ep_create() : -ENOSPC;
        int64_t h = programs_spawn(&info, info.args, START_BOOT, ep < 0 ? HANDLE_NONE : (handle_t)ep);
        printf("init: started %s (%s)\n", info.name, h < 0 ? sys_strerror(h) : "ok");
        if (ep < 0) {
            printf("init: %s has no service endpoint (%s)\n", info.name, sys_strerror(ep));
            continue;
        }
        if (h < 0)
            sys_handle_close((handle_t)ep);
        else if (!serve_on_thread((handle_t)ep, HANDLE_NONE, programs_is_console(info.name)))
            printf("init: cannot serve %s's endpoint\n", info.name);
    }
}

/* test= or bench=: t_suite runs with the command line, the powers to start
 * processes and open devices, no limits (it sets its test programs' own)
 * and the delegate endpoint, and powers off when done. Should it end
 * otherwise, init powers off with status 1 (the console then has no
 * summary line). */
static __attribute__((noreturn)) void start_suite(const char *cmdline)
{
    struct abi_module_info info;
    int64_t err = -ENOENT;
    for (unsigned i = 0; err < 0 && sys_module_info(i, &info) == 0; i++)
        if (strcmp(info.name, "t_suite") == 0)
            err = 0;
    int64_t ep = err < 0 ? err : sys_ep_create();
    int64_t suite = ep;
    if (ep >= 0) {
        char args[ABI_ARGS_MAX];
        fmt_snprintf(args, sizeof(args), "t_suite %s", cmdline);
        struct loader_spec spec;
        loader_spec_init(&spec, "t_suite", (const void *)info.vaddr, info.size, args);
        spec.powers = POWER_SPAWN | POWER_DEVICES;
        /* It hands the memory server's endpoint on to its test programs. */
        spec.grants[ABI_STARTUP_MEMSRV] = (struct loader_grant){ ms_endpoint(), RIGHT_SEND | RIGHT_GRANT };
        spec.grants[ABI_STARTUP_PARENT] = (struct loader_grant){ (handle_t)ep, RIGHT_SEND };
        /* Its test programs find each other by name: the suite may register
         * the names under "test" and make registrars for them. */
        spec.grants[ABI_STARTUP_NAMES] = (struct loader_grant){ names_service, RIGHT_SEND | RIGHT_GRANT };
        spec.grants[ABI_STARTUP_REGISTRAR] =
            (struct loader_grant){ programs_registrar("test", NAMES_REGISTRAR_DELEGATE), RIGHT_SEND | RIGHT_GRANT };
        suite = loader_spawn(&spec);
    }
    int64_t status = 0;
    if (suite >= 0 && serve_on_thread((handle_t)ep, (handle_t)suite, false))
        sys_proc_wait((handle_t)suite, TIMEOUT_FOREVER, &status);
    else if (suite >= 0)
        sys_proc_kill((handle_t)suite);
    printf("init: the suite (t_suite) could not run or ended without powering off: %s, status %ld\n",
           suite < 0 ? sys_strerror(suite) : "ran", status);
    sys_shutdown(1);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *cmdline = libsys_startup ? libsys_startup->args : "";
    printf("init: started, command line '%s'\n", cmdline);
    if (ms_endpoint() == HANDLE_NONE)
        printf("init: no memory server: nothing can be started\n");
    supervise_start();
    programs_start_names();
    const char *value;
    size_t len;
    if (cmdline_get(cmdline, "test", &value, &len) || cmdline_get(cmdline, "bench", &value, &len))
        start_suite(cmdline);
    start_boot_programs();
    printf("init: ready\n");
    for (;;)
        sys_sleep(TIMEOUT_FOREVER);
}
