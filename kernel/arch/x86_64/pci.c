/*
 * Architecture layer (x86-64): PCI configuration mechanism #1 (see
 * arch/pci.h). The address port selects a dword of one function's 256-byte
 * space; narrower accesses go to the data port plus the byte offset within
 * that dword, which is how the host bridge expects byte and word cycles.
 */
#include <arch/cpu.h>
#include <arch/pci.h>
#include <kernel/console.h>

#define PCI_CONFIG_ADDRESS 0xCF8
#define PCI_CONFIG_DATA    0xCFC
#define PCI_CONFIG_ENABLE  0x80000000u

/* A bad offset or width here means device.c skipped its checks: a kernel bug. */
static void select_dword(struct pci_address a, unsigned offset, unsigned width)
{
    VERIFY((width == 1 || width == 2 || width == 4) && offset < PCI_CONFIG_SIZE && offset % width == 0);
    VERIFY(a.device < PCI_DEVICES_PER_BUS && a.function < PCI_FUNCTIONS_PER_DEVICE);
    outl(PCI_CONFIG_ADDRESS, PCI_CONFIG_ENABLE | (uint32_t)a.bus << 16 | (uint32_t)a.device << 11 |
                                 (uint32_t)a.function << 8 | (offset & 0xFCu));
}

uint32_t pci_config_read(struct pci_address a, unsigned offset, unsigned width)
{
    select_dword(a, offset, width);
    uint16_t port = (uint16_t)(PCI_CONFIG_DATA + (offset & 3u));
    if (width == 1)
        return inb(port);
    if (width == 2)
        return inw(port);
    return inl(port);
}

void pci_config_write(struct pci_address a, unsigned offset, unsigned width, uint32_t value)
{
    select_dword(a, offset, width);
    uint16_t port = (uint16_t)(PCI_CONFIG_DATA + (offset & 3u));
    if (width == 1)
        outb(port, (uint8_t)value);
    else if (width == 2)
        outw(port, (uint16_t)value);
    else
        outl(port, value);
}
