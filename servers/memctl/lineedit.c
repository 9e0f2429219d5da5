/*
 * Console layer: memctl's line editor (lineedit.h says what each key does).
 * Pure: it calls only its callbacks and the freestanding string functions,
 * and is built into memctl and into the host tests.
 *
 * What the terminal shows is kept equal to prompt + line with the cursor
 * at `cursor`; every edit draws only what changed after the edit point and
 * walks the cursor back with backspaces.
 */
#include <common/string.h>
#include "lineedit.h"

#define CTRL(c) ((c)&0x1f)
#define BELL    "\a"

static void out(struct lineedit *le, const char *s, size_t n)
{
    if (n)
        le->write(le->ctx, s, n);
}

static void outs(struct lineedit *le, const char *s) { out(le, s, strlen(s)); }

static void backspaces(struct lineedit *le, size_t n)
{
    static const char bs[16] = "\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b";
    for (; n > sizeof(bs); n -= sizeof(bs))
        out(le, bs, sizeof(bs));
    out(le, bs, n);
}

static void spaces(struct lineedit *le, size_t n)
{
    static const char sp[16] = "                ";
    for (; n > sizeof(sp); n -= sizeof(sp))
        out(le, sp, sizeof(sp));
    out(le, sp, n);
}

/* The terminal's cursor is at `from`, which shows the line as it was,
 * `old_len` long: draws the line from there and puts the cursor at
 * le->cursor. */
static void redraw_from(struct lineedit *le, size_t from, size_t old_len)
{
    out(le, le->line + from, le->len - from);
    size_t end = le->len;
    if (old_len > le->len) {
        spaces(le, old_len - le->len);
        end = old_len;
    }
    backspaces(le, end - le->cursor);
}

/* Moves the terminal's cursor, and le->cursor, to `to`. */
static void move_to(struct lineedit *le, size_t to)
{
    if (to < le->cursor)
        backspaces(le, le->cursor - to);
    else
        out(le, le->line + le->cursor, to - le->cursor);
    le->cursor = to;
}

/* The whole line anew on its row: history, ^L, after a completion list;
 * the old line was old_len long. */
static void redraw_all(struct lineedit *le, size_t old_len)
{
    out(le, "\r", 1);
    outs(le, le->prompt);
    redraw_from(le, 0, old_len);
}

/* Replaces the characters [from, to) with text and leaves the cursor after
 * it; refused (bell, overflow) if the line would pass LE_LINE_MAX. */
static bool splice(struct lineedit *le, size_t from, size_t to, const char *text, size_t n)
{
    if (le->len - (to - from) + n > LE_LINE_MAX) {
        if (!le->overflow)
            outs(le, BELL);
        le->overflow = true;
        return false;
    }
    size_t old_len = le->len;
    move_to(le, from);
    memmove(le->line + from + n, le->line + to, le->len - to);
    memcpy(le->line + from, text, n);
    le->len = le->len - (to - from) + n;
    le->line[le->len] = 0;
    le->cursor = from + n;
    redraw_from(le, from, old_len);
    return true;
}

static bool is_space(char c) { return c == ' ' || c == '\t'; }

/* ---------------------------------------------------------------- history */

static const char *history_line(const struct lineedit *le, size_t k) /* k >= 1: k-th newest */
{
    return le->history[(le->history_next + LE_HISTORY - k) % LE_HISTORY];
}

static void remember(struct lineedit *le)
{
    size_t i = 0;
    while (i < le->len && is_space(le->line[i]))
        i++;
    if (i == le->len || (le->history_count && strcmp(history_line(le, 1), le->line) == 0))
        return;
    memcpy(le->history[le->history_next], le->line, le->len + 1);
    le->history_next = (le->history_next + 1) % LE_HISTORY;
    if (le->history_count < LE_HISTORY)
        le->history_count++;
}

static void show_history(struct lineedit *le, size_t k)
{
    if (le->browse == 0)
        memcpy(le->draft, le->line, le->len + 1);
    const char *text = k == 0 ? le->draft : history_line(le, k);
    size_t old_len = le->len;
    /* Redrawn in place, without the prompt: a prompt is printed only when
     * a new line is awaited (the test runner counts them). */
    move_to(le, 0);
    le->browse = k;
    le->len = strlen(text);
    memcpy(le->line, text, le->len + 1);
    le->cursor = le->len;
    le->overflow = false;
    redraw_from(le, 0, old_len);
}

