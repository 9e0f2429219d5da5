/*
 * Architecture layer (x86-64): per-CPU tables and modes. Every CPU gets its
 * own GDT (its TSS descriptor is busy once loaded, so it cannot be shared),
 * its own TSS with interrupt-stack-table stacks, the shared IDT, its GS
 * base pointing at its struct cpu, the SYSCALL MSRs, NX and SSE for user
 * code. Callers: kmain through arch_cpu_init (the BSP), smp.c through
 * cpu_init_this (each AP, on its own stack).
 */
#include <arch/arch.h>
#include <arch/smp.h>
#include <common/string.h>
#include <kernel/console.h>

struct idt_entry {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t zero;
} __attribute__((packed));

struct table_ptr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

struct cpu cpus[SMP_MAX_CPUS];
static struct idt_entry idt[256] __attribute__((aligned(16)));
static bool have_nx;
static bool have_pge;
static bool have_smep;
static bool have_smap;

/* The BSP's interrupt-stack-table stacks (the APs' are mapped with guard
 * pages by smp.c; the BSP's exist before paging is set up). A double
 * fault gets a fresh stack, so a kernel stack overflow into a guard page
 * still reaches the panic path. */
static uint8_t bsp_ist_stacks[3][CPU_IST_STACK_SIZE] __attribute__((aligned(16)));

extern const uint64_t isr_table[VECTOR_STUBS];
extern const uint64_t isr_spurious;
extern char syscall_entry[];
extern char boot_stack_top[];
extern uint8_t *const smap_open_start[], *const smap_open_end[];
extern uint8_t *const smap_close_start[], *const smap_close_end[];

#define VECTOR_DOUBLE_FAULT  8
#define VECTOR_MACHINE_CHECK 18

static void gdt_load(struct cpu *c, const uint64_t ist_top[3])
{
    uint64_t *gdt = c->gdt;
    gdt[0] = 0;
    gdt[1] = 0x00af9a000000ffffull; /* 0x08 kernel code, 64-bit */
    gdt[2] = 0x00cf92000000ffffull; /* 0x10 kernel data */
    /* 0x18: STAR's anchor for SYSRET's selectors (0x20, 0x28), which the
     * kernel never executes. Empty, not a 32-bit user code segment: a
     * program that far-jumped into compatibility mode could SYSCALL there,
     * which enters ring 0 at MSR_CSTAR on AMD CPUs, QEMU and Bochs. */
    gdt[3] = 0;
    gdt[4] = 0x00cff2000000ffffull; /* 0x20 user data */
    gdt[5] = 0x00affa000000ffffull; /* 0x28 user code, 64-bit */

    uint64_t base = (uint64_t)&c->tss;
    uint64_t limit = sizeof(c->tss) - 1;
    gdt[6] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) | (((limit >> 16) & 0xf) << 48) |
             (((base >> 24) & 0xff) << 56);
    gdt[7] = base >> 32;

    memset(&c->tss, 0, sizeof c->tss);
    c->tss.iomap_base = sizeof(c->tss); /* no I/O bitmap: user port access faults */
    c->tss.ist[IST_DOUBLE_FAULT - 1] = ist_top[0];
    c->tss.ist[IST_NMI - 1] = ist_top[1];
    c->tss.ist[IST_MACHINE_CHECK - 1] = ist_top[2];
    c->tss.rsp0 = c->idle_stack_top;

    struct table_ptr p = { sizeof(c->gdt) - 1, (uint64_t)gdt };
    __asm__ volatile("lgdt %0" ::"m"(p));
    __asm__ volatile("mov %0, %%ds\n mov %0, %%es\n mov %0, %%ss\n"
                     "xor %%eax, %%eax\n mov %%ax, %%fs\n mov %%ax, %%gs\n"
                     "pushq %1\n lea 1f(%%rip), %%rax\n pushq %%rax\n lretq\n 1:\n" ::"r"((uint64_t)GDT_KERNEL_DATA),
                     "i"(GDT_KERNEL_CODE)
                     : "rax", "memory");
    __asm__ volatile("ltr %w0" ::"r"((uint16_t)GDT_TSS));
}

