/*
 * Architecture layer (x86-64): the processors. Each CPU has a struct cpu,
 * reached through the GS base while the kernel runs (user code runs with
 * its own GS base: every entry from user mode and every return to it
 * executes swapgs). cpu.c builds each CPU's tables, smp.c starts the
 * application processors and carries calls between CPUs, apic.c sends the
 * interrupts. Callers: generic kernel code (arch_cpu_id, smp_call,
 * smp_send_reschedule), the scheduler (the thread slot, the kernel stack),
 * kmain (smp_start).
 *
 * What runs where today: the bootstrap processor (CPU 0) runs every thread;
 * the others idle in smp_ap_idle, answering IPIs and counting their timer
 * ticks. docs/smp.md has the layout, the vectors and the bring-up.
 */
#ifndef ARCH_SMP_H
#define ARCH_SMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <arch/apic.h>
#include <arch/machine.h>

#define SMP_MAX_CPUS 64u

struct thread;

struct tss {
    uint32_t reserved0;
    uint64_t rsp0, rsp1, rsp2;
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

/* The interrupt stack table: the exceptions that must not run on the
 * stack they interrupted (it may be the one that overflowed). */
enum cpu_ist { IST_DOUBLE_FAULT = 1, IST_NMI = 2, IST_MACHINE_CHECK = 3 };

enum cpu_state {
    CPU_ABSENT = 0, /* no such CPU, or not started */
    CPU_STARTING,   /* INIT-SIPI-SIPI sent, not yet heard from */
    CPU_ARRIVED,    /* running kernel code, setting itself up */
    CPU_ONLINE,     /* idling, answering IPIs */
    CPU_FAILED,     /* did not answer in time: parked with INIT */
};

/*
 * One per processor, each on its own cache lines. The first three fields
 * are read by the entry code at fixed offsets (CPU_OFFSET_*, machine.h).
 * Only the owning CPU writes a field, except where a comment says who else
 * does (the call mailbox, the state during bring-up).
 */
struct cpu {
    struct cpu *self;      /* this_cpu() reads it through GS */
    uint64_t kernel_rsp;   /* top of the running thread's kernel stack: SYSCALL switches to it */
    uint64_t user_rsp;     /* SYSCALL entry's scratch for the user stack pointer */
    struct thread *thread; /* the thread running here: `current` (kernel/sched.h) */
    unsigned id;           /* dense: 0 is the bootstrap processor, then MADT order */
    uint32_t apic_id;
    uint32_t acpi_uid;       /* the MADT's processor UID (its NMI entries name CPUs by it) */
    uint64_t idle_stack_top; /* the stack interrupts land on while the CPU idles */
    volatile int state;      /* enum cpu_state; written by the BSP and the CPU during bring-up */

    /* Cross-CPU calls (smp_call): the caller fills fn and arg, then bumps
     * call_requested; the handler runs fn and copies call_requested to
     * call_completed, which is the acknowledgement the caller waits for. */
    void (*volatile call_fn)(void *arg);
    void *volatile call_arg;
    volatile uint64_t call_requested;
    volatile uint64_t call_completed;

    /* Where an NMI found this CPU, when a caller whose call it left
     * unanswered asked (sample_wanted, set by the caller, cleared by this
     * CPU's NMI handler once the rest is written). */
    volatile int sample_wanted;
    volatile uint64_t sample_rip, sample_cs, sample_rflags;
    struct lapic_state sample_lapic;
    /* A caller whose call went unanswered for SMP_CALL_KICK_NS, or the
     * CPU watching this one (smp_watch_next), sets repair_wanted and sends
     * an NMI; the handler ends interrupts left in service with nobody
     * serving them (smp_nmi_repair) and counts them; smp_say_repairs has
     * printed isr_repairs_said of them. */
    volatile int repair_wanted;
    volatile uint64_t isr_repairs, isr_repairs_said;
    /* This CPU watches the next online one: which, and its tick count at
     * the last look. */
    unsigned watched;
    uint64_t watched_ticks;
    volatile bool skip_next_timer_eoi; /* smp_selftest: as if a timer EOI were lost */

    /* Interrupts this CPU took, for tests and the boot log. */
    volatile uint64_t ticks;        /* local APIC timer */
    volatile uint64_t call_ipis;    /* VECTOR_IPI_CALL */
    volatile uint64_t resched_ipis; /* VECTOR_IPI_RESCHEDULE */
    volatile uint64_t apic_errors;  /* VECTOR_LAPIC_ERROR */
    volatile uint64_t nmis;         /* VECTOR_NMI */
    volatile uint64_t nmis_unasked; /* of which the kernel sent none for a sample or a repair (trap.c reports these) */

