/*
 * memctl: the console, a small shell on the serial console. init starts it
 * at boot (no test= on the command line); `make run` lands at its prompt.
 * It runs programs (run, ps, kill, jobs: jobs.c), lists the names servers
 * registered (services), shows and sets the kernel's limits (quota), and
 * talks to the memory server by hand (alloc, free, pin, fill, check, list,
 * stats, map, compact, move: memory.c). docs/memctl.md is the tour.
 *
 * It owns no boot right: starting and ending programs and powering off are
 * requests to init on the endpoint in startup slot ABI_STARTUP_PARENT
 * (proto/init.h), which init serves as the console's.
 *
 * Lines are read by the line editor (lineedit.c: history, Tab completion
 * of commands and program names, Ctrl-C); a line is split at spaces into
 * words and run by the command its first word names.
 */
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/explain.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include "lineedit.h"
#include "memctl.h"

#define MEMCTL_WORDS_MAX 32
#define MEMCTL_PROMPT    "memctl> "
#define TYPEAHEAD_MAX    1024

/* ------------------------------------------------------------- helpers */

void print_error(const char *what, int64_t err, const char *meaning)
{
    printf("error: %s: %s: %s\n", what, err_name(err), meaning);
}

handle_t init_endpoint(void) { return startup_handle(ABI_STARTUP_PARENT); }

bool parse_size_word(const char *word, uint64_t *out) { return parse_size(word, strlen(word), out) == 0; }
bool parse_number_word(const char *word, uint64_t *out) { return parse_u64(word, strlen(word), out) == 0; }

/* --------------------------------------------------------------- input */

/* Bytes read from the console but not yet given to the editor: one read
 * may hold more than a line (a paste, the test runner typing ahead, input
 * while a program ran in the foreground). */
static struct {
    char bytes[TYPEAHEAD_MAX];
    size_t at, len;
} input;

size_t keep_typeahead(const char *bytes, size_t n)
{
    if (input.at == input.len)
        input.at = input.len = 0;
    size_t room = sizeof(input.bytes) - input.len;
    n = n < room ? n : room;
    memcpy(input.bytes + input.len, bytes, n);
    input.len += n;
    return n;
}

void drop_typeahead(void) { input.at = input.len = 0; }

static int next_input_byte(void)
{
    while (input.at == input.len) {
        int64_t n = sys_console_read(input.bytes, sizeof(input.bytes), TIMEOUT_FOREVER);
        if (n <= 0)
            continue; /* only a timeout could end the wait, and there is none */
        input.at = 0;
        input.len = (size_t)n;
    }
    return (unsigned char)input.bytes[input.at++];
}

static void echo(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    sys_console_write(s, n);
}

/* ------------------------------------------------------------ commands */

static void cmd_help(int argc, char **argv);

