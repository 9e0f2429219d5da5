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

#endif
