/*
 * Common layer: the red-black tree's algorithms as inline functions that
 * take the augment callback as an argument (see common/rbtree.h for the
 * API and common/rbtree.c for the algorithms' notes).
 *
 * common/rbtree.c instantiates them once for the generic API, with the
 * tree's own callback. A caller whose callback is a constant (the span
 * allocator's free-span tree, on every allocation and free) calls the
 * _with functions directly and gets the callback inlined: no indirect call
 * per recomputed node.
 */
#ifndef COMMON_RBTREE_INLINE_H
#define COMMON_RBTREE_INLINE_H

#include <stddef.h>
#include <common/rbtree.h>

#define RB_INLINE static inline __attribute__((always_inline))

RB_INLINE void rb_set_parent(struct rb_node *n, struct rb_node *parent)
{
    n->parent_colour = (uintptr_t)parent | (n->parent_colour & 1);
}

RB_INLINE void rb_set_black(struct rb_node *n) { n->parent_colour |= 1; }

RB_INLINE void rb_set_red(struct rb_node *n) { n->parent_colour &= ~(uintptr_t)1; }

RB_INLINE void rb_copy_colour(struct rb_node *dst, const struct rb_node *src)
{
    dst->parent_colour = (dst->parent_colour & ~(uintptr_t)1) | (src->parent_colour & 1);
}

/* Recomputes node and its ancestors: unconditionally up to and including
 * `through` (NULL: node only), then while summaries change. */
RB_INLINE void rb_propagate_through(struct rb_node *node, const struct rb_node *through, rb_augment_fn augment)
{
    bool forced = through != NULL;

    if (augment == NULL)
        return;
    for (; node != NULL; node = rb_parent(node)) {
        bool changed = augment(node);
        if (forced) {
            if (node == through)
                forced = false;
            continue;
        }
        if (!changed)
            return;
    }
}

/* Makes `to` take `from`'s place under from's parent. */
RB_INLINE void rb_replace_child(struct rb_tree *tree, struct rb_node *from, struct rb_node *to)
{
    struct rb_node *parent = rb_parent(from);

    if (parent == NULL)
        tree->root = to;
    else if (parent->left == from)
        parent->left = to;
    else
        parent->right = to;
    if (to != NULL)
        rb_set_parent(to, parent);
}

/* A side of a node, so that each rebalancing case is written once and
 * serves its mirror image by swapping the side for !side. */
enum rb_side { RB_LEFT = 0, RB_RIGHT = 1 };

_Static_assert(offsetof(struct rb_node, right) == offsetof(struct rb_node, left) + sizeof(struct rb_node *),
               "child() indexes left and right as a pair");

/* Indexed, not chosen with a branch: rebalancing runs on every allocator
 * insert and erase. */
RB_INLINE struct rb_node **rb_child(struct rb_node *n, enum rb_side side)
{
    return (struct rb_node **)((char *)n + offsetof(struct rb_node, left) + (size_t)side * sizeof(struct rb_node *));
}

RB_INLINE enum rb_side rb_other(enum rb_side side) { return side == RB_LEFT ? RB_RIGHT : RB_LEFT; }

/* Moves x down towards `side`: its child on the other side takes x's place
 * and x becomes that child's `side` child. */
RB_INLINE void rb_rotate(struct rb_tree *tree, struct rb_node *x, enum rb_side side, rb_augment_fn augment)
{
    struct rb_node *y = *rb_child(x, rb_other(side));
    struct rb_node *inner = *rb_child(y, side);

    *rb_child(x, rb_other(side)) = inner;
    if (inner != NULL)
        rb_set_parent(inner, x);
    rb_replace_child(tree, x, y);
    *rb_child(y, side) = x;
    rb_set_parent(x, y);
    if (augment != NULL) {
        augment(x);
        augment(y);
    }
}

