/*
 * ABI layer: error codes. Every syscall returns a value >= 0 on success or
 * -E* on failure. One list, used by the kernel, libsys and the servers.
 */
#ifndef ABI_ERRNO_H
#define ABI_ERRNO_H

#define ABI_ERRORS(X)                                                                                                  \
    X(EOK, 0, "success")                                                                                               \
    X(EINVAL, 1, "invalid argument")                                                                                   \
    X(ENOMEM, 2, "out of memory")                                                                                      \
    X(EBADH, 3, "bad handle")                                                                                          \
    X(EFAULT, 4, "bad user address")                                                                                   \
    X(EPERM, 5, "operation not permitted")                                                                             \
    X(EBUSY, 6, "resource busy (pinned)")                                                                              \
    X(ETIMEDOUT, 7, "timed out")                                                                                       \
    X(ENOSYS, 8, "no such system call")                                                                                \
    X(ENOENT, 9, "no such object")                                                                                     \
    X(ERANGE, 10, "value out of range")                                                                                \
    X(E2BIG, 11, "argument too large")                                                                                 \
    X(EPEER, 12, "peer gone")                                                                                          \
    X(ENOSPC, 13, "no address space left")                                                                             \
    X(ENOEXEC, 14, "bad executable")                                                                                   \
    X(EDQUOT, 15, "quota exceeded")                                                                                    \
    X(EAGAIN, 16, "try again")                                                                                         \
    X(EEXIST, 17, "already exists")                                                                                    \
    X(ENOTSUP, 18, "not supported")

enum abi_error {
#define ABI_ERROR_ENUM(name, num, text) name = num,
    ABI_ERRORS(ABI_ERROR_ENUM)
#undef ABI_ERROR_ENUM
        ABI_ERROR_COUNT
};

#endif
