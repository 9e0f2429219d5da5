/*
 * kvstore server: a key-value store whose values live in memsrv segments
 * (protocol: include/proto/kvstore.h). The worked example of
 * docs/writing-a-server.md: a table of handlers run by libsys's server loop,
 * the index on malloc, value ids from a vmem arena (store.c).
 *
 * It serves the endpoint its starter gave it in startup slot
 * ABI_STARTUP_SERVICE, registered with the name service as "kvstore" (or
 * the name given as `name=`) when it was given a registrar, and exits 0
 * after KV_SHUTDOWN.
 */
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/names.h>
#include <libsys/server.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include "store.h"

struct kvstore {
    struct kv_store store;
    uint64_t puts, gets, deletes, lists;
};

static struct kvstore *state(struct server *srv) { return srv->ctx; }

static bool key_ok(const struct ipc_msg *req) { return req->len >= 1 && req->len <= KV_KEY_MAX; }

static int64_t op_put(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct kvstore *kv = state(srv);
    uint64_t len = kv_put_req_get(req).len, id;
    bool replaced;
    if (!key_ok(req) || req->seg_addr == 0 || len == 0 || len > req->seg_size || len > KV_VALUE_MAX)
        return -EINVAL;
    struct kv_value v = { req->seg, (const void *)req->seg_addr, req->seg_size, len };
    int err = store_put(&kv->store, req->payload, req->len, &v, &id, &replaced);
    if (err < 0)
        return err;
    req->seg = HANDLE_NONE; /* the store keeps it */
    kv->puts++;
    kv_put_reply_put(reply, (struct kv_put_reply){ .id = id, .replaced = replaced });
    return 0;
}

static int64_t op_get(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct kvstore *kv = state(srv);
    if (!key_ok(req))
        return -EINVAL;
    const struct kv_entry *e = store_find(&kv->store, req->payload, req->len);
    if (e == NULL)
        return -ENOENT;
    /* A copy, not the stored segment: the store keeps its value whatever the
     * client does, and a copy that cannot be delivered is simply freed (the
     * server loop's default for failed replies). */
    struct ms_segment copy;
    int64_t err = ms_alloc(e->len, 0, 0, 0, &copy);
    if (err < 0)
        return err;
    memcpy(copy.addr, e->addr, e->len);
    kv->gets++;
    reply->seg = copy.handle;
    kv_get_reply_put(reply, (struct kv_get_reply){ .len = e->len, .id = e->id });
    return 0;
}

static int64_t op_delete(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct kvstore *kv = state(srv);
    uint64_t id;
    if (!key_ok(req))
        return -EINVAL;
    int err = store_delete(&kv->store, req->payload, req->len, &id);
    if (err < 0)
        return err;
    kv->deletes++;
    kv_delete_reply_put(reply, (struct kv_delete_reply){ .id = id });
    return 0;
}

static int64_t op_list(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct kvstore *kv = state(srv);
    struct kv_list_page page;
    size_t used = 0;
    if (req->len > KV_KEY_MAX)
        return -EINVAL;
    memset(&page, 0, sizeof(page));
    size_t i = store_after(&kv->store, req->payload, req->len);
    for (; i < kv->store.count; i++) {
        const struct kv_entry *e = kv->store.index[i];
        if (used + 1 + e->key_len > sizeof(page.data))
            break;
        page.data[used] = e->key_len;
        memcpy(&page.data[used + 1], e->key, e->key_len);
        used += 1 + (size_t)e->key_len;
        page.count++;
    }
    page.more = i < kv->store.count;
    kv->lists++;
    return server_reply_payload(reply, &page, sizeof(page));
}

static int64_t op_stats(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct kvstore *kv = state(srv);
    (void)req;
    struct kv_stats st = {
        .keys = kv->store.count,
        .value_bytes = kv->store.value_bytes,
        .segment_bytes = kv->store.segment_bytes,
        .ids_in_use = store_ids_in_use(&kv->store),
        .puts = kv->puts,
        .gets = kv->gets,
        .deletes = kv->deletes,
        .lists = kv->lists,
        .requests = srv->stats.requests,
        .errors = srv->stats.errors,
        .reply_failures = srv->stats.reply_failures,
    };
    return server_reply_payload(reply, &st, sizeof(st));
}

static int64_t op_shutdown(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    (void)req;
    (void)reply;
    server_stop(srv, 0);
    return 0;
}

/* The loop refuses what breaks these (-EINVAL) before a handler runs:
 * words past the ones an op reads must be zero (room to grow the
 * protocol), and STATS and SHUTDOWN take no payload. */
static const struct server_op kv_ops[] = {
    { KV_PUT, op_put, "put", SERVER_OP_SEG_REQUIRED | SERVER_OP_WORDS, PROTO_WORDS_USED(kv_put_req) },
    { KV_GET, op_get, "get", SERVER_OP_SEG_REFUSED | SERVER_OP_WORDS, 0 },
    { KV_DELETE, op_delete, "delete", SERVER_OP_SEG_REFUSED | SERVER_OP_WORDS, 0 },
    { KV_LIST, op_list, "list", SERVER_OP_SEG_REFUSED | SERVER_OP_WORDS, 0 },
    { KV_STATS, op_stats, "stats", SERVER_OP_SEG_REFUSED | SERVER_OP_WORDS | SERVER_OP_NO_PAYLOAD, 0 },
    { KV_SHUTDOWN, op_shutdown, "shutdown", SERVER_OP_SEG_REFUSED | SERVER_OP_WORDS | SERVER_OP_NO_PAYLOAD, 0 },
};

/* Clients find the store by name: kvcli asks the name service for
 * "kvstore". Without a registrar (the suite's kvstore test hands the
 * endpoint to its client itself) the store serves unnamed. */
static void register_name(handle_t ep)
{
    char name[NAMES_NAME_MAX + 1] = "kvstore";
    const char *value;
    size_t len;
    if (cmdline_get(libsys_startup->args, "name", &value, &len))
        fmt_snprintf(name, sizeof(name), "%.*s", (int)len, value);
    if (names_registrar() == HANDLE_NONE)
        return;
    int64_t err = names_register(name, ep);
    if (err < 0)
        printf("kvstore: cannot register as '%s': %s\n", name, names_error_meaning(NAMES_REGISTER, err));
    else
        printf("kvstore: registered as '%s'\n", name);
}

int main(int argc, char **argv)
{
    static struct kvstore kv;
    struct server srv;
    (void)argc;
    (void)argv;
    handle_t ep = startup_handle(ABI_STARTUP_SERVICE);
    if (ep == HANDLE_NONE) {
        printf("kvstore: no endpoint in startup slot %d; nothing to serve\n", ABI_STARTUP_SERVICE);
        return 1;
    }
    int err = store_init(&kv.store);
    if (err < 0) {
        printf("kvstore: cannot set up the store: %s\n", sys_strerror(err));
        return 1;
    }
    server_init(&srv, "kvstore", ep, kv_ops, sizeof(kv_ops) / sizeof(kv_ops[0]), &kv);
    register_name(ep);
    int64_t status = server_run(&srv);
    if (status < 0)
        printf("kvstore: stopped serving: %s\n", sys_strerror(status));
    store_destroy(&kv.store);
    printf("kvstore: %lu requests (%lu refused), %lu puts, %lu gets; exiting %ld\n", srv.stats.requests,
           srv.stats.errors, kv.puts, kv.gets, status < 0 ? 1 : status);
    return status < 0 ? 1 : (int)status;
}
