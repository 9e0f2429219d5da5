/*
 * Kernel layer: segments (see kernel/segment.h). Called by the system call
 * layer (transfer, pin, memory-server operations), by IPC and by the process
 * layer (boot loading, exit).
 *
 * Invariants:
 *   - live segments never overlap physically (tree by_phys);
 *   - a segment with an owner has exactly one handle in the owner's table,
 *     whose rights equal s->rights, and is on the owner's list; its vaddr,
 *     if not 0, is a used area of the owner's address space mapped to
 *     [phys, phys+size) with the protection of its rights;
 *   - an ownerless segment is unmapped and named by no handle;
 *   - in_flight is set only while its owner's thread is blocked in a send
 *     carrying it, and that thread's ipc.seg points back here;
 *   - dma_device is set iff pins > 0 or the segment is tainted or
 *     quarantined, and then the segment is on that device's DMA list.
 * Every operation that can fail checks and reserves first (handle slot,
 * virtual area, page-table frames, account charges) and then commits in
 * steps that cannot fail, so a failure leaves the segment where it was.
 */
#include <abi/errno.h>
#include <abi/ipc.h>
#include <arch/arch.h>
#include <common/string.h>
#include <kernel/account.h>
#include <kernel/aspace.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/kmem.h>
#include <kernel/lock.h>
#include <kernel/paging.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/segment.h>
#include <kernel/slab.h>

/* Up to 2M live segments: more than the pool could hold objects for. */
#define SID_PAGES_MAX 8192u

static struct slab_cache segment_cache;
static struct id_slot *sid_directory[SID_PAGES_MAX];
static uint64_t sid_pages_with_free[ID_BITMAP_WORDS(SID_PAGES_MAX)];
static struct id_table sids;
static struct rb_tree by_phys;
static uint64_t live_segments;
static struct list_node reclaim_queue = LIST_HEAD_INIT(reclaim_queue);
static struct list_node dma_changes = LIST_HEAD_INIT(dma_changes);
/* Migrations under way, with the destinations they reserve. One per
 * thread of the memory server at most; a few suffice. */
#define MIGRATIONS_MAX 16
static struct migration {
    struct segment *s;
    uint64_t dest;
} migrations[MIGRATIONS_MAX];
static unsigned migrating; /* entries of migrations[] in use: none, most of the time */
/* Threads waiting for a busy segment, by a hash of its address: segments
 * are many and waits rare, so a queue each would cost every segment. A
 * wake wakes the bucket; each waiter looks at its segment again. */
#define IDLE_BUCKETS 64u
static struct wait_queue idle_waiters[IDLE_BUCKETS];

static struct wait_queue *idle_queue(const struct segment *s)
{
    return &idle_waiters[((uintptr_t)s >> 6) % IDLE_BUCKETS];
}

/* The sid table's pages are the kernel's: a segment's charge is its own. */
static int sid_page_get(void *ctx, void **page) { return kmem_frame_alloc(ctx, page); }
static void sid_page_put(void *ctx, void *page) { kmem_frame_free(ctx, page); }

void segment_init(void)
{
    slab_cache_init(&segment_cache, "segment", sizeof(struct segment));
    rb_init(&by_phys, 0);
    const struct id_pages provider = { sid_page_get, sid_page_put, 0 };
    idt_init_with_directory(&sids, sid_directory, sid_pages_with_free, SID_PAGES_MAX, &provider);
}

uint32_t segment_id_pages(void) { return sids.npages; }

struct segment *segment_by_sid(uint64_t sid)
{
    struct id_slot *e = idt_slot(&sids, sid);
    return e ? e->object : 0;
}

static struct segment *phys_entry(struct rb_node *n) { return n ? RB_ENTRY(n, struct segment, by_phys) : 0; }

/* The live segment with the greatest base below `end`, if any. */
static struct segment *last_below(uint64_t end)
{
    struct rb_node *n = by_phys.root;
    struct segment *best = 0;
    while (n) {
        struct segment *s = phys_entry(n);
        if (s->phys < end) {
            best = s;
            n = n->right;
        } else {
            n = n->left;
        }
    }
    return best;
}

