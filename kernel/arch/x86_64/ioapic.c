/*
 * Architecture layer (x86-64): the I/O APICs the MADT lists, in APIC mode.
 * Callers: interrupts.c (set-up at boot, then arch_irq_mask/unmask).
 *
 * Generic code names interrupts by ISA line, 0 to 15, the numbers a PCI
 * function's interrupt-line register holds when firmware routed its INTx
 * to the 8259s. Each line is routed here to one I/O APIC input:
 *
 *   - its global system interrupt is the line's number, unless an
 *     interrupt source override of the MADT moves it (QEMU and Bochs move
 *     line 0, the PIT, to input 2); a line whose input another line's
 *     override took has no input (line 2, the cascade, on those machines);
 *   - polarity and trigger come from the override's flags; where those say
 *     "as the bus says", ISA's rule holds (edge, active high) except for
 *     the lines firmware set level-triggered in the ELCR, which are the
 *     ones it gave to PCI INTx: level and active low, as PCI signals them.
 *
 * This relies on the chipset presenting a PCI interrupt routed to ISA line
 * N at I/O APIC input N as well as at the 8259, which QEMU's pc (PIIX) and
 * q35 (ICH9 LPC) machines and Bochs do. Real chipsets also wire PCI INTx
 * to inputs 16 and up, named only by the ACPI _PRT methods, which need an
 * AML interpreter this kernel does not have: those inputs stay masked.
 *
 * Every line is delivered to the BSP as VECTOR_IRQ_BASE + line, masked
 * until a driver or the kernel unmasks it. The index/data register pair
 * of an I/O APIC must not be used by two CPUs at once: today only the BSP
 * calls in here (interrupts are off in the kernel, which runs on it).
 */
#include <arch/apic.h>
#include <arch/arch.h>
#include <kernel/console.h>
#include <kernel/ioremap.h>

#define ISA_LINES 16u

#define IOAPIC_REGSEL       0x00
#define IOAPIC_WINDOW       0x10
#define IOAPIC_REG_VERSION  0x01
#define IOAPIC_REG_REDIRECT 0x10

#define REDIRECT_ACTIVE_LOW (1u << 13)
#define REDIRECT_LEVEL      (1u << 15)
#define REDIRECT_MASKED     (1u << 16)

struct ioapic {
    volatile uint32_t *regs;
    uint32_t gsi_base;
    unsigned inputs;
};

struct isa_route {
    bool routed;
    struct ioapic *ioapic;
    unsigned input;
    uint32_t low; /* the redirection entry's low half, masked */
};

static struct ioapic ioapics[ACPI_MADT_MAX_IOAPICS];
static unsigned nioapics;
static struct isa_route routes[ISA_LINES];

static uint32_t ioapic_read(struct ioapic *io, uint32_t reg)
{
    io->regs[IOAPIC_REGSEL / 4] = reg;
    return io->regs[IOAPIC_WINDOW / 4];
}

static void ioapic_write(struct ioapic *io, uint32_t reg, uint32_t value)
{
    io->regs[IOAPIC_REGSEL / 4] = reg;
    io->regs[IOAPIC_WINDOW / 4] = value;
}

static struct ioapic *ioapic_of(uint32_t gsi, unsigned *input)
{
    for (unsigned i = 0; i < nioapics; i++) {
        if (gsi >= ioapics[i].gsi_base && gsi - ioapics[i].gsi_base < ioapics[i].inputs) {
            *input = gsi - ioapics[i].gsi_base;
            return &ioapics[i];
        }
    }
    return 0;
}

static bool map_ioapics(const struct acpi_madt *madt)
{
    for (unsigned i = 0; i < madt->nioapics; i++) {
        const struct acpi_ioapic *m = &madt->ioapics[i];
        void *va;
        int err = ioremap(m->address, PAGE_SIZE, IOREMAP_MMIO, &va);
        if (err) {
            kprintf("ioapic: I/O APIC %u at %#x cannot be mapped (error %d)\n", m->id, m->address, err);
            return false;
        }
        struct ioapic *io = &ioapics[nioapics];
        io->regs = va;
        io->gsi_base = m->gsi_base;
        uint32_t version = ioapic_read(io, IOAPIC_REG_VERSION);
        if (version == 0xffffffffu) {
            kprintf("ioapic: nothing answers at %#x, where the MADT puts I/O APIC %u\n", m->address, m->id);
            iounmap(va);
            return false;
        }
        io->inputs = ((version >> 16) & 0xff) + 1;
        for (unsigned pin = 0; pin < io->inputs; pin++)
            ioapic_write(io, IOAPIC_REG_REDIRECT + 2 * pin, REDIRECT_MASKED);
        nioapics++;
        kprintf("ioapic: I/O APIC %u at %#x, inputs %u-%u\n", m->id, m->address, io->gsi_base,
                io->gsi_base + io->inputs - 1);
    }
    return nioapics > 0;
}

