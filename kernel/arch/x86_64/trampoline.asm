; Architecture layer (x86-64): the first code an application processor
; runs. smp.c copies the bytes between trampoline_start and trampoline_end
; to a page below 1 MiB, writes the parameters at TRAMPOLINE_PARAMS in that
; page (machine.h), and sends the AP a start-up IPI naming the page. The AP
; starts here in real mode with CS = page / 16 and IP = 0, so everything
; below is addressed relative to the page, whose address it learns from CS.
;
; It goes to protected mode, then enables PAE, the page tables smp.c gives
; (the kernel half plus an identity map of the first 2 MiB: see
; paging_trampoline_create), long mode and NX as the BSP has them, and
; paging, which enters long mode. Then it jumps to the kernel's entry with
; its stack and its struct cpu, leaving the page behind.
;
; The BSP's CR0 comes as a parameter: it has caching on (CD and NW clear),
; which an AP after INIT does not.
%include "machine.inc"

%define SEL_CODE32 0x08
%define SEL_DATA 0x10
%define SEL_CODE64 0x18
%define MSR_EFER 0xc0000080
%define CR0_PE 0x1
%define CR0_PG 0x80000000
%define PARAM(name) (TRAMPOLINE_PARAMS + name)
%define OFFSET(label) (label - trampoline_start)

section .rodata
align 16
global trampoline_start
global trampoline_end

bits 16
trampoline_start:
    cli
    cld
    xor esi, esi
    mov si, cs
    shl esi, 4                            ; esi: the page's physical address
    mov ax, cs
    mov ds, ax
    ; The GDT's base and both far jumps need linear addresses.
    lea eax, [esi + OFFSET(tramp_gdt)]
    mov [OFFSET(tramp_gdt_ptr) + 2], eax
    lea eax, [esi + OFFSET(tramp_protected)]
    mov [OFFSET(tramp_to_protected)], eax
    lea eax, [esi + OFFSET(tramp_long)]
    mov [OFFSET(tramp_to_long)], eax
    lgdt [OFFSET(tramp_gdt_ptr)]
    mov eax, [PARAM(TRAMPOLINE_CR0)]
    and eax, ~CR0_PG
    or eax, CR0_PE
    mov cr0, eax
    jmp dword far [OFFSET(tramp_to_protected)]

bits 32
tramp_protected:
    mov ax, SEL_DATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, [esi + PARAM(TRAMPOLINE_CR4)]
    mov cr4, eax
    mov eax, [esi + PARAM(TRAMPOLINE_CR3)]
    mov cr3, eax
    mov ecx, MSR_EFER
    mov eax, [esi + PARAM(TRAMPOLINE_EFER)]
    xor edx, edx
    wrmsr
    mov eax, [esi + PARAM(TRAMPOLINE_CR0)]
    mov cr0, eax                          ; paging on: long mode, compatibility
    jmp far [esi + OFFSET(tramp_to_long)]

bits 64
tramp_long:
    mov esi, esi                          ; a mode switch leaves the upper halves undefined
    mov rsp, [rsi + PARAM(TRAMPOLINE_STACK)]
    mov rdi, [rsi + PARAM(TRAMPOLINE_CPU)]
    mov rax, [rsi + PARAM(TRAMPOLINE_ENTRY)]
    xor ebp, ebp
    push 0                                ; no return address: the entry never returns
    jmp rax

align 8
tramp_gdt:
    dq 0
    dq 0x00cf9a000000ffff                 ; SEL_CODE32
    dq 0x00cf92000000ffff                 ; SEL_DATA
    dq 0x00af9a000000ffff                 ; SEL_CODE64
tramp_gdt_ptr:
    dw 4 * 8 - 1
    dd 0                                  ; base: filled in above
tramp_to_protected:
    dd 0                                  ; offset: filled in above
    dw SEL_CODE32
tramp_to_long:
    dd 0
    dw SEL_CODE64
trampoline_end:

section .note.GNU-stack noalloc noexec nowrite progbits
