/*
 * Host tests of memsrv: the fake kernel (fake_kernel.h). Handles in the
 * server's table are 0x1000 + the segment's slot; a segment the server
 * does not hold has no valid handle there.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_kernel.h"

#define HANDLE_BASE        0x1000u
#define CLIENT_HANDLE_BASE 0x100000u /* a client's handle: this plus the segment's slot */

static struct fake_kernel *fk_of(void *ctx) { return ctx; }

static bool in_ram(struct fake_kernel *fk, uint64_t phys, uint64_t size)
{
    unsigned i;

    for (i = 0; i < fk->nboot; i++) {
        const struct abi_mem_range *r = &fk->boot[i];
        if (r->kind == ABI_MEM_REGION && phys >= r->base && phys + size <= r->base + r->size)
            return true;
    }
    return false;
}

/* Marks the granules of s as its own (or nobody's). */
static void map_mark(struct fake_kernel *fk, const struct fk_seg *s, bool own)
{
    uint64_t g;
    uint32_t value = own ? (uint32_t)(s - fk->segs) + 1 : 0;

    for (g = s->phys >> 12; g < (s->phys + s->size) >> 12 && g < fk->map_granules; g++)
        fk->owner_map[g] = value;
}

static bool overlaps_live(struct fake_kernel *fk, uint64_t phys, uint64_t size, uint64_t except_sid)
{
    uint64_t g;
    unsigned i;

    for (g = phys >> 12; g < (phys + size) >> 12 && g < fk->map_granules; g++) {
        uint32_t owner = fk->owner_map[g];
        if (owner != 0 && fk->segs[owner - 1].sid != except_sid)
            return true;
    }
    for (i = 0; i < fk->nboot; i++) {
        const struct abi_mem_range *r = &fk->boot[i];
        if (r->kind == ABI_MEM_KERNEL && phys < r->base + r->size && r->base < phys + size)
            return true;
    }
    return false;
}

struct fk_seg *fk_seg(struct fake_kernel *fk, uint64_t sid)
{
    uint64_t slot = sid >> 32;

    if (slot >= fk->seg_cap || !fk->segs[slot].live || fk->segs[slot].sid != sid)
        return NULL;
    return &fk->segs[slot];
}

static struct fk_seg *seg_of_handle(struct fake_kernel *fk, handle_t h)
{
    if (h < HANDLE_BASE || h >= HANDLE_BASE + (uint64_t)fk->seg_cap)
        return NULL;
    struct fk_seg *s = &fk->segs[h - HANDLE_BASE];
    return s->live && s->in_server ? s : NULL;
}

static handle_t handle_of(struct fake_kernel *fk, const struct fk_seg *s)
{
    return HANDLE_BASE + (handle_t)(s - fk->segs);
}

static struct fk_seg *new_seg(struct fake_kernel *fk, uint64_t phys, uint64_t size, uint64_t owner)
{
    uint32_t slot;
    struct fk_seg *s;

    if (fk->nfree_slots == 0) {
        fail_msg("fake kernel: out of segment slots");
        return NULL;
    }
    slot = fk->free_slots[--fk->nfree_slots];
    s = &fk->segs[slot];
    *s = (struct fk_seg){
        .live = true, .sid = ((uint64_t)slot << 32) | fk->next_sid++, .phys = phys, .size = size, .owner = owner
    };
    map_mark(fk, s, true);
    return s;
}

static void drop_seg(struct fake_kernel *fk, struct fk_seg *s)
{
    map_mark(fk, s, false);
    free(s->mem);
    s->mem = NULL;
    s->live = false;
    fk->free_slots[fk->nfree_slots++] = (uint32_t)(s - fk->segs);
}

/* ---- the operations ---------------------------------------------------- */

static int64_t k_bootinfo(void *ctx, unsigned index, struct abi_mem_range *out)
{
    struct fake_kernel *fk = fk_of(ctx);

    if (index >= fk->nboot)
        return -ENOENT;
    *out = fk->boot[index];
    return 0;
}

static struct fk_limit *limit_of(struct fake_kernel *fk, uint64_t pid)
{
    unsigned i;

    for (i = 0; i < FK_LIMITS; i++)
        if (pid != 0 && fk->limits[i].pid == pid)
            return &fk->limits[i];
    return NULL;
}