/* Whether [phys, phys + size) meets the destination of a migration under
 * way (other than except's). */
static inline bool migration_overlaps(uint64_t phys, uint64_t size, const struct segment *except)
{
    for (unsigned i = 0; migrating && i < MIGRATIONS_MAX; i++) {
        const struct migration *m = &migrations[i];
        if (m->s && m->s != except && m->dest < phys + size && m->dest + m->s->size > phys)
            return true;
    }
    return false;
}

bool segment_overlaps(uint64_t phys, uint64_t size, const struct segment *except)
{
    /* Segments are disjoint, so only the last one starting below the end
     * (or the one before it, when that is `except`) can overlap. */
    struct segment *s = last_below(phys + size);
    while (s && s == except)
        s = phys_entry(rb_prev(&s->by_phys));
    if (s && s->phys + s->size > phys)
        return true;
    return migration_overlaps(phys, size, except);
}

/* Where a segment at [phys, phys + size) goes in by_phys: one descent, as
 * for an insert, that also answers whether a live segment overlaps it (then
 * false). An overlapping one either starts in the range, and then the
 * first start at or above phys does, or is the last start below phys: both
 * are on the path an insert of phys takes. */
static bool phys_slot(uint64_t phys, uint64_t size, struct rb_node ***link, struct rb_node **parent)
{
    *link = &by_phys.root;
    *parent = 0;
    while (**link) {
        *parent = **link;
        const struct segment *s = phys_entry(*parent);
        if (s->phys < phys + size && s->phys + s->size > phys)
            return false;
        *link = phys < s->phys ? &(*parent)->left : &(*parent)->right;
    }
    return true;
}

static void phys_insert(struct segment *s)
{
    struct rb_node **link, *parent;
    VERIFY(phys_slot(s->phys, s->size, &link, &parent));
    rb_insert(&by_phys, &s->by_phys, parent, link);
}

int segment_create(uint64_t phys, uint64_t size, uint32_t flags, struct account *payer, struct segment **out)
{
    if (!size || ((phys | size) & (PAGE_SIZE - 1)) || phys + size < phys)
        return -EINVAL;
    struct rb_node **link, *parent;
    if (!phys_slot(phys, size, &link, &parent) || migration_overlaps(phys, size, 0))
        return -EEXIST;
    /* The bytes and this object, in one walk up the payer's path. */
    int err = payer ? account_charge_both(payer, RES_MEMORY, size, RES_KMEM, segment_cache.object_size) : 0;
    if (err)
        return err;
    /* A sid page and a slab at most. */
    struct segment *s = kmem_pool_has(payer, 2) ? slab_alloc(&segment_cache) : 0;
    uint64_t sid;
    err = s ? idt_alloc(&sids, s, 1, &sid) : -ENOMEM;
    if (err) {
        if (s)
            slab_free(&segment_cache, s);
        if (payer)
            account_uncharge_both(payer, RES_MEMORY, size, RES_KMEM, segment_cache.object_size);
        return err;
    }
    if (payer)
        account_get(payer);
    s->sid = sid;
    s->phys = phys;
    s->size = size;
    s->flags = flags;
    s->payer = payer;
    s->dma_told = false;
    list_init(&s->link);
    list_init(&s->dma_link);
    list_init(&s->dma_change);
    /* Nothing since phys_slot changed the tree: the slot still holds. */
    rb_insert(&by_phys, &s->by_phys, parent, link);
    live_segments++;
    *out = s;
    return 0;
}

static void release_account(struct account *a) { proc_account_free(a); }

void segment_destroy(struct segment *s)
{
    VERIFY(!s->owner && !s->vaddr && !s->pins && !s->in_flight && !s->dma_device && !s->busy);
    VERIFY(!list_linked(&s->link));
    struct id_slot *named = idt_slot(&sids, s->sid);
    VERIFY(named && named->object == s);
    idt_free_slot(&sids, s->sid, named);
    rb_erase(&by_phys, &s->by_phys);
    live_segments--;
    if (list_linked(&s->dma_change))
        list_remove(&s->dma_change);
    struct account *payer = s->payer;
    if (payer)
        account_uncharge_both(payer, RES_MEMORY, s->size, RES_KMEM, segment_cache.object_size);
    slab_free(&segment_cache, s);
    if (payer)
        account_put(payer, release_account);
}

