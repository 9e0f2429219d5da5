/*
 * Host tests of memsrv: a fake kernel behind struct ms_kernel_ops. It keeps
 * segments (sid, physical span, owner, pins, payer), refuses what the real
 * kernel refuses (spans outside RAM or over a live segment, migrating or
 * destroying pinned segments, charges past a payer's limit), quarantines
 * what a device may still reach, and plays the clients' side of IPC:
 * delivering a reply's segment, sending one with FREE, ending a process.
 */
#ifndef TESTS_MEMSRV_FAKE_KERNEL_H
#define TESTS_MEMSRV_FAKE_KERNEL_H

#include "ms_server.h"

#define FK_SEGS        4096
#define FK_BOOT        64
#define FK_RECLAIM     16384
#define FK_DMA_CHANGES 1024
#define FK_MEMSRV_PID  0x100000001ull
#define FK_INIT_PID    0x100000002ull

struct fk_seg {
    bool live;
    bool in_server; /* held by memsrv (a valid handle there) */
    bool dma;       /* pinned for a device, or tainted by one not yet quiesced */
    uint64_t sid, phys, size, owner;
    uint64_t payer; /* whose account pays (0: memsrv) */
    uint32_t pins, flags;
    bool dma_told;  /* the busy state memsrv last read from the DMA change queue */
    bool in_flight; /* a blocked send carries it (set by a test) */
    void *mem;      /* the books segment, mapped into "memsrv" */
};

#define FK_LIMITS 16
struct fk_limit {
    uint64_t pid, limit, used;
};

struct fake_kernel {
    struct ms_kernel_ops ops;
    struct memsrv ms;
    struct abi_mem_range boot[FK_BOOT];
    unsigned nboot;
    /* Segments: slot = sid >> 32; free slots on a stack; the slot + 1 of
     * the segment on each granule below map_granules (0: none). */
    struct fk_seg *segs;
    uint32_t seg_cap;
    uint32_t *free_slots;
    uint32_t nfree_slots;
    uint32_t *owner_map;
    uint64_t map_granules;
    uint64_t next_sid;
    struct abi_reclaim reclaim[FK_RECLAIM];
    unsigned nreclaim;
    /* The DMA change queue: sids whose busy state differs from what memsrv
     * was told (told: the state it last read), in order. */
    uint64_t dma_queue[FK_DMA_CHANGES];
    unsigned ndma;
    /* Called inside every migration, before it happens (memsrv holds no
     * lock then): the interleaving tests act as other clients there. */
    void (*on_migrate)(struct fake_kernel *fk, uint64_t sid, void *arg);
    void *on_migrate_arg;
    /* Called after the kernel made a segment for memsrv, before it
     * returns: memsrv may have let the books lock go (a large zero-fill). */
    void (*on_create)(struct fake_kernel *fk, uint64_t sid, void *arg);
    void *on_create_arg;
    /* Called when memsrv lets the books lock go to yield (the reclaim
     * list's batches): the tests act as other clients there. */
    void (*on_yield)(struct fake_kernel *fk, void *arg);
    void *on_yield_arg;
    unsigned yields;
    unsigned busy_refusals; /* migrations refused with -EBUSY */
    uint64_t now;
    uint64_t clock_step;  /* added to now at each read: time that passes while memsrv works */
    unsigned clock_reads; /* of now, by memsrv */
    unsigned migrations, creates, destroys;
    int64_t fail_migrate; /* nonzero: every migration fails with it */
    int64_t fail_create;
    int64_t fail_charge;               /* nonzero: every SYS_MS_SEG_CHARGE of an idle server segment fails with it */
    unsigned charges;                  /* SYS_MS_SEG_CHARGE calls that moved a charge */
    int64_t fail_give;                 /* nonzero: every SYS_MS_SEG_GIVE fails with it */
    unsigned gives;                    /* SYS_MS_SEG_GIVE calls that succeeded */
    struct fk_limit limits[FK_LIMITS]; /* the kernel's accounts, for the payers that have a limit */
    bool no_iommu;                     /* the last unpin leaves a segment tainted until fk_quiesce */
    unsigned segment_calls;            /* SYS_MS_SEGMENTS calls since the last fk_restart */
    char console[1 << 16];
    size_t console_len;
};

/* A machine: RAM [1 MiB, 1 MiB + ram_mib) and [4 GiB, 4 GiB + high_mib),
 * kernel spans, memsrv's and init's boot segments; room for FK_SEGS
 * segments, or seg_cap with fk_init_sized. */
