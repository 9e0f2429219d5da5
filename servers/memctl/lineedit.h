/*
 * Console layer: the line editor of memctl's prompt. Fed one input byte at
 * a time, it keeps the line, echoes and redraws through a write callback,
 * and says when a line is complete. No system calls, so the host tests
 * (tests/host/memctl/) drive it byte by byte and read what it drew.
 *
 * Keys: printable ASCII inserts at the cursor; Backspace (DEL or ^H)
 * erases before it, Delete (ESC [3~ or ^D) under it; Left/Right (or ^B/^F),
 * Home/End (or ^A/^E) move; ^U erases to the start, ^K to the end, ^W the
 * word before the cursor; Up/Down (or ^P/^N) walk the history of the last
 * LE_HISTORY lines; Tab completes the word before the cursor from what the
 * complete callback offers (one match: the word and a space; several: as
 * far as they agree, and a second Tab lists them); ^L redraws; ^C drops the
 * line. Enter is CR, LF or CR LF. Other control bytes and escape sequences
 * are swallowed, so they never put stray letters into a line.
 *
 * A line longer than LE_LINE_MAX is not cut: the editor stops taking
 * characters (ringing the bell) and the line ends as LE_TOO_LONG, which the
 * caller reports instead of running a truncated command.
 *
 * Drawing uses only CR, backspace, spaces and the bell, which every
 * terminal and the test runner's log understand. A line wider than the
 * terminal is edited correctly only at its end (backspace does not climb to
 * the row above on most terminals).
 */
#ifndef MEMCTL_LINEEDIT_H
#define MEMCTL_LINEEDIT_H

#include <stdbool.h>
#include <stddef.h>

#define LE_LINE_MAX       511u
#define LE_HISTORY        32u
#define LE_CANDIDATES_MAX 64u

enum le_result {
    LE_MORE,      /* keep feeding */
    LE_LINE,      /* a line is complete: le_line() */
    LE_INTERRUPT, /* ^C dropped the line */
    LE_TOO_LONG,  /* Enter after more than LE_LINE_MAX characters: nothing to run */
};

typedef void (*le_write_fn)(void *ctx, const char *s, size_t n);
/* The words that may stand at word `index` (0: the command) of a line
 * whose first word is `first` (empty for index 0): up to max of them into
 * out, returning how many. The editor keeps those that start with what was
 * typed. */
typedef size_t (*le_complete_fn)(void *ctx, size_t index, const char *first, const char **out, size_t max);

enum le_escape { LE_ESC_NONE, LE_ESC_START, LE_ESC_CSI, LE_ESC_SS3 };

struct lineedit {
    const char *prompt;
    le_write_fn write;
    le_complete_fn complete;
    void *ctx;

    char line[LE_LINE_MAX + 1];
    size_t len, cursor;
    bool overflow; /* characters were refused: the line is too long */
    bool tabbed;   /* the last key was a Tab that completed nothing */
    bool after_cr; /* a LF right after a CR ends no second line */
    enum le_escape escape;
    char csi[8]; /* parameter bytes of an ESC [ sequence */
    size_t csi_len;

    char history[LE_HISTORY][LE_LINE_MAX + 1];
    size_t history_count;        /* lines kept, at most LE_HISTORY */
    size_t history_next;         /* where the next line goes (a ring) */
    size_t browse;               /* 0: editing a new line; k: the k-th newest history line shown */
    char draft[LE_LINE_MAX + 1]; /* the new line, kept while browsing */
};

void le_init(struct lineedit *le, const char *prompt, le_write_fn write, le_complete_fn complete, void *ctx);
/* Prints the prompt and starts an empty line. */
void le_start(struct lineedit *le);
enum le_result le_feed(struct lineedit *le, int byte);
/* The line after LE_LINE (NUL-terminated, valid until the next le_start). */
const char *le_line(const struct lineedit *le);

#endif
