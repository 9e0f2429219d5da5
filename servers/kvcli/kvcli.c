/*
 * kvcli: a command-line client of the key-value store (servers/kvstore/,
 * protocol proto/kvstore.h), started from the console: `run kvcli put a 1`,
 * `run kvcli get a`. It finds the store by name through the name service
 * (libsys/names.h), waiting a few seconds for the name if it is not
 * registered yet, and makes one request.
 *
 *   kvcli [-s NAME] [-w SECONDS] put KEY VALUE | get KEY | delete KEY | list
 *
 * get prints the value alone on a line (bytes outside printable ASCII as
 * \xHH). Exit status: 0 done, 1 the store refused (no such key, ...), 2
 * bad usage, 3 no store by that name.
 */
#include <proto/kvstore.h>
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/explain.h>
#include <libsys/memsrv.h>
#include <libsys/names.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

#define WAIT_DEFAULT_S 5

static int usage(void)
{
    printf("usage: kvcli [-s NAME] [-w SECONDS] put KEY VALUE | get KEY | delete KEY | list\n"
           "  finds the key-value store registered as NAME (default kvstore), waiting up to SECONDS (default %d)\n",
           WAIT_DEFAULT_S);
    return 2;
}

static int refused(const char *what, const char *key, uint64_t label, int64_t err)
{
    printf("kvcli: %s %s: %s: %s\n", what, key, err_name(err), kv_error_meaning(label, err));
    return 1;
}

/* A request whose payload is the key; -EINVAL if it cannot be one. */
static int64_t key_request(struct ipc_msg *m, uint64_t label, const char *key)
{
    memset(m, 0, sizeof(*m));
    m->label = label;
    m->seg = HANDLE_NONE;
    size_t len = strlen(key);
    if (len == 0 || len > KV_KEY_MAX)
        return -EINVAL;
    memcpy(m->payload, key, len);
    m->len = (uint32_t)len;
    return 0;
}

static int64_t call(handle_t store, struct ipc_msg *m)
{
    int64_t err = sys_ipc_call(store, m, TIMEOUT_FOREVER);
    return err < 0 ? err : (int64_t)m->label;
}

static int put(handle_t store, const char *key, const char *value)
{
    struct ipc_msg m;
    size_t len = strlen(value);
    struct ms_segment seg;
    int64_t err = key_request(&m, KV_PUT, key);
    if (err == 0 && len == 0)
        err = -EINVAL;
    if (err < 0)
        return refused("put", key, KV_PUT, err);
    if ((err = ms_alloc(len, 0, 0, 0, &seg)) < 0) {
        printf("kvcli: put %s: %s: %s\n", key, err_name(err), ms_error_meaning(MS_ALLOC, err));
        return 1;
    }
    memcpy(seg.addr, value, len);
    m.seg = seg.handle;
    kv_put_req_put(&m, (struct kv_put_req){ .len = len });
    err = call(store, &m);
    if (err < 0) {
        /* A refused request gives the segment back under a new handle; a
         * call the kernel refused leaves the request, and so the handle,
         * as it was. */
        if (m.seg != HANDLE_NONE)
            ms_free(m.seg);
        return refused("put", key, KV_PUT, err);
    }
    printf("kvcli: %s stored (%zu byte%s)%s\n", key, len, len == 1 ? "" : "s",
           kv_put_reply_get(&m).replaced ? ", replacing the old value" : "");
    return 0;
}

static void print_value(const uint8_t *v, uint64_t len)
{
    char line[256];
    size_t at = 0;
    for (uint64_t i = 0; i < len; i++) {
        if (at + 5 > sizeof(line)) {
            sys_console_write(line, at);
            at = 0;
        }
        if (v[i] >= 0x20 && v[i] < 0x7f && v[i] != '\\')
            line[at++] = (char)v[i];
        else
            at += (size_t)fmt_snprintf(line + at, sizeof(line) - at, "\\x%02x", v[i]);
    }
    line[at++] = '\n';
    sys_console_write(line, at);
}

/* A request that carries only the key: 0 with the reply in *m, or the
 * exit status after saying why it was refused. */
