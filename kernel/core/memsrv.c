/*
 * Kernel layer: the memory server's kernel side (kernel/memsrv.h) and its
 * system calls (SYS_MS_*, the POWER_MEMSRV column of abi/syscall.h). The
 * memory server names segments by sid; the kernel creates, migrates and
 * destroys them on its word, within the RAM the server was handed and
 * outside the kernel's own ranges, and charges each new one to the client
 * it is for.
 */
#include <abi/errno.h>
#include <abi/seg.h>
#include <arch/arch.h>
#include <common/fmt.h>
#include <common/string.h>
#include <kernel/boot.h>
#include <kernel/account.h>
#include <kernel/console.h>
#include <kernel/memsrv.h>
#include <kernel/physmem.h>
#include <kernel/proc.h>
#include <kernel/segment.h>
#include <kernel/usercopy.h>
#include "syscalls.h"

#define WORLD_MAX 128

static struct phys_range ram_regions[WORLD_MAX], kernel_ranges[WORLD_MAX];
static unsigned nram, nkernel;
/* What the server may name: each RAM region less every kernel range, in
 * pieces, recorded by the same walk that finds the kernel ranges (each
 * lies within one region, so there are at most nram + nkernel pieces). A
 * span lies in one region and outside the kernel's ranges exactly when it
 * lies in one piece, so a check is one containment test (the piece the
 * last check found, most of the time) instead of a walk over both lists. */
#define PIECES_MAX (2 * WORLD_MAX)
static struct phys_range pieces[PIECES_MAX];
static unsigned npieces, last_piece;

static struct process *self(void) { return current->proc; }

/* Appends [base, end), if not empty, to a list of at most max ranges. */
static void add_range(struct phys_range *list, unsigned *n, unsigned max, const char *what, uint64_t base, uint64_t end)
{
    if (end <= base)
        return;
    if (*n == max)
        panic("memsrv world: more than %u %s", max, what);
    list[(*n)++] = (struct phys_range){ base, end - base };
}

void memsrv_world_record(const struct mb_info *info)
{
    for (size_t i = 0; i < info->nregions && nram < WORLD_MAX; i++)
        if (physmem_ram_pages(&info->regions[i], &ram_regions[nram]))
            nram++;
    /* The kernel's ranges: RAM that is neither free nor a segment. Free
     * ranges and segments are both sorted and disjoint, so one merge walk
     * per region finds the gaps between them. */
    unsigned next_free = 0;
    struct phys_range free_range;
    bool have_free = physmem_range(next_free, &free_range);
    struct segment *seg = segment_first_by_phys();
    for (unsigned i = 0; i < nram; i++) {
        uint64_t cursor = ram_regions[i].base, end = ram_regions[i].base + ram_regions[i].len;
        uint64_t piece = cursor; /* where the piece of RAM being recorded starts */
        while (cursor < end) {
            while (have_free && free_range.base + free_range.len <= cursor)
                have_free = physmem_range(++next_free, &free_range);
            while (seg && seg->phys + seg->size <= cursor)
                seg = segment_next_by_phys(seg);
            /* The next owned interval: whichever of the two starts first. */
            uint64_t owned_base = end, owned_end = end;
            if (have_free && free_range.base < owned_base) {
                owned_base = free_range.base;
                owned_end = free_range.base + free_range.len;
            }
            if (seg && seg->phys < owned_base) {
                owned_base = seg->phys;
                owned_end = seg->phys + seg->size;
            }
            if (owned_base > cursor) {
                uint64_t kernel_end = owned_base < end ? owned_base : end;
                add_range(kernel_ranges, &nkernel, WORLD_MAX, "kernel ranges", cursor, kernel_end);
                add_range(pieces, &npieces, PIECES_MAX, "pieces of RAM", piece, cursor);
                piece = kernel_end;
            }
            cursor = owned_end > cursor ? owned_end : end;
        }
        add_range(pieces, &npieces, PIECES_MAX, "pieces of RAM", piece, end);
    }
}

static bool piece_holds(unsigned i, uint64_t phys, uint64_t end)
{
    return phys >= pieces[i].base && end <= pieces[i].base + pieces[i].len;
}

bool memsrv_world_owns(uint64_t phys, uint64_t size)
{
    uint64_t end = phys + size;
    if (!size || end < phys || ((phys | size) & (PAGE_SIZE - 1)))
        return false;
    if (last_piece < npieces && piece_holds(last_piece, phys, end))
        return true;
    for (unsigned i = 0; i < npieces; i++) {
        if (piece_holds(i, phys, end)) {
            last_piece = i;
            return true;
        }
    }
    return false;
}

