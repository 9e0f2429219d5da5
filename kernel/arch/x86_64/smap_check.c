/*
 * Architecture layer (x86-64): the boot check that SMAP does what the
 * kernel relies on. Called once by kmain (memory_init) on the BSP, after
 * paging_init and before any process exists. A scratch address space gets
 * one user page; outside the user copies the kernel must fault on it, and
 * inside them it must not. Either answer wrong is a [FAIL] line the suite
 * counts, not a panic: the kernel still works, with less protection than
 * it says.
 */
#include <abi/errno.h>
#include <abi/types.h>
#include <arch/arch.h>
#include <kernel/console.h>
#include <kernel/paging.h>
#include <kernel/pool.h>

void arch_smap_check(void)
{
    if (!arch_has_smap())
        return;
    uint64_t root = 0, frame = pool_alloc_frame();
    const uint64_t page = ABI_USER_BASE;
    if (!frame || paging_create(&root) != 0 || paging_map(root, page, frame, PAGE_SIZE, MAP_USER | MAP_WRITE) != 0) {
        ktest_report("smap", "kernel_kept_out", KTEST_SKIP, "no frame for the check's page tables");
    } else {
        uint64_t before = read_cr3(), word = 0;
        write_cr3(root);
        int unopened = arch_user_read_unopened((const void *)page);
        int copied = arch_user_copy(&word, (const void *)page, sizeof(word));
        write_cr3(before);
        ktest_report("smap", "kernel_kept_out", unopened == -EFAULT ? KTEST_PASS : KTEST_FAIL,
                     "a kernel read of a user page outside the copies did not fault");
        ktest_report("smap", "copies_let_in", copied == 0 ? KTEST_PASS : KTEST_FAIL,
                     "a user copy from a mapped user page failed (%d)", copied);
    }
    if (root)
        paging_destroy(root);
    if (frame)
        pool_free_frame(frame);
}
