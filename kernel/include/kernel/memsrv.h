/*
 * Kernel layer: what the kernel knows of the memory server's world. At
 * hand-over (kmain, after the first processes are loaded) it records the RAM
 * regions and the ranges the kernel keeps for itself; the memory server
 * reads them through SYS_MS_BOOTINFO, and every span the server later names
 * (segment creation, migration) must be RAM outside the kernel's ranges.
 */
#ifndef KERNEL_MEMSRV_H
#define KERNEL_MEMSRV_H

#include <stdint.h>
#include <stdbool.h>
#include <kernel/multiboot.h>

void memsrv_world_record(const struct mb_info *info);
/* [phys, phys+size) lies in one RAM region and outside the kernel's ranges. */
bool memsrv_world_owns(uint64_t phys, uint64_t size);

#endif