int64_t sys_ms_bootinfo(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct abi_mem_range r = { 0 };
    uint64_t i = a0;
    if (i < nram) {
        r = (struct abi_mem_range){ .base = ram_regions[i].base, .size = ram_regions[i].len, .kind = ABI_MEM_REGION };
    } else if ((i -= nram) < nkernel) {
        r = (struct abi_mem_range){ .base = kernel_ranges[i].base,
                                    .size = kernel_ranges[i].len,
                                    .kind = ABI_MEM_KERNEL };
    } else {
        i -= nkernel;
        struct segment *s = segment_first_by_phys();
        while (s && i--)
            s = segment_next_by_phys(s);
        if (!s)
            return -ENOENT;
        r = (struct abi_mem_range){ .base = s->phys, .size = s->size, .sid = s->sid, .kind = ABI_MEM_SEGMENT };
    }
    return copy_to_user(a1, &r, sizeof(r));
}

int64_t sys_ms_seg_create(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    uint64_t phys = a0, size = a1, payer_pid = a2, no_sid = 0;
    if (!memsrv_world_owns(phys, size))
        return -EINVAL;
    /* The sid goes with the handle (no SYS_SEG_INFO to learn it); the
     * word is written first so the one written after cannot fault. */
    if (a3 && copy_to_user(a3, &no_sid, sizeof(no_sid)) != 0)
        return -EFAULT;
    /* The client it is for pays; 0 is the server's own (its books). */
    struct process *payer = payer_pid ? proc_by_pid(payer_pid) : self();
    if (!payer)
        return -EPEER; /* the client ended before its segment was made */
    struct segment *s;
    int err = segment_create(phys, size, 0, payer->account, &s);
    if (err)
        return err;
    err = segment_attach(s, self(), false, 0, RIGHTS_SEGMENT);
    if (err) {
        segment_destroy(s);
        return err;
    }
    /* Guarantee 4: nobody sees what the frames held before. In chunks:
     * a large segment must not hold the kernel lock for its whole size. */
    uint64_t sid = s->sid;
    handle_t handle = s->handle;
    segment_zero(s);
    if (a3)
        (void)copy_to_user(a3, &sid, sizeof(sid)); /* failing, the sid stays 0: unnamed */
    return (int64_t)handle;
}

int64_t sys_ms_seg_revoke(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct segment *s = segment_by_sid(a0);
    if (!s || (s->flags & SEG_INFO_MODULE) || (!s->owner && !s->reported))
        return -ENOENT;
    int err = segment_idle(s);
    if (err)
        return err;
    err = s->owner ? segment_move(s, self(), false, 0, RIGHTS_SEGMENT)
                   : segment_attach(s, self(), false, 0, RIGHTS_SEGMENT);
    return err ? err : (int64_t)s->handle;
}

int64_t sys_ms_seg_migrate(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct segment *s = segment_by_sid(a0);
    if (!s)
        return -ENOENT;
    if (!memsrv_world_owns(a1, s->size))
        return -EINVAL;
    return segment_migrate(s, a1);
}

int64_t sys_ms_seg_query(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct segment *s = segment_by_sid(a0);
    if (!s)
        return -ENOENT;
    struct abi_seg_info info;
    segment_info(s, &info);
    return copy_to_user(a1, &info, sizeof(info));
}

int64_t sys_ms_seg_destroy(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct segment *s = segment_by_sid(a0);
    if (!s)
        return -ENOENT;
    bool held_by_server = s->owner == self();
    /* Ownerless: reclaimed from an ended process and reported, and not
     * still quarantined. */
    bool held_by_kernel = !s->owner && !(s->flags & (SEG_INFO_MODULE | SEG_INFO_QUARANTINED)) && s->reported;
    if (!held_by_server && !held_by_kernel)
        return (s->flags & SEG_INFO_QUARANTINED) ? -EBUSY : -EPERM;
    if (held_by_kernel)
        segment_reclaim_forget(s);
    return segment_retire(s);
}

/* A segment the server holds changes payer: a freed one it keeps whole
 * for the next request of its size is charged to the server, and to the
 * client it goes to next. Charged to anyone but the server it is
 * zero-filled first, as a new segment is: nobody sees what the frames held
 * before, whatever the server does. Either way the server's handle gets
 * every segment right back. Idle only: a segment a device may still reach
 * goes through SYS_MS_SEG_DESTROY's quarantine, never back to a client. */