    uint32_t lapic_ticks_per_tick; /* timer count for one scheduler tick, measured here */
    uint64_t bringup_ns;           /* INIT to online, as the BSP measured it (0 for the BSP) */

    uint64_t gdt[8] __attribute__((aligned(16)));
    struct tss tss __attribute__((aligned(16)));
} __attribute__((aligned(64)));

_Static_assert(offsetof(struct cpu, self) == CPU_OFFSET_SELF, "entry code reads self");
_Static_assert(offsetof(struct cpu, kernel_rsp) == CPU_OFFSET_KERNEL_RSP, "entry code reads kernel_rsp");
_Static_assert(offsetof(struct cpu, user_rsp) == CPU_OFFSET_USER_RSP, "entry code reads user_rsp");

/* The CPU this code runs on. Valid from arch_cpu_init on the BSP and from
 * cpu_init_this on an AP (ap_entry's first two lines run without it).
 * Nothing moves a thread to another CPU while interrupts are off, so the
 * answer holds until the caller next enables them. */
static inline struct cpu *this_cpu(void)
{
    struct cpu *c;
    __asm__ volatile("mov %%gs:0, %0" : "=r"(c));
    return c;
}

/* One field of this CPU's struct cpu read or written in one instruction
 * through GS, for the hot paths (`current`, the CPU id). Volatile like
 * this_cpu(): a thread that blocks may wake on another CPU, so no read may
 * be reused across a switch. */
#define THIS_CPU_READ(field)                                                                                           \
    ({                                                                                                                 \
        __typeof__(((struct cpu *)0)->field) value_;                                                                   \
        __asm__ volatile("mov %%gs:%c1, %0" : "=r"(value_) : "i"(offsetof(struct cpu, field)));                        \
        value_;                                                                                                        \
    })

#define THIS_CPU_WRITE(field, value)                                                                                   \
    do {                                                                                                               \
        __typeof__(((struct cpu *)0)->field) value_ = (value);                                                         \
        __asm__ volatile("mov %0, %%gs:%c1" ::"r"(value_), "i"(offsetof(struct cpu, field)) : "memory");               \
    } while (0)

static inline unsigned arch_cpu_id(void) { return THIS_CPU_READ(id); }

/* Sets of CPUs by id. */
typedef uint64_t cpu_mask_t;
#define CPU_MASK(id) ((cpu_mask_t)1 << (id))

static inline unsigned cpu_mask_count(cpu_mask_t m)
{
    unsigned n = 0;
    for (; m; m &= m - 1)
        n++;
    return n;
}

/* Every struct cpu, indexed by id (cpu.c). Only those in smp_online_mask()
 * run; the others are unused or belong to a CPU that failed to start. */
extern struct cpu cpus[SMP_MAX_CPUS];

/* Brings the application processors up (kmain, once the scheduler and the
 * timer run on the BSP): INIT-SIPI-SIPI to each enabled CPU of the MADT,
 * a bounded wait for each, one call to check that it answers IPIs. The
 * start-up code goes to the first page of conventional memory that the
 * memory map calls RAM and no range of in_use covers (the multiboot
 * information and the modules, which the kernel still reads). Reads
 * `smp=off` (BSP only), `smp.cpus=N` (at most N CPUs, the BSP included)
 * and the test knob `smp.nosipi=APICID` (that CPU gets INIT but no start-up
 * IPI) from the command line. Prints "smp: N of M CPUs online". */
struct mb_info;
struct phys_range;
void smp_start(const struct mb_info *info, const struct phys_range *in_use, unsigned nin_use, const char *cmdline);

unsigned smp_cpus_present(void); /* enabled CPUs the firmware lists (1 without a MADT) */
unsigned smp_cpus_online(void);  /* the BSP and every AP that came up */
cpu_mask_t smp_online_mask(void);

/*
 * Runs fn(arg) on every online CPU of `targets` except the caller, in the
 * handler of VECTOR_IPI_CALL (interrupts off, on the CPU's current stack),
 * and returns once each of them has finished: the building block of TLB
 * shootdown. Returns the set it ran on (targets minus the caller and the
 * CPUs that are not online). When that set is every other online CPU, one
 * broadcast IPI ("all excluding self") reaches them all.
 *
 * Called with interrupts off. Calls are serialised by one lock; while the
 * caller waits for it, it answers the calls aimed at itself, so two CPUs
 * calling each other cannot deadlock. fn must be short and must not take
 * a lock its caller might hold or call smp_call itself. The IPI is sent
 * again every SMP_CALL_RESEND_NS to a target that has not answered (one
 * lost on the way costs that long, no more). A target that does not
 * acknowledge within SMP_CALL_TIMEOUT_NS is a broken invariant (it must be
 * stuck with interrupts off): the caller asks it with an NMI where it is,
 * prints that, and panics.
 */
cpu_mask_t smp_call(cpu_mask_t targets, void (*fn)(void *arg), void *arg);
#define SMP_CALL_TIMEOUT_NS 10000000000ull
#define SMP_CALL_RESEND_NS  100000000ull

/* Where the other online CPUs of `targets` are: an NMI each, whose handler
 * records the rip, cs and rflags it interrupted in their struct cpu
 * (sample_*), then SMP_SAMPLE_WAIT_NS of waiting. Returns those that
 * answered; ticks_before[id] gets each target's tick count before the
 * wait. For smp_call's report on a CPU that does not answer, and its test. */
cpu_mask_t smp_sample(cpu_mask_t targets, uint64_t ticks_before[SMP_MAX_CPUS]);
#define SMP_SAMPLE_WAIT_NS 100000000ull

/* smp_sample, then one line per target: its ticks during the wait and
 * where the NMI found it (rip, user or kernel mode, interrupts on or off),
 * or that it did not answer. For reports on a CPU that seems stuck. */
void smp_report_where(cpu_mask_t targets);

/* The NMI handler's part (trap.c): records what it interrupted if
 * smp_sample asked. */
bool smp_nmi_sample(uint64_t rip, uint64_t cs, uint64_t rflags);

/* The NMI handler's other part: when a caller asked (repair_wanted) and
 * the NMI interrupted code with interrupts on, any vector of 32-63 the
 * local APIC holds in service has nobody serving it (every handler ends
 * its interrupt before interrupts are next enabled), and it would keep the
 * timer and the IPIs out for good: ended here, counted in isr_repairs.
 * Both return whether the NMI was asked for (else it came from elsewhere). */
bool smp_nmi_repair(uint64_t rflags);
/* Prints the repairs on the targets not printed yet. */
void smp_say_repairs(cpu_mask_t targets);
/* Every CPU's tick, once a second of its own ticks: each online CPU
 * watches the next one (the last watches CPU 0). One whose tick count has
 * not moved since the last look gets the NMI repair; that also covers a
 * deaf CPU nobody makes a call to, whose timer and reschedule IPIs would
 * otherwise stay kept out. A CPU that merely runs with interrupts off
 * that long is left as it is (smp_nmi_repair). */
void smp_watch_next(void);
#define SMP_CALL_KICK_NS 1000000000ull

/* smp_selftest: the next call's first IPI is not sent, as if lost. */
void smp_test_drop_next_call_ipi(void);

/* Stops every other CPU for good (panic): an NMI each. */
void smp_stop_others(void);

/* Runs a call posted to this CPU, if one waits: for code that spins with
 * interrupts off (kernel/lock.h), whose lock's holder may be waiting for
 * this CPU's acknowledgement. */
void smp_serve_calls(void);

/* Asks a CPU to reschedule (VECTOR_IPI_RESCHEDULE; its handler does
 * nothing yet but count). Ignored for an offline CPU or the caller. */
void smp_send_reschedule(unsigned cpu);

/* Loads a CPU's tables (cpu.c): its GDT and TSS with the interrupt stack
 * table's stacks (tops for IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK),
 * the IDT, its GS base, the SYSCALL MSRs, the FPU. */
void cpu_init_this(struct cpu *c, const uint64_t ist_top[3]);

/* The page tables an AP starts long mode with (paging.c): the kernel half
 * and an identity mapping of the first 2 MiB, where the trampoline is; in
 * pool frames (below 4 GiB, as a 32-bit CR3 load needs). -ENOMEM. */
int paging_trampoline_create(uint64_t *root);
void paging_trampoline_destroy(uint64_t root);

/* Where an AP spends its life today: interrupts on, halted between them. */
void smp_ap_idle(void) __attribute__((noreturn));

/* The IPI handlers (trap.c calls them, after the EOI). */
void smp_handle_call_ipi(void);
void smp_handle_reschedule_ipi(void);

/* The boot self-test behind `smp.selftest` (smp_selftest.c): prints
 * [PASS]/[FAIL] smp_selftest.NAME lines, BENCH lines and a summary. */
void smp_selftest(void);

#endif