void fk_set_limit(struct fake_kernel *fk, uint64_t pid, uint64_t bytes)
{
    struct fk_limit *l = limit_of(fk, pid);
    unsigned i;

    for (i = 0; l == NULL && i < FK_LIMITS; i++)
        if (fk->limits[i].pid == 0)
            l = &fk->limits[i];
    assert_non_null(l);
    if (l->pid != pid)
        *l = (struct fk_limit){ .pid = pid };
    l->limit = bytes;
}

static int64_t k_seg_create(void *ctx, uint64_t phys, uint64_t size, uint64_t payer, uint64_t *sid)
{
    struct fake_kernel *fk = fk_of(ctx);
    struct fk_limit *l = limit_of(fk, payer);
    struct fk_seg *s;

    if (fk->fail_create != 0)
        return fk->fail_create;
    if (size == 0 || phys % 4096 || size % 4096 || !in_ram(fk, phys, size))
        return -EINVAL;
    if (overlaps_live(fk, phys, size, 0))
        return -EEXIST;
    if (l != NULL && (l->used > l->limit || size > l->limit - l->used))
        return -EDQUOT;
    if (l != NULL)
        l->used += size;
    s = new_seg(fk, phys, size, FK_MEMSRV_PID);
    s->in_server = true;
    s->payer = payer;
    fk->creates++;
    *sid = s->sid;
    if (fk->on_create != NULL) {
        void (*hook)(struct fake_kernel *, uint64_t, void *) = fk->on_create;
        fk->on_create = NULL; /* what it does may create too */
        hook(fk, s->sid, fk->on_create_arg);
        fk->on_create = hook;
    }
    return (int64_t)handle_of(fk, s);
}

static int64_t describe(const struct fk_seg *s, struct abi_seg_info *out)
{
    if (s == NULL)
        return -ENOENT;
    *out = (struct abi_seg_info){ .sid = s->sid,
                                  .size = s->size,
                                  .phys = s->phys,
                                  .owner_pid = s->owner,
                                  .pins = s->pins,
                                  .flags = s->flags | (s->dma ? SEG_INFO_DMA : 0) };
    return 0;
}

static int64_t k_seg_info(void *ctx, handle_t h, struct abi_seg_info *out)
{
    struct fk_seg *s = seg_of_handle(fk_of(ctx), h);

    return s == NULL ? -EBADH : describe(s, out);
}

static int64_t k_seg_map_self(void *ctx, handle_t h)
{
    struct fk_seg *s = seg_of_handle(fk_of(ctx), h);

    if (s == NULL)
        return -EBADH;
    s->mem = aligned_alloc(4096, s->size); /* mapped at a page, as the kernel would */
    assert_non_null(s->mem);
    memset(s->mem, 0, s->size);
    s->in_server = false; /* mapped: memsrv keeps it for good */
    return (int64_t)(uintptr_t)s->mem;
}

/* An idle segment destroyed, or quarantined while a device may reach it. */
static int64_t retire(struct fake_kernel *fk, struct fk_seg *s)
{
    if (s->dma) {
        s->in_server = false;
        s->owner = 0;
        s->flags |= SEG_INFO_QUARANTINED;
        return SEG_DESTROY_QUARANTINED;
    }
    if (limit_of(fk, s->payer) != NULL)
        limit_of(fk, s->payer)->used -= s->size;
    drop_seg(fk, s);
    fk->destroys++;
    return 0;
}

static int64_t k_seg_destroy(void *ctx, uint64_t sid)
{
    struct fake_kernel *fk = fk_of(ctx);
    struct fk_seg *s = fk_seg(fk, sid);

    if (s == NULL)
        return -ENOENT;
    /* As the real kernel: the server may destroy what it holds, mapped or
     * not; a segment another process holds is that process's. */
    if (!s->in_server && s->owner != 0 && s->owner != FK_MEMSRV_PID)
        return -EPERM;
    if (s->flags & SEG_INFO_QUARANTINED)
        return -EBUSY; /* until the kernel releases it */
    if (s->pins != 0)
        return -EBUSY;
    return retire(fk, s);
}

/* As the real kernel: only a segment the server holds, idle; the new payer
 * is charged first. */