int segment_recharge(struct segment *s, struct account *to)
{
    struct account *from = s->payer;
    if (to == from)
        return 0;
    int err = to ? account_charge_both(to, RES_MEMORY, s->size, RES_KMEM, segment_cache.object_size) : 0;
    if (err)
        return err;
    if (to)
        account_get(to);
    s->payer = to;
    if (from) {
        account_uncharge_both(from, RES_MEMORY, s->size, RES_KMEM, segment_cache.object_size);
        account_put(from, release_account);
    }
    return 0;
}

/* ---- DMA state ------------------------------------------------------ */

bool segment_dma_busy(const struct segment *s) { return s->dma_device != 0; }

int segment_idle(const struct segment *s)
{
    return s->in_flight || s->pins || s->busy || segment_dma_busy(s) ? -EBUSY : 0;
}

bool segment_wait_idle(struct segment *s)
{
    if (!s->busy)
        return false;
    /* The segment outlives the wait: a busy one is never destroyed, and
     * the waiters are woken before it stops being busy's last step. */
    sched_block(idle_queue(s), TIMEOUT_FOREVER);
    return true;
}

/* Only a migration suspends a mapping (a segment zeroed busy stays
 * mapped), so the migrations under way are all a fault can be waiting
 * for: a look at a few entries, not at every segment the process owns
 * (every bad pointer a system call is given faults here first). */
bool segment_fault_wait(struct process *p, uint64_t addr)
{
    for (unsigned i = 0; migrating && i < MIGRATIONS_MAX; i++) {
        struct segment *s = migrations[i].s;
        if (s && s->owner == p && s->vaddr && addr >= s->vaddr && addr - s->vaddr < s->size) {
            sched_block(idle_queue(s), TIMEOUT_FOREVER);
            return true;
        }
    }
    return false;
}

/* Busy work is done: waiters retry, and a holder that ended meanwhile
 * hands the segment back now. */
static void end_busy(struct segment *s)
{
    s->busy = false;
    sched_wake_all(idle_queue(s), 0);
    if (s->reclaim_when_idle) {
        s->reclaim_when_idle = false;
        segment_reclaim(s, s->former_pid);
        proc_notify_memsrv_reclaim();
    }
}

/* The segment's DMA state may have changed: the memory server hears of it
 * (IPC_NOTIFY_DMA) unless it came back to what the server knows. */
static void dma_state_changed(struct segment *s)
{
    bool differs = segment_dma_busy(s) != s->dma_told;
    if (differs && !list_linked(&s->dma_change)) {
        list_push_back(&dma_changes, &s->dma_change);
        proc_notify_memsrv(IPC_NOTIFY_DMA);
    } else if (!differs && list_linked(&s->dma_change)) {
        list_remove(&s->dma_change);
    }
}

struct segment *segment_dma_change_first(void)
{
    struct list_node *n = list_first(&dma_changes);
    return n ? LIST_ENTRY(n, struct segment, dma_change) : 0;
}

struct segment *segment_dma_change_next(const struct segment *s)
{
    struct list_node *n = s->dma_change.next;
    return n != &dma_changes ? LIST_ENTRY(n, struct segment, dma_change) : 0;
}

void segment_dma_change_told(struct segment *s, bool busy)
{
    s->dma_told = busy;
    dma_state_changed(s); /* off the queue, unless it changed since */
}

/* The segment is no longer within any device's reach. */
static void dma_forget(struct segment *s)
{
    list_remove(&s->dma_link);
    if (s->pinner) {
        account_uncharge(s->pinner, RES_PINNED, s->size);
        account_put(s->pinner, release_account);
        s->pinner = 0;
    }
    device_put(s->dma_device);
    s->dma_device = 0;
    s->quiesced_pinned = false;
    s->flags &= ~(uint32_t)SEG_INFO_QUARANTINED;
    dma_state_changed(s);
}

