/*
 * In-guest test program: misbehaves on purpose in the way its argument
 * names. init checks how the kernel ended it (servers/init/init.c).
 */
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

static uint8_t thread_stacks[4][16384] __attribute__((aligned(16)));
static volatile int sink;
/* Addresses kept in volatile variables, so the compiler cannot see the
 * faults coming and reject or remove them. */
static volatile uintptr_t null_address = 0, low_address = 8;

static void sleeper(uint64_t ms)
{
    sys_sleep(ms * 1000 * 1000);
    sys_thread_exit();
}

static void faulter(uint64_t unused)
{
    (void)unused;
    sink = *(volatile int *)low_address;
    sys_thread_exit();
}

/* A thread body that touches no stack: many threads can share one. */
extern void block_forever(uint64_t unused);
__asm__(".globl block_forever\n"
        "block_forever:\n"
        "1: mov $5, %eax\n"  /* SYS_SLEEP */
        "   mov $-1, %rdi\n" /* TIMEOUT_FOREVER */
        "   syscall\n"
        "   jmp 1b\n");
_Static_assert(SYS_SLEEP == 5, "block_forever hard-codes SYS_SLEEP");

static handle_t receiver_ep;

static void receiver(uint64_t unused)
{
    (void)unused;
    struct ipc_msg m = { 0 };
    sys_ipc_recv(receiver_ep, &m, TIMEOUT_FOREVER);
    sys_sleep(TIMEOUT_FOREVER);
}

/* Spins on its CPU while writing to a segment of its own: a thread the
 * kernel must stop from another CPU, with memory to give back. */
static volatile unsigned spinners_running;

static void spin_on_cpu(uint64_t cpu)
{
    sys_thread_affinity(HANDLE_NONE, cpu);
    struct ms_segment seg;
    volatile uint64_t *word = ms_alloc(65536, 0, 0, 0, &seg) == 0 ? (volatile uint64_t *)seg.addr : 0;
    __atomic_add_fetch(&spinners_running, 1, __ATOMIC_RELEASE);
    for (;;)
        if (word)
            word[sink & 4095]++;
        else
            sink++;
}

/* A spinning thread pinned to each CPU but the first (three on one CPU). */
static unsigned start_spinners(void)
{
    struct abi_kinfo k = { 0 };
    sys_kinfo(&k);
    unsigned ncpus = k.ncpus_online ? (unsigned)k.ncpus_online : 1, started = 0;
    for (unsigned i = 0; i < 3; i++)
        if (sys_thread_create(spin_on_cpu, thread_stacks[i] + sizeof(thread_stacks[i]),
                              ncpus > 1 ? 1 + i % (ncpus - 1) : 0) >= 0)
            started++;
    while (__atomic_load_n(&spinners_running, __ATOMIC_ACQUIRE) < started)
        sys_yield();
    return started;
}

/* Fair shares (the suite's fair_share): threads that spin on the first
 * CPU, and one that counts how far it gets there in a number of the
 * first CPU's ticks (the unit its quantum is made of, which a busy host
 * stretches with the clock). */
#define HOG_THREADS 16
static uint8_t hog_stack[4096] __attribute__((aligned(16)));

extern void spin_forever(uint64_t unused);
__asm__(".globl spin_forever\n"
        "spin_forever:\n"
        "1: pause\n"
        "   jmp 1b\n");

static int hog_first_cpu(void)
{
    if (sys_thread_affinity(HANDLE_NONE, 0) < 0)
        return 1;
    for (unsigned i = 0; i < HOG_THREADS - 1; i++) {
        /* Pinned before it runs, by the creator: the thread shares one stack it never touches. */
        int64_t h = sys_thread_create(spin_forever, hog_stack + sizeof(hog_stack), 0);
        if (h < 0 || sys_thread_affinity((handle_t)h, 0) < 0)
            return 2;
    }
    spin_forever(0);
    return 3;
}

static uint64_t first_cpu_ticks(void)
{
    struct abi_kinfo k = { 0 };
    sys_kinfo(&k);
    return k.ticks;
}

/* Exits with the loop's count over `ticks` ticks, in thousands. */
static int64_t count_on_first_cpu(uint64_t ticks)
{
    if (sys_thread_affinity(HANDLE_NONE, 0) < 0)
        return -1;
    uint64_t until = first_cpu_ticks() + ticks, count = 0;
    while (first_cpu_ticks() < until)
        for (unsigned i = 0; i < 1000; i++)
            sink++, count++;
    return (int64_t)(count / 1000);
}

