/*
 * Kernel layer: the account tree (theory in kernel/account.h). Called by the
 * process layer (accounts are born and die with processes), by every code
 * path that creates a charged kernel object or segment, and by the host
 * tests in tests/host/kernel.
 *
 * A charge walks the path once, adding as it goes up; an account that
 * refuses makes it take back what it added below. Nothing can change the
 * path meanwhile (the kernel does not switch threads inside a charge), so
 * a refused charge leaves every account as it found it.
 */
#include <abi/errno.h>
#include <kernel/account.h>
#include <kernel/console.h>
#include <kernel/ref.h>

void account_init(struct account *a, struct account *parent)
{
    *a = (struct account){ .parent = parent, .refs = 1, .root = parent == 0 };
    for (unsigned r = 0; r < RES_COUNT; r++)
        a->limit[r] = ACCOUNT_NO_LIMIT;
    if (parent)
        account_get(parent);
}

void account_get(struct account *a) { a->refs++; }

void account_put(struct account *a, void (*release)(struct account *))
{
    while (a) {
        if (!ref_drop(&a->refs))
            return;
        for (unsigned r = 0; r < RES_COUNT; r++)
            VERIFY3U(a->used[r], ==, 0);
        struct account *parent = a->parent;
        release(a);
        a = parent;
    }
}

/* Whether n more units of r fit under x's own limit (used + n <= limit,
 * counted without overflow: so a limit lowered below use refuses even 0),
 * and x's use after the charge. */
static inline bool room_for(const struct account *x, enum abi_resource r, uint64_t n, uint64_t *after)
{
    *after = x->used[r] + n;
    return *after >= n && *after <= x->limit[r];
}

static bool fits_one(const struct account *x, enum abi_resource r, uint64_t n)
{
    uint64_t after;
    return room_for(x, r, n, &after);
}

bool account_fits(const struct account *a, enum abi_resource r, uint64_t n)
{
    if ((unsigned)r >= RES_COUNT)
        return false;
    for (const struct account *x = a; x; x = x->parent)
        if (!fits_one(x, r, n))
            return false;
    return true;
}

int account_charge(struct account *a, enum abi_resource r, uint64_t n)
{
    if ((unsigned)r >= RES_COUNT)
        return -EDQUOT;
    for (struct account *x = a; x; x = x->parent) {
        uint64_t after;
        if (!room_for(x, r, n, &after)) {
            for (struct account *y = a; y != x; y = y->parent)
                y->used[r] -= n;
            return -EDQUOT;
        }
        x->used[r] = after;
    }
    return 0;
}

int account_charge_both(struct account *a, enum abi_resource r1, uint64_t n1, enum abi_resource r2, uint64_t n2)
{
    if ((unsigned)r1 >= RES_COUNT || (unsigned)r2 >= RES_COUNT || r1 == r2)
        return -EDQUOT;
    for (struct account *x = a; x; x = x->parent) {
        uint64_t after1, after2;
        if (!room_for(x, r1, n1, &after1) || !room_for(x, r2, n2, &after2)) {
            for (struct account *y = a; y != x; y = y->parent) {
                y->used[r1] -= n1;
                y->used[r2] -= n2;
            }
            return -EDQUOT;
        }
        x->used[r1] = after1;
        x->used[r2] = after2;
    }
    return 0;
}

void account_charge_force(struct account *a, enum abi_resource r, uint64_t n)
{
    for (struct account *x = a; x; x = x->parent)
        x->used[r] += n;
}

void account_uncharge(struct account *a, enum abi_resource r, uint64_t n)
{
    for (struct account *x = a; x; x = x->parent) {
        VERIFY3U(x->used[r], >=, n);
        x->used[r] -= n;
    }
}

void account_uncharge_both(struct account *a, enum abi_resource r1, uint64_t n1, enum abi_resource r2, uint64_t n2)
{
    for (struct account *x = a; x; x = x->parent) {
        VERIFY3U(x->used[r1], >=, n1);
        VERIFY3U(x->used[r2], >=, n2);
        x->used[r1] -= n1;
        x->used[r2] -= n2;
    }
}

int account_set_limit(struct account *a, enum abi_resource r, uint64_t limit)
{
    if ((unsigned)r >= RES_COUNT)
        return -EINVAL;
    a->limit[r] = limit;
    return 0;
}

uint64_t account_room(const struct account *a, enum abi_resource r)
{
    uint64_t room = ACCOUNT_NO_LIMIT;
    for (const struct account *x = a; x; x = x->parent) {
        uint64_t left = x->used[r] >= x->limit[r] ? 0 : x->limit[r] - x->used[r];
        if (x->limit[r] != ACCOUNT_NO_LIMIT && left < room)
            room = left;
    }
    return room;
}
