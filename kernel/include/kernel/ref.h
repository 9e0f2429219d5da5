/*
 * Kernel layer: the reference count every shared kernel object carries
 * (accounts, processes, threads, endpoints, notifications, interrupt
 * objects, devices). An object's _get adds one; its _put calls ref_drop and
 * ends the object when ref_drop says the last reference went. A put on an
 * object nobody holds is a broken invariant, not an error to report.
 */
#ifndef KERNEL_REF_H
#define KERNEL_REF_H

#include <stdbool.h>
#include <stdint.h>
#include <kernel/console.h>

/* Drops one reference: true when it was the last. */
static inline bool ref_drop(uint32_t *refs)
{
    VERIFY(*refs > 0);
    return --*refs == 0;
}

#endif
