/*
 * Kernel layer: segments. A segment is a physically contiguous span of 4 KiB
 * granules with at most one owner, named by one handle in the owner's table
 * and mapped (or not) in the owner's address space with the protection its
 * handle's rights allow. Segments are also named globally by a sid
 * (generation << 32 | slot + 1), which only the memory server may use. No
 * two live segments overlap physically: the kernel keeps them in a tree by
 * physical base and refuses overlaps.
 *
 * Ownerless segments are held by the kernel: boot module images before init
 * takes them, segments reclaimed from ended processes until the memory
 * server destroys them, and quarantined ones (a device may still reach
 * their frames).
 *
 * States that make a segment busy (-EBUSY for transfer, pin by another
 * device, and revoke):
 *   - in flight: a blocked send carries it (the model of docs/security.md:
 *     it stays the sender's, mapped, until a receiver takes it; nothing can
 *     take it from the sender meanwhile, and a second send is refused);
 *   - pinned: a device may be using it (pins > 0);
 *   - DMA-tainted: pinned for a device earlier, unpinned, and that device
 *     not quiesced since (no IOMMU stopped it). Its frames are still within
 *     the device's reach, so it may not move, change hands or be reused.
 * Migration refuses pinned and tainted segments; an in-flight one may
 * migrate (the message holds the object, never its frames). A tainted one
 * may still be handed back to the memory server, which cannot reuse its
 * frames: the kernel quarantines it until the device is quiesced.
 *
 * Busy (SMP): a migration copies the frames, and SYS_MS_SEG_CREATE zeroes
 * them, in bounded chunks with the kernel lock let go in between
 * (kernel/lock.h). Meanwhile the segment is busy: a thread that would
 * send, give or pin it waits until it is not (segment_wait_idle); so does a
 * thread of its owner that touches it (segment_fault_wait); the memory
 * server's calls on it get -EBUSY; a holder that ends meanwhile hands it
 * back once the work is done.
 *
 * Migration protocol. Under the kernel lock: check that the segment may
 * move (not pinned, not within a device's reach, not in flight, not
 * busy) and that the destination is free; mark it busy and reserve the
 * destination (no segment may be created over it); take the owner's
 * mapping away on every CPU (aspace_suspend: PTEs cleared, then a TLB
 * shootdown that returns only once every CPU that may cache the address
 * space has flushed). From then on no CPU can write the old frames: a
 * thread that touches the segment faults and waits. Copy, a chunk at a
 * time. Under the lock again: point the segment at the copy and map it
 * there (or, if the page tables the new mapping needs are not to be had,
 * map the old frames back and fail); wake the waiters, who retry the
 * access. A write is never lost: every write before the shootdown is in
 * the old frames before the copy starts, and none can happen after it
 * until the new mapping exists.
 *
 * Charges: the payer's account (whom the memory server created it for) is
 * charged RES_MEMORY for the bytes and RES_KMEM for this object until the
 * segment is destroyed; the pinner's account RES_PINNED while a device may
 * reach it (pinned, tainted or quarantined).
 */
#ifndef KERNEL_SEGMENT_H
#define KERNEL_SEGMENT_H

#include <stdint.h>
#include <stdbool.h>
#include <abi/rights.h>
#include <abi/seg.h>
#include <abi/types.h>
#include <common/list.h>
#include <common/rbtree.h>

struct account;
struct device;
struct process;
struct thread;

struct segment {
    uint64_t sid;
    uint64_t phys, size;
    struct process *owner;
    handle_t handle; /* in the owner's table */
    uint64_t vaddr;  /* in the owner; 0 when unmapped */
    rights_t rights; /* of the owner's handle; the mapping follows them */
    uint32_t pins;
    uint32_t flags;            /* SEG_INFO_QUARANTINED, SEG_INFO_MODULE */
    struct thread *in_flight;  /* the blocked sender whose message carries it */
    struct account *payer;     /* RES_MEMORY + RES_KMEM, until destroyed */
    struct account *pinner;    /* RES_PINNED, while a device may reach it */
    struct device *dma_device; /* pinned for it, or tainted by it (a reference) */
    bool quiesced_pinned;      /* its device was stopped while it was pinned, not pinned since */
    uint64_t former_pid;       /* for reclaim records */
    bool reported;             /* reclaimed and handed to the memory server */
    bool dma_told;             /* the DMA state the memory server last heard of */
    /* Busy: the kernel works on its frames with the kernel lock let go
     * between chunks (a migration's copy, a new segment's zero-fill). */
    bool busy;
    bool reclaim_when_idle;      /* its holder ended while it was busy */
    struct list_node link;       /* the owner's list, or the reclaim queue */
    struct list_node dma_link;   /* its device's list while dma_device is set */
    struct list_node dma_change; /* on the change queue while dma_told is out of date */
    struct rb_node by_phys;
};

void segment_init(void);
/* A new ownerless segment over [phys, phys+size), page aligned, charged to
 * payer (0: nobody, the kernel's own boot segments). The caller has
 * checked the span is memory it may hand out. -EEXIST if it overlaps a live
 * segment, -EDQUOT, -ENOMEM. */
int segment_create(uint64_t phys, uint64_t size, uint32_t flags, struct account *payer, struct segment **out);
/* Forgets an ownerless, idle segment (its frames are someone else's
 * business) and refunds its payer. */
