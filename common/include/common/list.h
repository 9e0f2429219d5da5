/*
 * Common layer: the intrusive doubly linked list every part of the system
 * uses for its queues (kernel objects, the memory server, libsys). A list
 * is a head node whose next and prev close the ring; an element embeds a
 * struct list_node and is found from it with LIST_ENTRY. A node that is on
 * no list points at itself, so "is it linked?" and removing twice are both
 * safe.
 *
 * Header only: every function is a few pointer moves.
 */
#ifndef COMMON_LIST_H
#define COMMON_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
    struct list_node *next, *prev;
};

#define LIST_ENTRY(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))
#define LIST_HEAD_INIT(name)                                                                                           \
    {                                                                                                                  \
        &(name), &(name)                                                                                               \
    }

static inline void list_init(struct list_node *n) { n->next = n->prev = n; }
static inline bool list_empty(const struct list_node *head) { return head->next == head; }
/* Whether a node is on some list (nodes are initialised unlinked). */
static inline bool list_linked(const struct list_node *n) { return n->next != n && n->next != NULL; }

static inline void list_insert_between(struct list_node *n, struct list_node *prev, struct list_node *next)
{
    n->prev = prev;
    n->next = next;
    prev->next = n;
    next->prev = n;
}

static inline void list_push_front(struct list_node *head, struct list_node *n)
{
    list_insert_between(n, head, head->next);
}

static inline void list_push_back(struct list_node *head, struct list_node *n)
{
    list_insert_between(n, head->prev, head);
}

/* Takes n off its list (a no-op for an unlinked node); n is unlinked after. */
static inline void list_remove(struct list_node *n)
{
    if (!list_linked(n)) {
        list_init(n);
        return;
    }
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

static inline struct list_node *list_first(const struct list_node *head)
{
    return list_empty(head) ? NULL : head->next;
}

/* Removes and returns the first node, or NULL. */
static inline struct list_node *list_pop_front(struct list_node *head)
{
    struct list_node *n = list_first(head);
    if (n)
        list_remove(n);
    return n;
}

/* Iterates over every node; the body may remove `node` (not others). */
#define LIST_FOR_EACH_SAFE(node, next_node, head)                                                                      \
    for ((node) = (head)->next, (next_node) = (node)->next; (node) != (head);                                          \
         (node) = (next_node), (next_node) = (node)->next)

#endif
