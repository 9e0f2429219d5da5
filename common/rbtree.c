/*
 * Common layer: intrusive red-black tree (see common/rbtree.h for the API).
 *
 * The algorithms are the textbook ones (CLRS chapter 13) with parent
 * pointers; the colour lives in bit 0 of the parent pointer, which is free
 * because nodes are at least 2-byte aligned.
 *
 * Augmentation rule: a rotation keeps the set of nodes under the rotated
 * position unchanged, so only the two rotated nodes need their summaries
 * recomputed (lower one first). Linking or unlinking changes the set of
 * nodes under every ancestor of the change, so that path is recomputed
 * before rebalancing starts, upwards until a summary comes out unchanged:
 * an ancestor's summary depends only on its children's, so nothing above an
 * unchanged one can change. Erasing a node with two children moves its
 * successor into its place; every node from the unlink point up to that
 * place lost the successor from its subtree and is recomputed whatever
 * happens below it, and only above it does the early stop apply.
 */
#include <stddef.h>
#include <common/rbtree.h>

static void set_parent(struct rb_node *n, struct rb_node *parent)
{
    n->parent_colour = (uintptr_t)parent | (n->parent_colour & 1);
}

static void set_black(struct rb_node *n) { n->parent_colour |= 1; }

static void set_red(struct rb_node *n) { n->parent_colour &= ~(uintptr_t)1; }

static void copy_colour(struct rb_node *dst, const struct rb_node *src)
{
    dst->parent_colour = (dst->parent_colour & ~(uintptr_t)1) | (src->parent_colour & 1);
}

static void augment_one(struct rb_tree *tree, struct rb_node *n)
{
    if (tree->augment != NULL)
        tree->augment(n);
}

void rb_init(struct rb_tree *tree, rb_augment_fn augment)
{
    tree->root = NULL;
    tree->augment = augment;
}

/* Recomputes node and its ancestors: unconditionally up to and including
 * `through` (NULL: node only), then while summaries change. */
static void propagate_through(struct rb_tree *tree, struct rb_node *node, const struct rb_node *through)
{
    bool forced = through != NULL;

    if (tree->augment == NULL)
        return;
    for (; node != NULL; node = rb_parent(node)) {
        bool changed = tree->augment(node);
        if (forced) {
            if (node == through)
                forced = false;
            continue;
        }
        if (!changed)
            return;
    }
}

void rb_propagate(struct rb_tree *tree, struct rb_node *node) { propagate_through(tree, node, NULL); }

/* Makes `to` take `from`'s place under from's parent. */
static void replace_child(struct rb_tree *tree, struct rb_node *from, struct rb_node *to)
{
    struct rb_node *parent = rb_parent(from);

    if (parent == NULL)
        tree->root = to;
    else if (parent->left == from)
        parent->left = to;
    else
        parent->right = to;
    if (to != NULL)
        set_parent(to, parent);
}

/* A side of a node, so that each rebalancing case is written once and
 * serves its mirror image by swapping the side for !side. */
enum rb_side { RB_LEFT = 0, RB_RIGHT = 1 };

_Static_assert(offsetof(struct rb_node, right) == offsetof(struct rb_node, left) + sizeof(struct rb_node *),
               "child() indexes left and right as a pair");

/* Indexed, not chosen with a branch: rebalancing runs on every allocator
 * insert and erase. */
static struct rb_node **child(struct rb_node *n, enum rb_side side)
{
    return (struct rb_node **)((char *)n + offsetof(struct rb_node, left) + (size_t)side * sizeof(struct rb_node *));
}

static enum rb_side other(enum rb_side side) { return side == RB_LEFT ? RB_RIGHT : RB_LEFT; }

/* Moves x down towards `side`: its child on the other side takes x's place
 * and x becomes that child's `side` child. */
static void rotate(struct rb_tree *tree, struct rb_node *x, enum rb_side side)
{
    struct rb_node *y = *child(x, other(side));
    struct rb_node *inner = *child(y, side);

    *child(x, other(side)) = inner;
    if (inner != NULL)
        set_parent(inner, x);
    replace_child(tree, x, y);
    *child(y, side) = x;
    set_parent(x, y);
    augment_one(tree, x);
    augment_one(tree, y);
}

void rb_insert(struct rb_tree *tree, struct rb_node *node, struct rb_node *parent, struct rb_node **link)
{
    node->parent_colour = (uintptr_t)parent; /* red */
    node->left = NULL;
    node->right = NULL;
    *link = node;
    /* The new leaf's own summary is computed whatever it compares to. */
    propagate_through(tree, node, node);

    while (!rb_is_black(parent)) {
        struct rb_node *grand = rb_parent(parent);
        enum rb_side side = parent == grand->left ? RB_LEFT : RB_RIGHT;
        struct rb_node *uncle = *child(grand, other(side));

        if (!rb_is_black(uncle)) {
            set_black(parent);
            set_black(uncle);
            set_red(grand);
            node = grand;
            parent = rb_parent(node);
            continue;
        }
        /* An inner grandchild is first turned into an outer one. */
        if (node == *child(parent, other(side))) {
            rotate(tree, parent, side);
            node = parent;
            parent = rb_parent(node);
        }
        set_black(parent);
        set_red(grand);
        rotate(tree, grand, other(side));
        break;
    }
    set_black(tree->root);
}