static int64_t k_seg_charge(void *ctx, uint64_t sid, uint64_t pid)
{
    struct fake_kernel *fk = fk_of(ctx);
    struct fk_seg *s = fk_seg(fk, sid);
    struct fk_limit *to = limit_of(fk, pid), *from;

    if (s == NULL || !s->in_server)
        return -ENOENT;
    if (s->pins != 0 || s->dma || s->in_flight || (s->flags & SEG_INFO_QUARANTINED))
        return -EBUSY;
    if (fk->fail_charge != 0)
        return fk->fail_charge;
    if (pid == s->payer)
        return 0;
    if (to != NULL && (to->used > to->limit || s->size > to->limit - to->used))
        return -EDQUOT;
    from = limit_of(fk, s->payer);
    if (from != NULL)
        from->used -= s->size;
    if (to != NULL)
        to->used += s->size;
    s->payer = pid;
    fk->charges++;
    return 0;
}

handle_t fk_client_handle(struct fake_kernel *fk, uint64_t sid)
{
    struct fk_seg *s = fk_seg(fk, sid);

    assert_non_null(s);
    return CLIENT_HANDLE_BASE + (handle_t)(s - fk->segs);
}

/* The segment pid holds under handle h, or NULL. */
static struct fk_seg *client_seg(struct fake_kernel *fk, uint64_t pid, handle_t h)
{
    struct fk_seg *s;

    if (h < CLIENT_HANDLE_BASE || h >= CLIENT_HANDLE_BASE + (uint64_t)fk->seg_cap)
        return NULL;
    s = &fk->segs[h - CLIENT_HANDLE_BASE];
    return s->live && !s->in_server && s->owner == pid ? s : NULL;
}

/* The kernel's batch rule: no segment named twice. */
static bool named_before(struct fk_seg *const *segs, unsigned i)
{
    for (unsigned j = 0; j < i; j++)
        if (segs[j] == segs[i])
            return true;
    return false;
}

static int64_t k_seg_give(void *ctx, uint64_t pid, struct abi_seg_give *v, unsigned n)
{
    struct fake_kernel *fk = fk_of(ctx);
    struct fk_seg *segs[SEG_BATCH_MAX];
    unsigned i;

    if (n == 0 || n > SEG_BATCH_MAX)
        return -EINVAL;
    if (fk->fail_give != 0)
        return fk->fail_give;
    for (i = 0; i < n; i++) {
        segs[i] = fk_seg(fk, v[i].sid);
        if (segs[i] == NULL || !segs[i]->in_server)
            return -ENOENT;
        if (named_before(segs, i))
            return -EINVAL;
    }
    for (i = 0; i < n; i++) {
        segs[i]->in_server = false;
        segs[i]->owner = pid;
        v[i].handle = CLIENT_HANDLE_BASE + (handle_t)(segs[i] - fk->segs);
        v[i].vaddr = 0x40000000000ull + segs[i]->phys; /* somewhere in the client */
    }
    fk->gives++;
    return 0;
}

static int64_t k_seg_free(void *ctx, uint64_t pid, struct abi_seg_free *v, unsigned n)
{
    struct fake_kernel *fk = fk_of(ctx);
    struct fk_seg *segs[SEG_BATCH_MAX];
    unsigned i;

    if (n == 0 || n > SEG_BATCH_MAX)
        return -EINVAL;
    for (i = 0; i < n; i++) {
        segs[i] = client_seg(fk, pid, v[i].handle);
        if (segs[i] == NULL)
            return -EBADH;
        if (segs[i]->pins != 0 || segs[i]->in_flight)
            return -EBUSY;
        if (named_before(segs, i))
            return -EINVAL;
    }
    for (i = 0; i < n; i++) {
        v[i].sid = segs[i]->sid;
        v[i].result = (uint64_t)retire(fk, segs[i]);
    }
    return 0;
}

static int64_t k_seg_revoke(void *ctx, uint64_t sid)
{
    struct fake_kernel *fk = fk_of(ctx);
    struct fk_seg *s = fk_seg(fk, sid);

    if (s == NULL || (s->owner == 0 && !s->in_server))
        return -ENOENT;
    if (s->pins != 0)
        return -EBUSY;
    s->owner = 0;
    s->in_server = true;
    return (int64_t)(HANDLE_BASE + (s - fk->segs));
}

