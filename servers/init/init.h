/*
 * init (private): what init's files share. init.c starts the system and
 * serves the endpoints init gives the programs it starts; programs.c keeps
 * the programs init started and starts new ones, at boot and for the
 * console (proto/init.h).
 */
#ifndef INIT_INIT_H
#define INIT_INIT_H

#include <abi/ipc.h>
#include <abi/proc.h>
#include <abi/types.h>
#include <libsys/server.h>

/* How a program is started. */
enum start_kind {
    START_BOOT, /* at boot: it gets an endpoint to init (PARENT) */
    START_RUN,  /* by the console's INIT_RUN */
};

/* The name service's endpoints, kept by init to hand out (send, grant):
 * HANDLE_NONE if it could not be started. */
extern handle_t names_service, names_root;

/* Starts the name service (module "names") with the receive rights of its
 * service endpoint and the root registrar; fills names_service and
 * names_root. */
void programs_start_names(void);
/* The boot module `name` (info filled), or -ENOENT. */
int64_t programs_module(const char *name, struct abi_module_info *info);
/*
 * Starts module `info` with `args` (MODULE ARGS...) and what every
 * program gets (docs/names.md): memsrv's and the name service's
 * endpoints, an endpoint of its own, a registrar for its module's name,
 * the default limits; the console also a device to pin for. `parent`, if
 * not HANDLE_NONE, goes to startup slot PARENT (send). Records it as a
 * child. Returns its process handle (init's; every right) or -E*.
 */
int64_t programs_spawn(const struct abi_module_info *info, const char *args, enum start_kind kind, handle_t parent);
/* A registrar of the name service allowing `name` and the names under it
 * (made once per name through the root, then kept), or HANDLE_NONE. */
handle_t programs_registrar(const char *name, unsigned flags);
/* Whether module `name` is the console (`console=` in init's module
 * command line). */
bool programs_is_console(const char *name);

/* The console's requests (proto/init.h), as handlers of libsys's server
 * loop (init.c's tables): the reply is built in *reply, the result
 * returned. INIT_KILL's asker, refused its own end, is req->badge. */
int64_t programs_run(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply);
int64_t programs_ps(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply);
int64_t programs_kill(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply);
int64_t programs_list(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply);

#endif