void segment_destroy(struct segment *s);
/* Moves s's charge (its bytes and its object) to `to`, which is charged
 * first: -EDQUOT changes nothing. */
int segment_recharge(struct segment *s, struct account *to);
struct segment *segment_by_sid(uint64_t sid);
/* Pages the segment-id table holds now. */
uint32_t segment_id_pages(void);
bool segment_overlaps(uint64_t phys, uint64_t size, const struct segment *except);

/* -EBUSY if the segment may not change hands or be freed now (above). */
int segment_idle(const struct segment *s);
/* Gives an ownerless segment to p: a handle with `rights`, and a mapping at
 * vaddr (0: the kernel picks) unless `map` is false. All or nothing. */
int segment_attach(struct segment *s, struct process *p, bool map, uint64_t vaddr, rights_t rights);
/* Takes the segment from its owner (unmapped, handle gone): ownerless. */
void segment_detach(struct segment *s);
/* Moves a segment from its owner to p as segment_attach does; on failure it
 * stays where it was. -EBUSY if busy (in flight excepted: the caller is
 * the delivery that ends the flight, and clears it first). */
int segment_move(struct segment *s, struct process *to, bool map, uint64_t vaddr, rights_t rights);
/* Moves n segments (at most SEG_BATCH_MAX, distinct) from their owners to
 * p, each mapped where the kernel picks: all or none. -EBUSY if one is in
 * flight, pinned or within a device's reach; -ENOMEM (handles, page tables
 * or address space of p) with nothing changed. */
int segment_move_batch(struct segment *const *segs, unsigned n, struct process *to, rights_t rights);
/* Moves the contents to new_phys by the migration protocol above; the
 * owner's threads that touch the segment meanwhile wait. -EBUSY pinned,
 * tainted, in flight or busy; -EEXIST overlap; -ENOMEM page tables. */
int segment_migrate(struct segment *s, uint64_t new_phys);
/* Zeroes a new, unattached or server-held segment in chunks (busy
 * meanwhile; one chunk is zeroed with the lock held throughout, and the
 * segment is never seen busy). */
void segment_zero(struct segment *s);
/* If s is busy, waits until it is not and returns true: the caller must
 * look its handle up again (the segment may have changed hands or gone). */
bool segment_wait_idle(struct segment *s);
/* A fault at addr in p's address space: if addr lies in a segment of p's
 * being migrated, waits until it is not and returns true (the access is
 * retried). */
bool segment_fault_wait(struct process *p, uint64_t addr);
bool segment_large_mapped(const struct segment *s);
void segment_info(const struct segment *s, struct abi_seg_info *out);

/* DMA. Pin for device d on behalf of the owner: -EBUSY (in flight, or
 * pinned or tainted for another device), -ERANGE (pin count), -EDQUOT
 * (RES_PINNED), or 0 with *phys the base the device may use. */
int segment_pin(struct segment *s, struct device *d, uint64_t *phys);
/* -EINVAL if not pinned. The last unpin leaves the segment tainted until
 * the device is quiesced (no IOMMU), or unmaps it from the device's domain. */
int segment_unpin(struct segment *s);
/* The device was quiesced (its bus mastering turned off, or its IOMMU
 * domain gone): its unpinned segments are untainted, quarantined ones
 * released to the memory server. */
void segment_device_quiesced(struct device *d);
/* A process that pinned segments for d (its account: pinner) let go of its
 * handle to d, or ended: if it left anything within d's reach, d is
 * quiesced (its bus mastering turned off), which releases it. */
void segment_dma_owner_gone(struct device *d, struct account *pinner);
/* Whether a device may still reach the segment's frames. */
bool segment_dma_busy(const struct segment *s);

/* Checks every live segment's invariants (segment.c's header): 0, or
 * -EINVAL with the first broken one. Preemptible between segments. */
int segment_check_all(uint64_t *bad_sid, const char **why);

/* Segments whose DMA state the memory server has not heard of, oldest
 * first: segment_dma_change_first gives the first (0: none) and
 * segment_dma_change_told records the state the server heard, taking the
 * segment off the queue unless its state differs from that by now. The
 * queue holds each segment at most once, and a segment whose state went
 * and came back is off it. */
struct segment *segment_dma_change_first(void);
struct segment *segment_dma_change_next(const struct segment *s);
void segment_dma_change_told(struct segment *s, bool busy);

/* Iteration in physical order (for the memory server's boot information). */
struct segment *segment_first_by_phys(void);
/* The first segment whose base is at least phys, or 0. O(log n). */
struct segment *segment_at_or_after(uint64_t phys);
struct segment *segment_next_by_phys(const struct segment *s);
uint64_t segment_count(void);

/* Ended processes' segments, waiting for the memory server. A segment a
 * device may still reach is queued quarantined: the server keeps its frames
 * locked until it comes through the queue again, released. */
void segment_reclaim(struct segment *s, uint64_t pid);
struct segment *segment_reclaim_pop(void);
void segment_reclaim_forget(struct segment *s);
/* The memory server destroys a segment it holds or the kernel reclaimed
 * (idle): if a device may still reach it, it is quarantined instead
 * (returns 1). -EBUSY while pinned or in flight. */
int segment_retire(struct segment *s);

#endif
