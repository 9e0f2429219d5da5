/*
 * memctl (private): what the console's files share. memctl.c reads lines
 * (lineedit.c) and runs commands from one table; memory.c holds the memory
 * server's commands, jobs.c the commands that start, list and end programs
 * and the name service's list. docs/memctl.md is the tour.
 */
#ifndef MEMCTL_MEMCTL_H
#define MEMCTL_MEMCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <abi/types.h>

struct command {
    const char *name;
    void (*run)(int argc, char **argv);
    const char *usage;
    const char *help;
};

/* memctl.c */
void print_usage(const char *name);
/* "error: WHAT: ENAME: meaning" */
void print_error(const char *what, int64_t err, const char *meaning);
/* The endpoint init serves this console (startup slot PARENT), or
 * HANDLE_NONE. */
handle_t init_endpoint(void);
/* Console input that arrived while a program ran in the foreground, to be
 * read at the next prompt: appends what it can and returns how much. */
size_t keep_typeahead(const char *bytes, size_t n);
void drop_typeahead(void);
bool parse_size_word(const char *word, uint64_t *out);
bool parse_number_word(const char *word, uint64_t *out);

/* memory.c */
void cmd_alloc(int argc, char **argv);
void cmd_free(int argc, char **argv);
void cmd_pin(int argc, char **argv);
void cmd_fill(int argc, char **argv);
void cmd_check(int argc, char **argv);
void cmd_list(int argc, char **argv);
void cmd_stats(int argc, char **argv);
void cmd_map(int argc, char **argv);
void cmd_compact(int argc, char **argv);
void cmd_zoom(int argc, char **argv);
void cmd_watch(int argc, char **argv);
void cmd_move(int argc, char **argv);

/* jobs.c */
void cmd_run(int argc, char **argv);
void cmd_ps(int argc, char **argv);
void cmd_kill(int argc, char **argv);
void cmd_jobs(int argc, char **argv);
void cmd_services(int argc, char **argv);
void cmd_quota(int argc, char **argv);
void cmd_restart(int argc, char **argv);
void cmd_poweroff(int argc, char **argv);
/* Reports background programs that ended since the last prompt. */
void jobs_report_ended(void);
/* Names of the programs `run` can start (for Tab), fetched from init once;
 * returns how many, up to max. */
size_t jobs_program_names(const char **out, size_t max);

#endif
