/*
 * Kernel layer: segments (see kernel/segment.h). Called by the system call
 * layer (transfer, pin, memory-server operations), by IPC and by the process
 * layer (boot loading, exit).
 *
 * Invariants:
 *   - live segments never overlap physically (tree by_phys);
 *   - a segment with an owner has exactly one handle in the owner's table
 *     and is on the owner's list; its vaddr, if not 0, is a used area of the
 *     owner's vmareas mapped to [phys, phys+size);
 *   - an ownerless segment is unmapped and named by no handle.
 * Every operation that can fail checks and reserves first (handle slot,
 * virtual area, page-table frames) and then commits in steps that cannot
 * fail, so a failure leaves the segment where it was.
 */
#include <abi/errno.h>
#include <arch/arch.h>
#include <common/string.h>
#include <kernel/console.h>
#include <kernel/paging.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/segment.h>
#include <kernel/slab.h>

#define SID_PER_PAGE 256u
#define SID_PAGES 1024u /* up to 262144 live segments */

struct sid_slot {
    struct segment *segment; /* when free: next free slot + 1, as an integer */
    uint32_t generation;
    uint32_t used;
};
_Static_assert(sizeof(struct sid_slot) * SID_PER_PAGE == PAGE_SIZE, "a page of sid slots");

static struct slab_cache segment_cache;
static struct sid_slot *sid_pages[SID_PAGES];
static uint32_t sid_npages, sid_free_head;
static struct rb_tree by_phys;
static uint64_t live_segments;
static struct segment *reclaim_head, *reclaim_tail;

void segment_init(void)
{
    slab_cache_init(&segment_cache, "segment", sizeof(struct segment));
    rb_init(&by_phys, 0);
}

static struct sid_slot *sid_slot(uint32_t slot) { return &sid_pages[slot / SID_PER_PAGE][slot % SID_PER_PAGE]; }

static int sid_reserve_page(void)
{
    if (sid_free_head)
        return 0;
    if (sid_npages == SID_PAGES)
        return -ENOMEM;
    uint64_t frame = pool_alloc_frame();
    if (!frame)
        return -ENOMEM;
    struct sid_slot *page = phys_to_virt(frame);
    uint32_t first = sid_npages * SID_PER_PAGE;
    for (uint32_t i = 0; i < SID_PER_PAGE; i++) {
        page[i] = (struct sid_slot){ .generation = 1 };
        page[i].segment = (void *)(uintptr_t)(i + 1 < SID_PER_PAGE ? first + i + 2 : 0);
    }
    sid_pages[sid_npages++] = page;
    sid_free_head = first + 1;
    return 0;
}