static void history_up(struct lineedit *le)
{
    if (le->browse < le->history_count)
        show_history(le, le->browse + 1);
    else
        outs(le, BELL);
}

static void history_down(struct lineedit *le)
{
    if (le->browse > 0)
        show_history(le, le->browse - 1);
    else
        outs(le, BELL);
}

/* ------------------------------------------------------------- completion */

/* Which word (0: the first) the one starting at `start` is, and a copy of
 * the line's first word: what the completer needs to offer candidates. */
static size_t word_index(const struct lineedit *le, size_t start, char first[LE_LINE_MAX + 1])
{
    size_t index = 0, i = 0;
    first[0] = 0;
    while (i < start) {
        while (i < start && is_space(le->line[i]))
            i++;
        if (i == start)
            break;
        size_t w = i;
        while (i < start && !is_space(le->line[i]))
            i++;
        if (index == 0) {
            memcpy(first, le->line + w, i - w);
            first[i - w] = 0;
        }
        index++;
    }
    return index;
}

/* How far every match agrees (the length of their common prefix). */
static size_t common_prefix(const char *const *match, size_t matches)
{
    size_t common = strlen(match[0]);
    for (size_t k = 1; k < matches; k++) {
        size_t c = 0;
        while (c < common && match[k][c] == match[0][c])
            c++;
        common = c;
    }
    return common;
}

/* Tab with several matches and nothing more they agree on: a bell, and on
 * a second Tab the candidates on a line of their own, then the line again. */
static void list_matches(struct lineedit *le, const char *const *match, size_t matches)
{
    if (!le->tabbed) {
        outs(le, BELL);
        le->tabbed = true;
        return;
    }
    outs(le, "\n");
    for (size_t k = 0; k < matches; k++) {
        outs(le, match[k]);
        outs(le, k + 1 < matches ? "  " : "\n");
    }
    redraw_all(le, 0);
}

static void complete(struct lineedit *le)
{
    if (le->complete == NULL) {
        outs(le, BELL);
        return;
    }
    size_t start = le->cursor;
    while (start > 0 && !is_space(le->line[start - 1]))
        start--;
    char first[LE_LINE_MAX + 1];
    size_t index = word_index(le, start, first);
    const char *offered[LE_CANDIDATES_MAX], *match[LE_CANDIDATES_MAX];
    size_t n = le->complete(le->ctx, index, first, offered, LE_CANDIDATES_MAX), matches = 0;
    size_t typed = le->cursor - start;
    for (size_t k = 0; k < n && k < LE_CANDIDATES_MAX; k++)
        if (strncmp(offered[k], le->line + start, typed) == 0)
            match[matches++] = offered[k];
    if (matches == 0) {
        outs(le, BELL);
        return;
    }
    size_t common = common_prefix(match, matches);
    if (matches == 1) {
        splice(le, le->cursor, le->cursor, match[0] + typed, common - typed);
        if (le->cursor == le->len || !is_space(le->line[le->cursor]))
            splice(le, le->cursor, le->cursor, " ", 1);
        le->tabbed = false;
    } else if (common > typed) {
        splice(le, le->cursor, le->cursor, match[0] + typed, common - typed);
        le->tabbed = false;
    } else {
        list_matches(le, match, matches);
    }
}

/* ------------------------------------------------------------------- keys */

static void erase_back(struct lineedit *le)
{
    if (le->cursor == 0) {
        outs(le, BELL);
        return;
    }
    splice(le, le->cursor - 1, le->cursor, "", 0);
    le->overflow = false;
}

static void erase_here(struct lineedit *le)
{
    if (le->cursor == le->len) {
        outs(le, BELL);
        return;
    }
    splice(le, le->cursor, le->cursor + 1, "", 0);
    le->overflow = false;
}

static void erase_word(struct lineedit *le)
{
    size_t to = le->cursor, from = to;
    while (from > 0 && is_space(le->line[from - 1]))
        from--;
    while (from > 0 && !is_space(le->line[from - 1]))
        from--;
    splice(le, from, to, "", 0);
    le->overflow = false;
}

