/* Kernel image layout: the boot path (multiboot2 header, 32-bit entry) runs
 * where GRUB loads it, at 1 MiB; everything else is linked in the higher half
 * at KERNEL_VMA + physical address. The build runs this file through the C
 * preprocessor with arch/machine.h, where the numbers are defined. */
#include <arch/machine.h>
ENTRY(_start)

SECTIONS
{
    . = KERNEL_LOAD_ADDRESS;
    kernel_phys_start = .;
    .boot : {
        KEEP(*(.multiboot2))
        *(.boot.text)
    }

    . += KERNEL_VMA;
    .text ALIGN(4K) : AT(ADDR(.text) - KERNEL_VMA) {
        kernel_text_start = .;
        *(.text .text.*)
        kernel_text_end = .;
    }
    .rodata ALIGN(4K) : AT(ADDR(.rodata) - KERNEL_VMA) {
        *(.rodata .rodata.*)
        . = ALIGN(8);
        ex_table_start = .;
        KEEP(*(.ex_table))
        ex_table_end = .;
        . = ALIGN(8);
        smap_open_start = .;
        KEEP(*(.smap_open))
        smap_open_end = .;
        smap_close_start = .;
        KEEP(*(.smap_close))
        smap_close_end = .;
    }
    .data ALIGN(4K) : AT(ADDR(.data) - KERNEL_VMA) {
        *(.data .data.*)
    }
    .bss ALIGN(4K) : AT(ADDR(.bss) - KERNEL_VMA) {
        *(COMMON)
        *(.bss .bss.*)
    }
    . = ALIGN(4K);
    kernel_end = .;

    /DISCARD/ : {
        *(.comment)
        *(.eh_frame)
        *(.note .note.*)
    }
}
