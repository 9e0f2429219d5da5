/*
 * Protocol layer: typed views of a message's words, shared by the protocol
 * headers (memsrv.h, init.h, kvstore.h) and so by every server and client
 * that speaks them.
 *
 * A request or reply that carries words names them, in word order:
 *
 *   PROTO_WORDS(ms_alloc_req, size, align, flags, limit);
 *
 * declares struct ms_alloc_req { uint64_t size, align, flags, limit; } (one
 * declarator list of uint64_t: the k-th name is word k, and a compile-time
 * check that the struct is exactly that many words rules out padding),
 * checks that it fits struct ipc_msg's w[], and makes two accessors:
 *
 *   struct name name_get(const struct ipc_msg *m);   the words, as the struct
 *   void name_put(struct ipc_msg *m, struct name v);  the struct, into the words
 *
 * They copy (memcpy) rather than cast a pointer, so nothing reads w[]
 * through another type (strict aliasing); the compiler makes plain moves of
 * them. put writes the struct's words only; the words past it keep what
 * they held (zero in a message built from scratch, as requests and the
 * server loop's replies are). PROTO_WORDS_USED(name) is the count a server
 * table's SERVER_OP_WORDS entry takes, so the table and the struct cannot
 * disagree.
 */
#ifndef PROTO_WORDS_H
#define PROTO_WORDS_H

#include <abi/ipc.h>
#include <abi/types.h>

#define PROTO_WORDS_USED(name) ((unsigned)(sizeof(struct name) / sizeof(uint64_t)))

/* The number of names given (1 to IPC_WORDS; more fail the size check). */
#define PROTO_COUNT(...)                 PROTO_COUNT_(__VA_ARGS__, 4, 3, 2, 1, 0)
#define PROTO_COUNT_(a, b, c, d, n, ...) n

#define PROTO_WORDS(name, ...)                                                                                         \
    struct name {                                                                                                      \
        uint64_t __VA_ARGS__;                                                                                          \
    };                                                                                                                 \
    static inline struct name name##_get(const struct ipc_msg *m)                                                      \
    {                                                                                                                  \
        struct name v;                                                                                                 \
        __builtin_memcpy(&v, m->w, sizeof(v));                                                                         \
        return v;                                                                                                      \
    }                                                                                                                  \
    static inline void name##_put(struct ipc_msg *m, struct name v) { __builtin_memcpy(m->w, &v, sizeof(v)); }         \
    ABI_STATIC_ASSERT(sizeof(struct name) == PROTO_COUNT(__VA_ARGS__) * sizeof(uint64_t),                              \
                      #name ": word k is the k-th field");                                                             \
    ABI_STATIC_ASSERT(sizeof(struct name) <= sizeof(((struct ipc_msg *)0)->w), #name " fits the words")

#endif
