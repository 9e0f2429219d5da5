; Architecture layer (x86-64): copies that touch user memory and survive a
; page fault. Called only through kernel/core/usercopy.c, which has checked
; that the range lies in the user half. A fault inside a copy does not
; panic: trap.c finds the faulting instruction in the exception table
; (section .ex_table: start, end, fixup), resumes at the fixup, and the
; copy returns -EFAULT. A user buffer that vanishes mid-call (another
; thread sent its segment away, a migration raced it) is the caller's
; error, never the kernel's. Under SMAP each copy opens user memory for its
; own instructions only (smap.inc), and closes it on both ways out.
bits 64
%include "smap.inc"
section .smap_open progbits alloc noexec nowrite align=8
section .smap_close progbits alloc noexec nowrite align=8
section .text

%define EFAULT 4

; int arch_user_copy(void *dst, const void *src, size_t len): 0 or -EFAULT.
; Words first, then the tail: emulators run one step per element.
global arch_user_copy
arch_user_copy:
    mov rcx, rdx
    shr rcx, 3
    USER_ACCESS_OPEN
copy_start:
    rep movsq
    mov rcx, rdx
    and rcx, 7
    rep movsb
copy_end:
    USER_ACCESS_CLOSE
    xor eax, eax
    ret
copy_fault:
    USER_ACCESS_CLOSE
    mov eax, -EFAULT
    ret

; int arch_user_zero(void *dst, size_t len): 0 or -EFAULT.
global arch_user_zero
arch_user_zero:
    mov rdx, rsi
    xor eax, eax
    mov rcx, rdx
    shr rcx, 3
    USER_ACCESS_OPEN
zero_start:
    rep stosq
    mov rcx, rdx
    and rcx, 7
    rep stosb
zero_end:
    USER_ACCESS_CLOSE
    ret
zero_fault:
    USER_ACCESS_CLOSE
    mov eax, -EFAULT
    ret

; int arch_user_read_unopened(const void *src): reads a byte without opening
; user memory: 0 if it could, -EFAULT if the read faulted. Only the boot
; check that SMAP is on (smap_check.c) calls it.
global arch_user_read_unopened
arch_user_read_unopened:
probe_start:
    mov al, [rdi]
probe_end:
    xor eax, eax
    ret
probe_fault:
    mov eax, -EFAULT
    ret

section .ex_table progbits alloc noexec nowrite align=8
    dq copy_start, copy_end, copy_fault
    dq zero_start, zero_end, zero_fault
    dq probe_start, probe_end, probe_fault

section .note.GNU-stack noalloc noexec nowrite progbits
