/*
 * libsys: starting a program from an ELF image in memory (init uses it on
 * the boot modules). The loader checks the image, asks the memory server for
 * a segment per loadable part and for the stack, fills them, gives them to
 * an empty process at their addresses, writes the startup block and starts
 * the first thread. The new process's memory is charged to the caller.
 */
#ifndef LIBSYS_LOADER_H
#define LIBSYS_LOADER_H

#include <stddef.h>
#include <abi/types.h>
#include <abi/proc.h>

/*
 * Starts `image` as process `name` with arguments `args`. grant[i] (i <
 * ABI_STARTUP_HANDLES, HANDLE_NONE to skip) is one of the caller's endpoint
 * or device handles, which the child receives in startup handles[i].
 * Returns a process handle, or -ENOEXEC (with the reason on the console),
 * -E2BIG, or the error of the step that failed; on failure nothing is left
 * behind.
 */
int64_t loader_spawn(const char *name, const void *image, size_t size, const char *args, const handle_t *grant,
                     unsigned ngrant);

#endif