static int64_t k_seg_migrate(void *ctx, uint64_t sid, uint64_t new_phys)
{
    struct fake_kernel *fk = fk_of(ctx);
    struct fk_seg *s = fk_seg(fk, sid);

    if (s == NULL)
        return -ENOENT;
    if (fk->on_migrate != NULL) {
        void (*hook)(struct fake_kernel *, uint64_t, void *) = fk->on_migrate;
        fk->on_migrate = NULL; /* what it does may migrate too */
        hook(fk, sid, fk->on_migrate_arg);
        fk->on_migrate = hook;
        s = fk_seg(fk, sid);
        if (s == NULL)
            return -ENOENT;
    }
    if (fk->fail_migrate != 0)
        return fk->fail_migrate;
    if (s->pins != 0 || s->dma) {
        fk->busy_refusals++;
        return -EBUSY;
    }
    if (new_phys % 4096 || !in_ram(fk, new_phys, s->size) || overlaps_live(fk, new_phys, s->size, sid))
        return -EINVAL;
    map_mark(fk, s, false);
    s->phys = new_phys;
    map_mark(fk, s, true);
    fk->migrations++;
    return 0;
}

static int64_t k_seg_query(void *ctx, uint64_t sid, struct abi_seg_info *out)
{
    return describe(fk_seg(fk_of(ctx), sid), out);
}

static int64_t k_reclaimed(void *ctx, struct abi_reclaim *out, unsigned max)
{
    struct fake_kernel *fk = fk_of(ctx);
    unsigned n = fk->nreclaim < max ? fk->nreclaim : max;

    memcpy(out, fk->reclaim, n * sizeof(*out));
    memmove(fk->reclaim, fk->reclaim + n, (fk->nreclaim - n) * sizeof(*out));
    fk->nreclaim -= n;
    return n;
}

/* ---- restarts: SYS_MS_SEGMENTS, memsrv's end, a successor ------------- */

static bool boot_listed(const struct fake_kernel *fk, uint64_t sid)
{
    unsigned i;

    for (i = 0; i < fk->nboot; i++)
        if (fk->boot[i].kind == ABI_MEM_SEGMENT && fk->boot[i].sid == sid)
            return true;
    return false;
}

static bool reclaim_queued(const struct fake_kernel *fk, uint64_t sid)
{
    unsigned i;

    for (i = 0; i < fk->nreclaim; i++)
        if (fk->reclaim[i].sid == sid)
            return true;
    return false;
}

/* A segment as the real kernel lists it: memsrv holds what it was handed
 * or made; nobody holds a reclaimed one; an account pays for what memsrv
 * made (its own, payer 0, is memsrv's), nobody for the boot segments. */
static struct abi_seg_record record_of(const struct fake_kernel *fk, const struct fk_seg *s)
{
    bool reclaimed = !s->in_server && s->owner == 0;
    struct abi_seg_record r = {
        .sid = s->sid,
        .phys = s->phys,
        .size = s->size,
        .owner_pid = s->in_server ? FK_MEMSRV_PID : s->owner,
        .payer_pid = s->payer != 0             ? s->payer
                     : boot_listed(fk, s->sid) ? 0
                                               : FK_MEMSRV_PID,
        .flags = s->flags | (s->dma ? SEG_INFO_DMA : 0),
        .pins = s->pins,
    };

    if (reclaimed)
        r.flags |= SEG_RECORD_RECLAIMED | (reclaim_queued(fk, s->sid) ? 0 : SEG_RECORD_REPORTED);
    return r;
}

/* Walks the granule map from `from`: each segment is met at its first granule. */
static int64_t k_segments(void *ctx, uint64_t from, struct abi_seg_record *out, unsigned max)
{
    struct fake_kernel *fk = fk_of(ctx);
    uint64_t g = (from + 4095) >> 12;
    unsigned n = 0;

    fk->segment_calls++;
    if (max > 32)
        max = 32;
    while (g < fk->map_granules && n < max) {
        uint32_t owner = fk->owner_map[g];
        const struct fk_seg *s;
        if (owner == 0) {
            g++;
            continue;
        }
        s = &fk->segs[owner - 1];
        if (s->phys >= from)
            out[n++] = record_of(fk, s);
        g = (s->phys + s->size) >> 12;
    }
    return n;
}

static void dma_queue_update(struct fake_kernel *fk, struct fk_seg *s)
{
    unsigned i;

    for (i = 0; i < fk->ndma && fk->dma_queue[i] != s->sid; i++)
        ;
    if (s->dma != s->dma_told && i == fk->ndma) {
        assert_true(fk->ndma < FK_DMA_CHANGES);
        fk->dma_queue[fk->ndma++] = s->sid;
    } else if (s->dma == s->dma_told && i < fk->ndma) {
        memmove(&fk->dma_queue[i], &fk->dma_queue[i + 1], (fk->ndma - i - 1) * sizeof(fk->dma_queue[0]));
        fk->ndma--;
    }
}