int segment_pin(struct segment *s, struct device *d, uint64_t *phys)
{
    if (s->in_flight)
        return -EBUSY;
    if (s->dma_device && s->dma_device != d)
        return -EBUSY;
    if (s->pins == UINT32_MAX)
        return -ERANGE;
    if (!s->dma_device) {
        struct account *pinner = s->owner->account;
        int err = account_charge(pinner, RES_PINNED, s->size);
        if (err)
            return err;
        err = device_dma_map(d, s->phys, s->size, s->rights & RIGHT_WRITE);
        if (err) {
            account_uncharge(pinner, RES_PINNED, s->size);
            return err;
        }
        account_get(pinner);
        s->pinner = pinner;
        device_get(d);
        s->dma_device = d;
        list_push_back(device_dma_segments(d), &s->dma_link);
        dma_state_changed(s);
    }
    s->pins++;
    s->quiesced_pinned = false;
    *phys = s->phys;
    return 0;
}

int segment_unpin(struct segment *s)
{
    if (!s->pins)
        return -EINVAL;
    if (--s->pins)
        return 0;
    /* With an IOMMU the device loses the frames here, before the call
     * returns; without one they stay within its reach until it is
     * quiesced: the segment stays tainted. */
    if (device_dma_unmap(s->dma_device, s->phys, s->size))
        dma_forget(s);
    return 0;
}

void segment_device_quiesced(struct device *d)
{
    struct list_node *n, *next;
    LIST_FOR_EACH_SAFE(n, next, device_dma_segments(d))
    {
        struct segment *s = LIST_ENTRY(n, struct segment, dma_link);
        if (s->pins) {
            s->quiesced_pinned = true;
            continue; /* still pinned: the driver may turn mastering back on */
        }
        bool quarantined = s->flags & SEG_INFO_QUARANTINED;
        dma_forget(s);
        if (quarantined) {
            /* Back through the queue, released: the memory server frees it. */
            if (s->reported) {
                s->reported = false;
                list_push_back(&reclaim_queue, &s->link);
            }
            proc_notify_memsrv_reclaim();
        }
    }
}

void segment_dma_owner_gone(struct device *d, struct account *pinner)
{
    struct list_node *n;
    bool drove_it = false;
    for (n = device_dma_segments(d)->next; n != device_dma_segments(d); n = n->next)
        if (LIST_ENTRY(n, struct segment, dma_link)->pinner == pinner)
            drove_it = true;
    if (!drove_it)
        return;
    (void)device_set_bus_master(d, false); /* a bridge: nothing behind it masters through it */
    segment_device_quiesced(d);
}

/* ---- ownership and mappings --------------------------------------- */

static unsigned map_flags(rights_t rights)
{
    return MAP_USER | ((rights & RIGHT_WRITE) ? MAP_WRITE : 0) | ((rights & RIGHT_EXEC) ? MAP_EXEC : 0);
}

/* What attaching needs in p, reserved: an area, and the handle itself.
 * The handle is installed whole at once rather than reserved and filled
 * in later: nothing can look at p's table before the commit or the cancel
 * (both follow under the kernel lock, which nothing between them drops),
 * so for that moment the segment may be named in two tables. */
struct attach_plan {
    handle_t handle;
    bool mapped;
    struct aspace_reservation area;
};

static int plan_attach(struct segment *s, struct process *p, bool map, uint64_t vaddr, rights_t rights,
                       struct attach_plan *plan)
{
    int err = handle_install(&p->handles, s, HANDLE_SEGMENT, rights, &plan->handle);
    if (err)
        return err;
    plan->mapped = map;
    if (!map)
        return 0;
    err = aspace_reserve(&p->aspace, vaddr, s->size, s->phys, &plan->area);
    if (err)
        handle_remove(&p->handles, plan->handle, 0);
    return err;
}

static void commit_attach(struct segment *s, struct process *p, const struct attach_plan *plan, rights_t rights)
{
    s->vaddr = 0;
    if (plan->mapped) {
        aspace_map(&p->aspace, &plan->area, s->phys, map_flags(rights));
        s->vaddr = plan->area.vaddr;
    }
    s->owner = p;
    s->handle = plan->handle;
    s->rights = rights;
    list_push_front(&p->segments, &s->link);
}

