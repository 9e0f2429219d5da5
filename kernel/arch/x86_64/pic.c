/*
 * Architecture layer (x86-64): the legacy 8259 interrupt controllers, a
 * master and a slave on its line 2. In legacy mode (arch/apic.h) they carry
 * every ISA line; in APIC mode they are remapped out of the exception
 * vectors and masked, and only their ELCR is read (which lines firmware
 * made level-triggered for PCI). Callers: interrupts.c.
 */
#include <arch/apic.h>
#include <arch/arch.h>

#define PIC1_CMD         0x20
#define PIC1_DATA        0x21
#define PIC2_CMD         0xa0
#define PIC2_DATA        0xa1
#define PIC_ELCR1        0x4d0
#define PIC_ELCR2        0x4d1
#define PIC_CASCADE_LINE 2u
#define PIC_EOI          0x20

void pic_init(void)
{
    outb(PIC1_CMD, 0x11); /* ICW1: edge, cascade, ICW4 follows */
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, VECTOR_IRQ_BASE);
    outb(PIC2_DATA, VECTOR_IRQ_BASE + 8);
    outb(PIC1_DATA, 1u << PIC_CASCADE_LINE);
    outb(PIC2_DATA, PIC_CASCADE_LINE);
    outb(PIC1_DATA, 0x01); /* 8086 mode */
    outb(PIC2_DATA, 0x01);
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
}

void pic_unmask(unsigned line)
{
    if (line < 8) {
        outb(PIC1_DATA, inb(PIC1_DATA) & (uint8_t) ~(1u << line));
    } else {
        outb(PIC1_DATA, inb(PIC1_DATA) & (uint8_t) ~(1u << PIC_CASCADE_LINE));
        outb(PIC2_DATA, inb(PIC2_DATA) & (uint8_t) ~(1u << (line - 8)));
    }
}

void pic_mask(unsigned line)
{
    if (line < 8)
        outb(PIC1_DATA, inb(PIC1_DATA) | (uint8_t)(1u << line));
    else
        outb(PIC2_DATA, inb(PIC2_DATA) | (uint8_t)(1u << (line - 8)));
}

void pic_eoi(unsigned line)
{
    if (line >= 8)
        outb(PIC2_CMD, PIC_EOI);
    outb(PIC1_CMD, PIC_EOI);
}

uint16_t pic_level_triggered_lines(void)
{
    /* Lines 0, 1, 2, 8 and 13 are always edge on a PC; a set bit there
     * means the register is not implemented (reads as 0xff). */
    uint16_t elcr = (uint16_t)(inb(PIC_ELCR1) | (inb(PIC_ELCR2) << 8));
    const uint16_t always_edge = (1u << 0) | (1u << 1) | (1u << 2) | (1u << 8) | (1u << 13);
    return (elcr & always_edge) ? 0 : elcr;
}
