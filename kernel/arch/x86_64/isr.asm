; Architecture layer (x86-64): interrupt and exception entry stubs. Every stub
; pushes a uniform frame (struct trap_frame in arch/trap.h) and calls
; trap_dispatch(); trap_return restores it and leaves with iretq.
bits 64
%include "frame.inc"
section .text
extern trap_dispatch

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
%rep 48
  %if v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30
    STUB_ERR v
  %else
    STUB_NOERR v
  %endif
  %assign v v + 1
%endrep
STUB_NOERR 255

isr_common:
    PUSH_GPRS
    mov rdi, rsp
    cld
    call trap_dispatch
global trap_return
trap_return:
    POP_GPRS
    add rsp, 16                           ; vector, error
    iretq

section .rodata
global isr_table
isr_table:
%assign v 0
%rep 48
    dq isr_ %+ v
  %assign v v + 1
%endrep
global isr_spurious
isr_spurious:
    dq isr_255

section .note.GNU-stack noalloc noexec nowrite progbits