int segment_attach(struct segment *s, struct process *p, bool map, uint64_t vaddr, rights_t rights)
{
    VERIFY(!s->owner);
    struct attach_plan plan;
    rights &= RIGHTS_SEGMENT;
    int err = plan_attach(s, p, map, vaddr, rights, &plan);
    if (err)
        return err;
    commit_attach(s, p, &plan, rights);
    return 0;
}

void segment_detach(struct segment *s)
{
    struct process *p = s->owner;
    VERIFY(p);
    if (s->vaddr)
        aspace_unmap(&p->aspace, s->vaddr, s->size);
    handle_remove(&p->handles, s->handle, 0);
    list_remove(&s->link);
    s->owner = 0;
    s->handle = 0;
    s->vaddr = 0;
    s->rights = 0;
}

int segment_move(struct segment *s, struct process *to, bool map, uint64_t vaddr, rights_t rights)
{
    /* A tainted segment may only go back to the memory server, which
     * quarantines it (segment_retire): nobody else may receive frames a
     * device can still reach. */
    if (s->in_flight || s->pins || (segment_dma_busy(s) && to != memsrv_process))
        return -EBUSY;
    struct attach_plan plan;
    rights &= RIGHTS_SEGMENT;
    int err = plan_attach(s, to, map, vaddr, rights, &plan);
    if (err)
        return err;
    /* The area may have been planned in the same address space the segment
     * leaves (a remap, or a move to oneself): detaching frees only the old
     * area and handle, which the plan did not use. */
    if (s->owner)
        segment_detach(s);
    commit_attach(s, to, &plan, rights);
    return 0;
}

static void cancel_attach(struct process *p, const struct attach_plan *plan)
{
    if (plan->mapped)
        aspace_cancel(&p->aspace, &plan->area);
    handle_remove(&p->handles, plan->handle, 0);
}

int segment_move_batch(struct segment *const *segs, unsigned n, struct process *to, rights_t rights)
{
    struct attach_plan plans[SEG_BATCH_MAX];
    unsigned i;
    int err = 0;

    VERIFY(n <= SEG_BATCH_MAX);
    for (i = 0; i < n; i++)
        if (segs[i]->in_flight || segs[i]->pins || segment_dma_busy(segs[i]))
            return -EBUSY;
    /* Every handle slot and area is reserved before anything moves, so a
     * shortage part way leaves every segment where it was. */
    rights &= RIGHTS_SEGMENT;
    for (i = 0; i < n; i++) {
        if ((err = plan_attach(segs[i], to, true, 0, rights, &plans[i])) != 0) {
            while (i-- > 0) /* plan i failed and undid itself */
                cancel_attach(to, &plans[i]);
            return err;
        }
    }
    for (i = 0; i < n; i++) {
        if (segs[i]->owner)
            segment_detach(segs[i]);
        commit_attach(segs[i], to, &plans[i], rights);
    }
    return 0;
}

/* Bytes copied or zeroed between two lock breaks: bounds how long the
 * kernel lock is held (a few microseconds of copying). */
#define BUSY_CHUNK (64ull * 1024)

static void copy_chunked(uint64_t dst, uint64_t src, uint64_t size)
{
    /* Overlapping ranges (a slide by less than the size) copy in the
     * direction that reads each byte before it is overwritten. */
    bool forward = dst < src;
    for (uint64_t done = 0; done < size;) {
        uint64_t n = size - done < BUSY_CHUNK ? size - done : BUSY_CHUNK;
        uint64_t off = forward ? done : size - done - n;
        memmove(phys_to_virt(dst + off), phys_to_virt(src + off), n);
        done += n;
        if (done < size)
            kernel_lock_break();
    }
}

