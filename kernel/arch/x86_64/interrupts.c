/*
 * Architecture layer (x86-64): which interrupt controllers run the machine
 * (arch/apic.h), chosen once at boot by arch_interrupts_init (kmain, after
 * paging, before the timer), and the by-line calls generic code makes
 * (arch_irq_mask, arch_irq_unmask, arch_irq_eoi: kernel/core/irq.c, the
 * console).
 *
 * APIC mode needs a local APIC, a MADT the parser accepts (common/acpi.c
 * refuses bad checksums, truncations and contradictions) that lists this
 * CPU, and an I/O APIC that answers. Anything less, or `apic=off` on the
 * command line, leaves the machine in legacy mode: the 8259s, the PIT,
 * one CPU, with a line in the boot log that says why.
 */
#include <common/cmdline.h>
#include <common/string.h>
#include <arch/apic.h>
#include <arch/arch.h>
#include <arch/smp.h>
#include <arch/trap.h>
#include <kernel/acpi_tables.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/sched.h>

/* Room for the MADT: 8 bytes per processor, 256 processors, and the rest. */
#define MADT_MAX_BYTES 8192u

static bool apic_mode;
static struct acpi_madt madt;
static uint8_t madt_bytes[MADT_MAX_BYTES];

bool interrupts_apic_mode(void) { return apic_mode; }
const struct acpi_madt *interrupts_madt(void) { return apic_mode ? &madt : 0; }

static bool load_madt(const struct mb_info *info)
{
    if (acpi_tables_init(info) != 0) {
        kprintf("apic: no ACPI tables, so no MADT\n");
        return false;
    }
    struct acpi_error err;
    size_t len;
    int r = acpi_table_copy("APIC", madt_bytes, sizeof madt_bytes, &len, &err);
    if (r == 0)
        r = acpi_madt_parse(madt_bytes, len, &madt, &err);
    if (r != 0) {
        kprintf("apic: MADT refused: %s\n", err.msg);
        return false;
    }
    return true;
}

/* Device registers never lie in RAM; a table that says otherwise would have
 * the kernel write into memory through an uncached alias. */
static bool registers_outside_ram(const struct mb_info *info, uint64_t lapic_base)
{
    if (mb_overlaps_ram(info, lapic_base, PAGE_SIZE)) {
        kprintf("apic: the local APIC's registers at %#lx lie in RAM: refused\n", lapic_base);
        return false;
    }
    for (unsigned i = 0; i < madt.nioapics; i++) {
        if (mb_overlaps_ram(info, madt.ioapics[i].address, PAGE_SIZE)) {
            kprintf("apic: the MADT puts I/O APIC %u at %#x, in RAM: refused\n", madt.ioapics[i].id,
                    madt.ioapics[i].address);
            return false;
        }
    }
    return true;
}

static const struct acpi_cpu *madt_cpu(uint32_t apic_id)
{
    for (unsigned i = 0; i < madt.ncpus; i++)
        if (madt.cpus[i].apic_id == apic_id && madt.cpus[i].enabled)
            return &madt.cpus[i];
    return 0;
}

static bool enter_apic_mode(const struct mb_info *info)
{
    if (!lapic_present()) {
        kprintf("apic: this CPU has no local APIC\n");
        return false;
    }
    if (!load_madt(info))
        return false;
    uint64_t base = lapic_base_address();
    if (base != madt.lapic_address)
        kprintf("apic: the MADT puts the local APIC at %#lx, the CPU at %#lx: the CPU's is used\n", madt.lapic_address,
                base);
    if (!registers_outside_ram(info, base) || !lapic_map(base))
        return false;
    uint32_t bsp_id = lapic_id();
    const struct acpi_cpu *bsp = madt_cpu(bsp_id);
    if (!bsp) {
        kprintf("apic: the MADT does not list this CPU (APIC id %u) as enabled\n", bsp_id);
        return false;
    }
    if (!ioapic_init(&madt, bsp_id))
        return false;
    struct cpu *c = this_cpu();
    c->apic_id = bsp_id;
    c->acpi_uid = bsp->uid;
    lapic_init_this_cpu(&madt, bsp->uid);
    kprintf("apic: local APIC at %#lx, BSP APIC id %u; MADT: %u CPU(s) enabled, %u I/O APIC(s), %u override(s)\n", base,
            bsp_id, madt.enabled_cpus, madt.nioapics, madt.noverrides);
    return true;
}

/* CPUID may deny a local APIC that is there all the same: QEMU with
 * `-cpu ...,-apic` and more than one CPU gives each one, and firmware that
 * believes CPUID leaves it as at reset, LINT0 masked. The 8259s' output
 * arrives on LINT0, so it would stop there and the PIT never tick. */
static void pass_8259s_through_hidden_lapic(const struct mb_info *info)
{
    if (!lapic_enabled_by_msr())
        return;
    uint64_t base = lapic_base_address();
    if (!registers_outside_ram(info, base) || !lapic_map(base))
        return;
    lapic_virtual_wire();
    kprintf("apic: CPUID denies a local APIC, yet one answers at %#lx: set to pass the 8259s' interrupts on\n", base);
}

void arch_interrupts_init(const struct mb_info *info, const char *cmdline)
{
    pic_init();
    if (boot_option_is(cmdline, "apic", "off"))
        kprintf("apic: apic=off on the command line\n");
    else
        apic_mode = enter_apic_mode(info);
    if (!apic_mode) {
        if (!lapic_present())
            pass_8259s_through_hidden_lapic(info);
        kprintf("apic: legacy mode: the 8259 PICs and the PIT carry interrupts; one CPU\n");
    }
    uint64_t storm;
    if (cmdline_get(cmdline, "nmi.storm", 0, 0)) {
        if (apic_mode && cmdline_get_u64(cmdline, "nmi.storm", &storm) && storm >= 1 && storm <= SCHED_HZ) {
            trap_set_nmi_storm((unsigned)storm);
            kprintf("nmi: storm test: an NMI to every other CPU each %lu ms\n", storm * 1000 / SCHED_HZ);
        } else {
            kprintf("nmi: nmi.storm wants 1 to %u ticks and the local APIC; ignored\n", SCHED_HZ);
        }
    }
}

void arch_irq_unmask(unsigned line)
{
    if (apic_mode)
        ioapic_unmask_line(line);
    else
        pic_unmask(line);
}

void arch_irq_mask(unsigned line)
{
    if (apic_mode)
        ioapic_mask_line(line);
    else
        pic_mask(line);
}

void arch_irq_eoi(unsigned line)
{
    if (apic_mode)
        lapic_eoi();
    else
        pic_eoi(line);
}