void fk_init(struct fake_kernel *fk, uint64_t ram_mib, uint64_t high_mib);
void fk_init_sized(struct fake_kernel *fk, uint64_t ram_mib, uint64_t high_mib, uint32_t seg_cap);
int fk_start(struct fake_kernel *fk, const char *args);
/* Frees what the fake allocated (the books' memory); fk must be zeroed or
 * initialised before the first fk_init. */
void fk_fini(struct fake_kernel *fk);

/* The client's side of a request; returns the reply's label as int64. */
int64_t fk_request(struct fake_kernel *fk, struct ipc_msg *msg);
int64_t fk_alloc(struct fake_kernel *fk, uint64_t pid, uint64_t size, uint64_t align, uint64_t flags, uint64_t limit,
                 uint64_t *sid);
int64_t fk_free(struct fake_kernel *fk, uint64_t pid, uint64_t sid);
/* ALLOC_BATCH and FREE_BATCH as a client makes them: the batch's sids in
 * sids[0..count) on success (each checked to be pid's, mapped, of the
 * reply's size); a client's handle for a segment it holds. */
int64_t fk_alloc_batch(struct fake_kernel *fk, uint64_t pid, unsigned count, uint64_t size, uint64_t align,
                       uint64_t flags, uint64_t *sids);
int64_t fk_free_batch(struct fake_kernel *fk, uint64_t pid, const handle_t *handles, unsigned count);
handle_t fk_client_handle(struct fake_kernel *fk, uint64_t sid);
int64_t fk_simple(struct fake_kernel *fk, uint64_t pid, uint64_t label, uint64_t w0, uint64_t w1, uint64_t w2,
                  uint64_t w3);
/* Moves a segment to another process, as an IPC transfer would. */
void fk_transfer(struct fake_kernel *fk, uint64_t sid, uint64_t to_pid);
/* Pins (delta > 0) or unpins: a segment pinned once stays within a
 * device's reach (tainted) until fk_quiesce. A change of its DMA state is
 * queued for memsrv and notified (IPC_NOTIFY_DMA), as the kernel does. */
void fk_pin(struct fake_kernel *fk, uint64_t sid, int delta);
/* A FULL request from pid, run on a thread of its own (pthread start
 * routine): it waits in memsrv until the compactor's steps end the pass;
 * done is set (release) once result and m hold the reply. */
struct fk_full_call {
    struct fake_kernel *fk;
    uint64_t pid;
    struct ipc_msg m;
    int64_t result;
    int done;
};
void *fk_full_thread(void *arg);
/* A full compaction as a client asks for it: the request waits on one
 * thread while this one runs the compactor's steps, as memsrv's compactor
 * thread would. Returns the reply's label; moves and bytes from it. */
int64_t fk_full(struct fake_kernel *fk, uint64_t pid, uint64_t *moves, uint64_t *bytes);
/* Runs the compactor's steps until it has nothing to do (or max steps);
 * returns the steps taken. Each is checked to move at most MS_STEP_BYTES. */
unsigned fk_compact_idle(struct fake_kernel *fk, unsigned max);
/* The device was quiesced: the segment is untainted, and if it was
 * quarantined it comes through the reclaim list again, released. */
void fk_quiesce(struct fake_kernel *fk, uint64_t sid);
/* The kernel's limit on what pid's account may be charged (bytes). */
void fk_set_limit(struct fake_kernel *fk, uint64_t pid, uint64_t bytes);
/* Ends a process: its segments go to the kernel's reclaim list, notification delivered. */
void fk_exit(struct fake_kernel *fk, uint64_t pid);
/* The same, with the notification not (yet) delivered. */
void fk_end_process(struct fake_kernel *fk, uint64_t pid);

/* memsrv ends: what it held (its books, a FREE it had received, a segment
 * made for an ALLOC it had not answered) goes to the reclaim list, its boot
 * image stays for a successor, clients keep theirs; its state is wiped. */
void fk_crash(struct fake_kernel *fk);
/* A successor started as SYS_MS_RESTART would (memsrv.restart=number). */
int fk_restart(struct fake_kernel *fk, unsigned number);

struct fk_seg *fk_seg(struct fake_kernel *fk, uint64_t sid);
struct ms_stats_global fk_stats(struct fake_kernel *fk);
struct ms_stats_client fk_client(struct fake_kernel *fk, uint64_t pid);
/* memsrv's own check and the fake's: segments and the books agree. */
void fk_assert_consistent(struct fake_kernel *fk);
bool fk_console_has(struct fake_kernel *fk, const char *text);

#endif