/* The entry for a line: see the top of the file for the rule. */
static uint32_t redirect_low(unsigned line, uint16_t mps_flags, uint16_t elcr_level)
{
    unsigned polarity = mps_flags & ACPI_MPS_POLARITY_MASK, trigger = (mps_flags & ACPI_MPS_TRIGGER_MASK) >> 2;
    bool pci = elcr_level & (1u << line);
    bool level = trigger == 3 || (trigger == 0 && pci);
    bool active_low = polarity == 3 || (polarity == 0 && pci);
    return REDIRECT_MASKED | (level ? REDIRECT_LEVEL : 0) | (active_low ? REDIRECT_ACTIVE_LOW : 0) |
           (VECTOR_IRQ_BASE + line);
}

/* Whether another line claims the input line's routing leads to: an
 * overridden line beats one that is not, then the lower line wins. */
static bool input_taken(unsigned line, const uint32_t *gsi, const bool *overridden)
{
    for (unsigned other = 0; other < ISA_LINES; other++) {
        if (other == line || gsi[other] != gsi[line])
            continue;
        if (overridden[other] != overridden[line] ? overridden[other] : other < line)
            return true;
    }
    return false;
}

bool ioapic_init(const struct acpi_madt *madt, uint32_t bsp_apic_id)
{
    if (madt->nioapics == 0) {
        kprintf("ioapic: the MADT lists no I/O APIC\n");
        return false;
    }
    if (!map_ioapics(madt))
        return false;

    uint32_t gsi[ISA_LINES];
    uint16_t flags[ISA_LINES] = { 0 };
    bool overridden[ISA_LINES] = { false };
    for (unsigned line = 0; line < ISA_LINES; line++)
        gsi[line] = line;
    for (unsigned i = 0; i < madt->noverrides; i++) {
        const struct acpi_override *o = &madt->overrides[i];
        gsi[o->source_irq] = o->gsi;
        flags[o->source_irq] = o->flags;
        overridden[o->source_irq] = true;
    }
    uint16_t elcr_level = pic_level_triggered_lines();
    for (unsigned line = 0; line < ISA_LINES; line++) {
        unsigned input;
        struct ioapic *io = input_taken(line, gsi, overridden) ? 0 : ioapic_of(gsi[line], &input);
        if (!io) {
            routes[line].routed = false;
            kprintf("ioapic: ISA line %u has no input (global interrupt %u is %s)\n", line, gsi[line],
                    input_taken(line, gsi, overridden) ? "another line's" : "on no I/O APIC");
            continue;
        }
        routes[line] = (struct isa_route){ true, io, input, redirect_low(line, flags[line], elcr_level) };
        ioapic_write(io, IOAPIC_REG_REDIRECT + 2 * input + 1, bsp_apic_id << 24);
        ioapic_write(io, IOAPIC_REG_REDIRECT + 2 * input, routes[line].low);
        uint32_t low = routes[line].low;
        if (gsi[line] != line || (low & (REDIRECT_LEVEL | REDIRECT_ACTIVE_LOW)))
            kprintf("ioapic: ISA line %u -> input %u, %s, active %s%s\n", line, gsi[line],
                    (low & REDIRECT_LEVEL) ? "level" : "edge", (low & REDIRECT_ACTIVE_LOW) ? "low" : "high",
                    overridden[line]              ? " (MADT override)"
                    : (elcr_level & (1u << line)) ? " (PCI, ELCR)"
                                                  : "");
    }
    return true;
}

bool ioapic_line_routed(unsigned line) { return line < ISA_LINES && routes[line].routed; }

void ioapic_mask_line(unsigned line)
{
    if (!ioapic_line_routed(line))
        return;
    struct isa_route *r = &routes[line];
    ioapic_write(r->ioapic, IOAPIC_REG_REDIRECT + 2 * r->input, r->low);
}

void ioapic_unmask_line(unsigned line)
{
    if (!ioapic_line_routed(line))
        return;
    struct isa_route *r = &routes[line];
    ioapic_write(r->ioapic, IOAPIC_REG_REDIRECT + 2 * r->input, r->low & ~REDIRECT_MASKED);
}
