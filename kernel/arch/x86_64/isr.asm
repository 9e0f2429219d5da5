; Architecture layer (x86-64): interrupt and exception entry stubs. Every stub
; pushes a uniform frame (struct trap_frame in arch/trap.h) and calls
; trap_dispatch(); trap_return restores it and leaves with iretq.
;
; GS: user code runs with its own GS base, the kernel with its struct cpu's
; (arch/smp.h). An entry from user mode (the frame's CS has RPL 3) swaps
; them, and so does every return to user mode. One case needs more care:
; an exception in kernel mode between SYSCALL and its swapgs, or between
; trap_return's swapgs and iretq, finds the user's GS base. Interrupts are
; off there, so only exceptions and NMIs can land in it; exceptions from
; kernel mode therefore check the GS base MSR itself (kernel addresses
; have bit 63 set). An NMI that finds the user's swaps, is handled like
; any other, and swaps back before it returns into the window; any other
; exception there is fatal and is reported through trap_entry_window_fault,
; which does not return.
bits 64
%include "frame.inc"
%include "machine.inc"
%include "smap.inc"
section .smap_open progbits alloc noexec nowrite align=8
section .smap_close progbits alloc noexec nowrite align=8
section .text
extern trap_dispatch
extern trap_entry_window_fault

%macro STUB_NOERR 1
isr_%1:
    push 0
    push %1
    jmp isr_common
%endmacro
%macro STUB_ERR 1
isr_%1:
    push %1
    jmp isr_common
%endmacro

; Vectors that push an error code: 8, 10-14, 17, 21, 29, 30.
%assign v 0
%rep VECTOR_STUBS
  %if v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30
    STUB_ERR v
  %else
    STUB_NOERR v
  %endif
  %assign v v + 1
%endrep
STUB_NOERR 255

isr_common:
    USER_ACCESS_CLOSE                     ; AC as the interrupted code left it
    PUSH_GPRS
    test byte [rsp + TRAP_FRAME_CS], 3
    jnz .from_user
    cmp qword [rsp + TRAP_FRAME_VECTOR], 32
    jae .dispatch
    mov ecx, MSR_GS_BASE                  ; an exception in kernel mode
    rdmsr
    test edx, edx
    js .dispatch                          ; the kernel's GS base
    swapgs
    mov rdi, rsp
    cld
    cmp qword [rsp + TRAP_FRAME_VECTOR], VECTOR_NMI
    jne .window_fault
    call trap_dispatch                    ; an NMI in the window: handled,
    swapgs                                ; then the user's GS base again
    jmp trap_return.restore
.window_fault:
    call trap_entry_window_fault          ; does not return
.from_user:
    swapgs
.dispatch:
    mov rdi, rsp
    cld
    call trap_dispatch
global trap_return
trap_return:
    test byte [rsp + TRAP_FRAME_CS], 3
    jz .restore
    swapgs
.restore:
    POP_GPRS
    add rsp, 16                           ; vector, error
    iretq

section .rodata
global isr_table
isr_table:
%assign v 0
%rep VECTOR_STUBS
    dq isr_ %+ v
  %assign v v + 1
%endrep
global isr_spurious
isr_spurious:
    dq isr_255

section .note.GNU-stack noalloc noexec nowrite progbits