static int64_t k_dma_changes(void *ctx, struct abi_dma_change *out, unsigned max)
{
    struct fake_kernel *fk = fk_of(ctx);
    unsigned n = 0;

    while (n < max && fk->ndma > 0) {
        struct fk_seg *s = fk_seg(fk, fk->dma_queue[0]);
        memmove(&fk->dma_queue[0], &fk->dma_queue[1], (fk->ndma - 1) * sizeof(fk->dma_queue[0]));
        fk->ndma--;
        if (s == NULL)
            continue;
        s->dma_told = s->dma;
        out[n++] = (struct abi_dma_change){ .sid = s->sid, .busy = s->dma };
    }
    return n;
}

void fk_crash(struct fake_kernel *fk)
{
    uint32_t i;

    for (i = 0; i < fk->seg_cap; i++) {
        struct fk_seg *s = &fk->segs[i];
        if (!s->live || !(s->in_server || s->owner == FK_MEMSRV_PID))
            continue;
        /* Its image and stack wait for a successor. */
        if (boot_listed(fk, s->sid) && !s->in_server)
            continue;
        s->in_server = false;
        s->owner = 0;
        s->pins = 0;
        if (s->dma)
            s->flags |= SEG_INFO_QUARANTINED;
        assert_true(fk->nreclaim < FK_RECLAIM);
        fk->reclaim[fk->nreclaim++] = (struct abi_reclaim){
            .sid = s->sid, .phys = s->phys, .size = s->size, .pid = FK_MEMSRV_PID, .flags = s->flags
        };
    }
    /* Its books die with it; the segments above hold what they pointed into. */
    memset(&fk->ms, 0, sizeof(fk->ms));
}

int fk_restart(struct fake_kernel *fk, unsigned number)
{
    char args[96];

    snprintf(args, sizeof(args), "init.pid=%#llx memsrv.restart=%u", (unsigned long long)FK_INIT_PID, number);
    fk->segment_calls = 0;
    return memsrv_start(&fk->ms, &fk->ops, args, FK_MEMSRV_PID);
}

static uint64_t k_clock_ns(void *ctx)
{
    struct fake_kernel *fk = fk_of(ctx);

    fk->clock_reads++;
    fk->now += fk->clock_step;
    return fk->now;
}

static void k_yield(void *ctx)
{
    struct fake_kernel *fk = fk_of(ctx);

    fk->yields++;
    if (fk->on_yield != NULL)
        fk->on_yield(fk, fk->on_yield_arg);
}

static void k_console(void *ctx, const char *text, size_t len)
{
    struct fake_kernel *fk = fk_of(ctx);

    if (getenv("MEMSRV_TEST_VERBOSE"))
        fwrite(text, 1, len, stdout);
    if (fk->console_len + len >= sizeof(fk->console))
        fk->console_len = 0; /* keep the recent part */
    memcpy(fk->console + fk->console_len, text, len);
    fk->console_len += len;
    fk->console[fk->console_len] = 0;
}

/* ---- machine and clients ------------------------------------------------- */

static void add_boot(struct fake_kernel *fk, uint32_t kind, uint64_t base, uint64_t size, uint64_t sid)
{
    fk->boot[fk->nboot++] = (struct abi_mem_range){ .base = base, .size = size, .sid = sid, .kind = kind };
}

void fk_fini(struct fake_kernel *fk)
{
    uint32_t i;

    for (i = 0; i < fk->seg_cap; i++)
        free(fk->segs[i].mem);
    free(fk->segs);
    free(fk->free_slots);
    free(fk->owner_map);
    fk->segs = NULL;
    fk->free_slots = NULL;
    fk->owner_map = NULL;
    fk->seg_cap = 0;
}

void fk_init(struct fake_kernel *fk, uint64_t ram_mib, uint64_t high_mib)
{
    fk_init_sized(fk, ram_mib, high_mib, FK_SEGS);
}

