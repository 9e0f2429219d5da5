/*
 * init: the programs init starts (init.h). Every program, started at boot
 * or by the console's INIT_RUN, gets the same startup block (docs/names.md,
 * "Who holds what"): memsrv's endpoint, the name service's endpoint, an
 * endpoint of its own to serve (its receive right moves to the program),
 * and a registrar of the name service allowing its module's name and the
 * names under it: the right that keeps any other program from taking that
 * name. Init keeps a process handle to each, for the console's INIT_PS and
 * INIT_KILL, and notices an end when it next looks (reap).
 *
 * The children and the registrars are shared by init's service threads
 * under one mutex; spawning happens outside it.
 */
#include <proto/init.h>
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/explain.h>
#include <libsys/loader.h>
#include <libsys/memsrv.h>
#include <libsys/names.h>
#include <libsys/stdio.h>
#include <libsys/sync.h>
#include <libsys/syscall.h>
#include "init.h"

handle_t names_service = HANDLE_NONE, names_root = HANDLE_NONE;

struct child {
    bool used;
    bool ending;   /* INIT_KILL is waiting for it: not reaped by others */
    handle_t proc; /* every right */
    uint64_t pid;
    unsigned flags; /* INIT_PS_* */
    char name[ABI_MODULE_NAME_MAX];
};

#define REGISTRARS_MAX 32u

static struct mutex lock;
static struct child children[INIT_CHILDREN_MAX];
static struct {
    char name[NAMES_NAME_MAX + 1];
    handle_t registrar;
} registrars[REGISTRARS_MAX];

/* ------------------------------------------------------------- modules */

int64_t programs_module(const char *name, struct abi_module_info *info)
{
    for (unsigned i = 0; sys_module_info(i, info) == 0; i++)
        if (strcmp(info->name, name) == 0)
            return 0;
    return -ENOENT;
}

/* A word of init's own module command line ("init boot=a,b console=c"). */
static bool init_module_word(const char *key, const char **value, size_t *len)
{
    static struct abi_module_info self;
    static bool read;
    if (!read)
        read = programs_module("init", &self) == 0;
    return read && cmdline_get(self.args, key, value, len);
}

bool programs_is_console(const char *name)
{
    const char *value;
    size_t len;
    return init_module_word("console", &value, &len) && strlen(name) == len && strncmp(name, value, len) == 0;
}

/* Modules only init starts, each once: the console's run may not. */
static bool runnable(const char *name)
{
    static const char *const init_only[] = { "init", "memsrv", "names", "t_suite" };
    for (unsigned i = 0; i < sizeof(init_only) / sizeof(init_only[0]); i++)
        if (strcmp(name, init_only[i]) == 0)
            return false;
    return !programs_is_console(name);
}

/* ---------------------------------------------------------- name service */

void programs_start_names(void)
{
    struct abi_module_info info;
    int64_t service = sys_ep_create(), root = sys_ep_create(), h = -ENOENT;
    if (service >= 0 && root >= 0 && programs_module("names", &info) == 0) {
        struct loader_spec spec;
        loader_spec_init(&spec, info.name, (const void *)info.vaddr, info.size, info.args);
        spec.grants[ABI_STARTUP_MEMSRV] = (struct loader_grant){ ms_endpoint(), RIGHT_SEND };
        /* Both receive rights move to the service; init keeps sending. */
        spec.grants[ABI_STARTUP_SERVICE] = (struct loader_grant){ (handle_t)service, RIGHT_SEND | RIGHT_RECV };
        spec.grants[ABI_STARTUP_REGISTRAR] = (struct loader_grant){ (handle_t)root, RIGHT_SEND | RIGHT_RECV };
        loader_default_limits(spec.limits);
        h = loader_spawn(&spec);
    }
    if (h < 0) {
        printf("init: no name service (%s): programs cannot find each other by name\n", sys_strerror(h));
        if (service >= 0)
            sys_handle_close((handle_t)service);
        if (root >= 0)
            sys_handle_close((handle_t)root);
        return;
    }
    names_service = (handle_t)service;
    names_root = (handle_t)root;
    struct abi_handle_info hi = { 0 };
    sys_handle_info((handle_t)h, &hi);
    mutex_lock(&lock);
    children[0] =
        (struct child){ .used = true, .proc = (handle_t)h, .pid = hi.id, .flags = INIT_PS_BOOT, .name = "names" };
    mutex_unlock(&lock);
    printf("init: started names (pid %#lx)\n", hi.id);
}