static int recurse(int depth)
{
    volatile char pad[512];
    pad[0] = (char)depth;
    if (depth >= 0) /* always: the process has a finite stack */
        return recurse(depth + 1) + pad[0];
    return pad[0];
}

int main(int argc, char **argv)
{
    /* The mode is the first argument that is not a key=value setting. */
    const char *mode = "";
    for (int i = 1; i < argc; i++) {
        if (!strchr(argv[i], '=')) {
            mode = argv[i];
            break;
        }
    }
    if (strcmp(mode, "null") == 0)
        sink = *(volatile int *)null_address;
    else if (strcmp(mode, "privileged") == 0)
        __asm__ volatile("cli");
    else if (strcmp(mode, "kernel-write") == 0)
        *(volatile uint64_t *)0xffffffff80100000ull = 1;
    else if (strcmp(mode, "ud") == 0)
        __asm__ volatile("ud2");
    else if (strcmp(mode, "divide") == 0)
        __asm__ volatile("xor %%ecx, %%ecx; mov $1, %%eax; cdq; idiv %%ecx" ::: "eax", "ecx", "edx");
    else if (strcmp(mode, "port-io") == 0)
        __asm__ volatile("outb %%al, $0x80" ::"a"(0));
    else if (strcmp(mode, "stack-overflow") == 0)
        sink = recurse(0);
    else if (strcmp(mode, "spin") == 0)
        for (;;)
            sink++;
    else if (strcmp(mode, "spin-everywhere") == 0) {
        start_spinners();
        for (;;)
            sink++;
    } else if (strcmp(mode, "exit-while-spinning") == 0) {
        /* Ends the process from one CPU while its other threads run on
         * the rest: the status is 7 only if none of them outlives it. */
        if (start_spinners() != 3)
            return 1;
        sys_exit(7);
    } else if (strcmp(mode, "threads-then-exit") == 0) {
        int64_t h[3];
        for (int i = 0; i < 3; i++)
            h[i] = sys_thread_create(sleeper, thread_stacks[i] + sizeof(thread_stacks[i]), 5 + (uint64_t)i);
        for (int i = 0; i < 3; i++)
            if (h[i] < 0 || sys_thread_wait((handle_t)h[i], TIMEOUT_FOREVER) != 0)
                return 1;
        /* One more thread left running: exit must end it too. */
        sys_thread_create(sleeper, thread_stacks[3] + sizeof(thread_stacks[3]), 100000);
        return 0;
    } else if (strcmp(mode, "exhaust-pool") == 0) {
        /* Threads until the kernel says no: it must be an error, not a panic. */
        for (unsigned n = 0;; n++) {
            int64_t h = sys_thread_create(block_forever, thread_stacks[0] + sizeof(thread_stacks[0]), 0);
            if (h < 0) {
                printf("t_victim: thread %u refused: %s\n", n, sys_strerror(h));
                return (int)-h;
            }
            sys_handle_close((handle_t)h);
        }
    } else if (strcmp(mode, "touch-after-send") == 0) {
        /* Send a segment to another thread: the old address must fault. */
        struct ms_segment seg;
        int64_t ep = sys_ep_create();
        if (ep < 0 || ms_alloc(4096, 0, 0, 0, &seg) != 0)
            return 4;
        receiver_ep = (handle_t)ep;
        *(volatile uint64_t *)seg.addr = 1;
        sys_thread_create(receiver, thread_stacks[0] + sizeof(thread_stacks[0]), 0);
        struct ipc_msg m = { .label = 1, .seg = seg.handle };
        if (sys_ipc_send(receiver_ep, &m, TIMEOUT_FOREVER) != 0)
            return 5;
        sink = (int)*(volatile uint64_t *)seg.addr;
        return 6;
    } else if (strcmp(mode, "pin-and-exit") == 0) {
        /* Ends holding a pinned segment; its sid is the exit status. */
        struct ms_segment seg;
        if (ms_alloc(65536, 0, 0, 0, &seg) != 0 || sys_seg_pin(seg.handle, test_dma_device()) < 0)
            return 0;
        sys_exit((int64_t)seg.sid);
    } else if (strcmp(mode, "hog-first-cpu") == 0) {
        return hog_first_cpu();
    } else if (strcmp(mode, "count-on-first-cpu") == 0) {
        sys_exit(count_on_first_cpu(200));
    } else if (strcmp(mode, "fault-in-thread") == 0) {
        sys_thread_create(faulter, thread_stacks[0] + sizeof(thread_stacks[0]), 0);
        sys_sleep(1000ull * 1000 * 1000 * 60);
        return 2; /* the fault should have ended the whole process */
    }
    printf("t_victim: mode '%s' did not end the process\n", mode);
    return 3;
}
