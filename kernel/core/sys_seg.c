/*
 * Kernel layer: system calls of segments (see core/syscalls.h and
 * kernel/segment.h): what a holder may do with a segment handle.
 */
#include <abi/errno.h>
#include <abi/seg.h>
#include <arch/arch.h>
#include <common/fmt.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/proc.h>
#include <kernel/segment.h>
#include <kernel/usercopy.h>
#include "syscalls.h"

static struct process *self(void) { return current->proc; }

int64_t sys_seg_info(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct segment *s;
    SYSCALL_TRY(segment_arg(a0, 0, &s));
    struct abi_seg_info info;
    segment_info(s, &info);
    return copy_to_user(a1, &info, sizeof(info));
}

int64_t sys_seg_pin(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct segment *s;
    struct device *d;
    do {
        SYSCALL_TRY(segment_arg(a0, RIGHT_PIN, &s));
    } while (segment_wait_idle(s)); /* a migration under way: pinned after it */
    SYSCALL_TRY(device_arg(a1, RIGHT_DMA, &d));
    uint64_t phys;
    int err = segment_pin(s, d, &phys);
    return err ? err : (int64_t)phys;
}

int64_t sys_seg_unpin(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct segment *s;
    int err = segment_arg(a0, 0, &s);
    return err ? err : segment_unpin(s);
}

int64_t sys_seg_give(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct segment *s;
    struct process *to;
    rights_t held;
    int err;
    do {
        if ((err = handle_get(&self()->handles, a0, HANDLE_SEGMENT, 0, (void **)&s, &held)) != 0)
            return err;
    } while (segment_wait_idle(s));
    SYSCALL_TRY(syscall_process_arg(a1, RIGHT_CONTROL, &to));
    if (to->exited)
        return -EPEER;
    if (a3 & ~(uint64_t)RIGHTS_SEGMENT)
        return -EINVAL;
    if (a2 & (PAGE_SIZE - 1))
        return -EINVAL;
    /* Large pages need the address and the memory at the same offset
     * from a 2 MiB boundary; elsewhere a big segment maps with an entry a
     * 4 KiB page, all written with the kernel lock held. */
    if (a2 && s->size > ABI_SEG_UNALIGNED_MAX && ((a2 ^ s->phys) & (ABI_LARGE_PAGE_SIZE - 1)))
        return -EINVAL;
    rights_t rights = held & (a3 ? (rights_t)a3 : RIGHTS_SEGMENT);
    err = segment_move(s, to, true, a2, rights);
    return err ? err : (int64_t)s->vaddr;
}

int64_t sys_kcheck(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    uint64_t sid = 0;
    const char *why = "";
    int err = segment_check_all(&sid, &why);
    if (err && a1) {
        char text[128];
        size_t n = fmt_snprintf(text, sizeof(text), "segment %#lx: %s", sid, why);
        n = n < sizeof(text) ? n + 1 : sizeof(text);
        if (n > a1)
            n = a1;
        text[n - 1] = 0;
        copy_to_user(a0, text, n);
        kprintf("kcheck: %s\n", text);
    }
    return err;
}
