/*
 * Kernel layer: kmain, the boot sequence after boot/boot.asm. Reads the
 * multiboot2 information, prints the physical memory map, carves out the
 * kernel frame pool, builds the real page tables, sets up the CPU, the
 * interrupt controllers, the timer and the scheduler, brings up the other
 * CPUs, and starts init from its boot module.
 */
#include <abi/errno.h>
#include <arch/arch.h>
#include <common/cmdline.h>
#include <common/fmt.h>
#include <common/string.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/lock.h>
#include <kernel/iommu.h>
#include <kernel/ipc.h>
#include <kernel/irq.h>
#include <kernel/notification.h>
#include <kernel/kmem.h>
#include <kernel/memsrv.h>
#include <kernel/multiboot.h>
#include <kernel/paging.h>
#include <kernel/physmem.h>
#include <kernel/pool.h>
#include <kernel/proc.h>
#include <kernel/sched.h>
#include <kernel/segment.h>
#include <kernel/syscall.h>

#define EARLY_MAP_LIMIT (1ull << 30) /* boot.asm maps the first GiB */

/* The pool is 1/16 of RAM, at least 8 MiB and at most 128 MiB: page tables
 * for every user mapping and all kernel objects live there. Below 40 MiB
 * it is at most a fifth of RAM (2 MiB at least): an 8 MiB pool on 19 MiB
 * left the memory server less than a 2 MiB pool on 15 MiB, the whole suite
 * ran in the latter, and a quarter (4 MiB of 16) left too little. */
#define POOL_MIN       (8ull << 20)
#define POOL_MAX       (128ull << 20)
#define POOL_SMALL_MIN (2ull << 20)

/* Below this much RAM (as the memory map counts it: QEMU's `-m 16M` gives
 * 15 MiB) the kernel's pool and the boot modules leave the memory server
 * too little to start the system's own services (measured with the old
 * 8 MiB least pool: at 14 MiB `names` could not serve, at 12 and 13
 * programs could not start; not measured again with the smaller pool). */
#define RAM_MIN (15ull << 20)

struct boot_module boot_modules[BOOT_MODULES_MAX];
unsigned boot_module_count;
char boot_cmdline[ABI_ARGS_MAX];

static struct mb_info mbinfo;
extern char kernel_phys_start[], kernel_end[];

static void mb_warn(void *ctx, const char *msg)
{
    (void)ctx;
    kprintf("multiboot: %s\n", msg);
}

static void print_memory_map(const struct mb_info *info)
{
    kprintf("physical memory map (%zu entries):\n", info->nregions);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < info->nregions; i++) {
        const struct mb_region *r = &info->regions[i];
        if (r->base > prev_end)
            kprintf("  %#014lx-%#014lx  hole      %8lu KiB\n", prev_end, r->base - 1, (r->base - prev_end) >> 10);
        kprintf("  %#014lx-%#014lx  %-9s %8lu KiB\n", r->base, r->base + r->len - 1, mb_mem_type_name(r->type),
                r->len >> 10);
        prev_end = r->base + r->len;
    }
    kprintf("  RAM total %lu MiB\n", mb_ram_bytes(info) >> 20);
}

/* Where the boot modules are, until they become segments. */
static struct phys_range module_ranges[BOOT_MODULES_MAX];

bool boot_option_is(const char *cmdline, const char *key, const char *word)
{
    const char *value;
    size_t len, subsystem = 0;
    if (!cmdline_get(cmdline, key, &value, &len))
        return false;
    if (cmdline_item_is(value, len, word))
        return true;
    while (key[subsystem] != '\0' && key[subsystem] != '.')
        subsystem++;
    kprintf("%.*s: %s=%.*s is not understood (%s=%s is); ignored\n", (int)subsystem, key, key, (int)len, value, key,
            word);
    return false;
}

/* The command line's length as the boot loader gave it: boot_cmdline
 * holds at most ABI_ARGS_MAX - 1 bytes of it. */
static size_t boot_cmdline_given;

