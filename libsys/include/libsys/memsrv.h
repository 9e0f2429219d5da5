/*
 * libsys: the memory server's client API (protocol in abi/memsrv.h). Each
 * call is one SYS_IPC_CALL to the server's endpoint, which a process finds
 * in its startup block (handles[ABI_STARTUP_MEMSRV]). Every function returns
 * 0 (or a count) on success and -E* on failure.
 */
#ifndef LIBSYS_MEMSRV_H
#define LIBSYS_MEMSRV_H

#include <abi/memsrv.h>
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

/* A new zero-filled segment of at least `size` bytes. align: 0 or a power
 * of two >= 4 KiB; flags: MS_ALLOC_*; limit: exclusive highest physical
 * address, used with MS_ALLOC_BELOW. */
int64_t ms_alloc(uint64_t size, uint64_t align, unsigned flags, uint64_t limit, struct ms_segment *out);
/* Gives the segment back (it leaves the caller's address space). */
int64_t ms_free(handle_t seg);

int64_t ms_stats_global(struct ms_stats_global *out);
int64_t ms_stats_client(uint64_t pid, struct ms_stats_client *out); /* pid 0: the caller */
int64_t ms_stats_region(unsigned index, struct ms_stats_region *out);
/* Compaction now. moves and bytes_moved may be NULL. */
int64_t ms_compact(enum ms_compact_mode mode, uint64_t size, uint64_t align, uint64_t limit,
                   uint64_t *moves, uint64_t *bytes_moved);
int64_t ms_quota(uint64_t pid, uint64_t bytes);      /* init only */
int64_t ms_map(unsigned columns);                     /* prints on the console */
int64_t ms_check(char *why, size_t len);              /* the server's invariant check */
int64_t ms_move(uint64_t sid);                        /* move a segment the caller holds */
int64_t ms_release(uint64_t sid);                     /* init only: free a quarantined segment */

#endif
