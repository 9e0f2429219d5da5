/*
 * init: the memory server's supervisor (supervise.c), as init.c sees it.
 */
#ifndef INIT_SUPERVISE_H
#define INIT_SUPERVISE_H

#include <stdbool.h>
#include <abi/ipc.h>
#include <libsys/server.h>

/* Starts the thread that restarts memsrv when it ends (if init was given
 * its process handle). */
void supervise_start(void);
/* The supervisor's requests (proto/init.h), as handlers of libsys's
 * server loop; the loop has checked the words, payload and segment.
 * INIT_MS_FAULT is served on the delegate endpoint alone (init.c's
 * tables). */
int64_t supervise_restart(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply);
int64_t supervise_status(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply);
int64_t supervise_fault(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply);

#endif