void fk_init_sized(struct fake_kernel *fk, uint64_t ram_mib, uint64_t high_mib, uint32_t seg_cap)
{
    struct fk_seg *s;
    uint32_t i;

    fk_fini(fk);
    memset(fk, 0, sizeof(*fk));
    fk->seg_cap = seg_cap;
    fk->segs = calloc(seg_cap, sizeof(*fk->segs));
    fk->free_slots = malloc(seg_cap * sizeof(*fk->free_slots));
    fk->map_granules = ((high_mib != 0 ? 0x100000000ull + (high_mib << 20) : 0x100000 + (ram_mib << 20)) >> 12);
    fk->owner_map = calloc(fk->map_granules, sizeof(*fk->owner_map));
    assert_non_null(fk->segs);
    assert_non_null(fk->free_slots);
    assert_non_null(fk->owner_map);
    for (i = seg_cap; i-- > 0;)
        fk->free_slots[fk->nfree_slots++] = i;
    fk->ops = (struct ms_kernel_ops){ .ctx = fk, MS_KERNEL_OPS(MS_KERNEL_OP_K) };
    fk->next_sid = 100;
    fk->now = 1000000;
    add_boot(fk, ABI_MEM_REGION, 0x100000, ram_mib << 20, 0);
    if (high_mib != 0)
        add_boot(fk, ABI_MEM_REGION, 0x100000000ull, high_mib << 20, 0);
    /* The kernel image and its frame pool; an unaligned end on purpose. */
    add_boot(fk, ABI_MEM_KERNEL, 0x100000, 0x2ff800, 0);
    add_boot(fk, ABI_MEM_KERNEL, 0x400000, 0x100000, 0);
    s = new_seg(fk, 0x600000, 0x10000, FK_MEMSRV_PID);
    add_boot(fk, ABI_MEM_SEGMENT, s->phys, s->size, s->sid);
    s = new_seg(fk, 0x700000, 0x20000, FK_INIT_PID);
    add_boot(fk, ABI_MEM_SEGMENT, s->phys, s->size, s->sid);
}

int fk_start(struct fake_kernel *fk, const char *args) { return memsrv_start(&fk->ms, &fk->ops, args, FK_MEMSRV_PID); }

int64_t fk_request(struct fake_kernel *fk, struct ipc_msg *msg)
{
    if (msg->seg != HANDLE_NONE && msg->label != IPC_LABEL_NOTIFY) {
        /* memsrv receives unmapped: the kernel names the segment by sid. */
        const struct fk_seg *s = seg_of_handle(fk, msg->seg);
        msg->seg_sid = s != NULL ? s->sid : 0;
    }
    if (!memsrv_handle(&fk->ms, msg))
        return 0;
    return (int64_t)msg->label;
}

/* Delivers a reply's segment to pid, as the kernel would. */
static void deliver(struct fake_kernel *fk, struct ipc_msg *msg, uint64_t pid)
{
    struct fk_seg *s;

    if (msg->seg == HANDLE_NONE)
        return;
    s = seg_of_handle(fk, msg->seg);
    assert_non_null(s);
    s->in_server = false;
    s->owner = pid;
}

int64_t fk_alloc(struct fake_kernel *fk, uint64_t pid, uint64_t size, uint64_t align, uint64_t flags, uint64_t limit,
                 uint64_t *sid)
{
    struct ipc_msg m = { .label = MS_ALLOC, .badge = pid, .w = { size, align, flags, limit } };
    int64_t r = fk_request(fk, &m);

    if (r == 0) {
        assert_int_not_equal(m.seg, HANDLE_NONE);
        if (sid != NULL)
            *sid = m.w[0];
    } else {
        assert_int_equal(m.seg, HANDLE_NONE);
    }
    deliver(fk, &m, pid);
    return r;
}

int64_t fk_free(struct fake_kernel *fk, uint64_t pid, uint64_t sid)
{
    struct fk_seg *s = fk_seg(fk, sid);
    struct ipc_msg m = { .label = MS_FREE, .badge = pid };
    int64_t r;

    assert_non_null(s);
    assert_int_equal(s->owner, pid);
    if (s->pins != 0)
        return -EBUSY; /* the kernel refuses to send a pinned segment */
    s->in_server = true;
    s->owner = FK_MEMSRV_PID;
    m.seg = handle_of(fk, s);
    r = fk_request(fk, &m);
    deliver(fk, &m, pid); /* given back on an error */
    return r;
}

