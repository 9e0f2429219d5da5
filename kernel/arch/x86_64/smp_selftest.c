/*
 * Architecture layer (x86-64): the boot self-test of the other CPUs, run
 * by kmain after smp_start when the command line has `smp.selftest`
 * (ctest's SMP runs check its summary). From the BSP it proves that each
 * online AP takes IPIs and runs what they ask on itself, that the
 * acknowledgement comes after the work, that targets are filtered as
 * smp_call promises, that reschedule IPIs arrive once each, that an NMI
 * is taken and survived, that a call whose IPI was lost is sent again,
 * that a CPU left deaf by an interrupt stuck in service is repaired by the
 * call that finds it so and by the CPU watching it,
 * that an NMI can ask a CPU where it is (what the report on a CPU that
 * does not answer prints), that every CPU's local APIC timer ticks, and
 * that every CPU's TSC runs in step with the BSP's (arch_time_ns depends
 * on it). Then it measures cross-CPU call costs.
 *
 * Output: `[PASS] smp_selftest.NAME` or `[FAIL] smp_selftest.NAME: why`
 * per check (ktest_report: the suite counts them; iso/run fails a run with
 * any [FAIL] line), BENCH lines, and a
 * closing `smp selftest: N passed, M failed`.
 */
#include <stdarg.h>
#include <arch/apic.h>
#include <arch/arch.h>
#include <arch/smp.h>
#include <common/fmt.h>
#include <kernel/console.h>

#define CALLS_PER_CPU  100u
#define BENCH_CALLS    1000u
#define WAIT_NS        1000000000ull /* for an IPI nobody waits on */
#define TICK_WINDOW_NS 50000000ull
/* A watcher looks once a second of its own ticks and repairs at the
 * second look that finds no tick: two seconds, and slack for a slow host. */
#define WATCHDOG_WAIT_NS 5000000000ull

static unsigned passed, failed;