/* Loading GS's selector (gdt_load) may clear its base, so this comes after.
 * The kernel's GS base is the struct cpu; user code starts with base 0,
 * which swapgs brings in on the way out. */
static void gs_init(struct cpu *c)
{
    c->self = c;
    wrmsr(MSR_GS_BASE, (uint64_t)c);
    wrmsr(MSR_KERNEL_GS_BASE, 0);
}

static void idt_set(unsigned vector, uint64_t handler, uint8_t ist)
{
    idt[vector] = (struct idt_entry){
        .offset_lo = handler & 0xffff,
        .selector = GDT_KERNEL_CODE,
        .ist = ist,
        .type_attr = 0x8e, /* present, ring 0, interrupt gate: IF cleared */
        .offset_mid = (handler >> 16) & 0xffff,
        .offset_hi = handler >> 32,
    };
}

static void idt_build(void)
{
    for (unsigned v = 0; v < VECTOR_STUBS; v++) {
        uint8_t ist = v == VECTOR_DOUBLE_FAULT    ? IST_DOUBLE_FAULT
                      : v == VECTOR_NMI           ? IST_NMI
                      : v == VECTOR_MACHINE_CHECK ? IST_MACHINE_CHECK
                                                  : 0;
        idt_set(v, isr_table[v], ist);
    }
    idt_set(VECTOR_SPURIOUS, isr_spurious, 0);
}

static void idt_load(void)
{
    struct table_ptr p = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" ::"m"(p));
}

static void syscall_init(void)
{
    uint64_t efer = rdmsr(MSR_EFER) | EFER_SCE;
    if (have_nx)
        efer |= EFER_NXE;
    wrmsr(MSR_EFER, efer);
    wrmsr(MSR_STAR, ((uint64_t)GDT_USER_BASE << 48) | ((uint64_t)GDT_KERNEL_CODE << 32));
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
    /* Clear IF, DF, TF, AC, NT and IOPL on entry. NT above all: the kernel
     * leaves with iretq, which faults in ring 0 with NT set. */
    wrmsr(MSR_FMASK, RFLAGS_IF | (1ull << 10) | (1ull << 8) | (1ull << 18) | (1ull << 14) | (3ull << 12));
}

static void fpu_init(void)
{
    uint64_t cr0 = read_cr0();
    cr0 &= ~(1ull << 2); /* EM: no emulation */
    cr0 |= (1ull << 1);  /* MP */
    cr0 &= ~(1ull << 3); /* TS: no lazy switching, state is saved eagerly */
    write_cr0(cr0);
    write_cr4(read_cr4() | (1ull << 9) | (1ull << 10)); /* OSFXSR, OSXMMEXCPT */
    __asm__ volatile("fninit");
}

void cpu_init_this(struct cpu *c, const uint64_t ist_top[3])
{
    gdt_load(c, ist_top);
    idt_load();
    gs_init(c);
    syscall_init();
    fpu_init();
    /* Supervisor-mode execution prevention: the kernel never runs code
     * from a user page, so a jump there by a kernel bug faults instead. */
    if (have_smep)
        write_cr4(read_cr4() | CR4_SMEP);
    /* Supervisor-mode access prevention: the kernel reads and writes user
     * pages only inside the user copies (usercopy.asm), which open them
     * for their own instructions; anything else faults. */
    if (have_smap)
        write_cr4(read_cr4() | CR4_SMAP);
}

/* Writes STAC and CLAC over the NOPs of the user-access sites (smap.inc),
 * on the BSP before any other CPU runs; the image is writable and the CR4
 * write that turns SMAP on serializes. */
