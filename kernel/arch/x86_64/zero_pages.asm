; Architecture layer (x86-64): zero-fills whole pages with 16-byte SSE
; stores. Called by kernel/core/segment.c (segment_zero: every memsrv ALLOC
; zero-fills its new segment), paging.c and iommu_vtd.c (new page tables),
; kernel/core/proc.c (a boot image's parts) and pool.c (the ioremap
; window's area pages).
;
; Why not memset: its `rep stosq` is one instruction per 8 bytes to an
; emulator that counts instructions (QEMU's -icount, Bochs), 512 per page;
; here a page is 256 stores and 16 loop steps, about 300 instructions.
;
; Why the vector register may be used although the kernel is built without
; SSE: CR4.OSFXSR is set on every CPU (cpu_init_this, before the BSP builds
; its page tables and before an AP runs anything else). The FPU/SSE state is
; switched eagerly, so while the kernel runs, xmm0 holds the live value of
; the thread that entered it (or of the last one, for the idle thread). This
; routine therefore saves xmm0 on the stack first and puts it back before
; returning. Nothing else in the kernel computes with vector registers (the
; thread switch only saves and loads them).
;
; Why nothing can see xmm0 zeroed in between: each window of at most
; ZERO_WINDOW bytes runs with interrupts off (RFLAGS saved, cli, restored).
; The kernel holds its lock with interrupts off anyway (kernel/lock.h), but
; the routine does not rely on its caller for that: an interrupt that came
; in mid-window could end in a thread switch, whose fxsave would record the
; zero as the thread's own. An NMI returns to where it came in without a
; switch (trap.c), and an exception here (a kernel bug) ends in a panic.
; The window bounds the interrupts-off time of a caller that had them on.
;
; Plain stores, not non-temporal ones: the client touches its new segment
; right after, and the page tables are walked right after, so the lines are
; wanted in the cache.
bits 64
section .text

extern panic

ZERO_BLOCK  equ 512         ; bytes stored per loop step
ZERO_WINDOW equ 64 * 1024   ; bytes zeroed per interrupts-off window

; void arch_zero_pages(void *dst, uint64_t bytes): callers pass whole
; pages (dst page-aligned, bytes a multiple of the page size, 0 allowed).
; What the stores themselves need, dst 16-byte aligned and bytes a
; multiple of ZERO_BLOCK, is checked on every call: a call that breaks it
; would write past its end, so it panics instead.
global arch_zero_pages
arch_zero_pages:
    mov eax, edi
    or eax, esi
    test eax, ZERO_BLOCK - 1
    jnz .misuse
    test rsi, rsi
    jz .done
    sub rsp, 16                 ; the caller's xmm0 (rsp + 8 once RFLAGS is pushed)
.window:
    mov ecx, ZERO_WINDOW
    cmp rsi, rcx
    cmovb rcx, rsi              ; this window's length
    sub rsi, rcx                ; what is left after it
    add rdi, rcx                ; its end: the stores count rcx up from -length to 0
    neg rcx
    pushfq
    cli
    movdqu [rsp + 8], xmm0
    pxor xmm0, xmm0
.block:
%assign offset 0
%rep ZERO_BLOCK / 16
    movdqa [rdi + rcx + offset], xmm0
%assign offset offset + 16
%endrep
    add rcx, ZERO_BLOCK
    jnz .block
    movdqu xmm0, [rsp + 8]
    popfq
    test rsi, rsi
    jnz .window
    add rsp, 16
.done:
    ret
.misuse:
    mov rdx, rsi
    mov rsi, rdi
    lea rdi, [rel misuse_text]
    xor eax, eax                ; no vector registers carry variadic arguments
    jmp panic

section .rodata
misuse_text: db "arch_zero_pages(%#lx, %#lx): not whole pages", 0

section .note.GNU-stack noalloc noexec nowrite progbits
