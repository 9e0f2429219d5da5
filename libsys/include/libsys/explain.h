/*
 * libsys layer: errors that explain themselves. An error code alone says
 * little ("E2BIG: argument too large" for an allocation larger than any RAM
 * region); what it means depends on the call that returned it. These
 * functions give that meaning in one line, for the kernel's calls
 * (docs/abi.md), the memory server's requests (docs/memsrv.md) and, with
 * the figures that explain it, an allocation the memory server refused.
 * Used by the console (servers/memctl/), the name-service and init
 * clients, and the server loop's log lines.
 *
 * Meanings are lower case, without a final period, written to follow
 * "NAME: " ("EBUSY: the segment is pinned: unpin it first").
 */
#ifndef LIBSYS_EXPLAIN_H
#define LIBSYS_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

/* "EBUSY"; "E?" for a code the ABI does not list. The sign is ignored.
 * (sys_strerror, libsys/syscall.h, gives "EBUSY: resource busy".) */
const char *err_name(int64_t err);

/* What `err` means as the result of kernel call `call` (SYS_*), or its
 * general meaning if the call gives it no particular one. */
const char *sys_error_meaning(unsigned call, int64_t err);
/* What `err` means as a server's reply to a request: -ENOSYS is "the
 * server has no such request", never "no such system call". */
const char *request_error_meaning(int64_t err);
/* What `err` means as a server's answer to request `label`, or
 * request_error_meaning's if the request gives it no particular one
 * (names_error_meaning, libsys/names.h, is the name service's). */
const char *ms_error_meaning(uint64_t label, int64_t err);   /* MS_* */
const char *init_error_meaning(uint64_t label, int64_t err); /* INIT_* */
const char *kv_error_meaning(uint64_t label, int64_t err);   /* KV_* */

/*
 * An MS_ALLOC refusal (err) of `size` bytes with MS_ALLOC_* `flags` and
 * physical `limit`, explained with figures the memory server and the
 * kernel give now: "larger than any RAM region (largest 3 GiB)", "no free
 * room below 1 MiB (636 KiB of RAM lies below it, none of it free)", "no
 * free run of 64 MiB (largest free run 12 MiB, 40 MiB free in all)", "over
 * this process's memory limit (holds 60 MiB of 63 MiB)". Written into buf
 * (cut to len, NUL-terminated), which is returned.
 */
const char *ms_explain_alloc(int64_t err, uint64_t size, unsigned flags, uint64_t limit, char *buf, size_t len);

/* How a process ended, from its exit status (abi/proc.h): "exit status
 * 0", "killed", "killed by CPU exception 14 (page fault)". */
const char *exit_status_text(int64_t status, char *buf, size_t len);

/* "64 KiB", "3 GiB", "1536 KiB", "100 bytes": the largest binary unit
 * that divides the size; for sizes in messages. */
const char *size_text(uint64_t bytes, char *buf, size_t len);
#define SIZE_TEXT(bytes) size_text((bytes), (char[24]){ 0 }, 24)

#endif
