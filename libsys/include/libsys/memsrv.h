/*
 * libsys: the memory server's client API (protocol in proto/memsrv.h). Each
 * call is one SYS_IPC_CALL to the server's endpoint, which a process finds
 * in its startup block (handles[ABI_STARTUP_MEMSRV]). Every function returns
 * 0 (or a count) on success and -E* on failure. A call made while the
 * server is down (crashed, being restarted by init) is made again, with
 * sleeps of 1 ms growing to 100 ms, for up to 10 s of sleep; -EPEER after
 * that (memsrv_client.c says why repeating is safe).
 */
#ifndef LIBSYS_MEMSRV_H
#define LIBSYS_MEMSRV_H

#include <proto/memsrv.h>
#include <abi/types.h>

/* A segment the caller holds, mapped at addr. */
struct ms_segment {
    handle_t handle;
    void *addr;
    uint64_t size;
    uint64_t sid;
};

/* The server's endpoint: from the startup block unless set explicitly. */
handle_t ms_endpoint(void);
void ms_set_endpoint(handle_t ep);

/* A new zero-filled segment of at least `size` bytes (rounded up to 4 KiB),
 * mapped into the caller and charged to it; *out gets its handle, address,
 * size and sid. align: 0 or a power of two >= 4 KiB; flags: MS_ALLOC_*;
 * limit: exclusive highest physical address, used with MS_ALLOC_BELOW (else
 * 0). Errors: -EINVAL, -E2BIG (more than RAM), -ERANGE (no region below
 * limit), -EDQUOT, -ENOMEM, -EAGAIN (memsrv's client table full), -EPEER
 * (a reply without a segment), or the kernel's IPC error. */
int64_t ms_alloc(uint64_t size, uint64_t align, unsigned flags, uint64_t limit, struct ms_segment *out);
/* Gives the segment back (it leaves the caller's address space; its handle
 * is dead on success). -EBUSY if it is pinned (still the caller's). If the
 * server refuses it (-ENOENT: not one it handed out), it sends it back
 * under a new handle this call cannot return: the segment stays mapped in
 * the caller, unreachable, until exit (docs/memsrv.md, "Client API"). */
int64_t ms_free(handle_t seg);

/* Batches (at most MS_BATCH_MAX segments a call), all or none.
 * ms_alloc_batch: count zero-filled segments of `size` bytes each, mapped
 * and charged as ms_alloc's, into out[0..count); flags MS_ALLOC_LARGE or
 * MS_ALLOC_NOWAIT (a batch never waits for compaction: -ENOMEM when one
 * of them finds no room). out[i].sid is 0: the reply has no room for
 * sids (sys_seg_info gives one). ms_free_batch: gives back the segments
 * the caller holds under segs[0..count): -EBADH if one is not a segment
 * the caller holds, -EBUSY if one is pinned or being sent, -EINVAL for a
 * handle twice; on any error every one stays the caller's. -EINVAL for a
 * count of 0 or over MS_BATCH_MAX. */
int64_t ms_alloc_batch(unsigned count, uint64_t size, uint64_t align, unsigned flags, struct ms_segment *out);
int64_t ms_free_batch(const handle_t *segs, unsigned count);

/* Statistics (proto/memsrv.h). client: pid 0 is the caller; -ENOENT for an
 * unknown pid. region: -ENOENT past the last region, so iterate from 0
 * until it. -EINVAL for a NULL out or a reply of the wrong size. */
int64_t ms_stats_global(struct ms_stats_global *out);
int64_t ms_stats_client(uint64_t pid, struct ms_stats_client *out);
int64_t ms_stats_region(unsigned index, struct ms_stats_region *out);
int64_t ms_stats_compaction(struct ms_stats_compaction *out);
/* How this server came up: restarts 0 for the one started at boot; a
 * restarted one says how long its books took and what it found. */
int64_t ms_stats_restart(struct ms_stats_restart *out);
/* Compaction now: MS_COMPACT_FULL (a whole pass), _STEP (one background
 * step) or _TARGET (make a free run of size/align below limit; -ENOMEM if it
 * cannot, with the counts still reported). size, align and limit are used
 * only with TARGET. moves and bytes_moved may be NULL. */
int64_t ms_compact(enum ms_compact_mode mode, uint64_t size, uint64_t align, uint64_t limit, uint64_t *moves,
                   uint64_t *bytes_moved);
/* Prints the memory map on the console, `columns` characters a row (0: 64,
 * at most 200). */
int64_t ms_map(unsigned columns);
/* Prints MS_MAP_ZOOM_ROWS rows of the map from base, a character for each
 * per_char bytes (MS_MAP_ZOOM_4K or MS_MAP_ZOOM_64K; base a multiple). */
int64_t ms_map_zoom(uint64_t base, uint64_t per_char, unsigned columns);
/* Runs the server's invariant checker: 0, or -EINVAL with the reason copied
 * (NUL-terminated, cut to len) into why, which may be NULL. */
int64_t ms_check(char *why, size_t len);
/* Moves a segment the caller holds to another physical place, contents
 * kept. -ENOENT not the caller's, -EBUSY pinned, -ENOMEM no room. */
int64_t ms_move(uint64_t sid);
/* ms_move, and the physical base the server moved it to in *base (if not
 * NULL). Background compaction may move it again at any time after. */
int64_t ms_move_to(uint64_t sid, uint64_t *base);
/* Init only: takes a segment back from the client that holds it (its
 * mapping goes away) and frees it. -EBUSY while pinned, -ENOENT for an
 * unknown sid. */
int64_t ms_revoke(uint64_t sid);
/* Pinning is a kernel call on the segment's handle and a device's, not a
 * memsrv request: sys_seg_pin / sys_seg_unpin (libsys/syscall.h). Limits
 * on what a client may hold are the kernel's (sys_proc_limit): past them
 * ms_alloc is -EDQUOT. */

#endif
