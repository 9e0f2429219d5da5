/*
 * Protocol layer: the name service (servers/names/), a user-space protocol
 * spoken between programs; the kernel knows nothing of it. Included by the
 * server, by libsys's client (libsys/names.h) and by init, which starts the
 * service and hands out the rights to it (docs/names.md).
 *
 * A name stands for a send right to a server's endpoint. Two kinds of
 * endpoint reach the service, and which one a request arrives on decides
 * what it may do:
 *
 *   - the service endpoint (startup slot ABI_STARTUP_NAMES of every program
 *     init starts): anyone holding it may look names up, wait for one to
 *     appear, watch one end and list them;
 *   - registrars (startup slot ABI_STARTUP_REGISTRAR): each allows one name
 *     and the names under it ("kvstore" allows "kvstore" and
 *     "kvstore.admin"), fixed when it was made. Registering a name takes a
 *     registrar that allows it, so no program can take over a name it was
 *     not given: init gives each program the registrar of its own module
 *     name, and holds the root registrar (every name), which the service
 *     receives in its own startup slot REGISTRAR at start.
 *
 * Requests are SYS_IPC_CALLs with a label below; the reply's label is 0 or
 * -E* as a uint64. Words a request does not use must be 0 and handles it
 * does not take must not be sent (-EINVAL). A request that carries handles
 * needs no special receive flag; a reply that carries one (LOOKUP, WAIT,
 * REGISTRAR) reaches only a caller that set IPC_RECV_CAPS in its message's
 * flags (libsys/names.h does). Every request may also get -ENOSYS (a label
 * the endpoint does not serve).
 *
 * A registration ends when its endpoint loses its receiver (the server
 * ended, or closed its receive right): the service watches each one
 * (SYS_EP_WATCH), drops the name, and signals the clients that asked to be
 * told (NAMES_WATCH).
 */
#ifndef PROTO_NAMES_H
#define PROTO_NAMES_H

#include <abi/ipc.h>
#include <abi/types.h>

/*
 * A name: 1 to NAMES_NAME_MAX bytes, parts separated by single dots, each
 * part a lower-case letter followed by lower-case letters, digits, '_' or
 * '-' ("kvstore", "test.names.a", "t_kv"). Sent as the whole payload,
 * without a NUL. Anything else: -EINVAL.
 */
#define NAMES_NAME_MAX 32u

/* Labels carry a tag ("name" in the high half), as init's do, so that a
 * program that mistakes the endpoint for another server's is refused with
 * -ENOSYS rather than obeyed. */
#define NAMES_LABEL_BASE 0x6e616d6500000000ull

/* ---- on the service endpoint -------------------------------------------- */

/* payload: the name. Reply: caps[0] a send right to the registered endpoint
 * (SEND and GRANT), w0 the registering process's pid. -ENOENT not
 * registered. */
#define NAMES_LOOKUP (NAMES_LABEL_BASE + 1)

/* payload: the name; w0 a bit (0..62); w1 how long to wait, in ns (1 ns to
 * NAMES_WAIT_MAX_NS); caps[0] a notification to signal (its SIGNAL right
 * is enough). If the name is registered, the reply is LOOKUP's (the
 * notification is not kept). Otherwise the reply is 0 with caps[0] empty:
 * the service keeps the notification and signals the bit once the name is
 * registered, or forgets it silently when w1 has passed. Then look it up
 * again (libsys's names_wait loops). -ENOSPC the service holds
 * NAMES_WAITS_MAX waits, or the caller NAMES_WAITS_PER_CLIENT. */
#define NAMES_WAIT (NAMES_LABEL_BASE + 2)

/* payload: the name; w0 a bit (0..62); caps[0] a notification (SIGNAL).
 * The bit is signalled once this registration of the name ends (its
 * endpoint lost its receiver, or it was unregistered): how a client learns
 * that its server ended. One-shot. -ENOENT not registered now (so there is
 * nothing to watch); -ENOSPC NAMES_WATCHES_MAX watches on the service, or
 * NAMES_WATCHES_PER_CLIENT by the caller, are waiting to fire. */