void segment_zero(struct segment *s)
{
    /* One chunk is zeroed with the lock held throughout: nobody can see
     * the segment busy, so there is nobody to wake and nothing put off.
     * A segment is whole pages (segment_create), as arch_zero_pages needs. */
    if (s->size <= BUSY_CHUNK) {
        arch_zero_pages(phys_to_virt(s->phys), s->size);
        return;
    }
    s->busy = true;
    for (uint64_t done = 0; done < s->size;) {
        uint64_t n = s->size - done < BUSY_CHUNK ? s->size - done : BUSY_CHUNK;
        arch_zero_pages(phys_to_virt(s->phys + done), n);
        done += n;
        if (done < s->size)
            kernel_lock_break();
    }
    end_busy(s);
}

int segment_migrate(struct segment *s, uint64_t new_phys)
{
    if (s->pins || segment_dma_busy(s) || s->in_flight || s->busy)
        return -EBUSY;
    if (new_phys & (PAGE_SIZE - 1) || new_phys + s->size < new_phys)
        return -EINVAL;
    if (new_phys == s->phys)
        return 0;
    if (segment_overlaps(new_phys, s->size, s))
        return -EEXIST;
    if (s->vaddr && !aspace_can_resume(s->size))
        return -ENOMEM;
    struct migration *m = 0;
    for (unsigned i = 0; !m && i < MIGRATIONS_MAX; i++)
        if (!migrations[i].s)
            m = &migrations[i];
    if (!m)
        return -EBUSY; /* more migrations at once than the server has threads */
    uint64_t old_phys = s->phys;
    s->busy = true;
    *m = (struct migration){ s, new_phys };
    migrating++;
    if (s->vaddr)
        aspace_suspend(&s->owner->aspace, s->vaddr, s->size);
    copy_chunked(new_phys, old_phys, s->size);
    m->s = 0;
    migrating--;
    /* The owner may have ended meanwhile (then nothing is mapped), but
     * nothing else changed: the segment was busy. */
    int err = 0;
    if (s->vaddr && !aspace_can_resume(s->size)) {
        aspace_restore(&s->owner->aspace, s->vaddr, s->size, old_phys, map_flags(s->rights));
        err = -ENOMEM;
    } else {
        rb_erase(&by_phys, &s->by_phys);
        s->phys = new_phys;
        phys_insert(s);
        if (s->vaddr)
            aspace_resume(&s->owner->aspace, s->vaddr, s->size, new_phys, map_flags(s->rights));
    }
    end_busy(s);
    return err;
}

bool segment_large_mapped(const struct segment *s)
{
    unsigned flags;
    return s->vaddr && s->owner && aspace_translate(&s->owner->aspace, s->vaddr, 0, &flags) && (flags & MAP_LARGE);
}

void segment_info(const struct segment *s, struct abi_seg_info *out)
{
    uint32_t flags = s->flags | (segment_large_mapped(s) ? SEG_INFO_LARGE_PAGES : 0);
    if (segment_dma_busy(s))
        flags |= SEG_INFO_DMA;
    if (s->in_flight)
        flags |= SEG_INFO_IN_FLIGHT;
    *out = (struct abi_seg_info){
        .sid = s->sid,
        .size = s->size,
        .vaddr = s->vaddr,
        .phys = s->phys,
        .owner_pid = s->owner ? s->owner->pid : 0,
        .pins = s->pins,
        .flags = flags,
        .rights = s->rights,
        .payer_pid = s->payer ? s->payer->pid : 0,
    };
}

/* One segment's invariants (see the top of this file). */
static const char *check_one(struct segment *s)
{
    if (list_linked(&s->dma_change) != (segment_dma_busy(s) != s->dma_told))
        return "DMA change queue out of step with its DMA state";
    if (s->owner) {
        struct segment *named = handle_lookup(&s->owner->handles, s->handle, HANDLE_SEGMENT);
        enum handle_type type;
        rights_t rights;
        if (named != s || !handle_describe(&s->owner->handles, s->handle, &type, &rights) || rights != s->rights)
            return "owner's handle does not name it with its rights";
        if (!list_linked(&s->link))
            return "not on its owner's list";
        /* A busy segment's mapping is suspended while it is copied, and
         * the copy lets others run (and check) between its chunks. */
        uint64_t phys;
        if (s->vaddr && !s->busy &&
            (!aspace_translate(&s->owner->aspace, s->vaddr, &phys, 0) || phys != s->phys ||
             !aspace_translate(&s->owner->aspace, s->vaddr + s->size - PAGE_SIZE, &phys, 0) ||
             phys != s->phys + s->size - PAGE_SIZE))
            return "mapping does not reach its frames";
    } else if (s->vaddr || s->handle) {
        return "ownerless but mapped or named";
    }
    if (s->in_flight && (s->in_flight->ipc.seg != s || !s->owner || s->in_flight->proc != s->owner))
        return "in flight with no send carrying it";
    if (s->pins && !s->dma_device)
        return "pinned for no device";
    if ((s->flags & SEG_INFO_QUARANTINED) && (s->owner || !s->dma_device))
        return "quarantined but held, or reachable by no device";
    if (s->dma_device && !list_linked(&s->dma_link))
        return "not on its device's list";
    return 0;
}

