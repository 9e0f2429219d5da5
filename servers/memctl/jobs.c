/*
 * memctl: the commands about programs (run, ps, kill, jobs, services,
 * quota, poweroff). Programs are init's to start and end: memctl asks it on
 * the endpoint init serves the console (proto/init.h, INIT_RUN and the rest)
 * and gets a process handle back for each program it runs, with which it
 * waits for the program, stops it (Ctrl-C, kill) and limits it (quota).
 *
 * A program runs in the foreground unless the line ends with '&': memctl
 * then waits for it, reading the console meanwhile so that Ctrl-C stops it
 * (what else is typed is kept for the next prompt). Programs do not read
 * the console. Background programs are jobs ([1], [2]...) that `jobs`
 * lists and whose end is reported at the next prompt.
 */
#include <proto/init.h>
#include <common/string.h>
#include <libsys/explain.h>
#include <libsys/names.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include "memctl.h"

#define JOBS_MAX     16
#define POLL_NS      (20ull * 1000 * 1000) /* how often a foreground program's end is checked while reading */
#define PROGRAMS_MAX 64

struct job {
    bool used;
    handle_t proc; /* CONTROL and WAIT, from init */
    uint64_t pid;
    char name[32];
};

static struct job jobs[JOBS_MAX + 1]; /* [1..JOBS_MAX]: job numbers start at 1 */

/* One request to init; the reply in *m. */
static int64_t call_init(struct ipc_msg *m)
{
    m->seg = HANDLE_NONE;
    m->flags = IPC_RECV_CAPS;
    handle_t init = init_endpoint();
    if (init == HANDLE_NONE)
        return -EBADH;
    int64_t err = sys_ipc_call(init, m, TIMEOUT_FOREVER);
    return err < 0 ? err : (int64_t)m->label;
}

/* Calls init for `command arg`; a refusal is reported with its meaning
 * (taken from the request's label: the reply overwrites it). */
static bool ask_init(struct ipc_msg *m, const char *command, const char *arg)
{
    uint64_t label = m->label;
    int64_t err = call_init(m);
    if (err >= 0)
        return true;
    char what[48];
    fmt_snprintf(what, sizeof(what), "%s %s", command, arg);
    print_error(what, err, init_error_meaning(label, err));
    return false;
}

static const char *ended_text(int64_t status)
{
    static char buf[80];
    return exit_status_text(status, buf, sizeof(buf));
}

/* -------------------------------------------------------------- run */

/* Waits for a program in the foreground: its end, or Ctrl-C, which stops
 * it. Other input is kept for the next prompt. */
static void wait_foreground(handle_t proc, uint64_t pid, const char *name)
{
    int64_t status;
    bool stopped = false;
    char input[64];
    while (sys_proc_wait(proc, TIMEOUT_POLL, &status) != 0) {
        int64_t n = sys_console_read(input, sizeof(input), POLL_NS);
        for (int64_t i = 0; i < n && !stopped; i++) {
            if (input[i] == 0x03) { /* Ctrl-C, which also drops what was typed ahead, as a terminal does */
                printf("^C\n");
                sys_proc_kill(proc);
                drop_typeahead();
                stopped = true;
            } else if (keep_typeahead(&input[i], 1) == 0) {
                break; /* no room: the rest waits in the kernel's buffer */
            }
        }
        if (stopped)
            sys_proc_wait(proc, TIMEOUT_FOREVER, &status);
    }
    if (stopped)
        printf("%s (pid %#lx) stopped\n", name, pid);
    else if (status != 0)
        printf("%s (pid %#lx) ended: %s\n", name, pid, ended_text(status));
}

void cmd_run(int argc, char **argv)
{
    bool background = argc > 1 && strcmp(argv[argc - 1], "&") == 0;
    if (background)
        argc--;
    if (argc < 2) {
        print_usage("run");
        return;
    }
    struct ipc_msg m = { .label = INIT_RUN };
    size_t len = 0;
    for (int i = 1; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (len + (i > 1) + n > IPC_PAYLOAD_MAX) {
            printf("error: run: the command line is longer than the %u bytes init takes\n", IPC_PAYLOAD_MAX);
            return;
        }
        if (i > 1)
            m.payload[len++] = ' ';
        memcpy(m.payload + len, argv[i], n);
        len += n;
    }
    m.len = (uint32_t)len;
    unsigned slot = 0;
    if (background) {
        slot = 1;
        while (slot <= JOBS_MAX && jobs[slot].used)
            slot++;
        if (slot > JOBS_MAX) {
            printf("error: run: %d background programs run already (kill one, or wait)\n", JOBS_MAX);
            return;
        }
    }
    if (!ask_init(&m, "run", argv[1]))
        return;
    handle_t proc = m.caps[0].handle;
    uint64_t pid = m.w[0];
    if (proc == HANDLE_NONE) {
        printf("error: run %s: init started it (pid %#lx) but gave no handle to it\n", argv[1], pid);
        return;
    }
    if (!background) {
        wait_foreground(proc, pid, argv[1]);
        sys_handle_close(proc);
        return;
    }
    jobs[slot] = (struct job){ .used = true, .proc = proc, .pid = pid };
    strlcpy(jobs[slot].name, argv[1], sizeof(jobs[slot].name));
    printf("[%u] %s (pid %#lx) runs in the background\n", slot, argv[1], pid);
}