int64_t sys_ms_seg_charge(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    uint64_t sid = a0, payer_pid = a1;
    struct segment *s = segment_by_sid(sid);
    if (!s || s->owner != self())
        return -ENOENT;
    if (segment_idle(s))
        return -EBUSY;
    struct process *payer = payer_pid ? proc_by_pid(payer_pid) : self();
    if (!payer || payer->exited)
        return -EPEER;
    SYSCALL_TRY(segment_recharge(s, payer->account));
    /* Kept to be handed out again, it is a new segment in all but its
     * sid: the rights a holder gave up (a read-only mapping) come back. */
    if (s->rights != RIGHTS_SEGMENT) {
        handle_renew(&self()->handles, s->handle, RIGHTS_SEGMENT);
        s->rights = RIGHTS_SEGMENT;
    }
    if (payer != self())
        segment_zero(s);
    return 0;
}

/* A client's batch: SYS_MS_SEG_GIVE hands the server's new segments over,
 * SYS_MS_SEG_FREE destroys segments the client names by handle. Both check
 * every entry before changing anything and write the caller's array back
 * once before the change, so a change is never made that cannot be
 * reported. */
static int batch_in(uint64_t user, uint64_t n, void *v, size_t entry)
{
    if (n == 0 || n > SEG_BATCH_MAX)
        return -EINVAL;
    int err = copy_from_user(v, user, n * entry);
    return err ? err : copy_to_user(user, v, n * entry);
}

/* Whether entry i names a segment an earlier entry named: a batch may not
 * name one twice (it would be moved or destroyed twice). */
static bool named_before(struct segment *const *segs, uint64_t i)
{
    for (uint64_t j = 0; j < i; j++)
        if (segs[j] == segs[i])
            return true;
    return false;
}

int64_t sys_ms_seg_give(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct abi_seg_give v[SEG_BATCH_MAX];
    struct segment *segs[SEG_BATCH_MAX];
    SYSCALL_TRY(batch_in(a1, a2, v, sizeof(v[0])));
    struct process *to = proc_by_pid(a0);
    if (!to || to->exited)
        return -EPEER;
    if (to == self())
        return -EINVAL;
    for (uint64_t i = 0; i < a2; i++) {
        segs[i] = segment_by_sid(v[i].sid);
        if (!segs[i] || segs[i]->owner != self())
            return -ENOENT;
        if (segs[i]->busy)
            return -EBUSY;
        if (named_before(segs, i))
            return -EINVAL;
    }
    SYSCALL_TRY(segment_move_batch(segs, (unsigned)a2, to, RIGHTS_SEGMENT));
    for (uint64_t i = 0; i < a2; i++) {
        v[i].handle = segs[i]->handle;
        v[i].vaddr = segs[i]->vaddr;
    }
    return copy_to_user(a1, v, a2 * sizeof(v[0]));
}

int64_t sys_ms_seg_free(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct abi_seg_free v[SEG_BATCH_MAX];
    struct segment *segs[SEG_BATCH_MAX];
    SYSCALL_TRY(batch_in(a1, a2, v, sizeof(v[0])));
    for (uint64_t i = 0; i < a2; i++) {
        /* Looked up again after each wait: the holder or its handles may
         * have changed meanwhile. */
        struct process *from = proc_by_pid(a0);
        if (!from)
            return -EPEER;
        SYSCALL_TRY(handle_get(&from->handles, v[i].handle, HANDLE_SEGMENT, 0, (void **)&segs[i], 0));
        if (segment_wait_idle(segs[i])) {
            i = (uint64_t)-1; /* a migration or zero-fill ended: start over */
            continue;
        }
        if (segs[i]->pins || segs[i]->in_flight)
            return -EBUSY;
        if (named_before(segs, i))
            return -EINVAL;
    }
    for (uint64_t i = 0; i < a2; i++) {
        v[i].sid = segs[i]->sid;         /* read first: a destroyed segment is gone */
        int r = segment_retire(segs[i]); /* idle, so it cannot refuse */
        VERIFY(r >= 0);
        v[i].result = (uint64_t)r;
    }
    return copy_to_user(a1, v, a2 * sizeof(v[0]));
}

/* The record readers below return at most a batch a call, built on the
 * kernel stack and copied out whole; the server calls again for more. */
#define RECORD_BATCH 32