handle_t programs_registrar(const char *name, unsigned flags)
{
    if (names_root == HANDLE_NONE || strlen(name) > NAMES_NAME_MAX)
        return HANDLE_NONE;
    handle_t found = HANDLE_NONE;
    unsigned free_slot = REGISTRARS_MAX;
    mutex_lock(&lock);
    for (unsigned i = 0; i < REGISTRARS_MAX && found == HANDLE_NONE; i++) {
        if (registrars[i].registrar == HANDLE_NONE)
            free_slot = free_slot < i ? free_slot : i;
        else if (strcmp(registrars[i].name, name) == 0)
            found = registrars[i].registrar;
    }
    mutex_unlock(&lock);
    if (found != HANDLE_NONE || free_slot == REGISTRARS_MAX)
        return found;
    /* One registrar per module name: programs of one module share it, so
     * the registrars init asks for are as many as the modules. A module
     * whose name is no valid name gets none. */
    handle_t made;
    int64_t err = names_new_registrar(names_root, name, flags, &made);
    if (err < 0) {
        if (err != -EINVAL)
            printf("init: no registrar for '%s': %s\n", name, names_error_meaning(NAMES_REGISTRAR, err));
        return HANDLE_NONE;
    }
    mutex_lock(&lock);
    if (registrars[free_slot].registrar == HANDLE_NONE) {
        strlcpy(registrars[free_slot].name, name, sizeof(registrars[free_slot].name));
        registrars[free_slot].registrar = made;
    }
    mutex_unlock(&lock);
    return made;
}

/* ------------------------------------------------------------- children */

/* Notes the children that have ended (with the lock held). */
static void reap(void)
{
    for (unsigned i = 0; i < INIT_CHILDREN_MAX; i++) {
        struct child *c = &children[i];
        int64_t status;
        if (!c->used || c->ending || sys_proc_wait(c->proc, TIMEOUT_POLL, &status) != 0)
            continue;
        char how[64];
        printf("init: %s (pid %#lx) ended: %s\n", c->name, c->pid, exit_status_text(status, how, sizeof(how)));
        sys_handle_close(c->proc);
        c->used = false;
    }
}

int64_t programs_spawn(const struct abi_module_info *info, const char *args, enum start_kind kind, handle_t parent)
{
    mutex_lock(&lock);
    reap();
    unsigned slot = 0;
    while (slot < INIT_CHILDREN_MAX && children[slot].used)
        slot++;
    if (slot < INIT_CHILDREN_MAX)
        children[slot] = (struct child){ .used = true, .ending = true }; /* reserved */
    mutex_unlock(&lock);
    if (slot == INIT_CHILDREN_MAX)
        return -ENOSPC;

    int64_t own = sys_ep_create();
    int64_t h = own;
    if (own >= 0) {
        struct loader_spec spec;
        loader_spec_init(&spec, info->name, (const void *)info->vaddr, info->size, args);
        spec.grants[ABI_STARTUP_MEMSRV] = (struct loader_grant){ ms_endpoint(), RIGHT_SEND };
        spec.grants[ABI_STARTUP_PARENT] = (struct loader_grant){ parent, RIGHT_SEND };
        /* Its own endpoint's receive right moves to it; with GRANT it may
         * register it by name (the name service keeps a send copy). */
        spec.grants[ABI_STARTUP_SERVICE] =
            (struct loader_grant){ (handle_t)own, RIGHT_SEND | RIGHT_RECV | RIGHT_GRANT };
        spec.grants[ABI_STARTUP_NAMES] = (struct loader_grant){ names_service, RIGHT_SEND | RIGHT_GRANT };
        spec.grants[ABI_STARTUP_REGISTRAR] =
            (struct loader_grant){ programs_registrar(info->name, 0), RIGHT_SEND | RIGHT_GRANT };
        /* The console pins segments on its operator's word: it needs a
         * device to pin them for. Nobody else is given one. */
        if (programs_is_console(info->name))
            spec.grants[ABI_STARTUP_DEVICE] = (struct loader_grant){ loader_dma_device(), RIGHT_DMA };
        loader_default_limits(spec.limits);
        h = loader_spawn(&spec);
        sys_handle_close((handle_t)own); /* the program holds it now */
    }
    mutex_lock(&lock);
    if (h < 0) {
        children[slot].used = false;
    } else {
        struct abi_handle_info hi = { 0 };
        sys_handle_info((handle_t)h, &hi);
        children[slot] = (struct child){
            .used = true, .proc = (handle_t)h, .pid = hi.id, .flags = kind == START_BOOT ? INIT_PS_BOOT : INIT_PS_RUN
        };
        strlcpy(children[slot].name, info->name, sizeof(children[slot].name));
    }
    mutex_unlock(&lock);
    return h;
}

