/*
 * Kernel layer: the kernel lock and spinlocks. Every file of kernel/core
 * runs under the kernel lock unless its header says otherwise; this is the
 * locking model, in one place.
 *
 * The kernel lock guards every kernel object and every queue: processes,
 * threads, handles, endpoints, notifications, segments, address spaces,
 * accounts, the frame pool and slabs, devices and interrupts, the
 * scheduler's run, wait and timeout queues, the console's input ring. A CPU
 * holds it while it runs kernel code for a thread or an interrupt, with
 * interrupts off; it is taken on the way in (a system call, an exception or
 * interrupt from user mode, an interrupt in the idle loop) and dropped on
 * the way out to user mode and when the CPU goes idle. It stays with the
 * CPU across a context switch: the thread switched to carries on holding
 * it. So a switch is atomic to other CPUs, and a thread another CPU sees as
 * running is truly on a CPU.
 *
 * Nothing holds it for a length proportional to a segment: copying a
 * segment that migrates and zeroing a new one go in bounded chunks with a
 * lock break between them (kernel_lock_break), with the segment marked
 * busy so nobody touches it meanwhile (segment.h). What it does cover is
 * bounded but not free: the copies of a message (at most 256 bytes each
 * way) and the kernel's own console lines (instant under emulators; a real
 * 115200-baud UART takes about 87 us a byte, which is why the kernel prints
 * little once the system runs). A program's console writes go out with the
 * lock let go (SYS_CONSOLE_WRITE).
 *
 * Below it, leaf spinlocks that are taken with nothing else needed inside:
 * the console's output (so lines do not interleave) and the cross-CPU call
 * mailbox (arch/smp.h). Lock order: kernel lock, then a leaf lock.
 *
 * Every spin, the kernel lock's and the leaf locks', answers cross-CPU
 * calls aimed at its CPU while it waits: the holder may be waiting for this
 * very CPU to acknowledge a TLB shootdown, and the spinner has interrupts
 * off. Since every hold is bounded, a wait for the kernel lock past 30 s
 * means a stuck holder: the waiter prints where an NMI finds it
 * (smp_report_where), every 30 s, and waits on.
 */
#ifndef KERNEL_LOCK_H
#define KERNEL_LOCK_H

#include <stdbool.h>
#include <stdint.h>

/* A ticket lock: FIFO among CPUs, so none starves. Zero-filled memory is a
 * free lock. Interrupts must be off while it is held. */
struct spinlock {
    uint32_t next;    /* the ticket the next arrival takes */
    uint32_t serving; /* the ticket that holds the lock */
};

void spin_lock(struct spinlock *l);
bool spin_trylock(struct spinlock *l);
void spin_unlock(struct spinlock *l);

void kernel_lock(void);
void kernel_unlock(void);
/* Whether this CPU holds the kernel lock. */
bool kernel_lock_held(void);
/* Lets other CPUs in: drops the kernel lock, opens a window for pending
 * interrupts, and takes it again. The caller must hold no state another
 * CPU could trip over in between (it marks what it works on busy). */
void kernel_lock_break(void);
/* How often the kernel lock was taken, how often after a wait, and the
 * nanoseconds of those waits in all (SYS_KINFO reports them). */
void kernel_lock_stats(uint64_t *acquired, uint64_t *contended, uint64_t *wait_ns);

#endif