RB_INLINE void rb_insert_with(struct rb_tree *tree, struct rb_node *node, struct rb_node *parent, struct rb_node **link,
                              rb_augment_fn augment)
{
    node->parent_colour = (uintptr_t)parent; /* red */
    node->left = NULL;
    node->right = NULL;
    *link = node;
    /* The new leaf's own summary is computed whatever it compares to. */
    rb_propagate_through(node, node, augment);

    while (!rb_is_black(parent)) {
        struct rb_node *grand = rb_parent(parent);
        enum rb_side side = parent == grand->left ? RB_LEFT : RB_RIGHT;
        struct rb_node *uncle = *rb_child(grand, rb_other(side));

        if (!rb_is_black(uncle)) {
            rb_set_black(parent);
            rb_set_black(uncle);
            rb_set_red(grand);
            node = grand;
            parent = rb_parent(node);
            continue;
        }
        /* An inner grandchild is first turned into an outer one. */
        if (node == *rb_child(parent, rb_other(side))) {
            rb_rotate(tree, parent, side, augment);
            node = parent;
            parent = rb_parent(node);
        }
        rb_set_black(parent);
        rb_set_red(grand);
        rb_rotate(tree, grand, rb_other(side), augment);
        break;
    }
    rb_set_black(tree->root);
}

/* x (maybe NULL) carries an extra black until a rotation or recolouring can
 * absorb it; w is its sibling. */
RB_INLINE void rb_erase_fixup(struct rb_tree *tree, struct rb_node *x, struct rb_node *parent, rb_augment_fn augment)
{
    while (x != tree->root && rb_is_black(x)) {
        enum rb_side side = x == parent->left ? RB_LEFT : RB_RIGHT;
        struct rb_node *w = *rb_child(parent, rb_other(side));

        if (!rb_is_black(w)) {
            rb_set_black(w);
            rb_set_red(parent);
            rb_rotate(tree, parent, side, augment);
            w = *rb_child(parent, rb_other(side));
        }
        if (rb_is_black(w->left) && rb_is_black(w->right)) {
            rb_set_red(w);
            x = parent;
            parent = rb_parent(x);
            continue;
        }
        /* w's far child must be red for the final rotation to end it. */
        if (rb_is_black(*rb_child(w, rb_other(side)))) {
            rb_set_black(*rb_child(w, side));
            rb_set_red(w);
            rb_rotate(tree, w, rb_other(side), augment);
            w = *rb_child(parent, rb_other(side));
        }
        rb_copy_colour(w, parent);
        rb_set_black(parent);
        rb_set_black(*rb_child(w, rb_other(side)));
        rb_rotate(tree, parent, side, augment);
        x = tree->root;
        break;
    }
    if (x != NULL)
        rb_set_black(x);
}

RB_INLINE void rb_erase_with(struct rb_tree *tree, struct rb_node *z, rb_augment_fn augment)
{
    struct rb_node *x;
    struct rb_node *x_parent;
    struct rb_node *moved = NULL; /* the successor that took z's place */
    int removed_black;

    if (z->left == NULL || z->right == NULL) {
        x = z->left != NULL ? z->left : z->right;
        x_parent = rb_parent(z);
        removed_black = rb_is_black(z);
        rb_replace_child(tree, z, x);
    } else {
        struct rb_node *y = z->right;
        while (y->left != NULL)
            y = y->left;
        removed_black = rb_is_black(y);
        x = y->right;
        if (rb_parent(y) == z) {
            x_parent = y;
        } else {
            x_parent = rb_parent(y);
            rb_replace_child(tree, y, x);
            y->right = z->right;
            rb_set_parent(y->right, y);
        }
        rb_replace_child(tree, z, y);
        y->left = z->left;
        rb_set_parent(y->left, y);
        rb_copy_colour(y, z);
        moved = y;
    }
    rb_propagate_through(x_parent, moved, augment);
    if (removed_black)
        rb_erase_fixup(tree, x, x_parent, augment);
}

/* The node at `from` was copied to `to` (links and colour included): its
 * parent and children point at the copy from now on. No rebalancing, no
 * summary changes. */
RB_INLINE void rb_relocate(struct rb_tree *tree, struct rb_node *from, struct rb_node *to)
{
    rb_replace_child(tree, from, to);
    if (to->left != NULL)
        rb_set_parent(to->left, to);
    if (to->right != NULL)
        rb_set_parent(to->right, to);
}

#endif