/* ------------------------------------------------ the console's requests */

/* The words, segment and (but for RUN) payload are checked by the server
 * loop from init.c's table before these run. */

int64_t programs_run(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    char line[IPC_PAYLOAD_MAX + 1];
    (void)srv;
    if (req->len == 0 || req->len > IPC_PAYLOAD_MAX)
        return -EINVAL;
    memcpy(line, req->payload, req->len);
    line[req->len] = 0;
    if (strlen(line) != req->len || line[0] == ' ')
        return -EINVAL;
    char module[ABI_MODULE_NAME_MAX];
    size_t n = 0;
    while (line[n] && line[n] != ' ' && n + 1 < sizeof(module)) {
        module[n] = line[n];
        n++;
    }
    module[n] = 0;
    if (line[n] && line[n] != ' ')
        return -ENOENT; /* longer than any module name */
    struct abi_module_info info;
    if (programs_module(module, &info) < 0)
        return -ENOENT;
    if (!runnable(module))
        return -EPERM;
    int64_t h = programs_spawn(&info, line, START_RUN, HANDLE_NONE);
    if (h < 0)
        return h;
    struct abi_handle_info hi = { 0 };
    sys_handle_info((handle_t)h, &hi);
    /* A copy: init keeps its own handle for INIT_PS and INIT_KILL. */
    reply->caps[0] = (struct ipc_cap){ .handle = (handle_t)h, .rights = RIGHT_CONTROL | RIGHT_WAIT };
    init_run_reply_put(reply, (struct init_run_reply){ .pid = hi.id });
    printf("init: started %s (pid %#lx) for the console\n", module, hi.id);
    return 0;
}

int64_t programs_ps(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t cursor = init_cursor_req_get(req).cursor;
    int64_t err = -ENOENT;
    (void)srv;
    mutex_lock(&lock);
    reap();
    for (uint64_t i = cursor; i < INIT_CHILDREN_MAX && err < 0; i++) {
        const struct child *c = &children[i];
        if (!c->used || c->ending)
            continue;
        uint64_t next = 0;
        for (uint64_t k = i + 1; k < INIT_CHILDREN_MAX && next == 0; k++)
            if (children[k].used && !children[k].ending)
                next = k;
        init_ps_reply_put(reply, (struct init_ps_reply){ .pid = c->pid, .flags = c->flags, .next = next });
        err = (int)server_reply_payload(reply, c->name, strlen(c->name) + 1);
    }
    mutex_unlock(&lock);
    return err;
}

int64_t programs_kill(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t pid = init_kill_req_get(req).pid, asker = req->badge;
    (void)srv;
    struct child *victim = NULL;
    int64_t err = -ENOENT;
    mutex_lock(&lock);
    reap();
    for (unsigned i = 0; i < INIT_CHILDREN_MAX && victim == NULL; i++) {
        struct child *c = &children[i];
        if (c->used && !c->ending && c->pid == pid)
            victim = c;
    }
    if (victim != NULL && (pid == asker || strcmp(victim->name, "names") == 0))
        err = -EPERM;
    else if (victim != NULL)
        victim->ending = true, err = 0;
    mutex_unlock(&lock);
    if (err < 0)
        return err;
    int64_t status = 0;
    sys_proc_kill(victim->proc);
    sys_proc_wait(victim->proc, TIMEOUT_FOREVER, &status);
    char how[64];
    printf("init: %s (pid %#lx) ended: %s\n", victim->name, victim->pid, exit_status_text(status, how, sizeof(how)));
    mutex_lock(&lock);
    sys_handle_close(victim->proc);
    victim->used = false;
    mutex_unlock(&lock);
    init_kill_reply_put(reply, (struct init_kill_reply){ .status = (uint64_t)status });
    return 0;
}

int64_t programs_list(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t cursor = init_cursor_req_get(req).cursor;
    (void)srv;
    if (cursor > UINT32_MAX)
        return -EINVAL;
    struct abi_module_info info;
    int64_t err = -ENOENT;
    for (unsigned i = (unsigned)cursor; sys_module_info(i, &info) == 0; i++) {
        if (!runnable(info.name))
            continue;
        if (err == 0) { /* the one after the answer: its cursor */
            init_programs_reply_put(reply, (struct init_programs_reply){ .next = i });
            return 0;
        }
        size_t len = strnlen(info.name, sizeof(info.name) - 1);
        memcpy(reply->payload, info.name, len);
        reply->payload[len] = 0;
        reply->len = (uint32_t)len + 1;
        init_programs_reply_put(reply, (struct init_programs_reply){ .next = 0 });
        err = 0;
    }
    return err;
}
