/*
 * names: the name service (protocol: include/proto/names.h; docs/names.md).
 * init starts it before any other program, with its service endpoint in
 * startup slot SERVICE and the root registrar in slot REGISTRAR (the receive
 * rights of both; init keeps sending to them and hands them out).
 *
 * One thread serves the service endpoint (lookups, waits, watches, lists);
 * each registrar has a thread of its own, because the kernel receives on one
 * endpoint at a time and a registrar's endpoint is what proves the right to
 * the names it allows. The book (registrations, waits, watches, registrars)
 * is shared under one mutex; no handler blocks while it holds it.
 *
 * A registration ends when its endpoint loses its receiver. The service
 * learns so by two one-shot kernel watches on the endpoint (SYS_EP_WATCH):
 * one signals a bit of the notification bound to the service endpoint (so
 * the serving thread wakes with an IPC_LABEL_NOTIFY message), the other a
 * notification of the registration's own (its probe): several
 * registrations share each of the 63 bits, and the probe tells which of
 * them ended.
 */
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/explain.h>
#include <libsys/malloc.h>
#include <libsys/server.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/sync.h>
#include <libsys/syscall.h>
#include <proto/names.h>
#include "rules.h"

#define NOTIFY_BITS          63u
#define REGISTRAR_STACK_SIZE (16u * 1024)
#define IDLE_NS              (1000ull * 1000 * 1000) /* how often expired waits are dropped while some are kept */

struct registration {
    bool used;
    char name[NAMES_NAME_MAX];
    size_t len;
    handle_t ep;    /* SEND and GRANT */
    handle_t probe; /* signalled (bit 0) when ep loses its receiver */
    uint64_t owner; /* the pid that registered it */
};

struct wait {
    bool used;
    char name[NAMES_NAME_MAX];
    size_t len;
    handle_t note; /* the client's notification (SIGNAL) */
    uint64_t bits;
    uint64_t deadline; /* sys_clock() after which it is dropped */
    uint64_t client;
};

struct watch {
    bool used;
    unsigned reg; /* the registration watched */
    handle_t note;
    uint64_t bits;
    uint64_t client;
};

struct registrar {
    bool used;
    bool root;
    char allow[NAMES_NAME_MAX];
    size_t allow_len; /* 0: every name (the root) */
    unsigned flags;   /* NAMES_REGISTRAR_* */
    unsigned made;    /* registrars made through it */
    handle_t ep;      /* the receive right; holders of its send rights may register */
    struct server srv;
};

static struct {
    struct mutex lock;
    struct registration regs[NAMES_REGISTRATIONS_MAX];
    struct wait waits[NAMES_WAITS_MAX];
    struct watch watches[NAMES_WATCHES_MAX];
    struct registrar registrars[NAMES_REGISTRARS_MAX];
    handle_t ended; /* bound to the service endpoint: bit (slot % 63) when a registration may have ended */
} book;

/* ---------------------------------------------------------------- checks */

static bool words_zero_from(const struct ipc_msg *m, unsigned first)
{
    for (unsigned i = first; i < IPC_WORDS; i++)
        if (m->w[i] != 0)
            return false;
    return true;
}

/* The request's payload is a valid name. */
static bool name_in(const struct ipc_msg *m) { return names_valid((const char *)m->payload, m->len); }

/* Handles carried from index `first` on are absent. */
static bool no_caps_from(const struct ipc_msg *m, unsigned first)
{
    for (unsigned i = first; i < IPC_CAPS_MAX; i++)
        if (m->caps[i].handle != HANDLE_NONE)
            return false;
    return true;
}

/* caps[0] is a handle of `kind` with at least `rights` and none of
 * `refused`. */
static bool cap_is(const struct ipc_msg *m, uint32_t kind, uint32_t rights, uint32_t refused)
{
    struct abi_handle_info info;
    return m->caps[0].handle != HANDLE_NONE && sys_handle_info(m->caps[0].handle, &info) == 0 && info.kind == kind &&
           (info.rights & rights) == rights && !(info.rights & refused);
}

/* ------------------------------------------------------------------ book */

static int find(const uint8_t *name, size_t len)
{
    for (unsigned i = 0; i < NAMES_REGISTRATIONS_MAX; i++)
        if (book.regs[i].used && names_compare(book.regs[i].name, book.regs[i].len, (const char *)name, len) == 0)
            return (int)i;
    return -1;
}

static unsigned registered_by(uint64_t client)
{
    unsigned n = 0;
    for (unsigned i = 0; i < NAMES_REGISTRATIONS_MAX; i++)
        n += book.regs[i].used && book.regs[i].owner == client;
    return n;
}

