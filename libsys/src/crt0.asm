; libsys: the first instructions of every user program. The kernel enters
; with rdi pointing at the startup block (abi/proc.h), rsi = the process's
; pid, and a 16-byte aligned stack; libsys_start() parses the block and
; calls main().
bits 64
section .text.start
extern libsys_start
global _start
_start:
    xor rbp, rbp
    and rsp, -16
    call libsys_start
.hang:
    ud2
    jmp .hang

section .note.GNU-stack noalloc noexec nowrite progbits