static void patch_user_access_sites(void)
{
    static const uint8_t stac[3] = { 0x0f, 0x01, 0xcb }, clac[3] = { 0x0f, 0x01, 0xca };
    for (uint8_t *const *site = smap_open_start; site < smap_open_end; site++)
        memcpy(*site, stac, sizeof(stac));
    for (uint8_t *const *site = smap_close_start; site < smap_close_end; site++)
        memcpy(*site, clac, sizeof(clac));
}

/* What the kernel cannot run without beyond long mode (boot.asm checks
 * that): SYSCALL for every system call, the TSC for all time keeping,
 * FXSR and SSE2 for the FPU state it saves and the SSE it gives user code.
 * Every x86-64 CPU has them, but an emulator can take them away
 * (`-cpu qemu64,-syscall`): refused with one line, rather than every
 * program dying of an invalid opcode. */
static void require_features(void)
{
    static const struct {
        uint32_t leaf;
        unsigned bit;
        const char *name;
    } needed[] = {
        { 0x80000001, 11, "SYSCALL" },
        { 1, 4, "the TSC" },
        { 1, 24, "FXSAVE" },
        { 1, 26, "SSE2" },
    };
    uint32_t a, b, c, d;
    for (unsigned i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        cpuid(needed[i].leaf, 0, &a, &b, &c, &d);
        if (!((d >> needed[i].bit) & 1)) {
            refuse_machine("this CPU lacks %s, which the kernel needs", needed[i].name);
        }
    }
}

void arch_cpu_init(void)
{
    uint32_t a, b, cx, d;
    require_features();
    cpuid(0x80000001, 0, &a, &b, &cx, &d);
    have_nx = (d >> 20) & 1;
    cpuid(1, 0, &a, &b, &cx, &d);
    have_pge = (d >> 13) & 1;
    cpuid(0, 0, &a, &b, &cx, &d);
    if (a >= 7) {
        cpuid(7, 0, &a, &b, &cx, &d);
        have_smep = (b >> 7) & 1;
        have_smap = (b >> 20) & 1;
    }
    if (have_smap)
        patch_user_access_sites();
    idt_build();
    struct cpu *c = &cpus[0];
    c->id = 0;
    c->idle_stack_top = (uint64_t)boot_stack_top;
    c->state = CPU_ONLINE;
    uint64_t ist_top[3];
    for (unsigned i = 0; i < 3; i++)
        ist_top[i] = (uint64_t)(bsp_ist_stacks[i] + CPU_IST_STACK_SIZE);
    cpu_init_this(c, ist_top);
}

bool arch_has_nx(void) { return have_nx; }
bool arch_has_pge(void) { return have_pge; }
bool arch_has_smep(void) { return have_smep; }
bool arch_has_smap(void) { return have_smap; }

/* A clean FPU image, captured once after fninit, that new threads start from. */
static uint8_t fpu_clean_area[ARCH_FPU_AREA_SIZE] __attribute__((aligned(16)));
static bool fpu_clean_ready;

void arch_fpu_init_area(void *area)
{
    if (!fpu_clean_ready) {
        __asm__ volatile("fninit; fxsave64 (%0)" ::"r"(fpu_clean_area) : "memory");
        /* Default MXCSR: all exceptions masked. fninit resets only the x87
         * part: the XMM registers (bytes 160 to 415) are cleared here, so
         * that no thread starts with whatever they held at the first call. */
        *(uint32_t *)(fpu_clean_area + 24) = 0x1f80;
        memset(fpu_clean_area + 160, 0, 256);
        fpu_clean_ready = true;
    }
    memcpy(area, fpu_clean_area, ARCH_FPU_AREA_SIZE);
}

uint64_t arch_prepare_kernel_stack(uint64_t stack_top, struct trap_frame **frame)
{
    struct trap_frame *f = (struct trap_frame *)(stack_top - sizeof(struct trap_frame));
    uint64_t *sp = (uint64_t *)f;
    *--sp = (uint64_t)arch_thread_trampoline; /* arch_context_switch's ret */
    for (int i = 0; i < 6; i++)
        *--sp = 0; /* rbp, rbx, r12-r15 */
    *frame = f;
    return (uint64_t)sp;
}
