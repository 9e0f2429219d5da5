/*
 * In-guest test program: the name service (servers/names/, protocol in
 * include/proto/names.h) from its clients' side, through libsys's client
 * (libsys/names.h). The suite starts "server" first, then "client", both
 * with the name service's endpoint (startup slot NAMES) and a registrar
 * that allows "test.names" and the names under it (slot REGISTRAR), made
 * without the right to make registrars.
 *
 *   server  registers "test.names.server" for an endpoint of its own,
 *           answers one request on it, and exits: the end of a registered
 *           server's process.
 *   client  register, look up (and reach the server through what the
 *           lookup gave), duplicates, malformed names, names its registrar
 *           does not allow, registering on the service endpoint, making a
 *           registrar it may not make, an endpoint nobody receives on, wait
 *           (timeout, and a name that appears meanwhile), watch, a name
 *           that goes when its endpoint loses its receiver and when its
 *           server's process ends, unregister, list.
 */
#include <common/string.h>
#include <libsys/names.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#define SERVER_NAME "test.names.server"
#define LABEL_HELLO 0x68656c6cull
#define LABEL_EXIT  0x65786974ull

static struct test_run run;
static uint8_t stack[16384] __attribute__((aligned(16)));

/* ------------------------------------------------------------- server */

static int serve(void)
{
    int64_t ep = sys_ep_create();
    int64_t err = ep < 0 ? ep : names_register(SERVER_NAME, (handle_t)ep);
    test_check(&run, "server.register", err == 0, "%s", names_error_meaning(NAMES_REGISTER, err));
    if (err < 0)
        test_exit(&run);
    /* The client tells it to end; it answers, then ends with the receive
     * right still open: the process's end is what must drop the name. */
    struct ipc_msg m = { .seg = HANDLE_NONE };
    err = sys_ipc_recv((handle_t)ep, &m, test_budget_ns(&run, 100000));
    test_check(&run, "server.asked_to_exit", err >= 0 && m.label == LABEL_EXIT, "recv %ld, label %#lx", err, m.label);
    memset(&m, 0, sizeof(m));
    m.seg = HANDLE_NONE;
    sys_ipc_reply(&m);
    test_exit(&run);
}

/* ------------------------------------------------------------- client */

/* A thread that receives one message on hello_ep, waiting up to `arg` ns,
 * and keeps its label in hello_label. */
static handle_t hello_ep;
static uint64_t hello_label;

static void receive_one(uint64_t arg)
{
    struct ipc_msg m = { .seg = HANDLE_NONE };
    if (sys_ipc_recv(hello_ep, &m, arg) >= 0)
        hello_label = m.label;
    sys_thread_exit();
}

/* Registers `name` for `ep` after `delay_ns`, from a thread. */
static const char *late_name;
static handle_t late_ep;
static int64_t late_result = 1;

static void register_late(uint64_t delay_ns)
{
    sys_sleep(delay_ns);
    late_result = names_register(late_name, late_ep);
    sys_thread_exit();
}

static handle_t new_endpoint(void)
{
    int64_t ep = sys_ep_create();
    return ep < 0 ? HANDLE_NONE : (handle_t)ep;
}

static void expect(const char *check, int64_t got, int64_t want, uint64_t label)
{
    test_check(&run, check, got == want, "got %ld (%s), expected %ld", got, names_error_meaning(label, got), want);
}

