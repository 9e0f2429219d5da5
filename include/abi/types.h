/*
 * ABI layer: basic types shared by the kernel and user space.
 * Included by kernel/ and libsys/; nothing here may depend on either side.
 */
#ifndef ABI_TYPES_H
#define ABI_TYPES_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

/*
 * A handle names a kernel object in the caller's handle table: the low 32 bits
 * are the slot, the high 32 bits the slot's generation when the handle was
 * made. 0 is never a valid handle.
 */
typedef uint64_t handle_t;
#define HANDLE_NONE ((handle_t)0)
/* Names the calling process where a call takes a process handle
 * (SYS_SEG_GIVE, SYS_HANDLE_GRANT). Never a real handle: slot 0xffffffff. */
#define HANDLE_SELF ((handle_t)0xffffffffffffffffull)

/* Process identifier, as a badge: slot and generation like a handle, global. */
typedef uint64_t pid_t_;
typedef uint64_t badge_t;
#define BADGE_KERNEL ((badge_t)0) /* messages the kernel itself posts */

/* Timeouts in nanoseconds for blocking calls. */
#define TIMEOUT_FOREVER UINT64_MAX
#define TIMEOUT_POLL    0
/* Timeouts and clocks count nanoseconds. */
#define NS_PER_US  ((uint64_t)1000)
#define NS_PER_MS  ((uint64_t)1000 * 1000)
#define NS_PER_SEC ((uint64_t)1000 * 1000 * 1000)

#define ABI_PAGE_SIZE       4096ull
#define ABI_LARGE_PAGE_SIZE (2ull * 1024 * 1024)
/* SYS_SEG_GIVE places a segment larger than this only at an address as
 * far past an ABI_LARGE_PAGE_SIZE boundary as its physical base is:
 * elsewhere it maps with small pages, an entry each, all written while the
 * kernel holds its lock. */
#define ABI_SEG_UNALIGNED_MAX (64ull * 1024 * 1024)

/* The user half of every address space. Pointers outside it are refused. */
#define ABI_USER_BASE 0x0000000000400000ull
#define ABI_USER_TOP  0x00007ffffffff000ull /* exclusive */

#define ABI_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

#endif