static int key_call(handle_t store, const char *what, uint64_t label, const char *key, struct ipc_msg *m)
{
    int64_t err = key_request(m, label, key);
    if (err == 0)
        err = call(store, m);
    return err < 0 ? refused(what, key, label, err) : 0;
}

static int get(handle_t store, const char *key)
{
    struct ipc_msg m;
    int refusal = key_call(store, "get", KV_GET, key, &m);
    if (refusal)
        return refusal;
    uint64_t len = kv_get_reply_get(&m).len;
    if (m.seg == HANDLE_NONE || len > m.seg_size) {
        printf("kvcli: get %s: the store answered without the value\n", key);
        return 1;
    }
    print_value((const uint8_t *)m.seg_addr, len);
    ms_free(m.seg);
    return 0;
}

static int delete (handle_t store, const char *key)
{
    struct ipc_msg m;
    int refusal = key_call(store, "delete", KV_DELETE, key, &m);
    if (refusal)
        return refusal;
    printf("kvcli: %s deleted\n", key);
    return 0;
}

static int list(handle_t store)
{
    char after[KV_KEY_MAX + 1] = "";
    unsigned total = 0;
    for (;;) {
        struct ipc_msg m = { .label = KV_LIST, .seg = HANDLE_NONE, .len = (uint32_t)strlen(after) };
        memcpy(m.payload, after, m.len);
        int64_t err = call(store, &m);
        if (err < 0)
            return refused("list", "", KV_LIST, err);
        struct kv_list_page page;
        memcpy(&page, m.payload, sizeof(page));
        size_t at = 0;
        for (unsigned i = 0; i < page.count && at < sizeof(page.data); i++) {
            size_t len = page.data[at];
            if (len > KV_KEY_MAX || at + 1 + len > sizeof(page.data))
                break;
            memcpy(after, &page.data[at + 1], len);
            after[len] = 0;
            print_value((const uint8_t *)after, len);
            at += 1 + len;
            total++;
        }
        if (!page.more || page.count == 0)
            break;
    }
    printf("kvcli: %u key%s\n", total, total == 1 ? "" : "s");
    return 0;
}

/* The store's endpoint by name: at once if registered, else after
 * waiting for it. */
static int64_t find_store(const char *name, uint64_t wait_s, handle_t *store)
{
    int64_t err = names_lookup(name, store, NULL);
    if (err != -ENOENT || wait_s == 0)
        return err;
    printf("kvcli: waiting up to %lu s for '%s' to be registered\n", wait_s, name);
    return names_wait(name, wait_s * NS_PER_SEC, store);
}

int main(int argc, char **argv)
{
    const char *server = "kvstore";
    uint64_t wait_s = WAIT_DEFAULT_S;
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "-s") == 0)
            server = argv[i + 1];
        else if (strcmp(argv[i], "-w") != 0 || parse_u64(argv[i + 1], strlen(argv[i + 1]), &wait_s) != 0 ||
                 wait_s > 24 * 3600)
            return usage();
    }
    int left = argc - i;
    const char *verb = left > 0 ? argv[i] : "";
    bool ok = (strcmp(verb, "put") == 0 && left == 3) || (strcmp(verb, "get") == 0 && left == 2) ||
              (strcmp(verb, "delete") == 0 && left == 2) || (strcmp(verb, "list") == 0 && left == 1);
    if (!ok)
        return usage();
    handle_t store;
    int64_t err = find_store(server, wait_s, &store);
    if (err < 0) {
        printf("kvcli: no store '%s': %s: %s\n", server, err_name(err),
               names_error_meaning(err == -ETIMEDOUT ? NAMES_WAIT : NAMES_LOOKUP, err));
        return 3;
    }
    int status = verb[0] == 'p'   ? put(store, argv[i + 1], argv[i + 2])
                 : verb[0] == 'g' ? get(store, argv[i + 1])
                 : verb[0] == 'd' ? delete (store, argv[i + 1])
                                  : list(store);
    sys_handle_close(store);
    return status;
}
