; Architecture layer (x86-64): the SYSCALL entry and the context switch.
; SYSCALL arrives with the user's GS base; swapgs brings in the kernel's,
; which points at this CPU's struct cpu (arch/smp.h), where the running
; thread's kernel stack top is kept. The way back to user mode is
; trap_return (isr.asm), which swaps GS back.
bits 64
%include "frame.inc"
%include "machine.inc"
section .text
extern syscall_dispatch
extern trap_return

global syscall_entry
syscall_entry:
    ; rcx = user rip, r11 = user rflags; interrupts are off (FMASK)
    swapgs
    mov [gs:CPU_OFFSET_USER_RSP], rsp
    mov rsp, [gs:CPU_OFFSET_KERNEL_RSP]
    push GDT_USER_DATA                    ; ss
    push qword [gs:CPU_OFFSET_USER_RSP]   ; rsp
    push r11                              ; rflags
    push GDT_USER_CODE                    ; cs
    push rcx                              ; rip
    push 0                                ; error
    push VECTOR_SYSCALL                   ; vector: system call
    PUSH_GPRS
    mov rdi, rsp                          ; DF is clear: FMASK clears it (cpu.c)
    call syscall_dispatch
    jmp trap_return

; void arch_context_switch(uint64_t *save_rsp, uint64_t load_rsp)
global arch_context_switch
arch_context_switch:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

; First code a new thread runs: its kernel stack holds a trap frame that
; returns to user mode. It starts as a switch ends, holding the kernel
; lock, which sched_return_to_user drops.
extern sched_after_switch
extern sched_return_to_user
global arch_thread_trampoline
arch_thread_trampoline:
    call sched_after_switch
    call sched_return_to_user
    jmp trap_return

section .note.GNU-stack noalloc noexec nowrite progbits
