/*
 * libsys layer: the server loop (libsys/server.h says what it promises).
 * Used by servers such as kvstore, memsrv and init; calls the IPC system calls
 * and, for segments nobody claimed, ms_free. The checks and the handler run
 * in server_dispatch (server_dispatch.c).
 *
 * Each thread sends its reply and receives the next request through one
 * buffer (SYS_IPC_REPLY_RECV). The reply is built apart, while the handler
 * still reads the request, and copied into that buffer; the copy built
 * apart is also what a failed reply's report is matched with (reply_failed).
 */
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/server.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

#define COUNT(srv, field) __atomic_fetch_add(&(srv)->stats.field, 1, __ATOMIC_RELAXED)

static void log_refusal(struct server *srv, const struct ipc_msg *req, const char *what, int64_t err)
{
    uint64_t refused = __atomic_load_n(&srv->stats.unknown, __ATOMIC_RELAXED) +
                       __atomic_load_n(&srv->stats.malformed, __ATOMIC_RELAXED) +
                       __atomic_load_n(&srv->stats.reply_failures, __ATOMIC_RELAXED);
    if (refused <= srv->log_limit)
        printf("%s: %s (label %lu from %#lx): %s\n", srv->name, what, req->label, req->badge, sys_strerror(err));
}

static void give_back_to_memsrv(struct server *srv, handle_t seg)
{
    if (ms_free(seg) >= 0)
        COUNT(srv, segs_freed);
}

/* Closes the handles a message names (only the moved ones if moved_only):
 * a request's that its handler did not keep, or a reply's that were not
 * delivered and would otherwise stay with the server for good. */
static void close_caps(struct server *srv, struct ipc_msg *m, bool moved_only)
{
    for (unsigned i = 0; i < IPC_CAPS_MAX; i++) {
        struct ipc_cap *c = &m->caps[i];
        if (c->handle != HANDLE_NONE && (!moved_only || (c->flags & IPC_CAP_MOVE)) && sys_handle_close(c->handle) == 0)
            COUNT(srv, caps_closed);
        c->handle = HANDLE_NONE;
    }
}

static bool carries_moved_caps(const struct ipc_msg *m)
{
    for (unsigned i = 0; i < IPC_CAPS_MAX; i++)
        if (m->caps[i].handle != HANDLE_NONE && (m->caps[i].flags & IPC_CAP_MOVE))
            return true;
    return false;
}

/* A reply that was not delivered: the kernel already answered a caller that
 * still waited; what the reply carried is still the server's. */
static void reply_failed(struct server *srv, struct ipc_msg *failed, int64_t err)
{
    COUNT(srv, reply_failures);
    srv->on_refused(srv, failed, "reply not delivered", err);
    if (srv->on_reply_failed != NULL) {
        srv->on_reply_failed(srv, failed, err);
        return;
    }
    if (failed->seg != HANDLE_NONE)
        give_back_to_memsrv(srv, failed->seg);
    close_caps(srv, failed, true);
}

static bool from_kernel(const struct ipc_msg *m, uint64_t label)
{
    return m->badge == BADGE_KERNEL && m->label == label;
}

int64_t server_run(struct server *srv)
{
    struct ipc_msg m, reply;

    if (srv->release_seg == NULL)
        srv->release_seg = give_back_to_memsrv;
    if (srv->on_refused == NULL)
        srv->on_refused = log_refusal;
    /* The kernel replies only when a reply is owed, so m may hold anything
     * else (a notification, a report) when nothing is. */
    memset(&m, 0, sizeof(m));
    for (;;) {
        m.flags = srv->recv_flags;
        int64_t r = sys_ipc_reply_recv(srv->ep, &m, srv->idle_ns);
        if (r == -ETIMEDOUT) {
            if (srv->on_idle != NULL)
                srv->on_idle(srv);
            continue;
        }
        if (r < 0)
            return r;
        if (from_kernel(&m, IPC_LABEL_REPLY_FAILED)) {
            reply_failed(srv, &reply, (int64_t)m.w[0]);
            continue;
        }
        if (from_kernel(&m, IPC_LABEL_NOTIFY)) {
            COUNT(srv, notifications);
            if (srv->on_notify != NULL)
                srv->on_notify(srv, &m);
            continue;
        }
        bool call = m.flags & IPC_MSG_CALL;
        server_dispatch(srv, &m, &reply);
        /* A request received without IPC_RECV_CAPS names none (the kernel
         * clears them): the common case makes no pass over them. */
        if (ipc_msg_names_caps(&m))
            close_caps(srv, &m, false); /* the request's handles the handler did not keep */
        if (!call) {
            /* A one-way send has nobody to answer; what would have gone
             * back has nowhere to go. */
            if (reply.seg != HANDLE_NONE || carries_moved_caps(&reply))
                reply_failed(srv, &reply, -ENOENT);
            memset(&m, 0, sizeof(m));
        } else {
            /* The header as one block the compiler copies inline. */
            __builtin_memcpy(&m, &reply, offsetof(struct ipc_msg, payload));
            if (reply.len != 0)
                memcpy(m.payload, reply.payload, reply.len);
        }
        if (srv->stopping) {
            if (call && (r = sys_ipc_reply(&m)) < 0)
                reply_failed(srv, &reply, r);
            return srv->exit_status;
        }
    }
}