/* x (maybe NULL) carries an extra black until a rotation or recolouring can
 * absorb it; w is its sibling. */
static void erase_fixup(struct rb_tree *tree, struct rb_node *x, struct rb_node *parent)
{
    while (x != tree->root && rb_is_black(x)) {
        enum rb_side side = x == parent->left ? RB_LEFT : RB_RIGHT;
        struct rb_node *w = *child(parent, other(side));

        if (!rb_is_black(w)) {
            set_black(w);
            set_red(parent);
            rotate(tree, parent, side);
            w = *child(parent, other(side));
        }
        if (rb_is_black(w->left) && rb_is_black(w->right)) {
            set_red(w);
            x = parent;
            parent = rb_parent(x);
            continue;
        }
        /* w's far child must be red for the final rotation to end it. */
        if (rb_is_black(*child(w, other(side)))) {
            set_black(*child(w, side));
            set_red(w);
            rotate(tree, w, other(side));
            w = *child(parent, other(side));
        }
        copy_colour(w, parent);
        set_black(parent);
        set_black(*child(w, other(side)));
        rotate(tree, parent, side);
        x = tree->root;
        break;
    }
    if (x != NULL)
        set_black(x);
}

void rb_erase(struct rb_tree *tree, struct rb_node *z)
{
    struct rb_node *x;
    struct rb_node *x_parent;
    struct rb_node *moved = NULL; /* the successor that took z's place */
    int removed_black;

    if (z->left == NULL || z->right == NULL) {
        x = z->left != NULL ? z->left : z->right;
        x_parent = rb_parent(z);
        removed_black = rb_is_black(z);
        replace_child(tree, z, x);
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
            replace_child(tree, y, x);
            y->right = z->right;
            set_parent(y->right, y);
        }
        replace_child(tree, z, y);
        y->left = z->left;
        set_parent(y->left, y);
        copy_colour(y, z);
        moved = y;
    }
    propagate_through(tree, x_parent, moved);
    if (removed_black)
        erase_fixup(tree, x, x_parent);
}

/* The last node down `side` from n (n itself if it has no such child). */
static struct rb_node *outermost(struct rb_node *n, enum rb_side side)
{
    while (*child(n, side) != NULL)
        n = *child(n, side);
    return n;
}

static struct rb_node *tree_end(const struct rb_tree *tree, enum rb_side side)
{
    return tree->root == NULL ? NULL : outermost(tree->root, side);
}

/* The neighbour of n towards `side` in key order: the outermost node of
 * its subtree on that side, else the first ancestor reached from the other
 * side. */
static struct rb_node *neighbour(const struct rb_node *n, enum rb_side side)
{
    struct rb_node *node = (struct rb_node *)n;
    struct rb_node *parent;

    if (*child(node, side) != NULL)
        return outermost(*child(node, side), other(side));
    while ((parent = rb_parent(node)) != NULL && node == *child(parent, side))
        node = parent;
    return parent;
}

struct rb_node *rb_first(const struct rb_tree *tree) { return tree_end(tree, RB_LEFT); }
struct rb_node *rb_last(const struct rb_tree *tree) { return tree_end(tree, RB_RIGHT); }
struct rb_node *rb_next(const struct rb_node *n) { return neighbour(n, RB_RIGHT); }
struct rb_node *rb_prev(const struct rb_node *n) { return neighbour(n, RB_LEFT); }

/* Returns the black height of the subtree, or -1 if broken; counts nodes. */
static long validate_subtree(const struct rb_node *n, const struct rb_node *parent, long *count)
{
    long left, right;

    if (n == NULL)
        return 1;
    if (rb_parent(n) != parent)
        return -1;
    if (!rb_is_black(n) && (!rb_is_black(n->left) || !rb_is_black(n->right)))
        return -1;
    left = validate_subtree(n->left, n, count);
    right = validate_subtree(n->right, n, count);
    if (left < 0 || right < 0 || left != right)
        return -1;
    ++*count;
    return left + (rb_is_black(n) ? 1 : 0);
}

long rb_validate(const struct rb_tree *tree)
{
    long count = 0;

    if (tree->root != NULL && !rb_is_black(tree->root))
        return -1;
    if (validate_subtree(tree->root, NULL, &count) < 0)
        return -1;
    return count;
}
