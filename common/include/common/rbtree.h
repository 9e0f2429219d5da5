/*
 * Common layer: an intrusive red-black tree with optional augmentation.
 *
 * Used by the span allocator (servers/memsrv/span) and meant for the kernel
 * too; freestanding, no allocation: the caller embeds a struct rb_node in its
 * own object and recovers the object with RB_ENTRY (container_of).
 *
 * Ordering is the caller's business, as in Linux's rbtree: the caller walks
 * from the root to find the empty link where a new node belongs and hands
 * (node, parent, link) to rb_insert(), which colours and rebalances.
 *
 * Augmentation: a tree may carry a callback that recomputes a node's summary
 * of its subtree (e.g. the largest free size below it) from the node and its
 * two children, and says whether the summary changed. The tree calls it on
 * every node whose subtree changes, so the summary at each node is always
 * exact; walking up stops at the first node whose summary is unchanged,
 * because nothing above it can change either. A caller that changes a
 * node's own contribution in place calls rb_propagate(tree, node) afterwards.
 * Every operation is O(log n); the augment callback runs O(log n) times, and
 * usually only a few times.
 */
#ifndef COMMON_RBTREE_H
#define COMMON_RBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rb_node {
    uintptr_t parent_colour; /* parent pointer; bit 0 set = black */
    struct rb_node *left;
    struct rb_node *right;
};

/* Recomputes node's summary from node->left/right; must not rebalance.
 * Returns whether the summary changed. */
typedef bool (*rb_augment_fn)(struct rb_node *node);

struct rb_tree {
    struct rb_node *root;
    rb_augment_fn augment; /* NULL for a plain tree */
};

#define RB_ENTRY(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline struct rb_node *rb_parent(const struct rb_node *n)
{
    return (struct rb_node *)(n->parent_colour & ~(uintptr_t)1);
}

static inline int rb_is_black(const struct rb_node *n) { return n == NULL || (n->parent_colour & 1) != 0; }

void rb_init(struct rb_tree *tree, rb_augment_fn augment);

/* Links node at *link (a child slot of parent, or &tree->root) and rebalances. */
void rb_insert(struct rb_tree *tree, struct rb_node *node, struct rb_node *parent, struct rb_node **link);
void rb_erase(struct rb_tree *tree, struct rb_node *node);

/* Re-runs the augment callback from node towards the root, stopping at the
 * first node whose summary did not change. */
void rb_propagate(struct rb_tree *tree, struct rb_node *node);

/* Says whether node sorts at or after key. */
typedef bool (*rb_at_or_after_fn)(const struct rb_node *node, const void *key);

/* The first node in key order that sorts at or after key (NULL if none):
 * one descent. Inline, so a constant callback is inlined too. */
static inline struct rb_node *rb_lower_bound(const struct rb_tree *tree, rb_at_or_after_fn at_or_after, const void *key)
{
    struct rb_node *n = tree->root, *best = NULL;

    while (n != NULL) {
        if (at_or_after(n, key)) {
            best = n;
            n = n->left;
        } else {
            n = n->right;
        }
    }
    return best;
}

/* The empty child slot where a new node goes to sit right after p in key
 * order (or right before it): *parent and *link for rb_insert, found below
 * p without a descent from the root. For a caller that already holds the
 * new node's neighbour. */
static inline void rb_link_beside(struct rb_node *p, bool after, struct rb_node **parent, struct rb_node ***link)
{
    struct rb_node **slot = after ? &p->right : &p->left;

    *parent = p;
    /* Then down the near side of that subtree: its extreme faces p. */
    while (*slot != NULL) {
        *parent = *slot;
        slot = after ? &(*slot)->left : &(*slot)->right;
    }
    *link = slot;
}

struct rb_node *rb_first(const struct rb_tree *tree);
struct rb_node *rb_last(const struct rb_tree *tree);
struct rb_node *rb_next(const struct rb_node *node);
struct rb_node *rb_prev(const struct rb_node *node);

/*
 * Checks the red-black shape: root black, no red node with a red child, the
 * same number of black nodes on every path, parent links consistent. Returns
 * the number of nodes, or -1 when the shape is broken. O(n); for checkers.
 */
long rb_validate(const struct rb_tree *tree);

#endif