static void check_refusals(handle_t ep)
{
    static const char *const malformed[] = {
        "",       "Test.names.x",   "test..names",    "test.names.",        ".test",
        "9lives", "test.names.a b", "test.names.x/y", "test.names.\xc3\xa9"
    };
    for (unsigned i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        char check[48];
        fmt_snprintf(check, sizeof(check), "register.malformed_%u", i);
        expect(check, names_register(malformed[i], ep), -EINVAL, NAMES_REGISTER);
    }
    expect("register.too_long", names_register("test.names.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ep), -E2BIG,
           NAMES_REGISTER);
    /* Names the registrar does not allow: another server's, a sibling,
     * and one that only starts with the allowed name. */
    expect("register.not_allowed_kvstore", names_register("kvstore", ep), -EPERM, NAMES_REGISTER);
    expect("register.not_allowed_memsrv", names_register("memsrv", ep), -EPERM, NAMES_REGISTER);
    expect("register.not_allowed_sibling", names_register("test.other", ep), -EPERM, NAMES_REGISTER);
    expect("register.not_allowed_prefix", names_register("test.namesake", ep), -EPERM, NAMES_REGISTER);
    /* The service endpoint every program holds is no registrar. */
    expect("register.on_service_endpoint", names_register_at(names_endpoint(), "test.names.x", ep), -EPERM,
           NAMES_REGISTER);
    handle_t made = HANDLE_NONE;
    expect("registrar.not_delegate", names_new_registrar(names_registrar(), "test.names.sub", 0, &made), -EPERM,
           NAMES_REGISTRAR);
    expect("registrar.not_delegate_kvstore", names_new_registrar(names_registrar(), "kvstore", 0, &made), -EPERM,
           NAMES_REGISTRAR);
    /* Not an endpoint at all: a notification. */
    int64_t note = sys_notify_create();
    if (note >= 0) {
        struct ipc_msg m = { .label = NAMES_REGISTER, .seg = HANDLE_NONE, .len = 12 };
        memcpy(m.payload, "test.names.n", 12);
        m.caps[0] = (struct ipc_cap){ .handle = (handle_t)note, .rights = RIGHT_SIGNAL | RIGHT_GRANT };
        int64_t err = sys_ipc_call(names_registrar(), &m, TIMEOUT_FOREVER);
        expect("register.not_an_endpoint", err < 0 ? err : (int64_t)m.label, -EINVAL, NAMES_REGISTER);
        sys_handle_close((handle_t)note);
    }
    /* An endpoint nobody receives on would be gone at once. */
    handle_t dead = new_endpoint();
    int64_t send_only = dead == HANDLE_NONE ? -EBADH : sys_handle_grant(HANDLE_SELF, dead, RIGHT_SEND | RIGHT_GRANT);
    if (dead != HANDLE_NONE)
        sys_handle_close(dead);
    expect("register.no_receiver", send_only < 0 ? send_only : names_register("test.names.dead", (handle_t)send_only),
           -EPEER, NAMES_REGISTER);
    if (send_only >= 0)
        sys_handle_close((handle_t)send_only);
}

/* Register, look up, reach the endpoint through the lookup's handle. */
static handle_t check_register_lookup(void)
{
    expect("lookup.unknown", names_lookup("test.names.a", NULL, NULL), -ENOENT, NAMES_LOOKUP);
    handle_t a = new_endpoint();
    expect("register.ok", names_register("test.names.a", a), 0, NAMES_REGISTER);
    handle_t other = new_endpoint();
    expect("register.duplicate", names_register("test.names.a", other), -EEXIST, NAMES_REGISTER);
    sys_handle_close(other);

    handle_t found = HANDLE_NONE;
    uint64_t owner = 0;
    int64_t err = names_lookup("test.names.a", &found, &owner);
    test_check(&run, "lookup.ok", err == 0 && owner == libsys_pid, "err %ld, owner %#lx (self %#lx)", err, owner,
               libsys_pid);
    struct abi_handle_info info = { 0 };
    test_check(&run, "lookup.send_only",
               err == 0 && sys_handle_info(found, &info) == 0 && info.kind == ABI_HANDLE_ENDPOINT &&
                   !(info.rights & RIGHT_RECV),
               "kind %u rights %#x", info.kind, info.rights);
    hello_ep = a;
    int64_t th = err < 0 ? err : sys_thread_create(receive_one, stack + sizeof(stack), test_budget_ns(&run, 50000));
    struct ipc_msg m = { .label = LABEL_HELLO, .seg = HANDLE_NONE };
    int64_t sent = th < 0 ? th : sys_ipc_send(found, &m, test_budget_ns(&run, 50000));
    if (th >= 0) {
        sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
        sys_handle_close((handle_t)th);
    }
    test_check(&run, "lookup.reaches_endpoint", sent == 0 && hello_label == LABEL_HELLO, "send %ld, label %#lx", sent,
               hello_label);
    if (found != HANDLE_NONE)
        sys_handle_close(found);
    return a;
}

static bool listed_name;
static void note_listed(const struct names_entry *e, void *ctx)
{
    if (strcmp(e->name, (const char *)ctx) == 0 && e->owner == libsys_pid)
        listed_name = true;
}

static void check_wait(void)
{
    uint64_t start = sys_clock();
    expect("wait.timeout", names_wait("test.names.never", 20ull * 1000 * 1000, NULL), -ETIMEDOUT, NAMES_WAIT);
    test_check(&run, "wait.timeout_waited", sys_clock() - start >= 20ull * 1000 * 1000, "returned after %lu ns",
               sys_clock() - start);

    late_name = "test.names.late";
    late_ep = new_endpoint();
    expect("wait.not_yet", names_lookup(late_name, NULL, NULL), -ENOENT, NAMES_LOOKUP);
    int64_t th = sys_thread_create(register_late, stack + sizeof(stack), 30ull * 1000 * 1000);
    handle_t found = HANDLE_NONE;
    int64_t err = th < 0 ? th : names_wait(late_name, test_budget_ns(&run, 100000), &found);
    if (th >= 0) {
        sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
        sys_handle_close((handle_t)th);
    }
    test_check(&run, "wait.appears", err == 0 && late_result == 0 && found != HANDLE_NONE,
               "wait %ld (%s), register %ld", err, names_error_meaning(NAMES_WAIT, err), late_result);
    if (found != HANDLE_NONE)
        sys_handle_close(found);
    expect("unregister.ok", names_unregister_at(names_registrar(), late_name), 0, NAMES_UNREGISTER);
    expect("unregister.again", names_unregister_at(names_registrar(), late_name), -ENOENT, NAMES_UNREGISTER);
    expect("unregister.not_allowed", names_unregister_at(names_registrar(), "kvstore"), -EPERM, NAMES_UNREGISTER);
    sys_handle_close(late_ep);
}

/* The name goes when its endpoint loses its receiver; a watcher is told. */
static void check_receiver_lost(handle_t a)
{
    int64_t note = sys_notify_create();
    if (note < 0) {
        test_check(&run, "watch.notification", false, "%s", sys_strerror(note));
        return;
    }
    expect("watch.unknown", names_watch("test.names.none", (handle_t)note, 3), -ENOENT, NAMES_WATCH);
    expect("watch.ok", names_watch("test.names.a", (handle_t)note, 3), 0, NAMES_WATCH);
    listed_name = false;
    int64_t n = names_list(note_listed, "test.names.a");
    test_check(&run, "list.has_name", n >= 1 && listed_name, "list %ld, found %d", n, listed_name);
    sys_handle_close(a); /* the receive right: nobody receives on it now */
    int64_t bits = sys_notify_wait((handle_t)note, test_budget_ns(&run, 100000));
    test_check(&run, "watch.receiver_lost", bits == (1 << 3), "wait %ld", bits);
    expect("lookup.after_receiver_lost", names_lookup("test.names.a", NULL, NULL), -ENOENT, NAMES_LOOKUP);
    listed_name = false;
    names_list(note_listed, "test.names.a");
    test_check(&run, "list.without_name", !listed_name, "still listed");
    handle_t again = new_endpoint();
    expect("register.after_end", names_register("test.names.a", again), 0, NAMES_REGISTER);
    sys_handle_close(again);
    sys_handle_close((handle_t)note);
}

/* The server's process ends: its name goes, the watcher is told. */
static void check_owner_exit(void)
{
    handle_t server = HANDLE_NONE;
    int64_t err = names_wait(SERVER_NAME, test_budget_ns(&run, 100000), &server);
    test_check(&run, "owner_exit.found", err == 0, "%s", names_error_meaning(NAMES_WAIT, err));
    handle_t mine = new_endpoint();
    expect("register.duplicate_other_process", names_register(SERVER_NAME, mine), -EEXIST, NAMES_REGISTER);
    sys_handle_close(mine);
    int64_t note = sys_notify_create();
    if (err < 0 || note < 0)
        return;
    expect("owner_exit.watch", names_watch(SERVER_NAME, (handle_t)note, 5), 0, NAMES_WATCH);
    struct ipc_msg m = { .label = LABEL_EXIT, .seg = HANDLE_NONE };
    err = sys_ipc_call(server, &m, test_budget_ns(&run, 100000));
    test_check(&run, "owner_exit.asked", err >= 0, "call %ld", err);
    int64_t bits = sys_notify_wait((handle_t)note, test_budget_ns(&run, 100000));
    test_check(&run, "owner_exit.watcher_told", bits == (1 << 5), "wait %ld", bits);
    expect("owner_exit.name_gone", names_lookup(SERVER_NAME, NULL, NULL), -ENOENT, NAMES_LOOKUP);
    sys_handle_close((handle_t)note);
    sys_handle_close(server);
}

/* One process registers at most NAMES_REGISTRATIONS_PER_CLIENT names (a
 * name can outlive its process: one program could keep the table full for
 * good); and registering and unregistering in a loop leaves nothing
 * behind in the kernel (the service's watches on the endpoint end with the
 * name). */
static void check_registration_limits(void)
{
    handle_t ep = new_endpoint();
    if (ep == HANDLE_NONE)
        return;
    unsigned made = 0;
    int64_t err = 0;
    char name[32];
    while (made < 40) {
        fmt_snprintf(name, sizeof(name), "test.names.many%u", made);
        if ((err = names_register(name, ep)) != 0)
            break;
        made++;
    }
    test_check(&run, "register.per_client_limit", err == -ENOSPC && made > 0 && made <= NAMES_REGISTRATIONS_PER_CLIENT,
               "%u registered, then %ld (%s)", made, err, names_error_meaning(NAMES_REGISTER, err));
    for (unsigned i = 0; i < made; i++) {
        fmt_snprintf(name, sizeof(name), "test.names.many%u", i);
        names_unregister_at(names_registrar(), name);
    }

    /* The same endpoint stays registered under another name meanwhile: the
     * service keeps a handle to it, so only ending its watches one by one
     * (SYS_EP_UNWATCH) gives them back. */
    int64_t kept = names_register("test.names.kept", ep);
    struct abi_kinfo before = { 0 }, after = { 0 };
    unsigned cycles = 0;
    sys_kinfo(&before);
    for (unsigned i = 0; i < 600; i++)
        cycles += names_register("test.names.churn", ep) == 0 &&
                  names_unregister_at(names_registrar(), "test.names.churn") == 0;
    sys_kinfo(&after);
    /* 300 cycles that left the service's two watches and probe behind held
     * 12 frames of the kernel's pool (measured); 600 about 24. */
    test_check(&run, "register.churn_leaves_nothing",
               kept == 0 && cycles == 600 && after.pool_frames_free + 6 >= before.pool_frames_free,
               "another name for the endpoint %ld; %u of 600 cycles; kernel pool frames free %lu -> %lu", kept, cycles,
               before.pool_frames_free, after.pool_frames_free);
    if (kept == 0)
        names_unregister_at(names_registrar(), "test.names.kept");
    sys_handle_close(ep);
}

int main(int argc, char **argv)
{
    test_begin(&run, "names", argc, argv);
    if (names_endpoint() == HANDLE_NONE || names_registrar() == HANDLE_NONE) {
        test_check(&run, "startup", false, "no name service endpoint or registrar in the startup block");
        test_exit(&run);
    }
    if (argc > 1 && strcmp(argv[argc - 1], "server") == 0)
        return serve();
    handle_t scratch = new_endpoint();
    handle_t a = check_register_lookup();
    check_refusals(scratch);
    sys_handle_close(scratch);
    check_wait();
    check_receiver_lost(a);
    check_owner_exit();
    check_registration_limits();
    test_exit(&run);
}