#define NAMES_WATCH (NAMES_LABEL_BASE + 3)

/* payload: the name to list after (len 0: from the first). Reply: a struct
 * names_list_page of the names that follow in byte order, as many as fit;
 * call again with the last one until `more` is 0. */
#define NAMES_LIST (NAMES_LABEL_BASE + 4)

/* ---- on a registrar -------------------------------------------------------- */

/* payload: the name; caps[0] the endpoint it stands for, copied with SEND
 * and GRANT (the service keeps exactly those). -EPERM this registrar does
 * not allow the name (or the request came on the service endpoint);
 * -EEXIST it is registered already; -EINVAL no endpoint, or a handle that
 * is not an endpoint with SEND and GRANT; -EPEER the endpoint has no
 * receiver; -ENOSPC NAMES_REGISTRATIONS_MAX names are registered, or
 * NAMES_REGISTRATIONS_PER_CLIENT by the caller (a name outlives the
 * process that registered it while its endpoint has a receiver). */
#define NAMES_REGISTER (NAMES_LABEL_BASE + 16)

/* payload: the name. It goes now, as if its endpoint had lost its
 * receiver (watchers are signalled). -EPERM not a name this registrar
 * allows; -ENOENT not registered. */
#define NAMES_UNREGISTER (NAMES_LABEL_BASE + 17)

/* payload: the name the new registrar allows (with the names under it); w0
 * NAMES_REGISTRAR_* flags. Reply: caps[0] a send right (SEND and GRANT) to
 * a new registrar. Only a registrar made with NAMES_REGISTRAR_DELEGATE may
 * ask (the root may), for a name it allows itself (-EPERM); each may make
 * NAMES_SUBREGISTRARS_MAX (the root any number); -ENOSPC the service runs
 * NAMES_REGISTRARS_MAX. Registrars last as long as the service. */
#define NAMES_REGISTRAR          (NAMES_LABEL_BASE + 18)
#define NAMES_REGISTRAR_DELEGATE 0x1u /* the new registrar may make registrars of its own */

/* ---- limits --------------------------------------------------------------- */

#define NAMES_REGISTRATIONS_MAX        128u
#define NAMES_REGISTRATIONS_PER_CLIENT 16u
#define NAMES_REGISTRARS_MAX           64u
#define NAMES_SUBREGISTRARS_MAX        16u
#define NAMES_WAITS_MAX                128u
#define NAMES_WAITS_PER_CLIENT         8u
#define NAMES_WAIT_MAX_NS              (60ull * 1000 * 1000 * 1000)
#define NAMES_WATCHES_MAX              512u
#define NAMES_WATCHES_PER_CLIENT       16u

/* NAMES_LIST's reply payload: `count` entries packed in data, each one byte
 * of length, that many bytes of name, then the registering process's pid
 * (8 bytes, little-endian, unaligned). Two entries always fit. */
struct names_list_page {
    uint8_t count;
    uint8_t more; /* 1: names after the last entry remain */
    uint8_t reserved[6];
    uint8_t data[IPC_PAYLOAD_MAX - 8];
};
#define NAMES_LIST_ENTRY_MAX (1u + NAMES_NAME_MAX + 8u)
ABI_STATIC_ASSERT(sizeof(struct names_list_page) == IPC_PAYLOAD_MAX, "list page fills a payload");
ABI_STATIC_ASSERT(2 * NAMES_LIST_ENTRY_MAX <= sizeof(((struct names_list_page *)0)->data),
                  "a list page holds two of the longest entries");
ABI_STATIC_ASSERT(NAMES_NAME_MAX <= IPC_PAYLOAD_MAX, "a name fits a payload");

#endif
