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
#include <common/rbtree_inline.h>

void rb_init(struct rb_tree *tree, rb_augment_fn augment)
{
    tree->root = NULL;
    tree->augment = augment;
}

void rb_propagate(struct rb_tree *tree, struct rb_node *node) { rb_propagate_through(node, NULL, tree->augment); }

void rb_insert(struct rb_tree *tree, struct rb_node *node, struct rb_node *parent, struct rb_node **link)
{
    rb_insert_with(tree, node, parent, link, tree->augment);
}

void rb_erase(struct rb_tree *tree, struct rb_node *node) { rb_erase_with(tree, node, tree->augment); }

/* The last node down `side` from n (n itself if it has no such child). */
static struct rb_node *outermost(struct rb_node *n, enum rb_side side)
{
    while (*rb_child(n, side) != NULL)
        n = *rb_child(n, side);
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

    if (*rb_child(node, side) != NULL)
        return outermost(*rb_child(node, side), rb_other(side));
    while ((parent = rb_parent(node)) != NULL && node == *rb_child(parent, side))
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