static unsigned count_for(uint64_t client, bool waits)
{
    unsigned n = 0;
    if (waits) {
        for (unsigned i = 0; i < NAMES_WAITS_MAX; i++)
            n += book.waits[i].used && book.waits[i].client == client;
    } else {
        for (unsigned i = 0; i < NAMES_WATCHES_MAX; i++)
            n += book.watches[i].used && book.watches[i].client == client;
    }
    return n;
}

static void drop_expired_waits(uint64_t now)
{
    for (unsigned i = 0; i < NAMES_WAITS_MAX; i++) {
        struct wait *w = &book.waits[i];
        if (w->used && now >= w->deadline) {
            sys_handle_close(w->note);
            w->used = false;
        }
    }
}

/* The name is registered now: every client waiting for it is told. */
static void wake_waits(const struct registration *r)
{
    for (unsigned i = 0; i < NAMES_WAITS_MAX; i++) {
        struct wait *w = &book.waits[i];
        if (w->used && names_compare(w->name, w->len, r->name, r->len) == 0) {
            sys_notify_signal(w->note, w->bits);
            sys_handle_close(w->note);
            w->used = false;
        }
    }
}

/* Names come and go at a client's pace: the console gets at most
 * LOG_PER_WINDOW lines about them a second, and is told how many it
 * missed. Called with the book locked. */
#define LOG_PER_WINDOW 16u
#define LOG_WINDOW_NS  (1000ull * 1000 * 1000)

static bool log_admitted(void)
{
    static uint64_t window_start;
    static unsigned in_window, missed;
    uint64_t now = sys_clock();
    if (window_start == 0 || now - window_start >= LOG_WINDOW_NS) {
        if (missed != 0)
            printf("names: %u lines about names coming and going not shown\n", missed);
        window_start = now;
        in_window = 0;
        missed = 0;
    }
    if (in_window >= LOG_PER_WINDOW) {
        missed++;
        return false;
    }
    in_window++;
    return true;
}

/* The registration in slot `i` ends: its watchers are told, its handles
 * closed. */
static void end_registration(unsigned i, const char *why)
{
    struct registration *r = &book.regs[i];
    for (unsigned k = 0; k < NAMES_WATCHES_MAX; k++) {
        struct watch *w = &book.watches[k];
        if (w->used && w->reg == i) {
            sys_notify_signal(w->note, w->bits);
            sys_handle_close(w->note);
            w->used = false;
        }
    }
    if (log_admitted())
        printf("names: '%.*s' (pid %#lx) is gone: %s\n", (int)r->len, r->name, r->owner, why);
    /* Unregistered, its endpoint still has a receiver: the kernel's watches
     * on it would stay, charged to the service, until it had none. */
    sys_ep_unwatch(r->ep, r->probe, 0);
    sys_ep_unwatch(r->ep, book.ended, i % NOTIFY_BITS);
    sys_handle_close(r->ep);
    sys_handle_close(r->probe);
    r->used = false;
}

/* ---------------------------------------------- the service endpoint */

/* Reply caps[0]: a copy of the registration's endpoint of the reply's own,
 * moved, so that the reply still holds if the registration ends meanwhile;
 * w0 its owner. */
static int64_t reply_registration(const struct registration *r, struct ipc_msg *reply)
{
    int64_t copy = sys_handle_grant(HANDLE_SELF, r->ep, RIGHT_SEND | RIGHT_GRANT);
    if (copy < 0)
        return copy;
    reply->caps[0] = (struct ipc_cap){ .handle = (handle_t)copy, .flags = IPC_CAP_MOVE };
    reply->w[0] = r->owner;
    return 0;
}

static int64_t op_lookup(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)srv;
    if (!name_in(req) || !words_zero_from(req, 0) || !no_caps_from(req, 0))
        return -EINVAL;
    mutex_lock(&book.lock);
    int i = find(req->payload, req->len);
    int64_t err = i < 0 ? -ENOENT : reply_registration(&book.regs[i], reply);
    mutex_unlock(&book.lock);
    return err;
}

