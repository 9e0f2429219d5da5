/*
 * ABI layer: what init serves to the programs it starts at boot.
 *
 * Without test= on the command line, init starts the boot modules and gives
 * each one, in startup slot ABI_STARTUP_PARENT, an endpoint of its own that
 * init serves (one per program, so that a server receiving on its slot
 * PARENT, as the suite's pair servers do, takes no one else's requests).
 * Requests are SYS_IPC_CALLs with a label below; the reply's label is 0 or
 * -E* as a uint64. Anything else gets -ENOSYS.
 */
#ifndef ABI_INIT_H
#define ABI_INIT_H

#include <abi/types.h>

/*
 * Labels carry a tag ("init" in the high half) so that a program which
 * mistakes the endpoint for a partner's (say, a test pair's, whose labels
 * are small numbers) is refused with -ENOSYS instead of being obeyed.
 */
#define INIT_LABEL_BASE 0x696e697400000000ull

/* w0 exit status, 0..INIT_POWEROFF_STATUS_MAX. Init prints who asked and
 * powers the machine off with that status (QEMU exits with 2 * status + 1):
 * no reply on success. -EINVAL for a status out of range or other words
 * set. Any program init started may ask: the boot right stays with init,
 * and powering off is how an interactive session ends. */
#define INIT_POWEROFF (INIT_LABEL_BASE + 1)

/* The emulators' exit paths carry a byte (QEMU's isa-debug-exit). */
#define INIT_POWEROFF_STATUS_MAX 255u

/*
 * The delegate. With test= or bench= on the command line, init starts the
 * boot module t_suite (the in-guest suite) instead of the servers, with the
 * powers to start processes and open devices, and serves it, on the
 * endpoint in its PARENT slot, what stays init's: the requests below, and
 * memsrv's init-only request. The endpoint is the capability: init gives
 * it to t_suite alone, and what it hands out goes to t_suite's process
 * whoever asks.
 */
/* w0 module index. Init gives the module's image to t_suite, mapped
 * read-only; reply w0 its address there, w1 its size in bytes, payload its
 * name (NUL-terminated). -ENOENT past the last module; -EPERM for init's and
 * memsrv's own images, which init keeps; -EEXIST if given before. */
#define INIT_MODULE (INIT_LABEL_BASE + 2)
/* MS_REVOKE (abi/memsrv.h) sent to the delegate endpoint goes to memsrv as
 * init's; memsrv's reply comes back unchanged. Other memsrv labels get
 * -ENOSYS (ask memsrv directly). */

#endif
