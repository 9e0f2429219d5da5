; Architecture layer (x86-64): zero-fills whole pages with 16-byte SSE
; stores. Called by kernel/core/segment.c (segment_zero: every memsrv ALLOC
; zero-fills its new segment), paging.c and iommu_vtd.c (new page tables),
; kernel/core/proc.c (a boot image's parts) and pool.c (the ioremap
; window's area pages).
;
; Why not memset: its `rep stosq` is one instruction per 8 bytes to an
; emulator that counts instructions (QEMU's -icount, Bochs), 512 per page;
; here a 512-byte block is 32 stores and a few more steps.
;
; Why each block is read first and left alone when it already reads as
; zero: under a hypervisor, guest memory nobody has written yet is often
; backed by nothing (the host maps its shared zero page on a read), and
; writing zeros into it makes the host allocate and clear a page of its
; own. On the build machine's host that cost 3.7 s per GiB: 19 of the 25 s
; a 5 GiB fill took. A page whose first 16 bytes are not zero, the usual
; case for reused memory, is stored at once (5 instructions more than
; the stores alone, about 280); otherwise the whole page is read, about
; 265 instructions, and stored only if some byte is not zero. On hardware
; the loads fetch the lines the stores' read-for-ownership would fetch
; anyway, and a zero page stays clean in the cache.
;
; Why the vector registers may be used although the kernel is built
; without SSE: CR4.OSFXSR is set on every CPU (cpu_init_this, before the BSP
; builds its page tables and before an AP runs anything else). The FPU/SSE
; state is switched eagerly, so while the kernel runs, xmm0 and xmm1 hold
; the live values of the thread that entered it (or of the last one, for
; the idle thread). This routine therefore saves them on the stack first
; and puts them back before returning. Nothing else in the kernel computes
; with vector registers (the thread switch only saves and loads them).
;
; Why nothing can see them changed in between: each window of at most
; ZERO_WINDOW bytes runs with interrupts off (RFLAGS saved, cli, restored).
; The kernel holds its lock with interrupts off anyway (kernel/lock.h), but
; the routine does not rely on its caller for that: an interrupt that came
; in mid-window could end in a thread switch, whose fxsave would record our
; values as the thread's own. An NMI returns to where it came in without a
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
PAGE_BYTES  equ 4096
ZERO_WINDOW equ 64 * 1024   ; bytes zeroed per interrupts-off window

; void arch_zero_pages(void *dst, uint64_t bytes): callers pass whole
; pages (dst page-aligned, bytes a multiple of the page size, 0 allowed).
; That is checked on every call: a call that breaks it would write past
; its end, so it panics instead.
global arch_zero_pages
arch_zero_pages:
    mov eax, edi
    or eax, esi
    test eax, PAGE_BYTES - 1
    jnz .misuse
    test rsi, rsi
    jz .done
    sub rsp, 32                 ; the caller's xmm0 and xmm1 (rsp + 8 and + 24 once RFLAGS is pushed)
.window:
    mov ecx, ZERO_WINDOW
    cmp rsi, rcx
    cmovb rcx, rsi              ; this window's length
    sub rsi, rcx                ; what is left after it
    add rdi, rcx                ; its end: the pages count rcx up from -length to 0
    neg rcx
    pushfq
    cli
    movdqu [rsp + 8], xmm0
    movdqu [rsp + 24], xmm1
    pxor xmm0, xmm0
.page:
    movdqa xmm1, [rdi + rcx]    ; a page's first 16 bytes decide most pages
    pcmpeqb xmm1, xmm0
    pmovmskb eax, xmm1
    cmp eax, 0xffff
    jne .store_page
    movdqa xmm1, [rdi + rcx + 16]
%assign offset 32
%rep PAGE_BYTES / 16 - 2
    por xmm1, [rdi + rcx + offset]
%assign offset offset + 16
%endrep
    pcmpeqb xmm1, xmm0
    pmovmskb eax, xmm1
    cmp eax, 0xffff
    je .next_page               ; already zero: not written
.store_page:
    lea rdx, [rdi + rcx]
    mov r8d, PAGE_BYTES / ZERO_BLOCK
.store_block:
%assign offset 0
%rep ZERO_BLOCK / 16
    movdqa [rdx + offset], xmm0
%assign offset offset + 16
%endrep
    add rdx, ZERO_BLOCK
    dec r8d
    jnz .store_block
.next_page:
    add rcx, PAGE_BYTES
    jnz .page
    movdqu xmm1, [rsp + 24]
    movdqu xmm0, [rsp + 8]
    popfq
    test rsi, rsi
    jnz .window
    add rsp, 32
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
