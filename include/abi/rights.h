/*
 * ABI layer: authority. Two kinds, both explicit and both only ever
 * shrinking as they are handed on (docs/security.md):
 *
 *   - rights ride on a handle: what its holder may do with the object it
 *     names. A handle made by granting, giving or sending carries at most
 *     the rights of the one it came from;
 *   - powers belong to a process: the system calls that name no object
 *     (creating processes, opening devices, the boot modules, power off,
 *     the memory server's calls). A process gets them from its creator,
 *     never more than the creator has.
 *
 * A call on a handle that lacks a right it needs fails with -EPERM and
 * changes nothing; a handle the caller does not hold is -EBADH.
 */
#ifndef ABI_RIGHTS_H
#define ABI_RIGHTS_H

#include <abi/types.h>

typedef uint32_t rights_t;

/* Any object: the handle may be copied into another process
 * (SYS_HANDLE_GRANT). Segments move rather than copy and ignore it. */
#define RIGHT_GRANT (1u << 0)

/* Endpoints. RECV is unique: only the process that created the endpoint
 * holds it, unless it hands it over whole (SYS_HANDLE_GRANT with
 * RIGHT_RECV moves it and the giver keeps a send-only handle). */
#define RIGHT_SEND (1u << 1)
#define RIGHT_RECV (1u << 2)

/* Segments: how the holder may map it (a mapping is always readable), and
 * whether it may pin it for a device's DMA (which also needs the device's
 * RIGHT_DMA). */
#define RIGHT_READ  (1u << 3)
#define RIGHT_WRITE (1u << 4)
#define RIGHT_EXEC  (1u << 5)
#define RIGHT_PIN   (1u << 6)

/* Processes: CONTROL starts, kills, limits it and puts segments or handles
 * into it; WAIT reads its end. */
#define RIGHT_CONTROL (1u << 7)
#define RIGHT_WAIT    (1u << 8)

/* Devices: CONFIG reads and writes its configuration space (the registers
 * that place it, and the bus-master and MSI registers, stay the kernel's);
 * MMIO maps its memory BARs; DMA lets segments be pinned for it and its
 * bus mastering be switched on. */
#define RIGHT_CONFIG (1u << 9)
#define RIGHT_MMIO   (1u << 10)
#define RIGHT_DMA    (1u << 11)
/* Devices: IRQ takes an interrupt handle for it (SYS_DEV_IRQ). */
#define RIGHT_IRQ (1u << 12)

/* Notifications: SIGNAL sets bits in it; WAIT (above) waits for them, or
 * binds it to an endpoint one receives on. Interrupts: CONTROL binds and
 * acknowledges. */
#define RIGHT_SIGNAL (1u << 13)

#define RIGHTS_ENDPOINT     (RIGHT_GRANT | RIGHT_SEND | RIGHT_RECV)
#define RIGHTS_SEGMENT      (RIGHT_READ | RIGHT_WRITE | RIGHT_EXEC | RIGHT_PIN)
#define RIGHTS_PROCESS      (RIGHT_GRANT | RIGHT_CONTROL | RIGHT_WAIT)
#define RIGHTS_THREAD       (RIGHT_WAIT)
#define RIGHTS_DEVICE       (RIGHT_GRANT | RIGHT_CONFIG | RIGHT_MMIO | RIGHT_DMA | RIGHT_IRQ)
#define RIGHTS_NOTIFICATION (RIGHT_GRANT | RIGHT_SIGNAL | RIGHT_WAIT)
#define RIGHTS_IRQ          (RIGHT_GRANT | RIGHT_CONTROL)
#define RIGHTS_ALL          0x3fffu

/* In a grant, give, or a message's seg_rights: keep every right held. */
#define RIGHTS_SAME 0u

/* Process powers (SYS_PROC_CREATE's third argument, abi/syscall.h's last
 * column). */
#define POWER_SPAWN        (1u << 0) /* create processes */
#define POWER_DEVICES      (1u << 1) /* open PCI devices */
#define POWER_MODULES      (1u << 2) /* read the boot modules */
#define POWER_SHUTDOWN     (1u << 3) /* power the machine off */
#define POWER_MEMSRV       (1u << 4) /* the memory server's calls: the kernel's to give, never inherited */
#define POWER_SUPERVISE    (1u << 5) /* restart the memory server (init's alone, never inherited) */
#define POWERS_INHERITABLE (POWER_SPAWN | POWER_DEVICES | POWER_MODULES | POWER_SHUTDOWN)

#endif
