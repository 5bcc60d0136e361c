/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Secret: owns one secret value (a secret key, a session token, an API token, a private key).
 * The bytes are wiped with explicit_bzero when freed. There is deliberately no function that
 * formats a Secret for a log line or /debug: the only way to the bytes is secret_reveal(),
 * which callers use to sign, to authenticate or to write a credential response body. */

#include <stddef.h>

typedef struct Secret Secret;

/* Copies n bytes of s (no NUL needed) into a new Secret. */
int secret_new(const char *s, size_t n, Secret **ret);
int secret_dup(const Secret *s, Secret **ret);
Secret *secret_free(Secret *s);
/* NUL-terminated view of the bytes, valid until secret_free(). */
const char *secret_reveal(const Secret *s);
size_t secret_size(const Secret *s);
/* True when both hold the same bytes (constant time for equal sizes). */
int secret_equal(const Secret *a, const Secret *b);

/* Wipes and frees a plain heap string that held a secret. Returns NULL. */
char *erase_and_free(char *p);
/* The same for a buffer of n bytes that may hold NULs. */
char *erase_and_free_n(char *p, size_t n);

static inline void secret_freep(Secret **s) {
        secret_free(*s);
}
static inline void erase_and_freep(char **p) {
        erase_and_free(*p);
}
#define _cleanup_secret_ __attribute__((cleanup(secret_freep)))
#define _cleanup_erase_ __attribute__((cleanup(erase_and_freep)))
