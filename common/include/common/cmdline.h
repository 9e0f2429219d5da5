/*
 * Common layer: parsing of kernel command lines such as
 *   test=all seed=42 bench=ipc,memsrv memsrv.policy=topheap quiet
 * Used by the kernel at boot and by init and the servers, which receive the
 * command line (or their module's) as a string.
 *
 * Words are separated by spaces or tabs; there is no quoting. A word is
 * either key=value or a bare key. When a key appears more than once the last
 * occurrence wins, so a setting appended at the boot prompt overrides the
 * default written in grub.cfg.
 */
#ifndef COMMON_CMDLINE_H
#define COMMON_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Finds key. Returns true and sets *value and *len (value not NUL-terminated; ""
 * with len 0 for a bare word) if present. value and len may be NULL.
 */
bool cmdline_get(const char *cmdline, const char *key, const char **value, size_t *len);

/* Decimal or 0x hex; false if absent, malformed or overflowing. */
bool cmdline_get_u64(const char *cmdline, const char *key, uint64_t *out);

/*
 * The whole of s[0..len) as a decimal or 0x/0X hex number.
 * Returns 0, -EINVAL (empty, sign, stray character) or -ERANGE (overflow).
 */
int parse_u64(const char *s, size_t len, uint64_t *out);

/*
 * A number as parse_u64 takes it, with an optional K, M, G or T suffix (either
 * case; binary units: K = 1024). Returns 0, -EINVAL or -ERANGE.
 */
int parse_size(const char *s, size_t len, uint64_t *out);

/*
 * Whether name is an item of the comma-separated list[0..len) (for example
 * the value of test=); an item "all" matches every name.
 */
bool cmdline_list_has(const char *list, size_t len, const char *name);

/*
 * The items of a comma-separated list one at a time: with *pos 0 at first,
 * each call sets *item and *item_len to the next item (empty ones, as in
 * "a,,b", included) and returns true, or returns false past the end.
 */
bool cmdline_list_next(const char *list, size_t len, size_t *pos, const char **item, size_t *item_len);

/* Whether item[0..item_len) is exactly name (no "all" wildcard). */
bool cmdline_item_is(const char *item, size_t item_len, const char *name);

#endif
