/*
 * Architecture layer (x86-64): the application processors (arch/smp.h).
 * Callers: kmain (smp_start, once), generic code (smp_call,
 * smp_send_reschedule), trap.c (the IPI handlers).
 *
 * Bring-up, one AP at a time (SDM 8.4.4: INIT, 10 ms, start-up IPI,
 * 200 us, a second start-up IPI if the first went unanswered):
 *
 *   1. The BSP maps the AP's stacks (idle and IST, each above a guard
 *      page), writes the trampoline's parameters (its page tables, CR0,
 *      CR4, EFER as the BSP has them, the stack, the struct cpu, the entry
 *      point) and sets the CPU's state to STARTING.
 *   2. The AP runs trampoline.asm from a page below 1 MiB into long mode
 *      and enters ap_entry on its idle stack; there it loads the kernel's
 *      page tables, checks that it is the CPU the parameters name, and
 *      moves the state from STARTING to ARRIVED by compare-and-swap.
 *   3. It loads its GDT, TSS, IDT and GS base (cpu.c), sets up its local
 *      APIC and starts its timer, then moves ARRIVED to ONLINE and idles.
 *   4. The BSP waits at most AP_START_TIMEOUT_NS for ONLINE, then checks
 *      with one cross-CPU call that the AP answers IPIs. An AP that misses
 *      either is reported, moved to FAILED (the compare-and-swap tells a
 *      late AP that it lost, and it halts) and sent INIT, which parks it
 *      before the trampoline's parameters are written for the next one.
 *
 * Cross-CPU calls: one caller at a time holds call_lock and writes each
 * target's mailbox in its struct cpu (function, argument, then a bumped
 * request count); the target's VECTOR_IPI_CALL handler runs the function
 * and copies the request count to its completion count, which the caller
 * waits for. Release and acquire order the mailbox writes before the
 * request count and the function's effects before the acknowledgement.
 * A target still silent after SMP_CALL_RESEND_NS gets the IPI again (the
 * handler does nothing when its counts agree, so extra ones are harmless);
 * one silent at the timeout is asked where it is with an NMI, and that
 * goes into the panic's report.
 */
#include <abi/errno.h>
#include <arch/apic.h>
#include <arch/arch.h>
#include <arch/smp.h>
#include <arch/trap.h>
#include <common/cmdline.h>
#include <common/string.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/paging.h>
#include <kernel/physmem.h>
#include <kernel/pool.h>
#include <kernel/sched.h>

#define INIT_DELAY_US    10000u
#define STARTUP_DELAY_US 200u
/* Generous: under TCG on a loaded host a vCPU thread may wait for the
 * host's scheduler, and the AP measures its timer for 10 ms. */
#define AP_START_TIMEOUT_NS 2000000000ull
#define AP_CALL_TIMEOUT_NS  2000000000ull
/* The first page start-up IPIs may name; below it are the real-mode
 * interrupt vectors and the BIOS data area (the ACPI RSDP search reads
 * the EBDA pointer there). */
#define TRAMPOLINE_LOWEST 0x1000ull
#define TRAMPOLINE_LIMIT  0xa0000ull /* conventional memory ends here */

struct trampoline_params {
    uint64_t cr0, cr3, cr4, efer, stack, cpu, entry;
};
_Static_assert(offsetof(struct trampoline_params, cr0) == TRAMPOLINE_CR0, "trampoline.asm reads cr0");
_Static_assert(offsetof(struct trampoline_params, cr3) == TRAMPOLINE_CR3, "trampoline.asm reads cr3");
_Static_assert(offsetof(struct trampoline_params, cr4) == TRAMPOLINE_CR4, "trampoline.asm reads cr4");
_Static_assert(offsetof(struct trampoline_params, efer) == TRAMPOLINE_EFER, "trampoline.asm reads efer");
_Static_assert(offsetof(struct trampoline_params, stack) == TRAMPOLINE_STACK, "trampoline.asm reads stack");
_Static_assert(offsetof(struct trampoline_params, cpu) == TRAMPOLINE_CPU, "trampoline.asm reads cpu");
_Static_assert(offsetof(struct trampoline_params, entry) == TRAMPOLINE_ENTRY, "trampoline.asm reads entry");

#define EFER_LME (1ull << 8)

extern const char trampoline_start[], trampoline_end[];

