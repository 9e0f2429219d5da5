/*
 * libsys: the program loader (see libsys/loader.h). Called by init and the
 * in-guest suite.
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
    rights_t rights = RIGHT_READ | RIGHT_PIN | ((part->flags & ELF_SEG_W) ? RIGHT_WRITE : 0) |
                      ((part->flags & ELF_SEG_X) ? RIGHT_EXEC : 0);
    err = sys_seg_give(seg.handle, proc, start, rights);
    if (err < 0)
        ms_free(seg.handle);
    return err;
}

static int64_t give_stack(handle_t proc, const char *args, size_t args_len, const struct loader_grant *grants,
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
    for (unsigned i = 0; i < ABI_STARTUP_HANDLES && err >= 0; i++) {
        if (grants[i].handle == HANDLE_NONE)
            continue;
        err = sys_handle_grant(proc, grants[i].handle, grants[i].rights);
        if (err >= 0)
            st->handles[i] = (handle_t)err;
    }
    if (err >= 0)
        err = sys_seg_give(seg.handle, proc, ABI_STACK_TOP - ABI_STACK_SIZE, RIGHT_READ | RIGHT_WRITE | RIGHT_PIN);
    if (err < 0) {
        ms_free(seg.handle);
        return err;
    }
    *startup_va = va;
    return 0;
}

void loader_spec_init(struct loader_spec *spec, const char *name, const void *image, size_t size, const char *args)
{
    *spec = (struct loader_spec){ .name = name, .image = image, .size = size, .args = args };
    for (unsigned r = 0; r < RES_COUNT; r++)
        spec->limits[r] = ABI_LIMIT_NONE;
}

handle_t loader_dma_device(void)
{
    static const uint16_t candidates[][2] = {
        { 0x1234, 0x11e8 }, /* QEMU's edu: a real DMA engine */
        { 0x8086, 0x1237 }, /* i440FX host bridge (QEMU pc, Bochs) */
        { 0x8086, 0x29c0 }, /* Q35 host bridge */
    };
    static handle_t device = HANDLE_NONE;
    for (unsigned i = 0; device == HANDLE_NONE && i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        int64_t h = sys_dev_open(candidates[i][0], candidates[i][1], 0);
        if (h >= 0)
            device = (handle_t)h;
    }
    return device;
}

void loader_default_limits(uint64_t limits[RES_COUNT])
{
    /* The memory server's total does not change while the system runs, so
     * the last one it gave stands in while it does not answer (it is
     * restarting, say). Before it ever answered, the kernel's count of
     * memory no process holds does: it is nonzero until memory is handed
     * over. A program started then gets smaller limits, never none. */
    static uint64_t known_total;
    struct ms_stats_global g = { 0 };
    struct abi_kinfo k = { 0 };
    sys_kinfo(&k);
    if (ms_stats_global(&g) == 0 && g.total_bytes != 0)
        known_total = g.total_bytes;
    uint64_t total = known_total ? known_total : k.user_bytes_free;
    limits[RES_MEMORY] = total / 2;
    limits[RES_KMEM] = k.pool_frames_total * ABI_PAGE_SIZE / 4;
    limits[RES_PROCESSES] = 64;
    limits[RES_THREADS] = 256;
    limits[RES_PINNED] = total / 8;
}

int64_t loader_spawn(const struct loader_spec *spec)
{
    const char *name = spec->name, *args = spec->args;
    const void *image = spec->image;
    size_t size = spec->size;
    size_t args_len = strlen(args);
    if (args_len >= ABI_ARGS_MAX)
        return -E2BIG;
    struct elf_image elf;
    const char *why = "";
    if (elf_check(image, size, ABI_USER_BASE, ABI_STACK_TOP - ABI_STACK_SIZE, &elf, &why) != 0) {
        printf("loader: %s refused: %s\n", name, why);
        return -ENOEXEC;
    }
    int64_t proc = sys_proc_create(name, strlen(name), spec->powers);
    if (proc < 0)
        return proc;
    int64_t err = 0;
    /* Limits first, so that nothing the child is given escapes them. */
    for (unsigned r = 0; r < RES_COUNT && err >= 0; r++)
        if (spec->limits[r] != ABI_LIMIT_NONE)
            err = sys_proc_limit((handle_t)proc, (enum abi_resource)r, spec->limits[r]);
    for (size_t i = 0; i < elf.nsegments && err >= 0; i++)
        if (elf.seg[i].memsz)
            err = give_part((handle_t)proc, &elf.seg[i], image);
    uint64_t startup_va = 0;
    if (err >= 0)
        err = give_stack((handle_t)proc, args, args_len, spec->grants, &startup_va);
    if (err >= 0)
        err = sys_proc_start((handle_t)proc, elf.entry, startup_va, startup_va);
    if (err < 0) {
        sys_handle_close((handle_t)proc);
        return err;
    }
    return proc;
}
