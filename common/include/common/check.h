/*
 * Common layer: the step of an allocator's consistency checker
 * (vmareas_check in the kernel, malloc's heap check in libsys). A checker
 * walks its structure, stops at the first broken invariant and says what
 * broke through an optional out-parameter.
 */
#ifndef COMMON_CHECK_H
#define COMMON_CHECK_H

#include <abi/errno.h>

/* Leaves the checker with -EINVAL when cond is false, first storing `what`
 * (a reason, an address) in *out unless out is null. */
#define CHECK_OR_REFUSE(cond, out, what)                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            if (out)                                                                                                   \
                *(out) = (what);                                                                                       \
            return -EINVAL;                                                                                            \
        }                                                                                                              \
    } while (0)

#endif
