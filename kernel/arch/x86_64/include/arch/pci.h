/*
 * Architecture layer (x86-64): PCI configuration space through
 * configuration mechanism #1 (address port 0xCF8, data port 0xCFC).
 * Caller: kernel/core/device.c, which checks offset and width first; the
 * kernel runs with interrupts off on one CPU, so the address/data pair
 * cannot be interleaved with another access.
 */
#ifndef ARCH_PCI_H
#define ARCH_PCI_H

#include <stdint.h>

#define PCI_BUSES                256u
#define PCI_DEVICES_PER_BUS      32u
#define PCI_FUNCTIONS_PER_DEVICE 8u
#define PCI_CONFIG_SIZE          256u

/* One function on the bus: bus 0..255, device 0..31, function 0..7. */
struct pci_address {
    uint8_t bus, device, function;
};

/* width is 1, 2 or 4; offset < 256 and a multiple of width. */
uint32_t pci_config_read(struct pci_address a, unsigned offset, unsigned width);
void pci_config_write(struct pci_address a, unsigned offset, unsigned width, uint32_t value);

#endif
