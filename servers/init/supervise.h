/*
 * init: the memory server's supervisor (supervise.c), as init.c sees it.
 */
#ifndef INIT_SUPERVISE_H
#define INIT_SUPERVISE_H

#include <stdbool.h>
#include <abi/ipc.h>

/* Starts the thread that restarts memsrv when it ends (if init was given
 * its process handle). */
void supervise_start(void);
/* Whether label is one of the supervisor's requests (proto/init.h). */
bool supervise_handles(uint64_t label);
/* Serves one: delegate says whether it came on the suite's delegate
 * endpoint (INIT_MS_FAULT is served only there). Returns the reply's
 * label (0 or -E*), its words in *reply. */
int64_t supervise_request(const struct ipc_msg *m, bool delegate, struct ipc_msg *reply);

#endif