static int64_t op_wait(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t bit = req->w[0], timeout = req->w[1];
    if (!name_in(req) || !words_zero_from(req, 2) || bit >= NOTIFY_BITS || timeout == 0 ||
        timeout > NAMES_WAIT_MAX_NS || !cap_is(req, ABI_HANDLE_NOTIFICATION, RIGHT_SIGNAL, 0) || !no_caps_from(req, 1))
        return -EINVAL;
    uint64_t now = sys_clock();
    int64_t err = 0;
    mutex_lock(&book.lock);
    int i = find(req->payload, req->len);
    if (i >= 0) {
        err = reply_registration(&book.regs[i], reply);
    } else {
        drop_expired_waits(now);
        unsigned slot = 0;
        while (slot < NAMES_WAITS_MAX && book.waits[slot].used)
            slot++;
        if (slot == NAMES_WAITS_MAX || count_for(req->badge, true) >= NAMES_WAITS_PER_CLIENT) {
            err = -ENOSPC;
        } else {
            struct wait *w = &book.waits[slot];
            *w = (struct wait){ .used = true,
                                .len = req->len,
                                .note = req->caps[0].handle,
                                .bits = 1ull << bit,
                                .deadline = now + timeout,
                                .client = req->badge };
            memcpy(w->name, req->payload, req->len);
            req->caps[0].handle = HANDLE_NONE; /* kept */
            srv->idle_ns = IDLE_NS;            /* until the waits have expired */
        }
    }
    mutex_unlock(&book.lock);
    return err;
}

static int64_t op_watch(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)srv;
    (void)reply;
    uint64_t bit = req->w[0];
    if (!name_in(req) || !words_zero_from(req, 1) || bit >= NOTIFY_BITS ||
        !cap_is(req, ABI_HANDLE_NOTIFICATION, RIGHT_SIGNAL, 0) || !no_caps_from(req, 1))
        return -EINVAL;
    int64_t err = 0;
    mutex_lock(&book.lock);
    int i = find(req->payload, req->len);
    unsigned slot = 0;
    while (slot < NAMES_WATCHES_MAX && book.watches[slot].used)
        slot++;
    if (i < 0)
        err = -ENOENT;
    else if (slot == NAMES_WATCHES_MAX || count_for(req->badge, false) >= NAMES_WATCHES_PER_CLIENT)
        err = -ENOSPC;
    else {
        book.watches[slot] = (struct watch){
            .used = true, .reg = (unsigned)i, .note = req->caps[0].handle, .bits = 1ull << bit, .client = req->badge
        };
        req->caps[0].handle = HANDLE_NONE; /* kept */
    }
    mutex_unlock(&book.lock);
    return err;
}

static int64_t op_list(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)srv;
    if (req->len > NAMES_NAME_MAX || !words_zero_from(req, 0) || !no_caps_from(req, 0))
        return -EINVAL;
    const char *after = (const char *)req->payload;
    size_t after_len = req->len;
    struct names_list_page page;
    memset(&page, 0, sizeof(page));
    size_t used = 0;
    mutex_lock(&book.lock);
    /* Registrations are not kept sorted: each round takes the smallest
     * name after the last one listed. 128 slots make that cheap. */
    for (;;) {
        int next = -1;
        for (unsigned i = 0; i < NAMES_REGISTRATIONS_MAX; i++) {
            const struct registration *r = &book.regs[i];
            if (!r->used || names_compare(r->name, r->len, after, after_len) <= 0)
                continue;
            if (next < 0 || names_compare(r->name, r->len, book.regs[next].name, book.regs[next].len) < 0)
                next = (int)i;
        }
        if (next < 0)
            break;
        const struct registration *r = &book.regs[next];
        if (used + 1 + r->len + 8 > sizeof(page.data)) {
            page.more = 1;
            break;
        }
        page.data[used] = (uint8_t)r->len;
        memcpy(&page.data[used + 1], r->name, r->len);
        memcpy(&page.data[used + 1 + r->len], &r->owner, 8);
        used += 1 + r->len + 8;
        page.count++;
        after = r->name;
        after_len = r->len;
    }
    mutex_unlock(&book.lock);
    return server_reply_payload(reply, &page, sizeof(page));
}

/* Registration belongs on a registrar: said plainly, not as an unknown
 * request. */
static int64_t op_needs_registrar(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)srv;
    (void)req;
    (void)reply;
    return -EPERM;
}

/* Bits of the bound notification: some registrations sharing those bits
 * may have lost their receiver; each one's probe says. */
static void on_ended(struct server *srv, const struct ipc_msg *note)
{
    (void)srv;
    uint64_t bits = note->w[0];
    mutex_lock(&book.lock);
    for (unsigned i = 0; i < NAMES_REGISTRATIONS_MAX; i++) {
        struct registration *r = &book.regs[i];
        if (r->used && (bits & (1ull << (i % NOTIFY_BITS))) && sys_notify_wait(r->probe, TIMEOUT_POLL) > 0)
            end_registration(i, "its endpoint has no receiver any more");
    }
    mutex_unlock(&book.lock);
}

