/*
 * libsys layer: the receive loop of a server, so a server is a table of
 * handlers. Used by servers written on libsys (servers/kvstore/ is the worked
 * example, docs/writing-a-server.md the guide; memsrv runs on it too, with
 * several threads, and init, a loop per endpoint it serves); calls only the IPC system calls and, for segments
 * nobody claimed, the memsrv client API.
 *
 * A server describes its requests in a table of struct server_op
 * {label, handler, name, flags, words}, fills a struct server with
 * server_init() and calls server_run(). For each message:
 *
 *   1. A kernel notification (IPC_LABEL_NOTIFY from BADGE_KERNEL) goes to
 *      on_notify, if set, and gets no reply.
 *   2. A label not in the table gets a reply with label -ENOSYS. A request
 *      from a caller an op trusts not (SERVER_OP_TRUSTED: srv->trusted says
 *      no) gets -EPERM. A request that breaks its op's other flags (a
 *      segment missing or unexpected, a payload where none is taken, a word
 *      past the op's `words` not zero) gets -EINVAL. None of these reaches
 *      the handler; each is counted and the first log_limit are logged.
 *   3. Otherwise the handler runs with the request (req->badge is the
 *      sender's pid, set by the kernel and unforgeable) and a zeroed reply
 *      it fills: words, payload (reply->len), at most one segment
 *      (reply->seg). Its return value becomes the reply's label: 0 or a
 *      positive value for success, -E* for an error.
 *   4. The request's segment, if it carried one, is the server's once
 *      received. A handler that keeps it sets req->seg = HANDLE_NONE ("I
 *      took it"). Otherwise the loop gives it back to the client in the
 *      reply (so a refused request never loses the client's memory), or, if
 *      the reply already carries another segment, hands it to release_seg
 *      (by default: back to memsrv).
 *      Handles a request carried (req->caps, received only by a server that
 *      sets IPC_RECV_CAPS in recv_flags) are the server's too: a handler
 *      keeps one by setting its req->caps[i].handle = HANDLE_NONE; the loop
 *      closes the others after server_dispatch. Handles the handler puts in
 *      reply->caps are copied to the client (the server keeps its own)
 *      unless flagged IPC_CAP_MOVE; moved ones in a reply that fails are
 *      closed.
 *   5. The reply goes out with sys_ipc_reply_recv, which also waits for the
 *      next request. A request sent with sys_ipc_send (no IPC_MSG_CALL)
 *      gets no reply; a segment its reply would have carried counts as a
 *      failed reply (-ENOENT).
 *
 * Steps 2 to 4 are server_dispatch(), which makes no system call of its
 * own (only the server's hooks may): a server's core can be tested on the
 * host by feeding it messages (memsrv's host tests do).
 *
 * Reply failures. If the kernel could not deliver a reply (the client's
 * address space has no room for the segment, the client is gone, the
 * handler put a bad handle or length in it), the kernel answers a client
 * that still waits with a reply whose label is the error and reports the
 * failure to the loop (IPC_LABEL_REPLY_FAILED), which calls
 * on_reply_failed with the failed reply and the error. A segment in a
 * failed reply is still the server's: on_reply_failed may keep it or free
 * it; without on_reply_failed the loop gives it back to memsrv (right for
 * a copy made for the reply, wrong for the server's only copy of
 * something: such servers set on_reply_failed), and closes the handles the
 * reply would have moved. A failed reply without a handle to a client that
 * is gone is not reported.
 *
 * Threads. Several threads may call server_run on one struct server: each
 * receives on the endpoint, owes the reply to the request it received and
 * sends it before it receives again (a thread owes at most one reply). A
 * handler may take as long as it needs, waiting for another thread even,
 * while the other threads serve; the handlers and hooks see requests
 * concurrently and do their own locking. The counters are updated
 * atomically. After server_stop, each thread's loop returns once it has
 * answered the request it is handling (a thread waiting in a receive
 * returns after the next one).
 */
#ifndef LIBSYS_SERVER_H
#define LIBSYS_SERVER_H

#include <abi/ipc.h>
#include <abi/types.h>

struct server;

/* Returns the reply's label: >= 0 success, -E* an error. */
typedef int64_t (*server_handler_fn)(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply);

/* Per-op checks the loop makes before the handler runs (-EPERM for
 * TRUSTED, -EINVAL for the others when broken). */
