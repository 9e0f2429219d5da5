/*
 * libsys layer, private to the allocators (arena.c, malloc.c): segregated
 * free lists. heads[i] starts a NULL-ended doubly linked list through the
 * nodes' own `next` and `prev` fields, and bit i of `map` is set iff
 * heads[i] is non-empty, so one bit scan finds the first non-empty list at
 * or above a size class. Macros, because each allocator's node is its own
 * type, laid out in the memory it manages. Arguments are evaluated more
 * than once: pass plain variables.
 */
#ifndef LIBSYS_BINS_H
#define LIBSYS_BINS_H

#include <stddef.h>

#define BINS_PUSH(heads, map, i, node)                                                                                 \
    do {                                                                                                               \
        (node)->prev = NULL;                                                                                           \
        (node)->next = (heads)[i];                                                                                     \
        if ((node)->next)                                                                                              \
            (node)->next->prev = (node);                                                                               \
        (heads)[i] = (node);                                                                                           \
        (map) |= 1ull << (i);                                                                                          \
    } while (0)

#define BINS_UNLINK(heads, map, i, node)                                                                               \
    do {                                                                                                               \
        if ((node)->prev)                                                                                              \
            (node)->prev->next = (node)->next;                                                                         \
        else                                                                                                           \
            (heads)[i] = (node)->next;                                                                                 \
        if ((node)->next)                                                                                              \
            (node)->next->prev = (node)->prev;                                                                         \
        if (!(heads)[i])                                                                                               \
            (map) &= ~(1ull << (i));                                                                                   \
    } while (0)

#endif
