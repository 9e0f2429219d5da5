/*
 * ABI layer: what a process sees of its own start and of other processes'
 * ends: the startup block, exit statuses, kernel statistics, boot modules.
 */
#ifndef ABI_PROC_H
#define ABI_PROC_H

#include <abi/types.h>

/*
 * Every thread starts with rdi = the argument its creator chose and rsi =
 * its process's pid. For a process's first thread the argument points to
 * this block, which its starter placed at the top of the thread's stack. args is the text the
 * spawner passed (for boot processes: the module's GRUB command line),
 * NUL-terminated.
 */
#define ABI_STARTUP_MAGIC   0x7465737365726131ull /* "tessera1" */
#define ABI_ARGS_MAX        512
#define ABI_STARTUP_HANDLES 8
/* Slots of abi_startup.handles with a fixed meaning. */
#define ABI_STARTUP_MEMSRV    0 /* the memory server's endpoint */
#define ABI_STARTUP_PARENT    1 /* an endpoint of the process's starter, if it gave one */
#define ABI_STARTUP_DEVICE    2 /* a device handle, for drivers */
#define ABI_STARTUP_SERVICE   3 /* an endpoint the process serves (servers), or its server's (clients) */
#define ABI_STARTUP_SUPERVISE 4 /* init: the memory server's process (control, wait), to restart it */
#define ABI_STARTUP_NAMES     5 /* the name service's endpoint (include/proto/names.h) */
#define ABI_STARTUP_REGISTRAR 6 /* a registrar of the name service: the names the process may register */
struct abi_startup {
    uint64_t magic;
    uint64_t reserved;
    uint64_t args_len;                     /* bytes in args, without the NUL */
    handle_t handles[ABI_STARTUP_HANDLES]; /* handles the starter gave, HANDLE_NONE if unused */
    char args[ABI_ARGS_MAX];
};
ABI_STATIC_ASSERT(sizeof(struct abi_startup) == 24 + 8 * ABI_STARTUP_HANDLES + ABI_ARGS_MAX, "startup block layout");

/* Where a process's first stack sits, whoever loads it (the kernel for the
 * first processes, the libsys loader for the others), and the startup
 * block's place at its top, 16-byte aligned. */
#define ABI_STACK_TOP    0x00007fffffff0000ull
#define ABI_STACK_SIZE   (64 * 1024ull)
#define ABI_STARTUP_ADDR ((ABI_STACK_TOP - sizeof(struct abi_startup)) & ~15ull)

/* A pid's slot (its low 32 bits, minus one) is below this. Processes
 * alive at once: at most 1,020 (the kernel keeps one slot in 256). */
#define ABI_PROC_MAX 1024u
/* Endpoint watches (SYS_EP_WATCH) one process may hold at once. */
#define ABI_WATCHES_MAX 1024u

/*
 * Exit statuses reported by SYS_PROC_WAIT. A process that calls SYS_EXIT
 * reports its own value (which must be >= 0); the kernel's own endings are
 * negative.
 */
#define ABI_EXIT_KILLED          (-1)   /* SYS_PROC_KILL */
#define ABI_EXIT_FAULT_BASE      (-256) /* killed by CPU exception v: BASE - v */
#define ABI_EXIT_FAULT(vector)   (ABI_EXIT_FAULT_BASE - (int64_t)(vector))
#define ABI_EXIT_IS_FAULT(s)     ((s) <= ABI_EXIT_FAULT_BASE && (s) > ABI_EXIT_FAULT_BASE - 256)
#define ABI_EXIT_FAULT_VECTOR(s) ((int)(ABI_EXIT_FAULT_BASE - (s)))

/* SYS_THREAD_AFFINITY's cpu argument: a CPU id, or one of these. */
#define ABI_CPU_ANY  UINT64_MAX       /* may run on any CPU */
#define ABI_CPU_SAME (UINT64_MAX - 1) /* leave it as it is (a query) */

