/*
 * In-guest suite: what stays init's and the suite asks init for, through
 * the delegate endpoint init gives it in startup slot PARENT (proto/init.h):
 * the boot modules' images (to start test programs from), memsrv's
 * init-only request (revoke), powering off, and the memory server's
 * supervisor (restart.c).
 */
#include <proto/init.h>
#include <common/string.h>
#include <libsys/start.h>
#include <libsys/syscall.h>
#include "suite.h"

#define MODULES_MAX 32

struct module {
    char name[ABI_MODULE_NAME_MAX];
    const void *image;
    size_t size;
};

static struct module modules[MODULES_MAX];
static unsigned nmodules;

static handle_t delegate_endpoint(void) { return startup_handle(ABI_STARTUP_PARENT); }

int64_t delegate_call(struct ipc_msg *m)
{
    m->seg = HANDLE_NONE;
    int64_t err = sys_ipc_call(delegate_endpoint(), m, TIMEOUT_FOREVER);
    return err < 0 ? err : (int64_t)m->label;
}

unsigned delegate_take_modules(void)
{
    for (uint64_t index = 0; nmodules < MODULES_MAX; index++) {
        struct ipc_msg m = { .label = INIT_MODULE, .w = { index } };
        int64_t err = delegate_call(&m);
        if (err == -ENOENT)
            break;
        if (err < 0 || m.len == 0 || m.len > sizeof(modules[0].name))
            continue; /* init's and memsrv's images, which init keeps */
        struct module *mod = &modules[nmodules++];
        memcpy(mod->name, m.payload, m.len);
        mod->name[m.len - 1] = 0;
        mod->image = (const void *)(uintptr_t)m.w[0];
        mod->size = m.w[1];
    }
    return nmodules;
}

int64_t delegate_module(const char *name, const void **image, size_t *size)
{
    for (unsigned i = 0; i < nmodules; i++) {
        if (strcmp(modules[i].name, name) == 0) {
            *image = modules[i].image;
            *size = modules[i].size;
            return 0;
        }
    }
    return -ENOENT;
}

/* The libsys client call, sent to init instead of memsrv. */
static int64_t as_init(int64_t (*request)(uint64_t, uint64_t), uint64_t a, uint64_t b)
{
    ms_set_endpoint(delegate_endpoint());
    int64_t r = request(a, b);
    ms_set_endpoint(HANDLE_NONE);
    return r;
}

static int64_t revoke(uint64_t sid, uint64_t unused)
{
    (void)unused;
    return ms_revoke(sid);
}

int64_t delegate_ms_revoke(uint64_t sid) { return as_init(revoke, sid, 0); }

int64_t delegate_poweroff(unsigned status)
{
    struct ipc_msg m = { .label = INIT_POWEROFF, .w = { status } };
    return delegate_call(&m);
}
