/*
 * libsys layer: the server loop (libsys/server.h says what it promises).
 * Used by servers such as kvstore; calls the IPC system calls and, for
 * segments nobody claimed, ms_free.
 *
 * One message buffer is handed to the kernel in every receive: the kernel
 * checks a buffer once and trusts it afterwards until something is unmapped
 * (kernel/core/ipc.c), so the reply is built apart and copied into that
 * buffer, never sent from a second one.
 */
#include <common/string.h>
#include <libsys/explain.h>
#include <libsys/memsrv.h>
#include <libsys/server.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

#define LOG_LIMIT_DEFAULT 16u

void server_init(struct server *srv, const char *name, handle_t ep, const struct server_op *ops, size_t nops,
                 void *ctx)
{
    memset(srv, 0, sizeof(*srv));
    srv->name = name;
    srv->ep = ep;
    srv->ops = ops;
    srv->nops = nops;
    srv->ctx = ctx;
    srv->idle_ns = TIMEOUT_FOREVER;
    srv->log_limit = LOG_LIMIT_DEFAULT;
}

void server_stop(struct server *srv, int64_t status)
{
    srv->stopping = true;
    srv->exit_status = status;
}

const struct server_op *server_find_op(const struct server *srv, uint64_t label)
{
    for (size_t i = 0; i < srv->nops; i++)
        if (srv->ops[i].label == label)
            return &srv->ops[i];
    return NULL;
}

static void log_refusal(struct server *srv, const struct ipc_msg *req, const char *what, int64_t err)
{
    uint64_t refused = srv->stats.unknown + srv->stats.malformed + srv->stats.reply_failures;
    if (refused <= srv->log_limit)
        printf("%s: %s (label %#lx from %#lx): %s\n", srv->name, what, req->label, req->badge,
               request_error_meaning(err));
}

/* Closes the handles the message still names. */
static void close_caps(struct server *srv, struct ipc_msg *m, bool moved_only)
{
    for (unsigned i = 0; i < IPC_CAPS_MAX; i++) {
        struct ipc_cap *c = &m->caps[i];
        if (c->handle != HANDLE_NONE && (!moved_only || (c->flags & IPC_CAP_MOVE)) &&
            sys_handle_close(c->handle) == 0)
            srv->stats.caps_closed++;
        c->handle = HANDLE_NONE;
    }
}

/* Checks the op's flags; 0 or the error to reply with. */
static int64_t check_request(const struct server_op *op, const struct ipc_msg *req)
{
    bool has_seg = req->seg != HANDLE_NONE;
    if ((op->flags & SERVER_OP_SEG_REQUIRED) && !has_seg)
        return -EINVAL;
    if ((op->flags & SERVER_OP_SEG_REFUSED) && has_seg)
        return -EINVAL;
    return 0;
}

/* Runs the request in req through the table and builds the reply. */
static void dispatch(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    const struct server_op *op = server_find_op(srv, req->label);
    int64_t result;

    memset(reply, 0, offsetof(struct ipc_msg, payload));
    reply->seg = HANDLE_NONE;
    if (op == NULL) {
        srv->stats.unknown++;
        result = -ENOSYS;
        log_refusal(srv, req, "unknown request", result);
    } else if ((result = check_request(op, req)) < 0) {
        srv->stats.malformed++;
        log_refusal(srv, req, op->name, result);
    } else {
        result = op->handler(srv, req, reply);
        if (reply->len > IPC_PAYLOAD_MAX) {
            printf("%s: %s replied %u payload bytes; refused\n", srv->name, op->name, reply->len);
            reply->len = 0;
            result = -EINVAL;
        }
    }
    reply->label = (uint64_t)result;
    reply->flags = 0;
    srv->stats.requests++;
    if (result < 0)
        srv->stats.errors++;

    /* A segment the handler did not take goes back where it came from. */
    if (req->seg != HANDLE_NONE) {
        if (reply->seg == HANDLE_NONE) {
            reply->seg = req->seg;
            srv->stats.segs_returned++;
        } else if (ms_free(req->seg) >= 0) {
            srv->stats.segs_freed++;
        }
        req->seg = HANDLE_NONE;
    }
    close_caps(srv, req, false);
}

/* A reply that was not delivered: the kernel already answered a caller that
 * still waited; what the reply carried is still the server's. */
static void reply_failed(struct server *srv, struct ipc_msg *failed, int64_t err)
{
    srv->stats.reply_failures++;
    log_refusal(srv, failed, "reply not delivered", err);
    if (srv->on_reply_failed != NULL) {
        srv->on_reply_failed(srv, failed, err);
        return;
    }
    if (failed->seg != HANDLE_NONE && ms_free(failed->seg) >= 0)
        srv->stats.segs_freed++;
    close_caps(srv, failed, true);
}

static bool carries_moved_caps(const struct ipc_msg *m)
{
    for (unsigned i = 0; i < IPC_CAPS_MAX; i++)
        if (m->caps[i].handle != HANDLE_NONE && (m->caps[i].flags & IPC_CAP_MOVE))
            return true;
    return false;
}

static bool from_kernel(const struct ipc_msg *m, uint64_t label)
{
    return m->badge == BADGE_KERNEL && m->label == label;
}

int64_t server_run(struct server *srv)
{
    struct ipc_msg m, reply;

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
            srv->stats.notifications++;
            if (srv->on_notify != NULL)
                srv->on_notify(srv, &m);
            continue;
        }
        bool call = m.flags & IPC_MSG_CALL;
        dispatch(srv, &m, &reply);
        if (!call) {
            /* A one-way send has nobody to answer; what would have gone
             * back has nowhere to go. */
            if (reply.seg != HANDLE_NONE || carries_moved_caps(&reply))
                reply_failed(srv, &reply, -ENOENT);
            memset(&m, 0, sizeof(m));
        } else {
            memcpy(&m, &reply, offsetof(struct ipc_msg, payload) + reply.len);
        }
        if (srv->stopping) {
            if (call && (r = sys_ipc_reply(&m)) < 0)
                reply_failed(srv, &reply, r);
            return srv->exit_status;
        }
    }
}
