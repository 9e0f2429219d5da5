/*
 * libsys layer: one request through a server's table (libsys/server.h,
 * steps 2 to 4): the checks every op's flags ask for, the handler, the
 * request's segment. Called by the receive loop (server.c) and by host
 * tests of a server's core; it makes no system call, only the server's
 * hooks do. Safe from several threads at once: it keeps no state but the
 * counters, updated atomically.
 */
#include <abi/errno.h>
#include <common/string.h>
#include <libsys/ipc_msg.h>
#include <libsys/server.h>

#define LOG_LIMIT_DEFAULT 16u

#define COUNT(srv, field) __atomic_fetch_add(&(srv)->stats.field, 1, __ATOMIC_RELAXED)

void server_init(struct server *srv, const char *name, handle_t ep, const struct server_op *ops, size_t nops, void *ctx)
{
    *srv = (struct server){ .name = name,
                            .ep = ep,
                            .ops = ops,
                            .nops = nops,
                            .ctx = ctx,
                            .idle_ns = TIMEOUT_FOREVER,
                            .log_limit = LOG_LIMIT_DEFAULT };
}

int64_t server_reply_payload(struct ipc_msg *reply, const void *data, size_t len)
{
    if (len > sizeof(reply->payload))
        return -E2BIG;
    memcpy(reply->payload, data, len);
    reply->len = (uint32_t)len;
    return 0;
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

/* Checks the op's flags; 0 or the error to reply with. */
static int64_t check_request(const struct server *srv, const struct server_op *op, const struct ipc_msg *req)
{
    bool has_seg = req->seg != HANDLE_NONE;
    if ((op->flags & SERVER_OP_TRUSTED) && (srv->trusted == NULL || !srv->trusted(srv, req->badge)))
        return -EPERM;
    if ((op->flags & SERVER_OP_SEG_REQUIRED) && !has_seg)
        return -EINVAL;
    if ((op->flags & SERVER_OP_SEG_REFUSED) && has_seg)
        return -EINVAL;
    if ((op->flags & SERVER_OP_NO_PAYLOAD) && req->len != 0)
        return -EINVAL;
    if (op->flags & SERVER_OP_WORDS)
        for (unsigned i = op->words; i < IPC_WORDS; i++)
            if (req->w[i] != 0)
                return -EINVAL;
    return 0;
}

static void refused(struct server *srv, const struct ipc_msg *req, const char *what, int64_t err)
{
    if (srv->on_refused != NULL)
        srv->on_refused(srv, req, what, err);
}

int64_t server_dispatch(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    const struct server_op *op = server_find_op(srv, req->label);
    int64_t result;

    ipc_msg_clear_header(reply); /* its payload counts only up to the len a handler sets */
    if (op == NULL) {
        COUNT(srv, unknown);
        result = -ENOSYS;
        refused(srv, req, "unknown request", result);
    } else if ((result = check_request(srv, op, req)) < 0) {
        COUNT(srv, malformed);
        refused(srv, req, op->name, result);
    } else {
        result = op->handler(srv, req, reply);
        if (reply->len > IPC_PAYLOAD_MAX) {
            refused(srv, req, "a reply with too long a payload from", -EINVAL);
            reply->len = 0;
            result = -EINVAL;
        }
    }
    reply->label = (uint64_t)result;
    reply->flags = 0;
    COUNT(srv, requests);
    if (result < 0)
        COUNT(srv, errors);

    /* A segment the handler did not take goes back where it came from. */
    if (req->seg != HANDLE_NONE) {
        if (reply->seg == HANDLE_NONE) {
            reply->seg = req->seg;
            COUNT(srv, segs_returned);
        } else if (srv->release_seg != NULL) {
            srv->release_seg(srv, req->seg);
        }
        req->seg = HANDLE_NONE;
    }
    return result;
}