/* Only while waits are kept: drops those that have expired. */
static void on_idle(struct server *srv)
{
    mutex_lock(&book.lock);
    drop_expired_waits(sys_clock());
    bool waits = false;
    for (unsigned i = 0; i < NAMES_WAITS_MAX && !waits; i++)
        waits = book.waits[i].used;
    mutex_unlock(&book.lock);
    if (!waits)
        srv->idle_ns = TIMEOUT_FOREVER;
}

static const struct server_op service_ops[] = {
    { NAMES_LOOKUP, op_lookup, "lookup", SERVER_OP_SEG_REFUSED, 0 },
    { NAMES_WAIT, op_wait, "wait", SERVER_OP_SEG_REFUSED, 0 },
    { NAMES_WATCH, op_watch, "watch", SERVER_OP_SEG_REFUSED, 0 },
    { NAMES_LIST, op_list, "list", SERVER_OP_SEG_REFUSED, 0 },
    { NAMES_REGISTER, op_needs_registrar, "register", 0, 0 },
    { NAMES_UNREGISTER, op_needs_registrar, "unregister", 0, 0 },
    { NAMES_REGISTRAR, op_needs_registrar, "registrar", 0, 0 },
};

/* ------------------------------------------------------------ registrars */

static struct registrar *registrar_of(struct server *srv) { return srv->ctx; }

static bool allows(const struct registrar *g, const struct ipc_msg *req)
{
    return names_allowed(g->allow, g->allow_len, (const char *)req->payload, req->len);
}

static int64_t op_register(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)reply;
    struct registrar *g = registrar_of(srv);
    if (!name_in(req) || !words_zero_from(req, 0) || !no_caps_from(req, 1) ||
        !cap_is(req, ABI_HANDLE_ENDPOINT, RIGHT_SEND | RIGHT_GRANT, RIGHT_RECV))
        return -EINVAL; /* a receive right moved here would leave the name's clients unanswered */
    if (!allows(g, req))
        return -EPERM;
    int64_t err = 0;
    mutex_lock(&book.lock);
    unsigned slot = 0;
    while (slot < NAMES_REGISTRATIONS_MAX && book.regs[slot].used)
        slot++;
    int64_t probe = -ENOSPC;
    handle_t ep = req->caps[0].handle;
    if (find(req->payload, req->len) >= 0)
        err = -EEXIST;
    else if (slot == NAMES_REGISTRATIONS_MAX || registered_by(req->badge) >= NAMES_REGISTRATIONS_PER_CLIENT ||
             (probe = sys_notify_create()) < 0)
        err = probe;
    else if ((err = sys_ep_watch(ep, (handle_t)probe, 0)) < 0 ||
             (err = sys_ep_watch(ep, book.ended, slot % NOTIFY_BITS)) < 0)
        sys_handle_close((handle_t)probe);
    else if (sys_notify_wait((handle_t)probe, TIMEOUT_POLL) > 0) {
        /* Nobody receives on it: it would be gone at once. (The bit it set
         * on `ended` finds no registration that ended.) */
        sys_handle_close((handle_t)probe);
        err = -EPEER;
    } else {
        struct registration *r = &book.regs[slot];
        *r = (struct registration){
            .used = true, .len = req->len, .ep = ep, .probe = (handle_t)probe, .owner = req->badge
        };
        memcpy(r->name, req->payload, req->len);
        req->caps[0].handle = HANDLE_NONE; /* kept */
        if (log_admitted())
            printf("names: '%.*s' registered by pid %#lx\n", (int)r->len, r->name, r->owner);
        wake_waits(r);
    }
    mutex_unlock(&book.lock);
    return err;
}

static int64_t op_unregister(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)reply;
    struct registrar *g = registrar_of(srv);
    if (!name_in(req) || !words_zero_from(req, 0) || !no_caps_from(req, 0))
        return -EINVAL;
    if (!allows(g, req))
        return -EPERM;
    mutex_lock(&book.lock);
    int i = find(req->payload, req->len);
    if (i >= 0)
        end_registration((unsigned)i, "unregistered");
    mutex_unlock(&book.lock);
    return i < 0 ? -ENOENT : 0;
}

static int64_t start_registrar(const char *allow, size_t allow_len, unsigned flags, bool root, handle_t ep);

