/*
 * Common layer: kernel command line parsing (see common/cmdline.h), used by
 * the kernel at boot, init and the servers. Nothing here allocates or writes
 * to the command line; values are returned as (pointer, length) into it.
 */
#include <abi/errno.h>
#include <common/cmdline.h>
#include <common/string.h>

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool cmdline_get(const char *cmdline, const char *key, const char **value, size_t *len)
{
    if (cmdline == NULL || key == NULL)
        return false;
    size_t keylen = strlen(key);
    if (keylen == 0)
        return false;
    bool found = false;
    const char *p = cmdline;

    while (*p) {
        while (is_blank(*p))
            p++;
        const char *word = p;
        while (*p && !is_blank(*p))
            p++;
        size_t wordlen = (size_t)(p - word);
        if (wordlen < keylen || memcmp(word, key, keylen) != 0)
            continue;
        if (wordlen == keylen) {
            found = true;
            if (value)
                *value = word + wordlen; /* points at "" or a blank: len is 0 */
            if (len)
                *len = 0;
        } else if (word[keylen] == '=') {
            found = true;
            if (value)
                *value = word + keylen + 1;
            if (len)
                *len = wordlen - keylen - 1;
        }
    }
    /* A bare word's value must read as "" even to a caller that ignores len. */
    if (found && value && len && *len == 0)
        *value = "";
    return found;
}

bool cmdline_get_u64(const char *cmdline, const char *key, uint64_t *out)
{
    const char *value;
    size_t len;
    if (!cmdline_get(cmdline, key, &value, &len))
        return false;
    return parse_u64(value, len, out) == 0;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return 99;
}

int parse_u64(const char *s, size_t len, uint64_t *out)
{
    unsigned base = 10;
    if (s == NULL)
        return -EINVAL;
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        len -= 2;
    }
    if (len == 0)
        return -EINVAL;

    uint64_t v = 0;
    bool overflow = false;
    for (size_t i = 0; i < len; i++) {
        int d = digit_value(s[i]);
        if (d >= (int)base)
            return -EINVAL;
        if (v > (UINT64_MAX - (uint64_t)d) / base)
            overflow = true; /* keep scanning: a stray character is -EINVAL */
        v = v * base + (uint64_t)d;
    }
    if (overflow)
        return -ERANGE;
    *out = v;
    return 0;
}

int parse_size(const char *s, size_t len, uint64_t *out)
{
    unsigned shift = 0;
    if (s == NULL || len == 0)
        return -EINVAL;
    switch (s[len - 1]) {
    case 'k':
    case 'K': shift = 10; break;
    case 'm':
    case 'M': shift = 20; break;
    case 'g':
    case 'G': shift = 30; break;
    case 't':
    case 'T': shift = 40; break;
    default: break;
    }
    if (shift)
        len--;

    uint64_t v;
    int err = parse_u64(s, len, &v);
    if (err)
        return err;
    if (v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = v << shift;
    return 0;
}

bool cmdline_list_next(const char *list, size_t len, size_t *pos, const char **item, size_t *item_len)
{
    if (list == NULL || *pos >= len)
        return false;
    size_t start = *pos, i = start;
    while (i < len && list[i] != ',')
        i++;
    *item = list + start;
    *item_len = i - start;
    *pos = i + 1; /* past the comma */
    return true;
}

bool cmdline_item_is(const char *item, size_t item_len, const char *name)
{
    return strlen(name) == item_len && memcmp(item, name, item_len) == 0;
}

bool cmdline_list_has(const char *list, size_t len, const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false; /* or it would match an empty item, as in "a,,b" */
    const char *item;
    size_t item_len, pos = 0;
    while (cmdline_list_next(list, len, &pos, &item, &item_len))
        if (cmdline_item_is(item, item_len, name) || cmdline_item_is(item, item_len, "all"))
            return true;
    return false;
}