static uint64_t batch_of(uint64_t asked) { return asked < RECORD_BATCH ? asked : RECORD_BATCH; }

int64_t sys_ms_reclaimed(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    uint64_t max = batch_of(a1);
    if (!user_range_valid(a0, max * sizeof(struct abi_reclaim)))
        return -EFAULT;
    /* Nothing is taken off the queue unless the records can be written:
     * a fault here would lose them. */
    struct abi_reclaim probe;
    if (max && (copy_from_user(&probe, a0, sizeof(probe)) || copy_to_user(a0, &probe, sizeof(probe)) ||
                copy_from_user(&probe, a0 + (max - 1) * sizeof(probe), sizeof(probe)) ||
                copy_to_user(a0 + (max - 1) * sizeof(probe), &probe, sizeof(probe))))
        return -EFAULT;
    struct abi_reclaim batch[RECORD_BATCH];
    uint64_t n = 0;
    struct segment *s;
    while (n < max && (s = segment_reclaim_pop())) {
        batch[n++] = (struct abi_reclaim){
            .sid = s->sid,
            .phys = s->phys,
            .size = s->size,
            .pid = s->former_pid,
            .flags = s->flags & SEG_INFO_QUARANTINED,
        };
    }
    if (copy_to_user(a0, batch, n * sizeof(batch[0])) != 0)
        kprintf("memsrv: %lu reclaim records lost to a fault in the server's buffer\n", n);
    return (int64_t)n;
}

int64_t sys_ms_dma_changes(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    uint64_t max = batch_of(a1);
    struct abi_dma_change batch[RECORD_BATCH];
    uint64_t n = 0;
    for (struct segment *s = segment_dma_change_first(); s && n < max; s = segment_dma_change_next(s))
        batch[n++] = (struct abi_dma_change){ .sid = s->sid, .busy = segment_dma_busy(s) };
    /* Off the queue only once the server has the records. The copy may
     * wait (the server's buffer being moved), and meanwhile a segment may
     * go, or change again: each is looked up again, marked with the state
     * the server was given, and stays queued if it differs now. */
    int err = copy_to_user(a0, batch, n * sizeof(batch[0]));
    if (err)
        return err;
    for (uint64_t i = 0; i < n; i++) {
        struct segment *s = segment_by_sid(batch[i].sid);
        if (s)
            segment_dma_change_told(s, batch[i].busy);
    }
    return (int64_t)n;
}

int64_t sys_ms_segments(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    uint64_t max = batch_of(a2);
    struct abi_seg_record batch[RECORD_BATCH];
    uint64_t n = 0;
    for (struct segment *s = segment_at_or_after(a0); s && n < max; s = segment_next_by_phys(s)) {
        struct abi_seg_info info;
        segment_info(s, &info);
        uint32_t flags = info.flags & (SEG_INFO_QUARANTINED | SEG_INFO_MODULE | SEG_INFO_DMA | SEG_INFO_IN_FLIGHT);
        if (!s->owner && !(s->flags & SEG_INFO_MODULE)) {
            flags |= SEG_RECORD_RECLAIMED;
            if (s->reported)
                flags |= SEG_RECORD_REPORTED;
        }
        batch[n++] = (struct abi_seg_record){
            .sid = s->sid,
            .phys = s->phys,
            .size = s->size,
            .owner_pid = info.owner_pid,
            .payer_pid = info.payer_pid,
            .flags = flags,
            .pins = s->pins,
        };
    }
    int err = copy_to_user(a1, batch, n * sizeof(batch[0]));
    return err ? err : (int64_t)n;
}

/* The memory server's arguments: the kernel's command line, init's pid, and
 * how many times it was restarted (its successors say so in their logs). */
static unsigned restarts;

int64_t sys_ms_restart(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    char args[ABI_ARGS_MAX];
    int n =
        fmt_snprintf(args, sizeof(args), "%s init.pid=%#lx memsrv.restart=%u", boot_cmdline, self()->pid, restarts + 1);
    if (n < 0 || (size_t)n >= sizeof(args))
        return -E2BIG;
    handle_t h;
    SYSCALL_TRY(syscall_reserve_handle(&h));
    struct process *p = NULL;
    int err = proc_restart_memsrv(args, (size_t)n, &p);
    if (!err) {
        restarts++;
        kprintf("tessera: memory server restarted (%u so far), pid %#lx\n", restarts, p->pid);
    }
    return syscall_publish_shared(h, err, p, HANDLE_PROCESS, RIGHT_CONTROL | RIGHT_WAIT);
}
