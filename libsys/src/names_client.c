/*
 * libsys layer: the name service's client (libsys/names.h). Each call is
 * one SYS_IPC_CALL to the service endpoint or to a registrar; names_wait
 * adds a notification the service signals when the name appears.
 */
#include <common/string.h>
#include <libsys/names.h>
#include <libsys/start.h>
#include <libsys/syscall.h>

static handle_t endpoint_override = HANDLE_NONE;

handle_t names_endpoint(void)
{
    return endpoint_override != HANDLE_NONE ? endpoint_override : startup_handle(ABI_STARTUP_NAMES);
}

void names_set_endpoint(handle_t ep) { endpoint_override = ep; }

handle_t names_registrar(void) { return startup_handle(ABI_STARTUP_REGISTRAR); }

/* A request naming `name`; -E2BIG if it cannot be a name at all. */
static int64_t request(struct ipc_msg *m, uint64_t label, const char *name)
{
    memset(m, 0, sizeof(*m));
    m->label = label;
    m->seg = HANDLE_NONE;
    size_t len = name ? strnlen(name, NAMES_NAME_MAX + 1) : 0;
    if (len > NAMES_NAME_MAX)
        return -E2BIG;
    memcpy(m->payload, name, len);
    m->len = (uint32_t)len;
    return 0;
}

/* The reply's label, or the kernel's error. Replies may carry handles. */
static int64_t call(handle_t ep, struct ipc_msg *m)
{
    if (ep == HANDLE_NONE)
        return -EBADH;
    m->flags = IPC_RECV_CAPS;
    int64_t err = sys_ipc_call(ep, m, TIMEOUT_FOREVER);
    return err < 0 ? err : (int64_t)m->label;
}

/* The endpoint a LOOKUP-like reply carries, handed to *ep (or closed). */
static int64_t take_endpoint(struct ipc_msg *m, handle_t *ep, uint64_t *owner)
{
    handle_t h = m->caps[0].handle;
    if (h == HANDLE_NONE)
        return -ENOENT;
    if (owner)
        *owner = m->w[0];
    if (ep)
        *ep = h;
    else
        sys_handle_close(h);
    return 0;
}

int64_t names_lookup(const char *name, handle_t *ep, uint64_t *owner)
{
    struct ipc_msg m;
    int64_t err = request(&m, NAMES_LOOKUP, name);
    if (err == 0)
        err = call(names_endpoint(), &m);
    return err < 0 ? err : take_endpoint(&m, ep, owner);
}

int64_t names_wait(const char *name, uint64_t timeout_ns, handle_t *ep)
{
    if (timeout_ns == 0)
        return names_lookup(name, ep, NULL);
    int64_t note = sys_notify_create();
    if (note < 0)
        return note;
    uint64_t start = sys_clock();
    int64_t err;
    for (;;) {
        uint64_t waited = sys_clock() - start;
        if (waited >= timeout_ns) {
            err = -ETIMEDOUT;
            break;
        }
        uint64_t chunk = timeout_ns - waited < NAMES_WAIT_MAX_NS ? timeout_ns - waited : NAMES_WAIT_MAX_NS;
        struct ipc_msg m;
        if ((err = request(&m, NAMES_WAIT, name)) < 0)
            break;
        m.w[1] = chunk;
        m.caps[0] = (struct ipc_cap){ .handle = (handle_t)note, .rights = RIGHT_SIGNAL };
        if ((err = call(names_endpoint(), &m)) < 0)
            break;
        if (m.caps[0].handle != HANDLE_NONE) {
            err = take_endpoint(&m, ep, NULL);
            break;
        }
        /* Registered meanwhile, or the service's wait expired: ask again. */
        err = sys_notify_wait((handle_t)note, chunk);
        if (err < 0 && err != -ETIMEDOUT)
            break;
    }
    sys_handle_close((handle_t)note);
    return err;
}

int64_t names_watch(const char *name, handle_t notification, unsigned bit)
{
    struct ipc_msg m;
    int64_t err = request(&m, NAMES_WATCH, name);
    if (err < 0)
        return err;
    m.w[0] = bit;
    m.caps[0] = (struct ipc_cap){ .handle = notification, .rights = RIGHT_SIGNAL };
    return call(names_endpoint(), &m);
}

int64_t names_register_at(handle_t registrar, const char *name, handle_t ep)
{
    struct ipc_msg m;
    int64_t err = request(&m, NAMES_REGISTER, name);
    if (err < 0)
        return err;
    m.caps[0] = (struct ipc_cap){ .handle = ep, .rights = RIGHT_SEND | RIGHT_GRANT };
    return call(registrar, &m);
}

int64_t names_register(const char *name, handle_t ep) { return names_register_at(names_registrar(), name, ep); }

int64_t names_unregister_at(handle_t registrar, const char *name)
{
    struct ipc_msg m;
    int64_t err = request(&m, NAMES_UNREGISTER, name);
    return err < 0 ? err : call(registrar, &m);
}

int64_t names_new_registrar(handle_t registrar, const char *name, unsigned flags, handle_t *out)
{
    struct ipc_msg m;
    int64_t err = request(&m, NAMES_REGISTRAR, name);
    if (err < 0)
        return err;
    m.w[0] = flags;
    if ((err = call(registrar, &m)) < 0)
        return err;
    if (m.caps[0].handle == HANDLE_NONE)
        return -EPEER; /* a success without a registrar: not the name service */
    *out = m.caps[0].handle;
    return 0;
}

int64_t names_list(void (*fn)(const struct names_entry *entry, void *ctx), void *ctx)
{
    struct names_entry e = { .name = "" };
    int64_t count = 0;
    for (;;) {
        struct ipc_msg m;
        int64_t err = request(&m, NAMES_LIST, e.name);
        if (err == 0)
            err = call(names_endpoint(), &m);
        if (err == 0 && m.len != sizeof(struct names_list_page))
            err = -EINVAL;
        if (err < 0)
            return err;
        struct names_list_page page;
        memcpy(&page, m.payload, sizeof(page));
        size_t at = 0;
        for (unsigned i = 0; i < page.count; i++) {
            size_t len = page.data[at];
            if (len == 0 || len > NAMES_NAME_MAX || at + 1 + len + 8 > sizeof(page.data))
                return -EINVAL;
            memcpy(e.name, &page.data[at + 1], len);
            e.name[len] = 0;
            memcpy(&e.owner, &page.data[at + 1 + len], 8);
            at += 1 + len + 8;
            fn(&e, ctx);
            count++;
        }
        if (!page.more || page.count == 0)
            return count;
    }
}