struct segment *segment_by_sid(uint64_t sid)
{
    uint64_t slot = sid & 0xffffffffu;
    if (slot == 0 || slot > (uint64_t)sid_npages * SID_PER_PAGE)
        return 0;
    struct sid_slot *e = sid_slot((uint32_t)slot - 1);
    if (!e->used || e->generation != (uint32_t)(sid >> 32))
        return 0;
    return e->segment;
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

bool segment_overlaps(uint64_t phys, uint64_t size, const struct segment *except)
{
    /* Segments are disjoint, so only the last one starting below the end
     * (or the one before it, when that is `except`) can overlap. */
    struct segment *s = last_below(phys + size);
    while (s && s == except)
        s = phys_entry(rb_prev(&s->by_phys));
    return s && s->phys + s->size > phys;
}

static void phys_insert(struct segment *s)
{
    struct rb_node **link = &by_phys.root, *parent = 0;
    while (*link) {
        parent = *link;
        link = s->phys < phys_entry(parent)->phys ? &parent->left : &parent->right;
    }
    rb_insert(&by_phys, &s->by_phys, parent, link);
}

int segment_create(uint64_t phys, uint64_t size, uint32_t flags, struct segment **out)
{
    if (!size || ((phys | size) & (PAGE_SIZE - 1)) || phys + size < phys)
        return -EINVAL;
    if (segment_overlaps(phys, size, 0))
        return -EEXIST;
    int err = sid_reserve_page();
    if (err)
        return err;
    struct segment *s = slab_alloc(&segment_cache);
    if (!s)
        return -ENOMEM;
    uint32_t slot = sid_free_head - 1;
    struct sid_slot *e = sid_slot(slot);
    sid_free_head = (uint32_t)(uintptr_t)e->segment;
    e->segment = s;
    e->used = 1;
    s->sid = ((uint64_t)e->generation << 32) | (slot + 1);
    s->phys = phys;
    s->size = size;
    s->flags = flags;
    phys_insert(s);
    live_segments++;
    *out = s;
    return 0;
}

void segment_destroy(struct segment *s)
{
    VERIFY(!s->owner && !s->vaddr);
    uint32_t slot = (uint32_t)(s->sid & 0xffffffffu) - 1;
    struct sid_slot *e = sid_slot(slot);
    e->used = 0;
    if (++e->generation == 0)
        e->generation = 1;
    e->segment = (void *)(uintptr_t)sid_free_head;
    sid_free_head = slot + 1;
    rb_erase(&by_phys, &s->by_phys);
    live_segments--;
    slab_free(&segment_cache, s);
}

static unsigned map_flags(unsigned prot)
{
    return MAP_USER | ((prot & SEG_PROT_WRITE) ? MAP_WRITE : 0) | ((prot & SEG_PROT_EXEC) ? MAP_EXEC : 0);
}

/* What attaching needs in p, reserved: a handle slot and an area. */
struct attach_plan {
    handle_t handle;
    uint64_t vaddr;
};

static int plan_attach(struct segment *s, struct process *p, bool map, uint64_t vaddr, struct attach_plan *plan)
{
    int err = handle_install(&p->handles, 0, HANDLE_RESERVED, &plan->handle);
    if (err)
        return err;
    plan->vaddr = 0;
    if (!map)
        return 0;
    if (vaddr) {
        err = vmareas_reserve(&p->areas, vaddr, s->size);
        if (err == -ERANGE || err == -EINVAL)
            err = -EFAULT;
        plan->vaddr = vaddr;
    } else {
        err = vmareas_alloc(&p->areas, s->size, &plan->vaddr);
    }
    /* The page tables the mapping may need, with room for the worst case. */
    if (!err && paging_tables_needed(p->root, plan->vaddr, s->phys, s->size) > pool_free_frames()) {
        vmareas_free(&p->areas, plan->vaddr, 0);
        err = -ENOMEM;
    }
    if (err)
        handle_remove(&p->handles, plan->handle, 0);
    return err;
}

static void commit_attach(struct segment *s, struct process *p, const struct attach_plan *plan, unsigned prot)
{
    handle_fill(&p->handles, plan->handle, s, HANDLE_SEGMENT);
    if (plan->vaddr)
        VERIFY(paging_map(p->root, plan->vaddr, s->phys, s->size, map_flags(prot)) == 0);
    s->owner = p;
    s->handle = plan->handle;
    s->vaddr = plan->vaddr;
    s->prot = prot;
    s->prev = 0;
    s->next = p->segments;
    if (p->segments)
        p->segments->prev = s;
    p->segments = s;
}

int segment_attach(struct segment *s, struct process *p, bool map, uint64_t vaddr, unsigned prot)
{
    VERIFY(!s->owner);
    struct attach_plan plan;
    int err = plan_attach(s, p, map, vaddr, &plan);
    if (err)
        return err;
    commit_attach(s, p, &plan, prot);
    return 0;
}

void segment_detach(struct segment *s)
{
    struct process *p = s->owner;
    VERIFY(p);
    if (s->vaddr) {
        if (p->root)
            paging_unmap(p->root, s->vaddr, s->size);
        vmareas_free(&p->areas, s->vaddr, 0);
        p->unmap_generation++;
    }
    handle_remove(&p->handles, s->handle, 0);
    if (s->prev)
        s->prev->next = s->next;
    else
        p->segments = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = 0;
    s->owner = 0;
    s->handle = 0;
    s->vaddr = 0;
}

int segment_move(struct segment *s, struct process *to, bool map, uint64_t vaddr, unsigned prot)
{
    if (s->pins)
        return -EBUSY;
    struct attach_plan plan;
    int err = plan_attach(s, to, map, vaddr, &plan);
    if (err)
        return err;
    /* The area may have been planned in the same address space the segment
     * leaves (a remap, or a move to oneself): detaching frees only the old
     * area, which the plan did not use. */
    if (s->owner)
        segment_detach(s);
    commit_attach(s, to, &plan, prot);
    return 0;
}

int segment_migrate(struct segment *s, uint64_t new_phys)
{
    if (s->pins)
        return -EBUSY;
    if (new_phys & (PAGE_SIZE - 1) || new_phys + s->size < new_phys)
        return -EINVAL;
    if (new_phys == s->phys)
        return 0;
    if (segment_overlaps(new_phys, s->size, s))
        return -EEXIST;
    /* Remapping may need a page table per 2 MiB window (where large pages
     * become small ones) and a directory or two. */
    if (s->vaddr && pool_free_frames() < s->size / LARGE_PAGE_SIZE + 4)
        return -ENOMEM;
    memmove(phys_to_virt(new_phys), phys_to_virt(s->phys), s->size);
    if (s->vaddr) {
        paging_unmap(s->owner->root, s->vaddr, s->size);
        VERIFY(paging_map(s->owner->root, s->vaddr, new_phys, s->size, map_flags(s->prot)) == 0);
        s->owner->unmap_generation++; /* conservative: the same pages are back */
    }
    rb_erase(&by_phys, &s->by_phys);
    s->phys = new_phys;
    phys_insert(s);
    return 0;
}

bool segment_large_mapped(const struct segment *s)
{
    unsigned flags;
    return s->vaddr && s->owner && paging_translate(s->owner->root, s->vaddr, 0, &flags) && (flags & MAP_LARGE);
}

void segment_info(const struct segment *s, bool reveal_phys, struct abi_seg_info *out)
{
    *out = (struct abi_seg_info){
        .sid = s->sid,
        .size = s->size,
        .vaddr = s->vaddr,
        .phys = (reveal_phys || s->pins) ? s->phys : 0,
        .owner_pid = s->owner ? s->owner->pid : 0,
        .pins = s->pins,
        .flags = s->flags | (segment_large_mapped(s) ? SEG_INFO_LARGE_PAGES : 0),
    };
}

struct segment *segment_first_by_phys(void) { return phys_entry(rb_first(&by_phys)); }
struct segment *segment_next_by_phys(const struct segment *s) { return phys_entry(rb_next(&s->by_phys)); }
uint64_t segment_count(void) { return live_segments; }

void segment_reclaim(struct segment *s, uint64_t pid)
{
    VERIFY(!s->owner);
    s->former_pid = pid;
    if (s->pins)
        s->flags |= SEG_INFO_QUARANTINED;
    s->reported = false;
    s->next = 0;
    s->prev = reclaim_tail;
    if (reclaim_tail)
        reclaim_tail->next = s;
    else
        reclaim_head = s;
    reclaim_tail = s;
}

/* Takes a segment off the reclaim queue without reporting it. */
void segment_reclaim_forget(struct segment *s)
{
    if (s->reported || (!s->prev && reclaim_head != s))
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        reclaim_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        reclaim_tail = s->prev;
    s->next = s->prev = 0;
}

struct segment *segment_reclaim_pop(void)
{
    struct segment *s = reclaim_head;
    if (!s)
        return 0;
    segment_reclaim_forget(s);
    s->reported = true;
    return s;
}
