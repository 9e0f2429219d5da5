/*
 * libsys: the program loader (see libsys/loader.h). Called by init.
 *
 * Order of work: check the whole image first (common/elf.c), create the
 * empty process, then fill and give one segment at a time. A failure after
 * the process exists closes its handle: an unstarted process whose last
 * handle goes is ended by the kernel, and its segments go back to the
 * memory server like any exiting process's.
 */
#include <abi/seg.h>
#include <common/elf.h>
#include <common/string.h>
#include <libsys/loader.h>
#include <libsys/memsrv.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

static int64_t give_part(handle_t proc, const struct elf_segment *part, const uint8_t *image)
{
    uint64_t start = part->vaddr & ~(ABI_PAGE_SIZE - 1);
    uint64_t end = (part->vaddr + part->memsz + ABI_PAGE_SIZE - 1) & ~(ABI_PAGE_SIZE - 1);
    struct ms_segment seg;
    int64_t err = ms_alloc(end - start, 0, 0, 0, &seg);
    if (err < 0)
        return err;
    /* The segment arrives zero-filled: only the file's bytes are copied. */
    memcpy((uint8_t *)seg.addr + (part->vaddr - start), image + part->offset, part->filesz);
    unsigned prot = ((part->flags & ELF_SEG_W) ? SEG_PROT_WRITE : 0) | ((part->flags & ELF_SEG_X) ? SEG_PROT_EXEC : 0);
    err = sys_seg_give(seg.handle, proc, start, prot);
    if (err < 0)
        ms_free(seg.handle);
    return err;
}

static int64_t give_stack(handle_t proc, const char *args, size_t args_len, const handle_t *grant, unsigned ngrant,
                          uint64_t *startup_va)
{
    struct ms_segment seg;
    int64_t err = ms_alloc(ABI_STACK_SIZE, 0, 0, 0, &seg);
    if (err < 0)
        return err;
    uint64_t va = ABI_STARTUP_ADDR;
    struct abi_startup *st = (struct abi_startup *)((uint8_t *)seg.addr + (va - (ABI_STACK_TOP - ABI_STACK_SIZE)));
    st->magic = ABI_STARTUP_MAGIC;
    st->args_len = args_len;
    memcpy(st->args, args, args_len);
    st->args[args_len] = 0;
    for (unsigned i = 0; i < ngrant && err >= 0; i++) {
        if (grant[i] == HANDLE_NONE)
            continue;
        err = sys_handle_grant(proc, grant[i]);
        if (err >= 0)
            st->handles[i] = (handle_t)err;
    }
    if (err >= 0)
        err = sys_seg_give(seg.handle, proc, ABI_STACK_TOP - ABI_STACK_SIZE, SEG_PROT_WRITE);
    if (err < 0) {
        ms_free(seg.handle);
        return err;
    }
    *startup_va = va;
    return 0;
}

int64_t loader_spawn(const char *name, const void *image, size_t size, const char *args, const handle_t *grant,
                     unsigned ngrant)
{
    size_t args_len = strlen(args);
    if (args_len >= ABI_ARGS_MAX || ngrant > ABI_STARTUP_HANDLES)
        return -E2BIG;
    struct elf_image elf;
    const char *why = "";
    if (elf_check(image, size, ABI_USER_BASE, ABI_STACK_TOP - ABI_STACK_SIZE, &elf, &why) != 0) {
        printf("loader: %s refused: %s\n", name, why);
        return -ENOEXEC;
    }
    int64_t proc = sys_proc_create(name, strlen(name));
    if (proc < 0)
        return proc;
    int64_t err = 0;
    for (size_t i = 0; i < elf.nsegments && err >= 0; i++)
        if (elf.seg[i].memsz)
            err = give_part((handle_t)proc, &elf.seg[i], image);
    uint64_t startup_va = 0;
    if (err >= 0)
        err = give_stack((handle_t)proc, args, args_len, grant, ngrant, &startup_va);
    if (err >= 0)
        err = sys_proc_start((handle_t)proc, elf.entry, startup_va, startup_va);
    if (err < 0) {
        sys_handle_close((handle_t)proc);
        return err;
    }
    return proc;
}
