/*
 * Kernel layer: the account tree. Every process has an account whose parent
 * is its creator's; what a process holds (memory segments, kernel objects,
 * processes, threads, pinned bytes) is charged to its account and to every
 * ancestor's, so a limit set on one account bounds its whole subtree.
 *
 * Concepts. used[r] of an account is what it and all its descendants hold
 * of resource r; limit[r] is the bound its parent set (ACCOUNT_NO_LIMIT:
 * none). A charge of n units to account a is allowed when, for every
 * account x on the path from a to the root, used[r] + n <= limit[r]; it is
 * then added to every x on the path. An uncharge subtracts from the same
 * path. Charges are made against the account that the holding object
 * remembers (a segment its payer's, a thread its process's), never against
 * whoever happens to hold the object later, so a charge is always undone
 * on the same path.
 *
 * Invariants (account_check): used[r] of an account equals the charges
 * made to it directly plus the used[r] of its children; no charge has made
 * used exceed a limit (a limit lowered below use refuses new charges and
 * takes nothing away).
 *
 * Lifetime. An account is referenced by its process until that ends, by
 * each child account, and by each object that will uncharge it later (a
 * segment, a thread, an endpoint...). It is freed when the last reference
 * goes; by then its own charges are zero, or an object still holds a
 * reference.
 *
 * Failure modes: a refused charge is -EDQUOT and changes nothing. The depth
 * of the tree costs each charge O(depth); depth is bounded by the number of
 * processes, which the tree itself limits.
 *
 * Pure C over caller-provided storage: the kernel allocates accounts from a
 * slab cache (proc.c), the host tests from malloc.
 */
#ifndef KERNEL_ACCOUNT_H
#define KERNEL_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>
#include <abi/proc.h>

#define ACCOUNT_NO_LIMIT ABI_LIMIT_NONE

struct account {
    struct account *parent;
    uint64_t pid; /* the process it was made for (it may have ended) */
    uint32_t refs;
    bool root; /* a top of the tree: init's and the memory server's */
    uint64_t used[RES_COUNT];
    uint64_t limit[RES_COUNT];
};

/* A fresh account under parent (0: a root), holding one reference (its
 * process's); takes a reference on the parent. */
void account_init(struct account *a, struct account *parent);
void account_get(struct account *a);
/* Drops a reference; returns the account to free (and, in turn, each
 * ancestor whose last reference this was) through `release`. */
void account_put(struct account *a, void (*release)(struct account *));

/* Whether n units of r fit under every limit from a to the root. */
bool account_fits(const struct account *a, enum abi_resource r, uint64_t n);
/* Charges n units of r up the path: 0, or -EDQUOT having changed nothing. */
int account_charge(struct account *a, enum abi_resource r, uint64_t n);
/* Two charges of two different resources in one walk up the path (a
 * segment's bytes and its kernel object): both, or -EDQUOT having changed
 * nothing. */
int account_charge_both(struct account *a, enum abi_resource r1, uint64_t n1, enum abi_resource r2, uint64_t n2);
/* Charges even past a limit: for what the holder did not ask for (page
 * tables a migration needs). New charges are refused until use drops. */
void account_charge_force(struct account *a, enum abi_resource r, uint64_t n);
/* Takes back a charge made earlier on the same account. */
void account_uncharge(struct account *a, enum abi_resource r, uint64_t n);
/* Takes back a charge account_charge_both made. */
void account_uncharge_both(struct account *a, enum abi_resource r1, uint64_t n1, enum abi_resource r2, uint64_t n2);
/* Sets a's own limit (what its parent allows it). -EINVAL for an unknown
 * resource. A limit below current use refuses new charges only. */
int account_set_limit(struct account *a, enum abi_resource r, uint64_t limit);
/* The tightest room left for r along the path (ACCOUNT_NO_LIMIT: none). */
uint64_t account_room(const struct account *a, enum abi_resource r);

#endif