static unsigned cpus_present = 1;
static unsigned cpus_known = 1; /* entries of cpus[] in use */
static cpu_mask_t online_mask = CPU_MASK(0);
static bool all_present_online = true; /* the broadcast shorthand reaches only online CPUs */
static uint64_t ap_cr4;                /* the BSP's, which APs take once in the kernel's tables */
static uint64_t ap_ist_top[SMP_MAX_CPUS][3];
static volatile int call_lock;
static bool drop_next_ipi; /* smp_test_drop_next_call_ipi */
static uint64_t resends;   /* IPIs sent again (call_and_wait, under call_lock) */

unsigned smp_cpus_present(void) { return cpus_present; }
unsigned smp_cpus_online(void) { return cpu_mask_count(__atomic_load_n(&online_mask, __ATOMIC_ACQUIRE)); }
cpu_mask_t smp_online_mask(void) { return __atomic_load_n(&online_mask, __ATOMIC_ACQUIRE); }

static void delay_us(uint64_t us)
{
    uint64_t end = arch_time_ns() + us * 1000;
    while (arch_time_ns() < end)
        __asm__ volatile("pause");
}

static bool set_state(struct cpu *c, int from, int to)
{
    return __atomic_compare_exchange_n(&c->state, &from, to, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* ---- cross-CPU calls ---- */

static void serve_call(struct cpu *c)
{
    uint64_t requested = __atomic_load_n(&c->call_requested, __ATOMIC_ACQUIRE);
    if (requested == c->call_completed)
        return;
    c->call_fn(c->call_arg);
    __atomic_store_n(&c->call_completed, requested, __ATOMIC_RELEASE);
}

void smp_stop_others(void)
{
    /* An NMI gets through interrupts off; its handler halts the CPU for
     * good once a panic is under way (trap.c). */
    if (cpu_mask_count(smp_online_mask()) > 1)
        (void)lapic_send_nmi_others();
}

void smp_serve_calls(void) { serve_call(this_cpu()); }

void smp_test_drop_next_call_ipi(void) { __atomic_store_n(&drop_next_ipi, true, __ATOMIC_RELAXED); }

void smp_handle_call_ipi(void)
{
    struct cpu *c = this_cpu();
    c->call_ipis++;
    serve_call(c);
}

void smp_handle_reschedule_ipi(void) { this_cpu()->resched_ipis++; }

static void call_lock_acquire(struct cpu *self)
{
    while (__atomic_exchange_n(&call_lock, 1, __ATOMIC_ACQUIRE)) {
        /* The holder may be waiting for this CPU, which has interrupts off. */
        while (__atomic_load_n(&call_lock, __ATOMIC_RELAXED)) {
            serve_call(self);
            __asm__ volatile("pause");
        }
    }
}

static void call_lock_release(void) { __atomic_store_n(&call_lock, 0, __ATOMIC_RELEASE); }

/* An interrupt may be stuck in service on `t` (seen under QEMU: the
 * timer's vector, with the CPU halted and interrupts on), which keeps out
 * the timer and the IPIs; an NMI gets past it and ends it (smp_nmi_repair). */
static void ask_repair(struct cpu *t)
{
    __atomic_store_n(&t->repair_wanted, 1, __ATOMIC_RELEASE);
    (void)lapic_send_nmi(t->apic_id);
}

/* Posts fn to each target's mailbox, interrupts them, and waits up to
 * timeout_ns; returns the targets that acknowledged. The caller holds
 * call_lock and is not among the targets. */
static cpu_mask_t call_and_wait(cpu_mask_t targets, bool broadcast, void (*fn)(void *), void *arg, uint64_t timeout_ns)
{
    for (unsigned id = 0; id < cpus_known; id++) {
        if (!(targets & CPU_MASK(id)))
            continue;
        struct cpu *t = &cpus[id];
        t->call_fn = fn;
        t->call_arg = arg;
        __atomic_store_n(&t->call_requested, t->call_requested + 1, __ATOMIC_RELEASE);
    }
    /* An IPI the local APIC would not send shows as a missing
     * acknowledgement. */
    if (__atomic_exchange_n(&drop_next_ipi, false, __ATOMIC_RELAXED)) {
        /* smp_selftest: as if this one were lost on the way */
    } else if (broadcast) {
        lapic_send_ipi_others(VECTOR_IPI_CALL);
    } else {
        for (unsigned id = 0; id < cpus_known; id++)
            if (targets & CPU_MASK(id))
                lapic_send_ipi(cpus[id].apic_id, VECTOR_IPI_CALL);
    }
    cpu_mask_t acked = 0, waiting = targets, kicked = 0;
    uint64_t start = arch_time_ns(), deadline = start + timeout_ns, resend = start + SMP_CALL_RESEND_NS;
    for (;;) {
        /* The clock is read before the mailboxes: a caller that the host
         * stops for a while between the two cannot fail a CPU that
         * answered meanwhile. */
        uint64_t now = arch_time_ns();
        for (unsigned id = 0; id < cpus_known; id++) {
            struct cpu *t = &cpus[id];
            if ((waiting & CPU_MASK(id)) &&
                __atomic_load_n(&t->call_completed, __ATOMIC_ACQUIRE) == t->call_requested) {
                acked |= CPU_MASK(id);
                waiting &= ~CPU_MASK(id);
            }
        }
        if (!waiting || now > deadline)
            break;
        if (now > resend) {
            /* A second IPI to a CPU that already ran the call finds
             * call_completed == call_requested and does nothing. */
            for (unsigned id = 0; id < cpus_known; id++)
                if (waiting & CPU_MASK(id))
                    lapic_send_ipi(cpus[id].apic_id, VECTOR_IPI_CALL);
            resend = now + SMP_CALL_RESEND_NS;
            /* Deaf for a second: ask for a repair. */
            bool kick = now - start >= SMP_CALL_KICK_NS;
            for (unsigned id = 0; kick && id < cpus_known; id++) {
                if (!(waiting & CPU_MASK(id)))
                    continue;
                kicked |= CPU_MASK(id);
                ask_repair(&cpus[id]);
            }
            /* Rare (a lost IPI, a stuck one, or a CPU the host did not run
             * for that long): said the 1st, 2nd, 4th, 8th... time. */
            resends++;
            if ((resends & (resends - 1)) == 0)
                kprintf("smp: CPUs %#lx had not answered a call from CPU %u in %llu ms: IPI sent again%s (resend "
                        "%lu since boot)\n",
                        waiting, this_cpu()->id, (now - start) / 1000000ull, kick ? ", and an NMI" : "", resends);
        }
        __asm__ volatile("pause");
    }
    if (kicked)
        smp_say_repairs(kicked);
    return acked;
}

void smp_say_repairs(cpu_mask_t targets)
{
    /* A repair hides what caused it, so each is said, once: by the caller
     * whose call was stuck or by CPU 0's tick, whichever looks first. */
    for (unsigned id = 0; id < cpus_known; id++) {
        if (!(targets & CPU_MASK(id)))
            continue;
        uint64_t repairs = cpus[id].isr_repairs;
        uint64_t said = __atomic_exchange_n(&cpus[id].isr_repairs_said, repairs, __ATOMIC_RELAXED);
        if (repairs != said)
            kprintf("smp: CPU %u had %lu interrupt(s) in service with nothing serving them: ended by an NMI (%lu "
                    "since boot)\n",
                    id, repairs - said, repairs);
    }
}

/* The next online CPU after `id`, cyclically; `id` itself when alone. */
static unsigned next_online(unsigned id)
{
    cpu_mask_t online = smp_online_mask();
    for (unsigned step = 1; step < cpus_known; step++) {
        unsigned next = (id + step) % cpus_known;
        if (online & CPU_MASK(next))
            return next;
    }
    return id;
}

void smp_watch_next(void)
{
    struct cpu *self = this_cpu();
    unsigned id = next_online(self->id);
    if (id == self->id)
        return;
    struct cpu *t = &cpus[id];
    uint64_t ticks = t->ticks;
    bool same = self->watched == id && ticks == self->watched_ticks;
    self->watched = id;
    self->watched_ticks = ticks;
    /* An AP whose own timer never counted has no ticks to miss (CPU 0
     * then ticks from the PIT). */
    if (same && (id == 0 || t->lapic_ticks_per_tick != 0))
        ask_repair(t);
}

bool smp_nmi_sample(uint64_t rip, uint64_t cs, uint64_t rflags)
{
    struct cpu *c = this_cpu();
    if (!__atomic_load_n(&c->sample_wanted, __ATOMIC_ACQUIRE))
        return false;
    c->sample_rip = rip;
    c->sample_cs = cs;
    c->sample_rflags = rflags;
    lapic_read_state(&c->sample_lapic);
    __atomic_store_n(&c->sample_wanted, 0, __ATOMIC_RELEASE);
    return true;
}

bool smp_nmi_repair(uint64_t rflags)
{
    struct cpu *c = this_cpu();
    if (!__atomic_exchange_n(&c->repair_wanted, 0, __ATOMIC_ACQ_REL))
        return false;
    if (!(rflags & RFLAGS_IF))
        return true;
    struct lapic_state st;
    lapic_read_state(&st);
    /* Each EOI ends the highest vector in service: at most one per bit. */
    for (unsigned n = 0; st.isr != 0 && n < 32; n++) {
        lapic_eoi();
        c->isr_repairs++;
        lapic_read_state(&st);
    }
    return true;
}

cpu_mask_t smp_sample(cpu_mask_t targets, uint64_t ticks_before[SMP_MAX_CPUS])
{
    targets &= smp_online_mask() & ~CPU_MASK(this_cpu()->id);
    for (unsigned id = 0; id < cpus_known; id++) {
        if (!(targets & CPU_MASK(id)))
            continue;
        ticks_before[id] = cpus[id].ticks;
        __atomic_store_n(&cpus[id].sample_wanted, 1, __ATOMIC_RELEASE);
        (void)lapic_send_nmi(cpus[id].apic_id);
    }
    /* The whole wait, answered or not: the tick counts cover as long. A
     * caller holding the kernel lock may be waiting on this CPU meanwhile. */
    uint64_t deadline = arch_time_ns() + SMP_SAMPLE_WAIT_NS;
    while (arch_time_ns() < deadline) {
        serve_call(this_cpu());
        __asm__ volatile("pause");
    }
    cpu_mask_t answered = 0;
    for (unsigned id = 0; id < cpus_known; id++) {
        if (!(targets & CPU_MASK(id)))
            continue;
        /* One that did not answer must not write a sample later. */
        int wanted = 1;
        if (!__atomic_compare_exchange_n(&cpus[id].sample_wanted, &wanted, 0, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            answered |= CPU_MASK(id);
    }
    return answered;
}

void smp_report_where(cpu_mask_t targets)
{
    uint64_t ticks_before[SMP_MAX_CPUS];
    cpu_mask_t answered = smp_sample(targets, ticks_before);
    for (unsigned id = 0; id < cpus_known; id++) {
        if (!(targets & smp_online_mask() & ~CPU_MASK(this_cpu()->id) & CPU_MASK(id)))
            continue;
        struct cpu *t = &cpus[id];
        uint64_t ticks = t->ticks - ticks_before[id], ms = SMP_SAMPLE_WAIT_NS / 1000000ull;
        if (!(answered & CPU_MASK(id)))
            kprintf("smp: CPU %u: %lu timer ticks in the last %lu ms; no answer to an NMI either\n", id, ticks, ms);
        else
            kprintf("smp: CPU %u: %lu timer ticks in the last %lu ms; an NMI found it at %#lx in %s mode, "
                    "interrupts %s; local APIC: vectors 32-63 in service %#x, requested %#x, TPR %#x, timer LVT "
                    "%#x count %u\n",
                    id, ticks, ms, t->sample_rip, (t->sample_cs & 3) == 3 ? "user" : "kernel",
                    t->sample_rflags & RFLAGS_IF ? "on" : "off", t->sample_lapic.isr, t->sample_lapic.irr,
                    t->sample_lapic.tpr, t->sample_lapic.lvt_timer, t->sample_lapic.timer_count);
    }
}

/* For the panic that follows: what each CPU that left a call unanswered
 * was asked, and where it is. */
static void report_unanswered(cpu_mask_t laggards)
{
    for (unsigned id = 0; id < cpus_known; id++)
        if (laggards & CPU_MASK(id))
            kprintf("smp: CPU %u: call %lu requested, %lu done\n", id, cpus[id].call_requested,
                    cpus[id].call_completed);
    smp_report_where(laggards);
}

cpu_mask_t smp_call(cpu_mask_t targets, void (*fn)(void *arg), void *arg)
{
    struct cpu *self = this_cpu();
    cpu_mask_t others = smp_online_mask() & ~CPU_MASK(self->id);
    targets &= others;
    if (!targets)
        return 0;
    call_lock_acquire(self);
    cpu_mask_t acked = call_and_wait(targets, targets == others && all_present_online, fn, arg, SMP_CALL_TIMEOUT_NS);
    if (acked != targets)
        report_unanswered(targets & ~acked);
    call_lock_release();
    if (acked != targets)
        panic("smp: CPUs %#lx did not acknowledge a call from CPU %u within %llu s", targets & ~acked, self->id,
              SMP_CALL_TIMEOUT_NS / 1000000000ull);
    return targets;
}

void smp_send_reschedule(unsigned cpu)
{
    if (cpu >= SMP_MAX_CPUS || cpu == arch_cpu_id() || !(smp_online_mask() & CPU_MASK(cpu)))
        return;
    lapic_send_ipi(cpus[cpu].apic_id, VECTOR_IPI_RESCHEDULE);
}

void smp_ap_idle(void)
{
    for (;;)
        arch_wait_for_interrupt();
}

/* ---- bring-up ---- */

static void ap_entry(struct cpu *c) __attribute__((noreturn, used));
static void ap_entry(struct cpu *c)
{
    write_cr3(paging_kernel_root());
    write_cr4(ap_cr4);
    cpu_init_this(c, ap_ist_top[c->id]);
    /* A CPU whose parameters were meant for another, or that arrives after
     * the BSP gave up on it, touches nothing more. */
    if (lapic_id() != c->apic_id || !set_state(c, CPU_STARTING, CPU_ARRIVED))
        arch_halt_forever();
    lapic_init_this_cpu(interrupts_madt(), c->acpi_uid);
    (void)timer_start_this_cpu(); /* without one, lapic_ticks_per_tick says so */
    if (!set_state(c, CPU_ARRIVED, CPU_ONLINE))
        arch_halt_forever();
    sched_ap_start();
}

/* The first page of conventional memory that is RAM and holds nothing
 * the kernel still reads (the multiboot information, the modules). */
static bool pick_trampoline_page(const struct mb_info *info, const struct phys_range *in_use, unsigned nin_use,
                                 uint64_t *page)
{
    for (uint64_t p = TRAMPOLINE_LOWEST; p < TRAMPOLINE_LIMIT; p += PAGE_SIZE) {
        bool ram = false, busy = false;
        for (size_t i = 0; i < info->nregions; i++) {
            const struct mb_region *r = &info->regions[i];
            if (r->type == MB_MEM_RAM && r->base <= p && p + PAGE_SIZE <= r->base + r->len)
                ram = true;
        }
        for (unsigned i = 0; i < nin_use; i++)
            if (p < in_use[i].base + in_use[i].len && in_use[i].base < p + PAGE_SIZE)
                busy = true;
        if (ram && !busy) {
            *page = p;
            return true;
        }
    }
    return false;
}

/* The AP's idle stack and its three IST stacks, each above an unmapped
 * guard page, in its slot of the CPU stack area. */
static const uint64_t cpu_stack_sizes[4] = { CPU_IDLE_STACK_SIZE, CPU_IST_STACK_SIZE, CPU_IST_STACK_SIZE,
                                             CPU_IST_STACK_SIZE };

static int map_cpu_stacks(struct cpu *c)
{
    uint64_t slot = CPU_STACK_AREA_BASE + (uint64_t)c->id * CPU_STACK_SLOT_SIZE;
    uint64_t frames = 0;
    for (unsigned i = 0; i < 4; i++)
        frames += cpu_stack_sizes[i] / PAGE_SIZE;
    if (frames + paging_tables_needed(paging_kernel_root(), slot, 0, CPU_STACK_SLOT_SIZE) > pool_free_frames())
        return -ENOMEM;
    uint64_t va = slot, tops[4];
    for (unsigned i = 0; i < 4; i++) {
        va += PAGE_SIZE; /* the guard */
        for (uint64_t off = 0; off < cpu_stack_sizes[i]; off += PAGE_SIZE) {
            uint64_t frame = pool_alloc_frame();
            VERIFY(frame && paging_map_kernel(va + off, frame, PAGE_SIZE) == 0);
        }
        va += cpu_stack_sizes[i];
        tops[i] = va;
    }
    VERIFY(va <= slot + CPU_STACK_SLOT_SIZE);
    c->idle_stack_top = tops[0];
    for (unsigned i = 0; i < 3; i++)
        ap_ist_top[c->id][i] = tops[i + 1];
    return 0;
}

static const char *state_name(int state)
{
    switch (state) {
    case CPU_STARTING: return "it never ran kernel code";
    case CPU_ARRIVED: return "it reached the kernel but did not finish its set-up";
    case CPU_ONLINE: return "it came up but did not answer an IPI";
    default: return "?";
    }
}

static void note_answer(void *arg) { (void)arg; }

/* INIT-SIPI-SIPI, the bounded waits, the IPI check. The CPU's struct has
 * its id, APIC id, UID and stacks. `withhold_startup` (the smp.nosipi test
 * knob) sends INIT but no start-up IPI: the CPU then behaves as one that
 * never answers. */
static bool start_ap(struct cpu *c, struct trampoline_params *params, uint64_t page, uint64_t root,
                     bool withhold_startup)
{
    *params = (struct trampoline_params){
        .cr0 = read_cr0(),
        .cr3 = root,
        .cr4 = ap_cr4 & ~CR4_PGE, /* no global entries until the kernel's tables are in */
        .efer = rdmsr(MSR_EFER) & (EFER_LME | EFER_NXE | EFER_SCE),
        .stack = c->idle_stack_top,
        .cpu = (uint64_t)c,
        .entry = (uint64_t)ap_entry,
    };
    __atomic_store_n(&c->state, CPU_STARTING, __ATOMIC_RELEASE);
    uint64_t start = arch_time_ns();
    bool sent = lapic_send_init(c->apic_id);
    delay_us(INIT_DELAY_US);
    sent = sent && (withhold_startup || lapic_send_startup(c->apic_id, (uint8_t)(page >> 12)));
    delay_us(STARTUP_DELAY_US);
    if (sent && !withhold_startup && __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == CPU_STARTING) {
        sent = lapic_send_startup(c->apic_id, (uint8_t)(page >> 12));
        delay_us(STARTUP_DELAY_US);
    }
    while (sent && __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != CPU_ONLINE &&
           arch_time_ns() - start < AP_START_TIMEOUT_NS)
        __asm__ volatile("pause");
    int state = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
    if (state == CPU_ONLINE) {
        c->bringup_ns = arch_time_ns() - start;
        call_lock_acquire(this_cpu());
        bool answered = call_and_wait(CPU_MASK(c->id), false, note_answer, 0, AP_CALL_TIMEOUT_NS) != 0;
        call_lock_release();
        if (answered) {
            __atomic_or_fetch(&online_mask, CPU_MASK(c->id), __ATOMIC_RELEASE);
            return true;
        }
    }
    if (!sent)
        kprintf("smp: CPU %u (APIC id %u): the local APIC would not send the start-up IPIs\n", c->id, c->apic_id);
    else
        kprintf("smp: CPU %u (APIC id %u) did not come up within %llu ms: %s; parked with INIT\n", c->id, c->apic_id,
                AP_START_TIMEOUT_NS / 1000000, state_name(state));
    /* Whatever it is doing, it loses the race for its state and stops. */
    while (!set_state(c, state, CPU_FAILED))
        state = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
    lapic_send_init(c->apic_id);
    delay_us(INIT_DELAY_US);
    return false;
}

/* At most how many CPUs to run, the BSP included, from smp=off and
 * smp.cpus=N. */
static unsigned cpu_cap(const char *cmdline)
{
    if (boot_option_is(cmdline, "smp", "off")) {
        kprintf("smp: smp=off on the command line: the BSP only\n");
        return 1;
    }
    uint64_t cap;
    if (cmdline_get(cmdline, "smp.cpus", 0, 0)) {
        if (cmdline_get_u64(cmdline, "smp.cpus", &cap) && cap >= 1) {
            kprintf("smp: smp.cpus=%lu on the command line\n", cap);
            return cap < SMP_MAX_CPUS ? (unsigned)cap : SMP_MAX_CPUS;
        }
        kprintf("smp: smp.cpus wants a number of CPUs from 1 up; ignored\n");
    }
    return SMP_MAX_CPUS;
}

/* Where APs start: a copy of the trampoline in a page below 1 MiB, its
 * parameters in the same page, and temporary page tables that map that page
 * where the AP finds it before it switches to the kernel's. */
struct trampoline {
    uint64_t page;
    uint64_t root;
    struct trampoline_params *params;
};

/* Whether t is set up; if not, the BSP runs alone and the log says why. */
static bool trampoline_install(const struct mb_info *info, const struct phys_range *in_use, unsigned nin_use,
                               struct trampoline *t)
{
    size_t code_size = (size_t)(trampoline_end - trampoline_start);

    if (code_size > TRAMPOLINE_PARAMS)
        panic("smp: the trampoline (%zu bytes) overlaps its parameters", code_size);
    if (!pick_trampoline_page(info, in_use, nin_use, &t->page)) {
        kprintf("smp: no free page of conventional memory for the trampoline: the BSP only\n");
        return false;
    }
    if (paging_trampoline_create(&t->root) != 0) {
        kprintf("smp: no pool frames for the trampoline's page tables: the BSP only\n");
        return false;
    }
    uint8_t *tramp = phys_to_virt(t->page);
    memcpy(tramp, trampoline_start, code_size);
    t->params = (struct trampoline_params *)(tramp + TRAMPOLINE_PARAMS);
    ap_cr4 = read_cr4();
    kprintf("smp: trampoline at %#lx\n", t->page);
    return true;
}

/* A CPU that will not be started is taken out of the firmware's hands and
 * out of the way: waiting for a start-up IPI, nothing wakes it. Returns
 * whether it got the INIT (an x2APIC id cannot be reached in xAPIC mode). */
static bool park_cpu(const struct acpi_cpu *m) { return m->apic_id <= 0xff && lapic_send_init(m->apic_id); }

/* The next cpus[] entry for the MADT's CPU m, with its stacks mapped; NULL
 * (and a log line) if the kernel cannot run it. */
static struct cpu *claim_cpu(const struct acpi_cpu *m)
{
    if (m->apic_id > 0xff) {
        kprintf("smp: APIC id %u needs x2APIC, which this kernel does not use; left out\n", m->apic_id);
        return NULL;
    }
    if (cpus_known == SMP_MAX_CPUS) {
        kprintf("smp: more than %u CPUs; APIC id %u left out\n", SMP_MAX_CPUS, m->apic_id);
        return NULL;
    }
    struct cpu *c = &cpus[cpus_known];
    c->id = cpus_known;
    c->apic_id = m->apic_id;
    c->acpi_uid = m->uid;
    if (map_cpu_stacks(c) != 0) {
        kprintf("smp: no pool frames for CPU %u's stacks; APIC id %u left out\n", c->id, m->apic_id);
        return NULL;
    }
    cpus_known++;
    return c;
}

/* Whether c came online; the log gives each CPU's bring-up time and timer
 * rate, the first things to look at when an AP misbehaves. */
static bool bring_up(struct cpu *c, const struct trampoline *t, bool withhold_startup)
{
    if (!start_ap(c, t->params, t->page, t->root, withhold_startup))
        return false;
    kprintf("smp: CPU %u (APIC id %u) online after %lu us, timer %u counts a tick\n", c->id, c->apic_id,
            c->bringup_ns / 1000, c->lapic_ticks_per_tick);
    if (!c->lapic_ticks_per_tick)
        kprintf("smp: CPU %u's local APIC timer does not count: it runs without a tick\n", c->id);
    return true;
}

void smp_start(const struct mb_info *info, const struct phys_range *in_use, unsigned nin_use, const char *cmdline)
{
    const struct acpi_madt *madt = interrupts_madt();
    if (!madt) {
        kprintf("smp: 1 of 1 CPUs online (legacy mode: no other CPU is known)\n");
        return;
    }
    cpus_present = madt->enabled_cpus;
    unsigned cap = cpu_cap(cmdline);
    struct trampoline t = { 0 };
    bool ready = cap > 1 && cpus_present > 1 && trampoline_install(info, in_use, nin_use, &t);

    uint64_t nosipi = ~0ull;
    if (cmdline_get_u64(cmdline, "smp.nosipi", &nosipi))
        kprintf("smp: smp.nosipi=%lu: that CPU gets no start-up IPI (a test of the timeout)\n", nosipi);
    unsigned online = 1, parked = 0;
    for (unsigned i = 0; i < madt->ncpus; i++) {
        const struct acpi_cpu *m = &madt->cpus[i];
        if (!m->enabled || m->apic_id == cpus[0].apic_id)
            continue;
        if (!ready || online >= cap) {
            if (park_cpu(m))
                parked++;
            all_present_online = false;
            continue;
        }
        struct cpu *c = claim_cpu(m);
        if (c && bring_up(c, &t, m->apic_id == nosipi))
            online++;
        else
            all_present_online = false;
    }
    if (ready)
        paging_trampoline_destroy(t.root);
    if (parked)
        kprintf("smp: %u CPU(s) not started, parked with INIT\n", parked);
    kprintf("smp: %u of %u CPUs online\n", smp_cpus_online(), cpus_present);
}