#define SERVER_OP_SEG_REQUIRED 0x1u  /* the request must carry a segment */
#define SERVER_OP_SEG_REFUSED  0x2u  /* the request must not carry one (it is given back) */
#define SERVER_OP_WORDS        0x4u  /* only w[0..words) may be set, the rest must be zero */
#define SERVER_OP_NO_PAYLOAD   0x8u  /* the request must carry no payload */
#define SERVER_OP_TRUSTED      0x10u /* only a caller srv->trusted accepts (none without it) */

struct server_op {
    uint64_t label;
    server_handler_fn handler;
    const char *name; /* for log lines and statistics */
    unsigned flags;   /* SERVER_OP_* */
    unsigned words;   /* with SERVER_OP_WORDS: the words the op reads */
};

/* Counters, exact at all times; a server may report them (kvstore's STATS). */
struct server_stats {
    uint64_t requests;       /* messages answered, errors included */
    uint64_t errors;         /* replies with a negative label */
    uint64_t unknown;        /* labels not in the table (-ENOSYS) */
    uint64_t malformed;      /* refused by the op's flags (-EINVAL, -EPERM) */
    uint64_t notifications;  /* kernel notifications */
    uint64_t reply_failures; /* replies the kernel could not deliver */
    uint64_t segs_returned;  /* unclaimed request segments given back to their sender */
    uint64_t segs_freed;     /* unclaimed or undelivered segments given back to memsrv */
    uint64_t caps_closed;    /* unclaimed request handles and undelivered moved ones, closed */
};

struct server {
    /* Set by server_init; the callbacks and options after it, before server_run. */
    const char *name; /* prefix of log lines */
    handle_t ep;      /* the endpoint served */
    const struct server_op *ops;
    size_t nops;
    void *ctx;           /* the server's own state, for handlers */
    uint32_t recv_flags; /* IPC_RECV_*: NOMAP to get segments unmapped, CAPS to take handles */
    uint64_t idle_ns;    /* receive timeout before on_idle (TIMEOUT_FOREVER: none) */
    void (*on_idle)(struct server *srv);
    void (*on_notify)(struct server *srv, const struct ipc_msg *note);
    /* reply: the reply as the handler made it; err: the kernel's error. */
    void (*on_reply_failed)(struct server *srv, struct ipc_msg *reply, int64_t err);
    /* SERVER_OP_TRUSTED ops: whether the caller (its badge, a pid) may ask;
     * where the endpoint itself is the capability (init's console
     * endpoint), whether this endpoint's callers may. */
    bool (*trusted)(const struct server *srv, uint64_t badge);
    /* A request segment nobody claimed while the reply carries another
     * (default, set by server_run: back to memsrv). */
    void (*release_seg)(struct server *srv, handle_t seg);
    /* A request refused before its handler (what: the op's name or "unknown
     * request"), or a handler's reply refused by the loop; err the reply's
     * label. Default, set by server_run: the first log_limit are printed. */
    void (*on_refused)(struct server *srv, const struct ipc_msg *req, const char *what, int64_t err);
    unsigned log_limit; /* refused requests logged by the default (default 16) */

    /* The loop's state: read, do not write. */
    struct server_stats stats;
    bool stopping;
    int64_t exit_status;
};

/* Zeroes srv and sets the essentials; idle_ns = TIMEOUT_FOREVER. */
void server_init(struct server *srv, const char *name, handle_t ep, const struct server_op *ops, size_t nops,
                 void *ctx);
/*
 * Serves until a handler calls server_stop() (after that request's reply is
 * sent: returns the status given) or receiving fails (returns the error,
 * e.g. -EBADH for an endpoint that is not one).
 */
int64_t server_run(struct server *srv);
/* From a handler: `len` bytes of data become the reply's payload. Returns
 * 0, the handler's result, or -E2BIG past IPC_PAYLOAD_MAX. */
int64_t server_reply_payload(struct ipc_msg *reply, const void *data, size_t len);
/* From a handler: the current request is the last; server_run returns status. */
void server_stop(struct server *srv, int64_t status);
/* The op for a label, or NULL. */
const struct server_op *server_find_op(const struct server *srv, uint64_t label);
/* Steps 2 to 4 above for one request: checks, the handler, the request's
 * segment; fills reply (label included) and returns its label. req->seg is
 * HANDLE_NONE afterwards (taken, given back in the reply, or released). */
int64_t server_dispatch(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply);

#endif