static void check(const char *name, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(const char *name, bool ok, const char *fmt, ...)
{
    if (ok) {
        passed++;
        ktest_report("smp_selftest", name, KTEST_PASS, 0);
        return;
    }
    failed++;
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    ktest_report("smp_selftest", name, KTEST_FAIL, "%s", why);
}

/* What a call saw: how often it ran on each CPU. */
struct record {
    uint64_t ran_on[SMP_MAX_CPUS];
};

static void record_here(void *arg)
{
    struct record *r = arg;
    __atomic_fetch_add(&r->ran_on[arch_cpu_id()], 1, __ATOMIC_RELAXED);
}

static uint64_t ran_on(struct record *r, unsigned id) { return __atomic_load_n(&r->ran_on[id], __ATOMIC_ACQUIRE); }

static struct record rec;

static void clear_record(void)
{
    for (unsigned i = 0; i < SMP_MAX_CPUS; i++)
        __atomic_store_n(&rec.ran_on[i], 0, __ATOMIC_RELEASE);
}

/* Each AP alone: every call runs once, there, before smp_call returns. */
static void test_call_each(cpu_mask_t others)
{
    unsigned long bad_cpu = ~0ul, bad_count = 0;
    for (unsigned id = 0; id < SMP_MAX_CPUS; id++) {
        if (!(others & CPU_MASK(id)))
            continue;
        clear_record();
        for (unsigned n = 1; n <= CALLS_PER_CPU; n++) {
            cpu_mask_t ran = smp_call(CPU_MASK(id), record_here, &rec);
            if (ran != CPU_MASK(id) || ran_on(&rec, id) != n) {
                bad_cpu = id;
                bad_count = ran_on(&rec, id);
                break;
            }
        }
        uint64_t elsewhere = 0;
        for (unsigned other = 0; other < SMP_MAX_CPUS; other++)
            if (other != id)
                elsewhere += ran_on(&rec, other);
        if (bad_cpu == ~0ul && elsewhere) {
            bad_cpu = id;
            bad_count = elsewhere;
        }
        if (bad_cpu != ~0ul)
            break;
    }
    check("call_each", bad_cpu == ~0ul,
          "CPU %lu: a call ran %lu times where it should not have, or was acknowledged before it ran", bad_cpu,
          bad_count);
}

/* All APs at once (the broadcast shorthand when every listed CPU is up):
 * each ran every call, the caller none, and each took exactly one IPI per
 * call. */
static void test_call_all(cpu_mask_t others)
{
    uint64_t ipis_before[SMP_MAX_CPUS];
    for (unsigned id = 0; id < SMP_MAX_CPUS; id++)
        ipis_before[id] = cpus[id].call_ipis;
    clear_record();
    bool returned_ok = true;
    for (unsigned n = 0; n < CALLS_PER_CPU; n++)
        returned_ok &= smp_call(others, record_here, &rec) == others;
    unsigned long bad_cpu = ~0ul, seen = 0;
    for (unsigned id = 0; id < SMP_MAX_CPUS && bad_cpu == ~0ul; id++) {
        uint64_t want = (others & CPU_MASK(id)) ? CALLS_PER_CPU : 0;
        uint64_t ipis = cpus[id].call_ipis - ipis_before[id];
        if (ran_on(&rec, id) != want || ((others & CPU_MASK(id)) && ipis != CALLS_PER_CPU)) {
            bad_cpu = id;
            seen = ran_on(&rec, id) != want ? ran_on(&rec, id) : ipis;
        }
    }
    check("call_all_returned", returned_ok, "smp_call to every other CPU (%#lx) returned another set", others);
    check("call_all", bad_cpu == ~0ul, "CPU %lu ran the call or took its IPI %lu times, not once per call", bad_cpu,
          seen);
}

/* The caller itself, CPUs that do not exist, and offline ones are left out. */
static void test_call_filters(cpu_mask_t others)
{
    clear_record();
    cpu_mask_t self = smp_call(CPU_MASK(arch_cpu_id()), record_here, &rec);
    cpu_mask_t everyone = smp_call(~(cpu_mask_t)0, record_here, &rec);
    cpu_mask_t beyond = smp_call(~smp_online_mask(), record_here, &rec);
    check("call_skips_self", self == 0 && ran_on(&rec, arch_cpu_id()) == 0,
          "a call to the caller alone ran on %u CPUs (%lu times here)", cpu_mask_count(self),
          ran_on(&rec, arch_cpu_id()));
    check("call_all_ones", everyone == others, "a call to every id reached %#lx, not %#lx", everyone, others);
    check("call_offline", beyond == 0, "a call to offline and absent ids reached %#lx", beyond);
}

static bool wait_for(volatile uint64_t *counter, uint64_t above)
{
    uint64_t deadline = arch_time_ns() + WAIT_NS;
    while (*counter <= above) {
        if (arch_time_ns() > deadline)
            return false;
        __asm__ volatile("pause"); /* also lets an emulator run the other CPU */
    }
    return true;
}

/* An NMI to every other CPU: each counts it and goes on, answering calls
 * as before (trap.c: an NMI that is not a panic's is ignored). */
static void test_nmi(cpu_mask_t others)
{
    uint64_t before[SMP_MAX_CPUS];
    for (unsigned id = 0; id < SMP_MAX_CPUS; id++)
        before[id] = cpus[id].nmis;
    bool sent = lapic_send_nmi_others();
    unsigned long bad_cpu = ~0ul;
    for (unsigned id = 0; id < SMP_MAX_CPUS && bad_cpu == ~0ul; id++)
        if ((others & CPU_MASK(id)) && !wait_for(&cpus[id].nmis, before[id]))
            bad_cpu = id;
    check("nmi_taken", sent && bad_cpu == ~0ul, "CPU %lu did not count the NMI sent to it (sent: %d)", bad_cpu, sent);
    clear_record();
    cpu_mask_t ran = smp_call(others, record_here, &rec);
    check("nmi_survived", ran == others, "after an NMI, a call to every other CPU reached %#lx, not %#lx", ran, others);
}

/* A call whose IPI is lost on the way still runs, once, when the caller
 * sends it again. */
static void test_lost_ipi(cpu_mask_t others)
{
    unsigned id = (unsigned)__builtin_ctzll(others);
    clear_record();
    smp_test_drop_next_call_ipi();
    uint64_t start = arch_time_ns();
    cpu_mask_t ran = smp_call(CPU_MASK(id), record_here, &rec);
    uint64_t took = arch_time_ns() - start;
    check("lost_ipi_resent", ran == CPU_MASK(id) && ran_on(&rec, id) == 1 && took >= SMP_CALL_RESEND_NS,
          "CPU %u ran the call %lu times in %lu ms (the first IPI was held back)", id, ran_on(&rec, id),
          took / 1000000);
}

/* Leaves an AP's next timer interrupt in service (its EOI held back), and
 * returns once that tick has come and gone: from then on it is deaf to
 * its timer and the IPIs. */
static void deafen(struct cpu *t)
{
    __atomic_store_n(&t->skip_next_timer_eoi, true, __ATOMIC_RELAXED);
    uint64_t ticks = t->ticks, give_up = arch_time_ns() + WAIT_NS;
    while ((t->ticks == ticks || t->skip_next_timer_eoi) && arch_time_ns() < give_up)
        __asm__ volatile("pause");
}

/* A call to a deaf AP still runs, once, after the NMI that ends the
 * interrupt left in service. */
static void test_stuck_in_service(cpu_mask_t others)
{
    unsigned id = (unsigned)__builtin_ctzll(others);
    struct cpu *t = &cpus[id];
    uint64_t repairs = t->isr_repairs;
    deafen(t);
    clear_record();
    uint64_t start = arch_time_ns();
    cpu_mask_t ran = smp_call(CPU_MASK(id), record_here, &rec);
    uint64_t took = arch_time_ns() - start;
    check("stuck_in_service_repaired",
          ran == CPU_MASK(id) && ran_on(&rec, id) == 1 && took >= SMP_CALL_KICK_NS && t->isr_repairs == repairs + 1,
          "CPU %u ran the call %lu times in %lu ms, %lu in-service vectors ended", id, ran_on(&rec, id), took / 1000000,
          t->isr_repairs - repairs);
}

/* The same deafness on a CPU nobody calls: the CPU watching it (the one
 * before it; CPU 0 for CPU 1, so interrupts are on here meanwhile) sees
 * its tick count stand still for a second of its own ticks and repairs
 * it, and its timer ticks again. */
static void test_watchdog(cpu_mask_t others)
{
    unsigned id = 63u - (unsigned)__builtin_clzll(others);
    struct cpu *t = &cpus[id];
    uint64_t repairs = t->isr_repairs;
    deafen(t);
    uint64_t stalled = t->ticks, start = arch_time_ns(), give_up = start + WATCHDOG_WAIT_NS;
    arch_irq_enable();
    while ((t->isr_repairs == repairs || t->ticks == stalled) && arch_time_ns() < give_up)
        __asm__ volatile("pause");
    arch_irq_disable();
    check("deaf_cpu_watched", t->isr_repairs == repairs + 1 && t->ticks != stalled,
          "CPU %u: %lu in-service vectors ended, %lu ticks since, after %lu ms", id, t->isr_repairs - repairs,
          t->ticks - stalled, (arch_time_ns() - start) / 1000000);
}

/* The report a call that goes unanswered ends in: an idle CPU says it was
 * halted in the kernel with interrupts on, and its timer ticked. */
static void test_sample(cpu_mask_t others)
{
    uint64_t ticks_before[SMP_MAX_CPUS];
    cpu_mask_t answered = smp_sample(others, ticks_before);
    unsigned long bad_cpu = ~0ul;
    for (unsigned id = 0; id < SMP_MAX_CPUS && bad_cpu == ~0ul; id++)
        if ((others & CPU_MASK(id)) && (!(answered & CPU_MASK(id)) || (cpus[id].sample_cs & 3) != 0 ||
                                        cpus[id].sample_rip < KERNEL_VMA || cpus[id].ticks == ticks_before[id]))
            bad_cpu = id;
    check("nmi_sample", bad_cpu == ~0ul, "CPU %lu: answered %d, cs %#lx, rip %#lx, %lu ticks", bad_cpu,
          bad_cpu == ~0ul ? 1 : !!(answered & CPU_MASK(bad_cpu)), bad_cpu == ~0ul ? 0 : cpus[bad_cpu].sample_cs,
          bad_cpu == ~0ul ? 0 : cpus[bad_cpu].sample_rip,
          bad_cpu == ~0ul ? 0 : cpus[bad_cpu].ticks - ticks_before[bad_cpu]);
}

/* One reschedule IPI each, arriving once; the caller and absent CPUs are
 * not sent any. */
static void test_reschedule(cpu_mask_t others)
{
    unsigned long bad_cpu = ~0ul, got = 0;
    for (unsigned id = 0; id < SMP_MAX_CPUS && bad_cpu == ~0ul; id++) {
        if (!(others & CPU_MASK(id)))
            continue;
        uint64_t before = cpus[id].resched_ipis;
        smp_send_reschedule(id);
        bool arrived = wait_for(&cpus[id].resched_ipis, before);
        /* Long enough for a duplicate to show. */
        uint64_t settle = arch_time_ns() + 1000000;
        while (arch_time_ns() < settle)
            __asm__ volatile("pause");
        if (!arrived || cpus[id].resched_ipis != before + 1) {
            bad_cpu = id;
            got = cpus[id].resched_ipis - before;
        }
    }
    check("reschedule", bad_cpu == ~0ul, "CPU %lu took %lu reschedule IPIs for one", bad_cpu, got);
    uint64_t self_before = this_cpu()->resched_ipis;
    smp_send_reschedule(arch_cpu_id());
    smp_send_reschedule(SMP_MAX_CPUS);
    smp_send_reschedule(~0u);
    arch_irq_enable();
    __asm__ volatile("nop");
    arch_irq_disable();
    check("reschedule_self_ignored", this_cpu()->resched_ipis == self_before,
          "the caller took %lu reschedule IPIs it sent itself", this_cpu()->resched_ipis - self_before);
}

/* A vector nothing raises (as a device's write to the interrupt window
 * can, without interrupt remapping) is taken and acknowledged: the CPU
 * still answers a call afterwards. Unacknowledged, it would hold off the
 * call IPI's lower class for good. */
#define STRAY_VECTOR 0xc8
static void test_stray_vector(cpu_mask_t others)
{
    unsigned id = (unsigned)__builtin_ctzll(others);
    bool sent = lapic_send_ipi(cpus[id].apic_id, STRAY_VECTOR);
    clear_record();
    cpu_mask_t ran = smp_call(CPU_MASK(id), record_here, &rec);
    check("stray_vector_acknowledged", sent && ran == CPU_MASK(id) && ran_on(&rec, id) == 1,
          "after vector %#x, CPU %u answered a call: %s", STRAY_VECTOR, id, ran == CPU_MASK(id) ? "yes" : "no");
}

/* Every online CPU's timer advances; the BSP's needs interrupts on. */
static void test_ticks(cpu_mask_t online)
{
    uint64_t before[SMP_MAX_CPUS];
    for (unsigned id = 0; id < SMP_MAX_CPUS; id++)
        before[id] = cpus[id].ticks;
    uint64_t end = arch_time_ns() + TICK_WINDOW_NS;
    arch_irq_enable();
    while (arch_time_ns() < end)
        __asm__ volatile("pause");
    arch_irq_disable();
    unsigned long still = ~0ul;
    for (unsigned id = 0; id < SMP_MAX_CPUS; id++) {
        if (!(online & CPU_MASK(id)))
            continue;
        kprintf("smp selftest: CPU %u: %lu ticks in %llu ms\n", id, cpus[id].ticks - before[id],
                TICK_WINDOW_NS / 1000000);
        if (cpus[id].ticks == before[id] && still == ~0ul)
            still = id;
    }
    check("timer_ticks", still == ~0ul, "CPU %lu's local APIC timer did not tick in %llu ms", still,
          TICK_WINDOW_NS / 1000000);
}

static void read_tsc(void *arg) { *(volatile uint64_t *)arg = rdtsc(); }

/* arch_time_ns reads the TSC against the BSP's start: each AP's TSC must
 * read between the BSP's readings before and after a call that reads it. */
static void test_tsc_in_step(cpu_mask_t others)
{
    unsigned long bad_cpu = ~0ul;
    long skew = 0;
    for (unsigned id = 0; id < SMP_MAX_CPUS && bad_cpu == ~0ul; id++) {
        if (!(others & CPU_MASK(id)))
            continue;
        volatile uint64_t theirs = 0;
        uint64_t before = rdtsc();
        smp_call(CPU_MASK(id), read_tsc, (void *)&theirs);
        uint64_t after = rdtsc();
        if (theirs < before || theirs > after) {
            bad_cpu = id;
            skew = theirs < before ? -(long)(before - theirs) : (long)(theirs - after);
        }
    }
    check("tsc_in_step", bad_cpu == ~0ul, "CPU %lu's TSC is %ld cycles outside the BSP's around a call", bad_cpu, skew);
}

static void nothing(void *arg) { (void)arg; }

static void bench(cpu_mask_t others)
{
    unsigned first = (unsigned)__builtin_ctzll(others);
    uint64_t t0 = arch_time_ns(), c0 = rdtsc();
    for (unsigned n = 0; n < BENCH_CALLS; n++)
        smp_call(CPU_MASK(first), nothing, 0);
    uint64_t ns = arch_time_ns() - t0, cycles = rdtsc() - c0;
    kprintf("BENCH smp_call_one_ns %lu ns\n", ns / BENCH_CALLS);
    kprintf("BENCH smp_call_one_tsc %lu cycles\n", cycles / BENCH_CALLS);
    t0 = arch_time_ns();
    c0 = rdtsc();
    for (unsigned n = 0; n < BENCH_CALLS; n++)
        smp_call(others, nothing, 0);
    ns = arch_time_ns() - t0;
    cycles = rdtsc() - c0;
    kprintf("BENCH smp_call_all_%u_ns %lu ns\n", cpu_mask_count(others), ns / BENCH_CALLS);
    kprintf("BENCH smp_call_all_%u_tsc %lu cycles\n", cpu_mask_count(others), cycles / BENCH_CALLS);
    uint64_t bringup = 0;
    unsigned aps = 0;
    for (unsigned id = 1; id < SMP_MAX_CPUS; id++)
        if (others & CPU_MASK(id)) {
            bringup += cpus[id].bringup_ns;
            aps++;
        }
    if (aps)
        kprintf("BENCH smp_ap_bringup_us %lu us\n", bringup / aps / 1000);
}

void smp_selftest(void)
{
    cpu_mask_t online = smp_online_mask(), others = online & ~CPU_MASK(arch_cpu_id());
    if (!others) {
        ktest_report("smp_selftest", "cross_cpu", KTEST_SKIP, "one CPU online");
        kprintf("smp selftest: 0 passed, 0 failed\n");
        return;
    }
    test_call_each(others);
    test_call_all(others);
    test_call_filters(others);
    test_reschedule(others);
    test_stray_vector(others);
    test_nmi(others);
    test_lost_ipi(others);
    test_stuck_in_service(others);
    test_watchdog(others);
    test_sample(others);
    test_ticks(online);
    test_tsc_in_step(others);
    bench(others);
    kprintf("smp selftest: %u passed, %u failed\n", passed, failed);
}
