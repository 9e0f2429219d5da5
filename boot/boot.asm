; Boot layer: the first code that runs. GRUB (multiboot2) jumps here in 32-bit
; protected mode with paging off; this file checks that it was loaded by a
; multiboot2 loader on a CPU with long mode, builds the first page tables,
; enables long mode and jumps to kmain() in the higher half.
;
; Early page tables map the first 1 GiB of physical memory three times with
; 2 MiB pages: identity (so this code keeps running after paging is on), at
; KERNEL_VMA (where the kernel is linked) and at DIRECT_MAP (the start of the
; kernel's direct map, so kmain can read the multiboot information). kmain
; replaces them with the real tables; the identity map goes away then.

bits 32

%include "machine.inc"                    ; KERNEL_VMA, MB2_*, GDT_*, COM1_PORT
%define COM1 COM1_PORT

section .multiboot2 align=8
mb2_header:
    dd MB2_HEADER_MAGIC
    dd 0                                  ; i386 protected mode
    dd mb2_header_end - mb2_header
    dd -(MB2_HEADER_MAGIC + 0 + (mb2_header_end - mb2_header))
    ; information request: command line, modules, memory map (all required)
    align 8
    dw 1, 0
    dd 20
    dd 1, 3, 6
    ; modules page-aligned, so they can be handed out as segments
    align 8
    dw 6, 0
    dd 8
    ; end
    align 8
    dw 0, 0
    dd 8
mb2_header_end:

section .boot.text progbits alloc exec nowrite align=16
global _start
_start:
    cli
    cld
    mov esp, boot_stack_top - KERNEL_VMA
    mov edi, eax                          ; keep magic and info pointer
    mov esi, ebx

    call serial_init32

    cmp edi, MB2_BOOTLOADER_MAGIC
    je .magic_ok
    mov ebx, msg_no_mb2 - KERNEL_VMA
    jmp fail32
.magic_ok:
    ; CPUID present? (can toggle EFLAGS.ID)
    pushfd
    pop eax
    mov ecx, eax
    xor eax, 1 << 21
    push eax
    popfd
    pushfd
    pop eax
    push ecx
    popfd
    cmp eax, ecx
    je .no_long_mode
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb .no_long_mode
    mov eax, 0x80000001
    cpuid
    test edx, 1 << 29                     ; LM
    jz .no_long_mode
    mov eax, 1
    cpuid
    test edx, 1 << 6                      ; PAE
    jz .no_long_mode
    jmp .cpu_ok
.no_long_mode:
    mov ebx, msg_no_lm - KERNEL_VMA
    jmp fail32
.cpu_ok:
    ; PD: 512 x 2 MiB covering physical [0, 1 GiB)
    mov ecx, 0
.fill_pd:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83                          ; present, writable, 2 MiB
    mov [boot_pd - KERNEL_VMA + ecx * 8], eax
    mov dword [boot_pd - KERNEL_VMA + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 512
    jne .fill_pd

    mov eax, boot_pd - KERNEL_VMA
    or eax, 0x3
    mov [boot_pdpt_low - KERNEL_VMA], eax            ; 0 GiB -> PD
    mov [boot_pdpt_high - KERNEL_VMA + 510 * 8], eax ; -2 GiB -> PD

    mov eax, boot_pdpt_low - KERNEL_VMA
    or eax, 0x3
    mov [boot_pml4 - KERNEL_VMA], eax                ; identity
    mov [boot_pml4 - KERNEL_VMA + 256 * 8], eax      ; direct map
    mov eax, boot_pdpt_high - KERNEL_VMA
    or eax, 0x3
    mov [boot_pml4 - KERNEL_VMA + 511 * 8], eax      ; kernel image

    mov eax, boot_pml4 - KERNEL_VMA
    mov cr3, eax
    mov eax, cr4
    or eax, 1 << 5                        ; PAE
    mov cr4, eax
    mov ecx, 0xC0000080                   ; EFER
    rdmsr
    or eax, 1 << 8                        ; LME
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1     ; PG, WP, PE
    mov cr0, eax

    lgdt [boot_gdt_ptr - KERNEL_VMA]
    jmp GDT_KERNEL_CODE:long_mode_low

; Prints the NUL-terminated string at physical address ebx and halts.
fail32:
.next:
    mov al, [ebx]
    test al, al
    jz .halt
    call serial_putc32
    inc ebx
    jmp .next
.halt:
    cli
    hlt
    jmp .halt

serial_init32:
    mov dx, COM1 + 1
    xor al, al
    out dx, al                            ; no interrupts
    mov dx, COM1 + 3
    mov al, 0x80
    out dx, al                            ; DLAB
    mov dx, COM1
    mov al, 1
    out dx, al                            ; 115200 baud
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 0x03
    out dx, al                            ; 8N1
    mov dx, COM1 + 2
    mov al, 0xC7
    out dx, al                            ; FIFO on, cleared
    mov dx, COM1 + 4
    mov al, 0x03
    out dx, al                            ; DTR, RTS
    ret

serial_putc32:
    push eax
    mov dx, COM1 + 5
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    pop eax
    mov dx, COM1
    out dx, al
    ret

bits 64
long_mode_low:
    mov ax, GDT_KERNEL_DATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor ax, ax
    mov fs, ax
    mov gs, ax
    mov rax, long_mode_high
    jmp rax

section .text
extern kmain
long_mode_high:
    mov rsp, boot_stack_top
    xor rbp, rbp
    ; kmain(magic, info physical address)
    mov edi, edi
    mov esi, esi
    call kmain
.hang:
    cli
    hlt
    jmp .hang

section .rodata
; Both start with CONSOLE_REFUSED (common/console.h), which the runner watches for.
msg_no_mb2: db "tessera: cannot run here: not started by a multiboot2 loader (bad magic in eax); halting", 13, 10, 0
msg_no_lm:  db "tessera: cannot run here: this CPU has no long mode (x86-64) or no PAE; halting", 13, 10, 0

align 8
boot_gdt:
    dq 0
    dq 0x00AF9A000000FFFF                 ; 0x08: 64-bit code
    dq 0x00CF92000000FFFF                 ; 0x10: data
boot_gdt_end:
boot_gdt_ptr:
    dw boot_gdt_end - boot_gdt - 1
    dd boot_gdt - KERNEL_VMA

section .bss
align 4096
global boot_pml4
boot_pml4:      resb 4096
boot_pdpt_low:  resb 4096
boot_pdpt_high: resb 4096
boot_pd:        resb 4096
global boot_stack_top
boot_stack:     resb 16384
boot_stack_top:

section .note.GNU-stack noalloc noexec nowrite progbits