static const struct command commands[] = {
    { "run", cmd_run, "run PROGRAM [ARGS...] [&]",
      "start a boot module (Tab lists them); & runs it in the background; Ctrl-C stops it" },
    { "ps", cmd_ps, "ps", "the programs init started that still run" },
    { "kill", cmd_kill, "kill PID|NAME|%JOB", "end a program (its memory goes back)" },
    { "jobs", cmd_jobs, "jobs", "the programs run in the background" },
    { "services", cmd_services, "services", "the names servers registered with the name service" },
    { "quota", cmd_quota, "quota [%JOB|PID [RESOURCE LIMIT]]",
      "the kernel's account and limits (memory kmem processes threads pinned), of memctl or a job" },
    { "alloc", cmd_alloc, "alloc SIZE [large] [below ADDR]",
      "new zero-filled segment (SIZE: 4096, 64K, 2M, 0x...); large: 2 MiB aligned; below: physical limit" },
    { "free", cmd_free, "free ID", "give the segment back to memsrv (refused while pinned)" },
    { "pin", cmd_pin, "pin ID", "pin for DMA: shows the physical base; the segment stops moving" },
    { "unpin", cmd_pin, "unpin ID", "undo one pin" },
    { "fill", cmd_fill, "fill ID PATTERN", "write PATTERN over the segment: a byte if <= 0xff, else 64-bit words" },
    { "check", cmd_check, "check ID", "verify the last fill (zero for a new segment), e.g. after compaction" },
    { "move", cmd_move, "move ID", "ask memsrv to move the segment elsewhere in memory, contents kept" },
    { "list", cmd_list, "list", "the segments memctl holds, with their current physical bases" },
    { "stats", cmd_stats, "stats", "memsrv's global statistics and memctl's own account" },
    { "map", cmd_map, "map [COLUMNS]",
      "memsrv's picture of physical memory ('.' free '#' used 'L' locked 'K' kernel)" },
    { "compact", cmd_compact, "compact [full|step|SIZE]",
      "compaction: a whole pass, one background step, or room for SIZE at 2 MiB alignment" },
    { "restart", cmd_restart, "restart",
      "restart the memory server (as after a crash); the segments held stay intact" },
    { "zoom", cmd_zoom, "zoom ADDR [4k|64k]", "16 rows of the map from ADDR, 4 KiB or 64 KiB a character" },
    { "watch", cmd_watch, "watch [SECONDS] [zoom ADDR [4k|64k]]",
      "redraw the map (or a zoom) twice a second while compaction runs (default 5 s)" },
    { "poweroff", cmd_poweroff, "poweroff [STATUS]", "ask init to power the machine off (STATUS 0..255, default 0)" },
    { "help", cmd_help, "help", "this list" },
};
#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

void print_usage(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0)
            printf("usage: %s\n", commands[i].usage);
}

static void cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        printf("  %-34s %s\n", commands[i].usage, commands[i].help);
    printf("  Keys: Up/Down history, Tab completes, Ctrl-C drops the line or stops the program; leave QEMU with "
           "poweroff or Ctrl-A X\n");
}

/* Tab: commands first, then program names after `run`. */
static size_t complete_word(void *ctx, size_t index, const char *first, const char **out, size_t max)
{
    (void)ctx;
    size_t n = 0;
    if (index == 0) {
        for (size_t i = 0; i < COMMAND_COUNT && n < max; i++)
            out[n++] = commands[i].name;
    } else if (index == 1 && strcmp(first, "run") == 0) {
        n = jobs_program_names(out, max);
    }
    return n;
}

/* Splits line in place at spaces and tabs. Returns the word count, or -1 if
 * there are more than max. */
static int split_words(char *line, char **words, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            *p++ = 0;
        if (*p == 0)
            return n;
        if (n == max)
            return -1;
        words[n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
    }
}

static void run_line(char *line)
{
    char *words[MEMCTL_WORDS_MAX];
    int n = split_words(line, words, MEMCTL_WORDS_MAX);
    if (n == 0)
        return;
    if (n < 0) {
        printf("error: more than %d words on the line; nothing run\n", MEMCTL_WORDS_MAX);
        return;
    }
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].name, words[0]) == 0) {
            commands[i].run(n, words);
            return;
        }
    }
    printf("unknown command '%s' (try help)\n", words[0]);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static struct lineedit editor;
    if (ms_endpoint() == HANDLE_NONE) {
        printf("memctl: no memory server endpoint; nothing to control\n");
        return 1;
    }
    le_init(&editor, MEMCTL_PROMPT, echo, complete_word, NULL);
    printf("memctl: console; type help for the commands\n");
    for (;;) {
        jobs_report_ended();
        le_start(&editor);
        enum le_result r = LE_MORE;
        while (r == LE_MORE)
            r = le_feed(&editor, next_input_byte());
        if (r == LE_LINE) {
            char line[LE_LINE_MAX + 1];
            strlcpy(line, le_line(&editor), sizeof(line));
            run_line(line);
        } else if (r == LE_TOO_LONG) {
            printf("error: the line is longer than %u characters; nothing run\n", LE_LINE_MAX);
        }
    }
}