int segment_check_all(uint64_t *bad_sid, const char **why)
{
    uint64_t cursor = 0, sid, checked = 0;
    struct id_slot *slot;
    while ((sid = idt_next(&sids, &cursor, &slot)) != 0) {
        struct segment *s = slot->object;
        const char *w = check_one(s);
        if (w) {
            *bad_sid = sid;
            *why = w;
            return -EINVAL;
        }
        /* Long walks let others run; the cursor survives whatever changes. */
        if (++checked % 256 == 0)
            sched_preempt_point();
    }
    return 0;
}

struct segment *segment_first_by_phys(void) { return phys_entry(rb_first(&by_phys)); }
struct segment *segment_next_by_phys(const struct segment *s) { return phys_entry(rb_next(&s->by_phys)); }

static bool phys_at_or_after(const struct rb_node *n, const void *phys)
{
    return RB_ENTRY(n, const struct segment, by_phys)->phys >= *(const uint64_t *)phys;
}

struct segment *segment_at_or_after(uint64_t phys)
{
    return phys_entry(rb_lower_bound(&by_phys, phys_at_or_after, &phys));
}
uint64_t segment_count(void) { return live_segments; }

/* ---- the way back to the memory server ----------------------------- */

/* A segment leaving its last holder: its pins go with the holder, and if
 * a device may still reach its frames it is quarantined. */
static void quarantine(struct segment *s)
{
    if (!s->dma_device)
        return;
    if (s->pins) {
        s->pins = 0;
        if (device_dma_unmap(s->dma_device, s->phys, s->size)) {
            dma_forget(s);
            return;
        }
    }
    /* Its device was stopped while it was pinned, which kept it out of
     * that release, and has not mastered since: nothing programmed it
     * after the stop that released the rest. Left tainted, it would wait
     * for a next stop that may never come (its pinner let go of its device
     * handle first, and nobody else drives the device). */
    if (s->quiesced_pinned && !device_masters(s->dma_device)) {
        dma_forget(s);
        return;
    }
    s->flags |= SEG_INFO_QUARANTINED;
}

void segment_reclaim(struct segment *s, uint64_t pid)
{
    VERIFY(!s->owner);
    s->former_pid = pid;
    if (s->busy) {
        s->reclaim_when_idle = true; /* end_busy queues it */
        return;
    }
    quarantine(s);
    s->reported = false;
    list_push_back(&reclaim_queue, &s->link);
}

void segment_reclaim_forget(struct segment *s)
{
    if (!s->reported)
        list_remove(&s->link);
}

struct segment *segment_reclaim_pop(void)
{
    struct list_node *n = list_pop_front(&reclaim_queue);
    if (!n)
        return 0;
    struct segment *s = LIST_ENTRY(n, struct segment, link);
    s->reported = true;
    return s;
}

int segment_retire(struct segment *s)
{
    if (s->pins || s->in_flight || s->busy)
        return -EBUSY;
    if (s->owner)
        segment_detach(s);
    if (segment_dma_busy(s))
        quarantine(s);
    if (!segment_dma_busy(s)) {
        segment_destroy(s);
        return 0;
    }
    /* The memory server knows it already: it keeps the frames locked until
     * the device is quiesced and the segment comes through the queue. */
    s->reported = true;
    return 1;
}