static void copy_boot_strings(const struct mb_info *info)
{
    boot_cmdline_given = strlen(info->cmdline);
    strlcpy(boot_cmdline, info->cmdline, sizeof(boot_cmdline));
    for (size_t i = 0; i < info->nmodules && boot_module_count < BOOT_MODULES_MAX; i++) {
        const struct mb_module *mod = &info->modules[i];
        if (mod->start & (PAGE_SIZE - 1)) {
            kprintf("boot: module '%s' is not page aligned; left out\n", mod->cmdline);
            continue;
        }
        if (mod->end <= mod->start) {
            /* Nothing to load, and two of them would claim the same page. */
            kprintf("boot: module '%s' is empty; left out\n", mod->cmdline);
            continue;
        }
        /* A module becomes a segment the memory server may move and free:
         * its frames must be RAM it could own, never the kernel's. (GRUB
         * under UEFI loads modules into the first MiB: RAM like any.) */
        uint64_t pages = (mod->end - mod->start + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
        uint64_t image = (uint64_t)kernel_phys_start, image_end = (uint64_t)kernel_end - KERNEL_VMA;
        if (!mb_within_ram(info, mod->start, pages) || (mod->start < image_end && image < mod->start + pages)) {
            kprintf("boot: module '%s' at %#lx-%#lx is not RAM apart from the kernel's; left out\n", mod->cmdline,
                    mod->start, mod->end);
            continue;
        }
        module_ranges[boot_module_count] = (struct phys_range){ mod->start, mod->end - mod->start };
        struct boot_module *m = &boot_modules[boot_module_count++];
        m->size = mod->end - mod->start;
        strlcpy(m->args, mod->cmdline, sizeof(m->args));
        size_t n = 0;
        while (m->args[n] && m->args[n] != ' ' && n + 1 < sizeof(m->name)) {
            m->name[n] = m->args[n];
            n++;
        }
        m->name[n] = 0;
    }
}

static void carve_pool(void)
{
    if (mb_ram_bytes(&mbinfo) < RAM_MIN) {
        /* Too little memory is the machine's fault, not a broken
         * invariant: refused in one line, as a CPU that lacks a feature. */
        refuse_machine("%lu MiB of RAM, and the system needs at least %llu", mb_ram_bytes(&mbinfo) >> 20,
                       RAM_MIN >> 20);
    }
    uint64_t ram = mb_ram_bytes(&mbinfo), size = ram / 16;
    size = size < POOL_MIN ? POOL_MIN : size > POOL_MAX ? POOL_MAX : size;
    if (size > ram / 5)
        size = ram / 5 < POOL_SMALL_MIN ? POOL_SMALL_MIN : ram / 5;
    size &= ~(LARGE_PAGE_SIZE - 1);
    uint64_t base;
    /* Below the early map's limit, since paging_init builds the real tables
     * out of pool frames before they exist. */
    while (physmem_alloc(size, LARGE_PAGE_SIZE, EARLY_MAP_LIMIT, &base) != 0) {
        if (size <= (2ull << 20)) {
            /* A memory map with its RAM above 1 GiB. */
            refuse_machine("no 2 MiB of free RAM below 1 GiB for the kernel's frame pool (%lu MiB of RAM in all)",
                           mb_ram_bytes(&mbinfo) >> 20);
        }
        size /= 2;
    }
    pool_init(base, size);
    kprintf("kernel frame pool: %lu KiB at %#lx\n", size >> 10, base);
}

static void make_module_segments(void)
{
    for (unsigned i = 0; i < boot_module_count; i++) {
        uint64_t size = (module_ranges[i].len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
        if (segment_create(module_ranges[i].base, size, SEG_INFO_MODULE, 0, &boot_modules[i].seg) != 0)
            panic("boot: module %s overlaps another", boot_modules[i].name);
    }
}

static int find_module(const char *name)
{
    for (unsigned i = 0; i < boot_module_count; i++)
        if (strcmp(boot_modules[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void boot_failure(const char *what, int err)
{
    kprintf("tessera: %s (error %d)\ntessera: shutdown status 1\n", what, err);
    arch_shutdown(1);
}

/* The first processes: the memory server (if its module is there) and init.
 * Both get the server's endpoint; init gets the boot modules' images. Then
 * every free frame goes to the memory server. */
static void start_boot_processes(void)
{
    int init_module = find_module("init"), memsrv_module = find_module("memsrv");
    if (init_module < 0)
        boot_failure("no boot module named init", -ENOENT);
    int err;
    /* The kernel keeps the endpoint's first reference: it outlives its holders. */
    if (memsrv_module >= 0 && ((err = endpoint_create(0, &memsrv_endpoint)) != 0 ||
                               (err = notification_create(0, &memsrv_notification)) != 0 ||
                               (err = endpoint_bind(memsrv_endpoint, memsrv_notification)) != 0))
        boot_failure("no memory for the memory server's endpoint", err);

    struct process *init, *memsrv = 0;
    struct abi_startup *init_startup;
    err = proc_load_module((unsigned)init_module, boot_cmdline, strlen(boot_cmdline), memsrv_endpoint,
                           POWERS_INHERITABLE | POWER_SUPERVISE, &init, &init_startup);
    if (err)
        boot_failure("init could not start", err);
    /* Init reads the images (read-only, never pinned). */
    for (unsigned i = 0; i < boot_module_count; i++)
        if ((err = segment_attach(boot_modules[i].seg, init, true, 0, RIGHT_READ)) != 0)
            boot_failure("no room to give init the boot modules", err);

    if (memsrv_module >= 0) {
        char args[ABI_ARGS_MAX], own[64];
        /* memsrv's own words after the line: init's pid, and for a
         * successor its number (memsrv.c), at its longest. A line that
         * leaves no room for them all is refused at boot, or the first
         * restart would fail for want of it. */
        size_t own_len =
            (size_t)fmt_snprintf(own, sizeof(own), " init.pid=%#lx memsrv.restart=%u", init->pid, UINT32_MAX);
        if (strlen(boot_cmdline) + own_len >= sizeof(args) || boot_cmdline_given >= sizeof(boot_cmdline)) {
            /* Refused whole rather than cut: a cut line would drop words. */
            kprintf("tessera: the kernel command line is %lu bytes; at most %lu fit\n", boot_cmdline_given,
                    sizeof(args) - 1 - own_len);
            boot_failure("kernel command line too long", -E2BIG);
        }
        int n = fmt_snprintf(args, sizeof(args), "%s init.pid=%#lx", boot_cmdline, init->pid);
        err = proc_load_module((unsigned)memsrv_module, args, (size_t)n, memsrv_endpoint, POWER_MEMSRV, &memsrv, 0);
        if (err)
            boot_failure("memsrv could not start", err);
        memsrv_process = memsrv;
        /* Init supervises it: a handle to wait for its end and restart it
         * (SYS_MS_RESTART). Init has not run yet: its startup block can
         * still be written. */
        handle_t h;
        if ((err = handle_install(&init->handles, memsrv, HANDLE_PROCESS, RIGHT_CONTROL | RIGHT_WAIT, &h)) != 0)
            boot_failure("no room for init's handle to the memory server", err);
        proc_handle_added(memsrv);
        init_startup->handles[ABI_STARTUP_SUPERVISE] = h;
    }
    memsrv_world_record(&mbinfo);
    if (memsrv)
        physmem_hand_over();
}

/* The multiboot information, checked and logged; the command line and the
 * modules' names and arguments are copied into the kernel. */
static void read_boot_info(uint32_t magic, uint32_t mbi_phys)
{
    if (magic != MB2_BOOTLOADER_MAGIC)
        panic("not started by a multiboot2 loader (magic %#x)", magic);
    if (mbi_phys >= EARLY_MAP_LIMIT)
        panic("multiboot information at %#x is outside the first GiB", mbi_phys);
    if (mb_parse(phys_to_virt(mbi_phys), EARLY_MAP_LIMIT - mbi_phys, &mbinfo, mb_warn, 0) != 0)
        panic("the boot loader gave no usable memory map");
    kprintf("boot loader: %s\ncommand line: %s\n", mbinfo.bootloader, mbinfo.cmdline);
    if (mbinfo.have_efi)
        kprintf("firmware: UEFI, %u-bit system table at %#lx (not called)\n", mbinfo.efi_bits, mbinfo.efi_system_table);
    else
        kprintf("firmware: BIOS (no EFI system table tag)\n");
    if (mbinfo.efi_boot_services)
        kprintf("firmware: warning: the boot loader left UEFI boot services running; the kernel ignores them\n");
    print_memory_map(&mbinfo);
    copy_boot_strings(&mbinfo);
}

/* What no allocation may take: the first MiB (firmware data; the APs'
 * trampoline goes there later), the kernel image, the multiboot
 * information and the modules. Returns how many ranges it wrote. */
static unsigned boot_reserved_ranges(uint32_t mbi_phys, struct phys_range *reserved)
{
    unsigned n = 0;
    reserved[n++] = (struct phys_range){ 0, 1ull << 20 };
    reserved[n++] = (struct phys_range){ (uint64_t)kernel_phys_start,
                                         (uint64_t)kernel_end - KERNEL_VMA - (uint64_t)kernel_phys_start };
    reserved[n++] = (struct phys_range){ mbi_phys, mbinfo.total_size };
    for (unsigned i = 0; i < boot_module_count; i++)
        reserved[n++] = module_ranges[i];
    return n;
}

static void memory_init(const struct phys_range *reserved, unsigned nreserved)
{
    physmem_init(&mbinfo, reserved, nreserved);
    carve_pool();
    kmem_init();
    arch_cpu_init();
    paging_init(&mbinfo);
    kprintf("paging: direct map of RAM at %#lx, NX %s, SMEP %s, SMAP %s\n", DIRECT_MAP_BASE,
            arch_has_nx() ? "on" : "off", arch_has_smep() ? "on" : "off", arch_has_smap() ? "on" : "off");
    arch_smap_check();
}

static void kernel_objects_init(void)
{
    proc_init();
    segment_init();
    ipc_init();
    notification_init();
    irq_init();
    syscall_init();
    sched_init();
}

/* Interrupts, the timer, the other CPUs and the IOMMU, with their
 * self-tests when the command line asks for them. */
static void hardware_init(const struct phys_range *reserved, unsigned nreserved)
{
    arch_interrupts_init(&mbinfo, boot_cmdline);
    arch_timer_init(SCHED_HZ, boot_cmdline);
    console_input_init();
    kprintf("timer: %u Hz, TSC %lu MHz\n", SCHED_HZ, arch_tsc_per_us());
    /* The other CPUs idle until the scheduler runs threads on them. Their
     * start-up code goes below 1 MiB (reserved[0]), but not onto what the
     * kernel still reads: the multiboot information and the modules. */
    smp_start(&mbinfo, reserved + 1, nreserved - 1, boot_cmdline);
    if (cmdline_get(boot_cmdline, "smp.selftest", 0, 0))
        smp_selftest();
    kprintf("iommu: %d remapping unit(s) in use\n", iommu_init(&mbinfo));
    iommu_set_fault_handler(device_dma_fault);
    if (cmdline_get(boot_cmdline, "iommu.selftest", 0, 0))
        iommu_selftest(&mbinfo);
}

void kmain(uint32_t magic, uint32_t mbi_phys);
void kmain(uint32_t magic, uint32_t mbi_phys)
{
    arch_serial_init();
    kprintf("\ntessera: booting\n");
    read_boot_info(magic, mbi_phys);
    struct phys_range reserved[BOOT_MODULES_MAX + 3];
    unsigned nreserved = boot_reserved_ranges(mbi_phys, reserved);
    memory_init(reserved, nreserved);
    kernel_objects_init();
    /* Boot code runs as the BSP's idle thread, under the kernel lock, until
     * sched_start: the other CPUs run no thread before then. */
    kernel_lock();
    hardware_init(reserved, nreserved);
    kprintf("modules: %u; user memory free: %lu MiB; pool: %lu frames free\n", boot_module_count,
            physmem_free_bytes() >> 20, pool_free_frames());
    make_module_segments();
    start_boot_processes();
    sched_start();
}