void jobs_report_ended(void)
{
    for (unsigned i = 1; i <= JOBS_MAX; i++) {
        int64_t status;
        if (!jobs[i].used || sys_proc_wait(jobs[i].proc, TIMEOUT_POLL, &status) != 0)
            continue;
        printf("[%u] %s (pid %#lx) ended: %s\n", i, jobs[i].name, jobs[i].pid, ended_text(status));
        sys_handle_close(jobs[i].proc);
        jobs[i].used = false;
    }
}

void cmd_jobs(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        print_usage("jobs");
        return;
    }
    jobs_report_ended();
    unsigned n = 0;
    for (unsigned i = 1; i <= JOBS_MAX; i++)
        if (jobs[i].used)
            printf("[%u] %s (pid %#lx) running\n", i, jobs[i].name, jobs[i].pid), n++;
    if (n == 0)
        printf("jobs: none in the background\n");
}

/* ------------------------------------------------------------ ps, kill */

static unsigned job_of(uint64_t pid)
{
    for (unsigned i = 1; i <= JOBS_MAX; i++)
        if (jobs[i].used && jobs[i].pid == pid)
            return i;
    return 0;
}

void cmd_ps(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        print_usage("ps");
        return;
    }
    printf("  %-12s %-10s %s\n", "PID", "STARTED", "PROGRAM");
    uint64_t cursor = 0;
    unsigned n = 0;
    do {
        struct ipc_msg m = { .label = INIT_PS, .w = { cursor } };
        int64_t err = call_init(&m);
        if (err == -ENOENT)
            break;
        if (err < 0) {
            print_error("ps", err, init_error_meaning(INIT_PS, err));
            return;
        }
        m.payload[m.len && m.len <= IPC_PAYLOAD_MAX ? m.len - 1 : 0] = 0;
        unsigned job = job_of(m.w[0]);
        char started[16];
        if (job)
            fmt_snprintf(started, sizeof(started), "job [%u]", job);
        else
            fmt_snprintf(started, sizeof(started), "%s", (m.w[1] & INIT_PS_BOOT) ? "at boot" : "by run");
        printf("  %#-12lx %-10s %s\n", m.w[0], started, (const char *)m.payload);
        n++;
        cursor = m.w[2];
    } while (cursor != 0);
    printf("ps: %u program%s (memsrv and init are not init's children)\n", n, n == 1 ? "" : "s");
}

/* The pid a kill argument names: a pid, %JOB, or a program's name (if one
 * program has it). 0 after saying why not. */
static uint64_t pid_argument(const char *word)
{
    uint64_t value;
    if (word[0] == '%') {
        if (!parse_number_word(word + 1, &value) || value == 0 || value > JOBS_MAX || !jobs[value].used) {
            printf("error: kill: no job %s (try jobs)\n", word);
            return 0;
        }
        return jobs[value].pid;
    }
    if (parse_number_word(word, &value))
        return value;
    uint64_t found = 0, cursor = 0;
    unsigned matches = 0;
    do {
        struct ipc_msg m = { .label = INIT_PS, .w = { cursor } };
        if (call_init(&m) < 0)
            break;
        m.payload[m.len && m.len <= IPC_PAYLOAD_MAX ? m.len - 1 : 0] = 0;
        if (strcmp((const char *)m.payload, word) == 0)
            found = m.w[0], matches++;
        cursor = m.w[2];
    } while (cursor != 0);
    if (matches == 1)
        return found;
    printf("error: kill: %s '%s' (give a pid; try ps)\n",
           matches ? "several programs are named" : "no program is named", word);
    return 0;
}

void cmd_kill(int argc, char **argv)
{
    if (argc != 2) {
        print_usage("kill");
        return;
    }
    uint64_t pid = pid_argument(argv[1]);
    if (pid == 0)
        return;
    unsigned job = job_of(pid);
    int64_t status;
    if (job) {
        sys_proc_kill(jobs[job].proc);
        sys_proc_wait(jobs[job].proc, TIMEOUT_FOREVER, &status);
        printf("[%u] %s (pid %#lx) ended: %s\n", job, jobs[job].name, pid, ended_text(status));
        sys_handle_close(jobs[job].proc);
        jobs[job].used = false;
        return;
    }
    struct ipc_msg m = { .label = INIT_KILL, .w = { pid } };
    if (!ask_init(&m, "kill", argv[1]))
        return;
    printf("kill: pid %#lx ended: %s\n", pid, ended_text((int64_t)m.w[0]));
}

/* --------------------------------------------------- services, quota */

static void print_service(const struct names_entry *e, void *ctx)
{
    (void)ctx;
    printf("  %-32s pid %#lx\n", e->name, e->owner);
}

void cmd_services(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        print_usage("services");
        return;
    }
    int64_t n = names_list(print_service, NULL);
    if (n < 0)
        print_error("services", n, names_error_meaning(NAMES_LIST, n));
    else
        printf("services: %ld registered name%s\n", n, n == 1 ? "" : "s");
}

