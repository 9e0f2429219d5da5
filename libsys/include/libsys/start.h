/*
 * libsys: what a program learns at start. main(argc, argv) receives the
 * startup arguments split at spaces; the raw block stays available.
 */
#ifndef LIBSYS_START_H
#define LIBSYS_START_H

#include <abi/proc.h>

extern const struct abi_startup *libsys_startup;
extern uint64_t libsys_pid; /* this process's pid: the badge others see */
/* The handle its starter gave in startup slot `slot` (ABI_STARTUP_*);
 * HANDLE_NONE if it gave none there or the program has no startup block. */
handle_t startup_handle(unsigned slot);
int main(int argc, char **argv);

#endif
