/*
 * Name-service layer: the rules for names (rules.h). Pure functions, built
 * into the server and the host tests.
 */
#include <proto/names.h>
#include "rules.h"

static bool part_start(char c) { return c >= 'a' && c <= 'z'; }
static bool part_char(char c) { return part_start(c) || (c >= '0' && c <= '9') || c == '_' || c == '-'; }

bool names_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > NAMES_NAME_MAX)
        return false;
    bool at_part_start = true;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (at_part_start) {
            if (!part_start(c))
                return false;
            at_part_start = false;
        } else if (c == '.') {
            at_part_start = true;
        } else if (!part_char(c)) {
            return false;
        }
    }
    return !at_part_start; /* no trailing dot */
}

bool names_allowed(const char *allow, size_t allow_len, const char *name, size_t len)
{
    if (!names_valid(name, len))
        return false;
    if (allow_len == 0)
        return true;
    if (len < allow_len)
        return false;
    for (size_t i = 0; i < allow_len; i++)
        if (allow[i] != name[i])
            return false;
    return len == allow_len || name[allow_len] == '.';
}

int names_compare(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
    return alen == blen ? 0 : alen < blen ? -1 : 1;
}
