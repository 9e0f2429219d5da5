/*
 * Kernel layer: segments. A segment is a physically contiguous span of 4 KiB
 * granules with at most one owner, named by one handle in the owner's table
 * and mapped (or not) in the owner's address space. Segments are also named
 * globally by a sid (generation << 32 | slot + 1), which only the memory
 * server may use. No two live segments overlap physically: the kernel keeps
 * them in a tree by physical base and refuses overlaps.
 *
 * Ownerless segments are held by the kernel: boot module images before init
 * takes them, segments reclaimed from ended processes until the memory
 * server destroys them, and quarantined ones (pinned when their process
 * ended).
 */
#ifndef KERNEL_SEGMENT_H
#define KERNEL_SEGMENT_H

#include <stdint.h>
#include <stdbool.h>
#include <abi/seg.h>
#include <abi/types.h>
#include <common/rbtree.h>

struct process;

struct segment {
    uint64_t sid;
    uint64_t phys, size;
    struct process *owner;
    handle_t handle;              /* in the owner's table */
    uint64_t vaddr;               /* in the owner; 0 when unmapped */
    unsigned prot;                /* SEG_PROT_* of the mapping */
    uint32_t pins;
    uint32_t flags;               /* SEG_INFO_QUARANTINED, SEG_INFO_MODULE */
    uint64_t former_pid;          /* for reclaim records */
    bool reported;                /* reclaimed and handed to the memory server */
    struct segment *next, *prev;  /* the owner's list, or the reclaim queue */
    struct rb_node by_phys;
};

void segment_init(void);
/* A new ownerless segment over [phys, phys+size), page aligned. The caller
 * has checked the span is memory it may hand out. -EEXIST if it overlaps a
 * live segment, -ENOMEM. */
int segment_create(uint64_t phys, uint64_t size, uint32_t flags, struct segment **out);
/* Forgets an ownerless segment (its frames are someone else's business). */
void segment_destroy(struct segment *s);
struct segment *segment_by_sid(uint64_t sid);
bool segment_overlaps(uint64_t phys, uint64_t size, const struct segment *except);

/* Gives an ownerless segment to p: a handle, and a mapping at vaddr (0: the
 * kernel picks) unless `map` is false. All or nothing. */
int segment_attach(struct segment *s, struct process *p, bool map, uint64_t vaddr, unsigned prot);
/* Takes the segment from its owner (unmapped, handle gone): ownerless. */
void segment_detach(struct segment *s);
/* Moves a segment from its owner to p as segment_attach does; on failure it
 * stays where it was. -EBUSY if pinned. */
int segment_move(struct segment *s, struct process *to, bool map, uint64_t vaddr, unsigned prot);
/* Copies the contents to new_phys, remaps the owner, flushes the TLB. */
int segment_migrate(struct segment *s, uint64_t new_phys);
bool segment_large_mapped(const struct segment *s);
void segment_info(const struct segment *s, bool reveal_phys, struct abi_seg_info *out);

/* Iteration in physical order (for the memory server's boot information). */
struct segment *segment_first_by_phys(void);
struct segment *segment_next_by_phys(const struct segment *s);
uint64_t segment_count(void);

/* Ended processes' segments, waiting for the memory server. */
void segment_reclaim(struct segment *s, uint64_t pid);
struct segment *segment_reclaim_pop(void);
void segment_reclaim_forget(struct segment *s);

#endif