/* The final byte of an escape sequence, with its parameters. */
static void escape_key(struct lineedit *le, int final)
{
    int param = 0;
    for (size_t i = 0; i < le->csi_len && le->csi[i] >= '0' && le->csi[i] <= '9'; i++)
        param = param * 10 + (le->csi[i] - '0');
    switch (final) {
    case 'A': history_up(le); break;
    case 'B': history_down(le); break;
    case 'C':
        if (le->cursor < le->len)
            move_to(le, le->cursor + 1);
        break;
    case 'D':
        if (le->cursor > 0)
            move_to(le, le->cursor - 1);
        break;
    case 'H': move_to(le, 0); break;
    case 'F': move_to(le, le->len); break;
    case '~':
        if (param == 1 || param == 7)
            move_to(le, 0);
        else if (param == 4 || param == 8)
            move_to(le, le->len);
        else if (param == 3)
            erase_here(le);
        break;
    default: break; /* swallowed */
    }
}

/* Bytes inside an escape sequence; true if the byte was one of them. */
static bool in_escape(struct lineedit *le, int c)
{
    switch (le->escape) {
    case LE_ESC_NONE: return false;
    case LE_ESC_START:
        le->escape = c == '[' ? LE_ESC_CSI : c == 'O' ? LE_ESC_SS3 : LE_ESC_NONE;
        le->csi_len = 0;
        return true;
    case LE_ESC_CSI:
        if (c >= 0x20 && c < 0x40) { /* parameters and intermediates */
            if (le->csi_len < sizeof(le->csi))
                le->csi[le->csi_len++] = (char)c;
            return true;
        }
        __attribute__((fallthrough)); /* the final byte */
    case LE_ESC_SS3:
        le->escape = LE_ESC_NONE;
        if (c >= 0x40 && c <= 0x7e)
            escape_key(le, c);
        return true;
    }
    return false;
}

void le_init(struct lineedit *le, const char *prompt, le_write_fn write, le_complete_fn complete_fn, void *ctx)
{
    memset(le, 0, sizeof(*le));
    le->prompt = prompt;
    le->write = write;
    le->complete = complete_fn;
    le->ctx = ctx;
}

void le_start(struct lineedit *le)
{
    le->len = le->cursor = 0;
    le->line[0] = 0;
    le->overflow = le->tabbed = false;
    le->browse = 0;
    outs(le, le->prompt);
}

const char *le_line(const struct lineedit *le) { return le->line; }

/* A key that edits the line or moves in it (everything but the keys that
 * end it): the line stays open. */
static void edit_key(struct lineedit *le, int c)
{
    switch (c) {
    case 0x1b: le->escape = LE_ESC_START; break;
    case 0x7f:
    case '\b': erase_back(le); break;
    case CTRL('D'): erase_here(le); break;
    case CTRL('A'): move_to(le, 0); break;
    case CTRL('E'): move_to(le, le->len); break;
    case CTRL('B'):
        if (le->cursor > 0)
            move_to(le, le->cursor - 1);
        break;
    case CTRL('F'):
        if (le->cursor < le->len)
            move_to(le, le->cursor + 1);
        break;
    case CTRL('P'): history_up(le); break;
    case CTRL('N'): history_down(le); break;
    case CTRL('K'):
        splice(le, le->cursor, le->len, "", 0);
        le->overflow = false;
        break;
    case CTRL('U'):
        splice(le, 0, le->cursor, "", 0);
        le->overflow = false;
        break;
    case CTRL('W'): erase_word(le); break;
    case CTRL('L'): redraw_all(le, 0); break;
    case '\t': complete(le); break;
    default:
        if (c >= 0x20 && c < 0x7f) {
            char ch = (char)c;
            splice(le, le->cursor, le->cursor, &ch, 1);
        }
        break;
    }
}

enum le_result le_feed(struct lineedit *le, int c)
{
    bool after_cr = le->after_cr;
    le->after_cr = false;
    if (in_escape(le, c))
        return LE_MORE;
    if (c != '\t')
        le->tabbed = false;
    switch (c) {
    case '\n':
        if (after_cr)
            return LE_MORE;
        /* fall through */
    case '\r':
        le->after_cr = c == '\r';
        move_to(le, le->len);
        outs(le, "\n");
        if (le->overflow)
            return LE_TOO_LONG;
        remember(le);
        return LE_LINE;
    case CTRL('C'):
        move_to(le, le->len);
        outs(le, "^C\n");
        return LE_INTERRUPT;
    default: edit_key(le, c); return LE_MORE;
    }
}
