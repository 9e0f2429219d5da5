/*
 * libsys: starting a program from an ELF image in memory (init uses it on
 * the boot modules). The loader checks the image, asks the memory server for
 * a segment per loadable part and for the stack, fills them, gives them to
 * an empty process at their addresses, grants it the handles asked for,
 * sets its limits, writes the startup block and starts the first thread.
 * The new process's image and stack are charged to the caller; what it
 * allocates later, to itself and so to the caller's subtree.
 */
#ifndef LIBSYS_LOADER_H
#define LIBSYS_LOADER_H

#include <stddef.h>
#include <abi/proc.h>
#include <abi/rights.h>
#include <abi/types.h>

/* One handle the child receives in its startup block. */
struct loader_grant {
    handle_t handle; /* one of the caller's (it needs RIGHT_GRANT); HANDLE_NONE: slot left empty */
    rights_t rights; /* the rights the child gets of it (RIGHTS_SAME: all the caller's but
                         RIGHT_RECV; with RIGHT_RECV an endpoint's receive right moves to the child) */
};

struct loader_spec {
    const char *name;  /* the process's name (< 32 bytes) */
    const void *image; /* the ELF file, mapped */
    size_t size;
    const char *args;                                /* its startup arguments */
    uint32_t powers;                                 /* POWER_*, at most the caller's */
    struct loader_grant grants[ABI_STARTUP_HANDLES]; /* [i] goes to startup handles[i] */
    uint64_t limits[RES_COUNT];                      /* its account's limits (ABI_LIMIT_NONE: none of its own) */
};

/* A spec with no powers, no grants and no limits of its own. */
void loader_spec_init(struct loader_spec *spec, const char *name, const void *image, size_t size, const char *args);

/*
 * The limits init puts on every program it starts (the suite on the
 * hostile ones), so that no one of them, with its descendants, can starve
 * the others or its starter: half the memory the memory server manages, a
 * quarter of the kernel's frame pool, 64 processes, 256 threads, and an
 * eighth of memory pinned for devices. Should the memory server not
 * answer, "memory" is what no process holds now, by the kernel's count.
 */
void loader_default_limits(uint64_t limits[RES_COUNT]);
/* The device a started program pins its segments for (startup slot
 * DEVICE): QEMU's edu device if there is one, else the host bridge (every
 * machine has one; its bus mastering is never touched). Opened once by the
 * caller, which needs POWER_DEVICES; HANDLE_NONE if neither opens. */
handle_t loader_dma_device(void);

/* Starts the program. Returns a process handle (with every right), or
 * -ENOEXEC (with the reason on the console), -E2BIG, or the error of the
 * step that failed; on failure nothing is left behind. */
int64_t loader_spawn(const struct loader_spec *spec);

#endif