int64_t fk_alloc_batch(struct fake_kernel *fk, uint64_t pid, unsigned count, uint64_t size, uint64_t align,
                       uint64_t flags, uint64_t *sids)
{
    struct ipc_msg m = { .label = MS_ALLOC_BATCH, .badge = pid, .w = { count, size, align, flags } };
    struct ms_batch_seg segs[MS_BATCH_MAX];
    int64_t r = fk_request(fk, &m);
    unsigned i;

    assert_int_equal(m.seg, HANDLE_NONE);
    if (r != 0) {
        assert_int_equal(m.len, 0);
        return r;
    }
    assert_int_equal(m.len, count * sizeof(segs[0]));
    memcpy(segs, m.payload, m.len);
    for (i = 0; i < count; i++) {
        struct fk_seg *s = client_seg(fk, pid, segs[i].handle);
        assert_non_null(s);
        assert_int_equal(s->size, m.w[0]);
        assert_int_equal(segs[i].vaddr, 0x40000000000ull + s->phys);
        if (sids != NULL)
            sids[i] = s->sid;
    }
    return r;
}

int64_t fk_free_batch(struct fake_kernel *fk, uint64_t pid, const handle_t *handles, unsigned count)
{
    struct ipc_msg m = {
        .label = MS_FREE_BATCH, .badge = pid, .w = { count }, .len = (uint32_t)(count * sizeof(handle_t))
    };

    memcpy(m.payload, handles, m.len);
    return fk_request(fk, &m);
}

int64_t fk_simple(struct fake_kernel *fk, uint64_t pid, uint64_t label, uint64_t w0, uint64_t w1, uint64_t w2,
                  uint64_t w3)
{
    struct ipc_msg m = { .label = label, .badge = pid, .w = { w0, w1, w2, w3 } };

    return fk_request(fk, &m);
}

void fk_transfer(struct fake_kernel *fk, uint64_t sid, uint64_t to_pid)
{
    struct fk_seg *s = fk_seg(fk, sid);

    assert_non_null(s);
    s->owner = to_pid;
}

static void notify(struct fake_kernel *fk, uint64_t bits)
{
    struct ipc_msg m = { .label = IPC_LABEL_NOTIFY, .badge = BADGE_KERNEL, .w = { bits } };

    assert_false(memsrv_handle(&fk->ms, &m));
}

void fk_pin(struct fake_kernel *fk, uint64_t sid, int delta)
{
    struct fk_seg *s = fk_seg(fk, sid);

    assert_non_null(s);
    s->pins = (uint32_t)((int)s->pins + delta);
    /* With an IOMMU the last unpin takes the frames from the device. */
    s->dma = s->pins != 0 || (s->dma && fk->no_iommu);
    dma_queue_update(fk, s);
    if (fk->ndma > 0)
        notify(fk, IPC_NOTIFY_DMA);
}

void fk_quiesce(struct fake_kernel *fk, uint64_t sid)
{
    struct ipc_msg m = { .label = IPC_LABEL_NOTIFY, .badge = BADGE_KERNEL, .w = { IPC_NOTIFY_EXIT } };
    struct fk_seg *s = fk_seg(fk, sid);

    assert_non_null(s);
    assert_int_equal(s->pins, 0);
    s->dma = false;
    dma_queue_update(fk, s);
    if (fk->ndma > 0)
        notify(fk, IPC_NOTIFY_DMA);
    if (!(s->flags & SEG_INFO_QUARANTINED))
        return;
    s->flags &= ~SEG_INFO_QUARANTINED;
    assert_true(fk->nreclaim < FK_RECLAIM);
    fk->reclaim[fk->nreclaim++] = (struct abi_reclaim){ .sid = s->sid, .phys = s->phys, .size = s->size };
    assert_false(memsrv_handle(&fk->ms, &m));
    assert_int_equal(fk->nreclaim, 0);
}

void fk_end_process(struct fake_kernel *fk, uint64_t pid)
{
    unsigned i;

    for (i = 0; i < fk->seg_cap; i++) {
        struct fk_seg *s = &fk->segs[i];
        if (!s->live || s->owner != pid || s->in_server)
            continue;
        s->owner = 0;
        s->pins = 0;
        s->dma = s->dma && fk->no_iommu;
        if (s->dma)
            s->flags |= SEG_INFO_QUARANTINED;
        assert_true(fk->nreclaim < FK_RECLAIM);
        fk->reclaim[fk->nreclaim++] =
            (struct abi_reclaim){ .sid = s->sid, .phys = s->phys, .size = s->size, .pid = pid, .flags = s->flags };
    }
}

