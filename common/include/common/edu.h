/*
 * Common layer: QEMU's edu PCI device (1234:11e8, QEMU docs/specs/edu.rst),
 * a teaching device with a DMA engine. Its registers, for the in-guest
 * driver test (tests/guest/programs/t_edu.c) and the kernel's IOMMU
 * self-test (kernel/core/iommu_selftest.c). Definitions only.
 */
#ifndef COMMON_EDU_H
#define COMMON_EDU_H

#define EDU_VENDOR 0x1234u
#define EDU_DEVICE 0x11e8u

/* Registers in BAR0 (1 MiB). Below 0x80 only 4-byte accesses work; the DMA
 * registers from 0x80 take 8-byte ones. */
#define EDU_ID               0x00
#define EDU_ID_MAGIC_MASK    0x0000ffffu
#define EDU_ID_MAGIC         0x000000edu
#define EDU_LIVENESS         0x04
#define EDU_FACTORIAL        0x08
#define EDU_STATUS           0x20
#define EDU_STATUS_COMPUTING 0x01u
#define EDU_DMA_SOURCE       0x80
#define EDU_DMA_DEST         0x88
#define EDU_DMA_COUNT        0x90
#define EDU_DMA_COMMAND      0x98
#define EDU_DMA_RUN          0x1u
#define EDU_DMA_TO_RAM       0x2u
#define EDU_DMA_IRQ          0x4u /* raise interrupt 0x100 when done */
#define EDU_IRQ_STATUS       0x24 /* interrupts raised and not acknowledged */
#define EDU_IRQ_RAISE        0x60 /* write: raise these */
#define EDU_IRQ_ACK          0x64 /* write: acknowledge these */
#define EDU_IRQ_DMA_DONE     0x100u
#define EDU_DMA_BUFFER       0x40000u /* the device's own 4 KiB buffer */
#define EDU_BAR0_MIN_SIZE    (1u << 20)

/* The device drops DMA address bits above its default 28-bit mask. */
#define EDU_DMA_LIMIT (256ull << 20)
/* Less than the device's 4 KiB buffer on purpose: QEMU before 8.2.1 (the
 * build machines have 7.2) rejects a transfer that ends exactly at the
 * buffer's end, off by one, and aborts the whole emulator ("EDU: DMA range
 * ... out of bounds"). The rest of a 4 KiB target page shows overruns. */
#define EDU_DMA_BYTES 4000u

#endif
