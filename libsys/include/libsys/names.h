/*
 * libsys layer: the name service's client (protocol: include/proto/names.h,
 * docs/names.md). A program init starts finds the service's endpoint in
 * startup slot ABI_STARTUP_NAMES and, to register names, a registrar in
 * slot ABI_STARTUP_REGISTRAR that allows its own module's name and the
 * names under it. Every function returns 0 (or a count) or -E*;
 * names_error_meaning() says what an error means.
 */
#ifndef LIBSYS_NAMES_H
#define LIBSYS_NAMES_H

#include <abi/types.h>
#include <proto/names.h>

/* The service's endpoint: from the startup block unless set explicitly. */
handle_t names_endpoint(void);
void names_set_endpoint(handle_t ep);
/* The registrar in the startup block, or HANDLE_NONE. */
handle_t names_registrar(void);

/* A send right to the endpoint registered under `name` (the caller closes
 * it when done); `owner` (may be NULL) gets the registering pid. -ENOENT
 * if nothing is registered under it. */
int64_t names_lookup(const char *name, handle_t *ep, uint64_t *owner);
/* As names_lookup, waiting up to timeout_ns for the name to be registered
 * (without polling: the service signals a notification). -ETIMEDOUT. */
int64_t names_wait(const char *name, uint64_t timeout_ns, handle_t *ep);
/* Signals `bit` (0..62) of `notification` (which needs GRANT; the service
 * gets SIGNAL) once the registration of `name` ends: its server ended or
 * unregistered. -ENOENT if it is not registered now. */
int64_t names_watch(const char *name, handle_t notification, unsigned bit);

/* Registers `name` for `ep` (which needs SEND and GRANT: the service keeps
 * a copy) with the startup registrar, or with `registrar`. The name goes
 * when ep loses its receiver. */
int64_t names_register(const char *name, handle_t ep);
int64_t names_register_at(handle_t registrar, const char *name, handle_t ep);
int64_t names_unregister_at(handle_t registrar, const char *name);
/* A new registrar allowing `name` and the names under it, made through
 * `registrar` (which must allow the name and have been made with
 * NAMES_REGISTRAR_DELEGATE); flags: NAMES_REGISTRAR_*. */
int64_t names_new_registrar(handle_t registrar, const char *name, unsigned flags, handle_t *out);

struct names_entry {
    char name[NAMES_NAME_MAX + 1]; /* NUL-terminated */
    uint64_t owner;                /* the pid that registered it */
};
/* Calls fn for every registered name, in byte order. Returns how many, or
 * -E* (after the names listed so far). */
int64_t names_list(void (*fn)(const struct names_entry *entry, void *ctx), void *ctx);

/* What err means as the service's answer to `label` (NAMES_*); its text
 * lives with the other servers' in explain.c. */
const char *names_error_meaning(uint64_t label, int64_t err);

#endif
