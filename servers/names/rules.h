/*
 * Name-service layer: the rules for names (include/proto/names.h), kept
 * free of system calls so that the host tests (tests/host/names/) check
 * them directly. Called by the server (names.c).
 */
#ifndef NAMES_RULES_H
#define NAMES_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A well-formed name: 1 to NAMES_NAME_MAX bytes, dot-separated parts, each
 * a lower-case letter then lower-case letters, digits, '_' or '-'. */
bool names_valid(const char *name, size_t len);

/* Whether a registrar that allows `allow` (allow_len 0: every name) allows
 * `name`: the name itself, or a name under it ("kvstore" allows
 * "kvstore.admin", not "kvstore2"). Both must be valid. */
bool names_allowed(const char *allow, size_t allow_len, const char *name, size_t len);

/* Byte order of names, as NAMES_LIST pages them: <0, 0 or >0. */
int names_compare(const char *a, size_t alen, const char *b, size_t blen);

#endif