/* Kernel statistics, for tests and monitors. */
struct abi_kinfo {
    uint64_t pool_frames_total; /* kernel frame pool, 4 KiB frames */
    uint64_t pool_frames_free;
    uint64_t user_bytes_free; /* physical memory not held by any process */
    uint64_t processes;       /* live processes */
    uint64_t threads;         /* live threads */
    uint64_t ticks;           /* timer interrupts since boot */
    uint64_t tsc_per_us;      /* TSC calibration against the PIT */
    uint64_t ncpus_present;   /* CPUs the firmware lists as enabled (1 without a MADT) */
    uint64_t flags;           /* KINFO_* */
    uint64_t ncpus_online;    /* CPUs running threads */
    /* The kernel's boot-time self-tests ([PASS]/[FAIL]/[SKIP] lines it printed). */
    uint32_t selftests_passed, selftests_failed, selftests_skipped;
    /* Pages the kernel's segment-id and process-id tables hold: they grow
     * with the most segments and processes live and give pages back as
     * those end (common/idtable.h). */
    uint32_t id_table_pages;
    /* The kernel lock (docs/smp.md): times taken, times a CPU had to wait
     * for it, and the nanoseconds of those waits in all, since boot. */
    uint64_t lock_acquired, lock_contended, lock_wait_ns;
    /* The TSC's reading at the clock's zero: SYS_CLOCK's nanoseconds are
     * abi_tsc_to_ns(rdtsc - tsc_at_boot, tsc_per_us), so a program can read
     * the same clock without entering the kernel (libsys clock_ns). */
    uint64_t tsc_at_boot;
};
ABI_STATIC_ASSERT(sizeof(struct abi_kinfo) == 128, "kinfo layout");

/* TSC ticks to nanoseconds, without overflowing for centuries: the one
 * conversion of the kernel's clock and of libsys's clock_ns. */
static inline uint64_t abi_tsc_to_ns(uint64_t ticks, uint64_t tsc_per_us)
{
    return (ticks / tsc_per_us) * 1000 + (ticks % tsc_per_us) * 1000 / tsc_per_us;
}
#define KINFO_IOMMU 0x1u /* devices reach only what is pinned for them (docs/iommu.md) */

/*
 * Accounts (SYS_PROC_LIMIT, SYS_ACCOUNT_INFO). Every process has one, and
 * what it holds is charged to it and to every ancestor's: a limit set on a
 * process bounds its whole subtree. Limits are set by a holder of the
 * process handle's RIGHT_CONTROL, that is, by its creator or whoever that
 * handed the control to. docs/security.md has the model.
 */
enum abi_resource {
    RES_MEMORY = 0,    /* bytes of segments the memory server created for it */
    RES_KMEM = 1,      /* bytes of kernel memory its objects take */
    RES_PROCESSES = 2, /* processes in the subtree (itself included) */
    RES_THREADS = 3,   /* live threads */
    RES_PINNED = 4,    /* bytes of segments pinned for DMA, or quarantined after */
    RES_COUNT
};
#define ABI_RES_SLOTS  8
#define ABI_LIMIT_NONE UINT64_MAX
struct abi_account {
    uint64_t used[ABI_RES_SLOTS];  /* the process and its descendants */
    uint64_t limit[ABI_RES_SLOTS]; /* set on this process (ABI_LIMIT_NONE: none of its own) */
};
ABI_STATIC_ASSERT(sizeof(struct abi_account) == 128, "account layout");
ABI_STATIC_ASSERT(RES_COUNT <= ABI_RES_SLOTS, "account slots");

/* What SYS_HANDLE_INFO tells of a handle. */
enum abi_handle_kind {
    ABI_HANDLE_PROCESS = 1,
    ABI_HANDLE_THREAD = 2,
    ABI_HANDLE_ENDPOINT = 3,
    ABI_HANDLE_SEGMENT = 4,
    ABI_HANDLE_DEVICE = 5,
    ABI_HANDLE_NOTIFICATION = 6,
    ABI_HANDLE_IRQ = 7,
};
struct abi_handle_info {
    uint32_t kind;   /* enum abi_handle_kind */
    uint32_t rights; /* RIGHT_* (abi/rights.h) */
    uint64_t id;     /* the pid of a process, the sid of a segment, else 0 */
};
ABI_STATIC_ASSERT(sizeof(struct abi_handle_info) == 16, "handle info layout");

#define ABI_MODULE_NAME_MAX 64
struct abi_module_info {
    uint64_t size;                  /* bytes */
    handle_t seg;                   /* init's handle to the image segment */
    uint64_t vaddr;                 /* where init has it mapped, read-only */
    char name[ABI_MODULE_NAME_MAX]; /* first word of the module's command line */
    char args[ABI_ARGS_MAX];        /* the whole module command line */
};
ABI_STATIC_ASSERT(sizeof(struct abi_module_info) == 24 + ABI_MODULE_NAME_MAX + ABI_ARGS_MAX, "module info layout");

#endif
