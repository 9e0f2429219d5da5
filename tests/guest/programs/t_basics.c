/*
 * In-guest test program: the system call boundary. Bad pointers, bad
 * handles, unknown numbers and calls that need the boot right each get
 * their error, and the process goes on.
 */
#include <abi/proc.h>
#include <common/string.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

static const struct abi_kinfo read_only_kinfo;

int main(int argc, char **argv)
{
    struct test_run t;
    test_begin(&t, "basics", argc, argv);

    test_check(&t, "startup_block",
               libsys_startup && libsys_startup->magic == ABI_STARTUP_MAGIC && libsys_pid != 0 &&
                   strncmp(libsys_startup->args, "t_basics seed=", 14) == 0 &&
                   libsys_startup->handles[ABI_STARTUP_MEMSRV] != HANDLE_NONE,
               "startup block missing or wrong");

    const char msg[] = "basics: console write\n";
    int64_t r = sys_console_write(msg, sizeof(msg) - 1);
    test_check(&t, "console_write", r == (int64_t)sizeof(msg) - 1, "returned %ld", r);

    r = sys_console_write((const void *)0xffffffff80100000ull, 16);
    test_check(&t, "kernel_pointer", r == -EFAULT, "kernel address gave %ld", r);
    r = sys_console_write((const void *)0x0000100000000000ull, 16);
    test_check(&t, "unmapped_pointer", r == -EFAULT, "unmapped address gave %ld", r);
    r = sys_console_write((const void *)0xfffffffffffff000ull, 0x2000);
    test_check(&t, "wrapping_range", r == -EFAULT, "wrapping range gave %ld", r);
    r = sys_console_write((const void *)(ABI_STACK_TOP - 8), 64);
    test_check(&t, "straddling_range", r == -EFAULT, "range past the stack gave %ld", r);
    r = sys_console_write((const void *)0, 1);
    test_check(&t, "null_pointer", r == -EFAULT, "null gave %ld", r);
    r = sys_console_write(msg, 1ull << 40);
    test_check(&t, "huge_length", r == -E2BIG, "huge length gave %ld", r);

    struct abi_kinfo k;
    r = sys_kinfo(&k);
    test_check(&t, "kinfo",
               r == 0 && k.pool_frames_free > 0 && k.pool_frames_free <= k.pool_frames_total && k.processes >= 2 &&
                   k.threads >= 2,
               "kinfo %ld: pool %lu/%lu, %lu processes", r, k.pool_frames_free, k.pool_frames_total, k.processes);
    test_check(&t, "kinfo_cpus", k.ncpus_online >= 1 && k.ncpus_online <= k.ncpus_present,
               "%lu CPUs online of %lu present", k.ncpus_online, k.ncpus_present);
    r = sys_kinfo((struct abi_kinfo *)&read_only_kinfo);
    test_check(&t, "read_only_destination", r == -EFAULT, "write into .rodata gave %ld", r);
    r = sys_kinfo((struct abi_kinfo *)0xffff800000001000ull);
    test_check(&t, "kernel_destination", r == -EFAULT, "write into the direct map gave %ld", r);

    r = syscall0(9999);
    test_check(&t, "unknown_syscall", r == -ENOSYS, "number 9999 gave %ld", r);
    r = syscall0((uint64_t)-1);
    test_check(&t, "negative_syscall", r == -ENOSYS, "number -1 gave %ld", r);

    struct abi_module_info info;
    r = sys_module_info(0, &info);
    int64_t dev = sys_dev_open(0x1234, 0x11e8, 0);
    test_check(&t, "boot_right_required", r == -EPERM && dev == -EPERM, "module_info %ld, dev_open %ld", r, dev);
    r = syscall1(SYS_SHUTDOWN, 0);
    test_check(&t, "shutdown_refused", r == -EPERM, "shutdown gave %ld", r);

    int64_t bad[5];
    /* Made up: slot 1 with a generation nobody reached, all ones, random. */
    handle_t guesses[] = { 0, 1, 0x7fff00000001ull, 0xfffffffffffffffeull, test_rand(&t) };
    bool all_bad = true;
    for (unsigned i = 0; i < 5; i++) {
        bad[i] = sys_handle_close(guesses[i]);
        all_bad &= bad[i] == -EBADH;
        all_bad &= sys_proc_wait(guesses[i], 0, 0) == -EBADH;
        all_bad &= sys_proc_kill(guesses[i]) == -EBADH;
        all_bad &= sys_thread_wait(guesses[i], 0) == -EBADH;
    }
    test_check(&t, "bad_handles", all_bad, "a made-up handle was accepted (close: %ld %ld %ld %ld %ld)", bad[0], bad[1],
               bad[2], bad[3], bad[4]);

    r = sys_thread_create((void (*)(uint64_t))0xffffffff80100000ull, (void *)0x500000, 0);
    test_check(&t, "thread_kernel_entry", r == -EFAULT, "kernel entry gave %ld", r);

    char in[8];
    r = sys_console_read(in, sizeof(in), TIMEOUT_POLL);
    int64_t bad_in = sys_console_read((void *)0xffffffff80100000ull, 8, TIMEOUT_POLL);
    int64_t zero_in = sys_console_read(in, 0, TIMEOUT_POLL);
    test_check(&t, "console_read", r == -ETIMEDOUT && bad_in == -EFAULT && zero_in == -EINVAL,
               "no input gave %ld, kernel buffer %ld, zero length %ld", r, bad_in, zero_in);

    uint64_t t0 = sys_clock();
    sys_sleep(30ull * 1000 * 1000);
    uint64_t slept = sys_clock() - t0;
    test_check(&t, "sleep_not_early", slept >= 30ull * 1000 * 1000, "slept only %lu ns", slept);
    test_check(&t, "clock_monotonic", sys_clock() >= t0 + slept, "clock went backwards");

    /* libsys's user-mode reading is the kernel's clock, not an estimate of it:
     * it falls between two kernel readings taken around it, every time. */
    unsigned outside = 0;
    uint64_t before = 0, user = 0, after = 0;
    for (unsigned i = 0; i < 1000; i++) {
        uint64_t b = sys_clock(), u = clock_ns(), a = sys_clock();
        if (u < b || u > a) {
            outside++;
            before = b, user = u, after = a;
        }
    }
    test_check(&t, "user_clock_is_kernel_clock", outside == 0,
               "%u of 1000 user readings outside the kernel's (last: %lu not in [%lu, %lu])", outside, user, before,
               after);

    test_exit(&t);
}