static const struct {
    const char *name;
    enum abi_resource resource;
    bool bytes;
} resources[] = {
    { "memory", RES_MEMORY, true },    { "kmem", RES_KMEM, true },     { "processes", RES_PROCESSES, false },
    { "threads", RES_THREADS, false }, { "pinned", RES_PINNED, true },
};
#define RESOURCE_COUNT (sizeof(resources) / sizeof(resources[0]))

static const char *amount(uint64_t v, bool bytes, char *buf, size_t len)
{
    if (v == ABI_LIMIT_NONE)
        return "none";
    if (bytes)
        return size_text(v, buf, len);
    fmt_snprintf(buf, len, "%lu", v);
    return buf;
}

/* quota [%JOB|PID [RESOURCE LIMIT]]: the kernel's account of this console
 * or of a program it runs, and a new limit on that program. */
void cmd_quota(int argc, char **argv)
{
    handle_t proc = HANDLE_SELF;
    const char *whose = "memctl";
    if (argc != 1 && argc != 2 && argc != 4) {
        print_usage("quota");
        return;
    }
    if (argc >= 2) {
        uint64_t pid = pid_argument(argv[1]);
        unsigned job = pid ? job_of(pid) : 0;
        if (pid == 0)
            return;
        if (job == 0) {
            printf("error: quota: pid %#lx is not a background job of this console (run it with &)\n", pid);
            return;
        }
        proc = jobs[job].proc;
        whose = jobs[job].name;
    }
    if (argc == 4) {
        unsigned r = 0;
        while (r < RESOURCE_COUNT && strcmp(resources[r].name, argv[2]) != 0)
            r++;
        uint64_t limit;
        bool ok = r < RESOURCE_COUNT && (strcmp(argv[3], "none") == 0 ? (limit = ABI_LIMIT_NONE, true)
                                         : resources[r].bytes         ? parse_size_word(argv[3], &limit)
                                                                      : parse_number_word(argv[3], &limit));
        if (!ok) {
            print_usage("quota");
            return;
        }
        int64_t err = sys_proc_limit(proc, resources[r].resource, limit);
        if (err < 0) {
            print_error("quota", err, sys_error_meaning(SYS_PROC_LIMIT, err));
            return;
        }
    }
    struct abi_account a;
    int64_t err = sys_account_info(proc, &a);
    if (err < 0) {
        print_error("quota", err, sys_error_meaning(SYS_ACCOUNT_INFO, err));
        return;
    }
    printf("quota: %s and the programs it started (limits of its own; an ancestor's may be lower):\n", whose);
    for (unsigned r = 0; r < RESOURCE_COUNT; r++) {
        char used[24], limit[24];
        enum abi_resource k = resources[r].resource;
        printf("  %-10s %12s used, limit %s\n", resources[r].name, amount(a.used[k], resources[r].bytes, used, 24),
               amount(a.limit[k], resources[r].bytes, limit, 24));
    }
}

void cmd_poweroff(int argc, char **argv)
{
    uint64_t status = 0;
    if (argc > 2 || (argc == 2 && (!parse_number_word(argv[1], &status) || status > INIT_POWEROFF_STATUS_MAX))) {
        print_usage("poweroff");
        return;
    }
    struct ipc_msg m = { .label = INIT_POWEROFF, .w = { status } };
    printf("poweroff: asking init to power off with status %lu\n", status);
    int64_t err = call_init(&m); /* only a refusal comes back */
    print_error("poweroff", err, init_error_meaning(INIT_POWEROFF, err));
}

/* Asks init to restart the memory server and waits until the successor
 * answered: the segments memctl holds must come through it intact. */
void cmd_restart(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        print_usage("restart");
        return;
    }
    struct ipc_msg m = { .label = INIT_MS_RESTART, .w = { INIT_MS_RESTART_WAIT } };
    int64_t err = call_init(&m);
    if (err == 0)
        printf("restart: memory server restart %lu answered %lu.%03lu ms after the old one ended\n", m.w[0],
               m.w[1] / 1000000, m.w[1] / 1000 % 1000);
    else
        print_error("restart", err, init_error_meaning(INIT_MS_RESTART, err));
}

/* --------------------------------------------------------- completion */

size_t jobs_program_names(const char **out, size_t max)
{
    static char names[PROGRAMS_MAX][ABI_MODULE_NAME_MAX];
    static size_t count;
    static bool fetched;
    if (!fetched) {
        fetched = true;
        uint64_t cursor = 0;
        do {
            struct ipc_msg m = { .label = INIT_PROGRAMS, .w = { cursor } };
            if (call_init(&m) < 0 || m.len == 0 || m.len > ABI_MODULE_NAME_MAX)
                break;
            memcpy(names[count], m.payload, m.len);
            names[count][m.len - 1] = 0;
            count++;
            cursor = m.w[0];
        } while (cursor != 0 && count < PROGRAMS_MAX);
    }
    size_t n = count < max ? count : max;
    for (size_t i = 0; i < n; i++)
        out[i] = names[i];
    return n;
}