void fk_exit(struct fake_kernel *fk, uint64_t pid)
{
    struct ipc_msg m = { .label = IPC_LABEL_NOTIFY, .badge = BADGE_KERNEL, .w = { IPC_NOTIFY_EXIT } };

    fk_end_process(fk, pid);
    assert_false(memsrv_handle(&fk->ms, &m));
    assert_int_equal(fk->nreclaim, 0);
}

struct ms_stats_global fk_stats(struct fake_kernel *fk)
{
    struct ipc_msg m = { .label = MS_STATS, .badge = FK_INIT_PID, .w = { MS_STATS_GLOBAL } };
    struct ms_stats_global g;

    assert_int_equal(fk_request(fk, &m), 0);
    assert_int_equal(m.len, sizeof(g));
    memcpy(&g, m.payload, sizeof(g));
    assert_int_equal(g.total_bytes, g.free_bytes + g.used_bytes + g.locked_bytes);
    return g;
}

struct ms_stats_client fk_client(struct fake_kernel *fk, uint64_t pid)
{
    struct ipc_msg m = { .label = MS_STATS, .badge = pid, .w = { MS_STATS_CLIENT } };
    struct ms_stats_client c;

    assert_int_equal(fk_request(fk, &m), 0);
    assert_int_equal(m.len, sizeof(c));
    memcpy(&c, m.payload, sizeof(c));
    return c;
}

void fk_assert_consistent(struct fake_kernel *fk)
{
    struct ipc_msg m = { .label = MS_CHECK, .badge = FK_INIT_PID };
    unsigned i;

    if (fk_request(fk, &m) != 0)
        fail_msg("memsrv check: %.*s", (int)m.len, (const char *)m.payload);
    /* Every live segment of the fake is booked by memsrv at the same place
     * and size. */
    for (i = 0; i < fk->seg_cap; i++) {
        const struct fk_seg *s = &fk->segs[i];
        struct span_info info;
        if (!s->live)
            continue;
        assert_int_equal(span_lookup(&fk->ms.span, s->phys, &info), 0);
        assert_int_equal(info.base, s->phys);
        assert_int_equal(info.size, s->size);
        assert_true(info.state == SPAN_ALLOCATED || info.state == SPAN_LOCKED);
        /* A ready segment is the server's, charged to it. */
        const struct ms_record *rec = books_find_sid(&fk->ms, s->sid);
        if (rec != NULL && (rec->flags & MS_REC_READY)) {
            assert_true(s->in_server);
            assert_int_equal(s->owner, FK_MEMSRV_PID);
            assert_int_equal(s->payer, 0);
        }
    }
}

void *fk_full_thread(void *arg)
{
    struct fk_full_call *c = arg;

    c->m = (struct ipc_msg){ .label = MS_COMPACT, .badge = c->pid, .w = { MS_COMPACT_FULL } };
    c->result = fk_request(c->fk, &c->m);
    __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int64_t fk_full(struct fake_kernel *fk, uint64_t pid, uint64_t *moves, uint64_t *bytes)
{
    struct fk_full_call c = { .fk = fk, .pid = pid };
    unsigned threads = fk->ms.service_threads;
    pthread_t t;

    fk->ms.service_threads = 2; /* one waits, one would serve */
    assert_int_equal(pthread_create(&t, NULL, fk_full_thread, &c), 0);
    while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE))
        if (!memsrv_compactor_step(&fk->ms))
            sched_yield();
    pthread_join(t, NULL);
    fk->ms.service_threads = threads;
    if (moves != NULL)
        *moves = c.m.w[0];
    if (bytes != NULL)
        *bytes = c.m.w[1];
    return c.result;
}

unsigned fk_compact_idle(struct fake_kernel *fk, unsigned max)
{
    unsigned steps = 0;

    while (steps < max) {
        uint64_t before = fk->ms.bytes_moved;
        if (!memsrv_compactor_step(&fk->ms))
            break;
        assert_true(fk->ms.bytes_moved - before <= MS_STEP_BYTES);
        steps++;
    }
    return steps;
}

bool fk_console_has(struct fake_kernel *fk, const char *text) { return strstr(fk->console, text) != NULL; }