static int64_t op_registrar(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct registrar *g = registrar_of(srv);
    unsigned flags = (unsigned)req->w[0];
    if (!name_in(req) || req->w[0] & ~(uint64_t)NAMES_REGISTRAR_DELEGATE || !words_zero_from(req, 1) ||
        !no_caps_from(req, 0))
        return -EINVAL;
    if (!(g->flags & NAMES_REGISTRAR_DELEGATE) || !allows(g, req))
        return -EPERM;
    mutex_lock(&book.lock);
    bool room = g->root || g->made < NAMES_SUBREGISTRARS_MAX;
    if (room)
        g->made++; /* counted now: another thread may ask meanwhile */
    mutex_unlock(&book.lock);
    if (!room)
        return -ENOSPC;
    int64_t ep = sys_ep_create();
    int64_t copy = ep < 0 ? ep : sys_handle_grant(HANDLE_SELF, (handle_t)ep, RIGHT_SEND | RIGHT_GRANT);
    int64_t err = copy < 0 ? copy : start_registrar((const char *)req->payload, req->len, flags, false, (handle_t)ep);
    if (err < 0) {
        if (copy >= 0)
            sys_handle_close((handle_t)copy);
        if (ep >= 0)
            sys_handle_close((handle_t)ep);
        mutex_lock(&book.lock);
        g->made--;
        mutex_unlock(&book.lock);
        return err;
    }
    reply->caps[0] = (struct ipc_cap){ .handle = (handle_t)copy, .flags = IPC_CAP_MOVE };
    return 0;
}

static const struct server_op registrar_ops[] = {
    { NAMES_REGISTER, op_register, "register", SERVER_OP_SEG_REFUSED, 0 },
    { NAMES_UNREGISTER, op_unregister, "unregister", SERVER_OP_SEG_REFUSED, 0 },
    { NAMES_REGISTRAR, op_registrar, "registrar", SERVER_OP_SEG_REFUSED, 0 },
};

static void registrar_thread(uint64_t index)
{
    struct registrar *g = &book.registrars[index];
    int64_t err = server_run(&g->srv);
    printf("names: a registrar stopped serving: %s\n", sys_strerror(err));
    sys_thread_exit();
}

/* A registrar allowing `allow` served on `ep` by a thread of its own. */
static int64_t start_registrar(const char *allow, size_t allow_len, unsigned flags, bool root, handle_t ep)
{
    mutex_lock(&book.lock);
    unsigned index = 0;
    while (index < NAMES_REGISTRARS_MAX && book.registrars[index].used)
        index++;
    if (index < NAMES_REGISTRARS_MAX)
        book.registrars[index].used = true; /* reserved */
    mutex_unlock(&book.lock);
    if (index == NAMES_REGISTRARS_MAX)
        return -ENOSPC;
    struct registrar *g = &book.registrars[index];
    g->root = root;
    memcpy(g->allow, allow, allow_len);
    g->allow_len = allow_len;
    g->flags = flags;
    g->made = 0;
    g->ep = ep;
    server_init(&g->srv, "names registrar", ep, registrar_ops, sizeof(registrar_ops) / sizeof(registrar_ops[0]), g);
    g->srv.recv_flags = IPC_RECV_CAPS;
    /* The stack stays with the thread, which serves as long as the
     * service runs. */
    uint8_t *stack = malloc(REGISTRAR_STACK_SIZE);
    int64_t t = stack ? sys_thread_create(registrar_thread, stack + REGISTRAR_STACK_SIZE, index) : -ENOMEM;
    if (t < 0) {
        free(stack);
        mutex_lock(&book.lock);
        g->used = false;
        mutex_unlock(&book.lock);
        return t;
    }
    sys_handle_close((handle_t)t);
    return 0;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    handle_t service = startup_handle(ABI_STARTUP_SERVICE);
    handle_t root = startup_handle(ABI_STARTUP_REGISTRAR);
    if (service == HANDLE_NONE) {
        printf("names: no service endpoint in startup slot %d; nothing to serve\n", ABI_STARTUP_SERVICE);
        return 1;
    }
    int64_t ended = sys_notify_create();
    int64_t err = ended < 0 ? ended : sys_ep_bind(service, (handle_t)ended);
    if (err < 0) {
        printf("names: cannot watch registrations: %s\n", sys_strerror(err));
        return 1;
    }
    book.ended = (handle_t)ended;
    if (root == HANDLE_NONE)
        printf("names: no root registrar: nothing can be registered\n");
    else if ((err = start_registrar("", 0, NAMES_REGISTRAR_DELEGATE, true, root)) < 0)
        printf("names: cannot serve the root registrar: %s\n", sys_strerror(err));

    struct server srv;
    server_init(&srv, "names", service, service_ops, sizeof(service_ops) / sizeof(service_ops[0]), NULL);
    srv.recv_flags = IPC_RECV_CAPS;
    srv.on_notify = on_ended;
    srv.on_idle = on_idle;
    printf("names: serving\n");
    err = server_run(&srv);
    printf("names: stopped serving: %s\n", sys_strerror(err));
    return 1;
}
