/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* Strings: prefixes, NULL-terminated string vectors, a growable buffer, and the shell-like
 * splitting of an environment file's argument variable. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* Returns the rest of s after prefix, or NULL. */
const char *startswith(const char *s, const char *prefix) _pure_;
const char *startswith_no_case(const char *s, const char *prefix) _pure_;
bool endswith(const char *s, const char *suffix) _pure_;
char *ascii_strlower(char *s);
/* The value of one hex digit, or -EINVAL. */
int unhexchar(char c) _pure_;
/* a, b and c joined in one allocation (no format string to parse); NULL on allocation failure. */
char *strconcat3(const char *a, const char *b, const char *c);
/* Returns a copy of at most n bytes; NULL on allocation failure. */
char *strndup_safe(const char *s, size_t n);

char **strv_free(char **l);
size_t strv_length(char *const *l);
/* Appends value (ownership taken, also on failure). */
int strv_consume(char ***l, char *value);
int strv_extend(char ***l, const char *value);
bool strv_contains(char *const *l, const char *s);
/* Splits on any char of seps, dropping empty pieces. */
int strv_split(const char *s, const char *seps, char ***ret);
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* Shell-like word splitting for argument variables in environment files: whitespace separates,
 * single and double quotes group, backslash escapes. -EINVAL on an unterminated quote. */
int split_args(const char *s, char ***ret);

/* A growable NUL-terminated byte buffer. An allocation failure is sticky: later appends do
 * nothing and strbuf_steal()/strbuf_error() report -ENOMEM. */
typedef struct StrBuf {
        char *s;
        size_t len;
        size_t cap;
        bool oom;
        bool erase; /* holds secrets: growing wipes the old allocation (see strbuf_done_erase) */
} StrBuf;

/* Room for extra more bytes in one allocation: a caller that knows the size spares the regrowths
 * (each one a copy, and a wipe for an erase buffer). */
int strbuf_reserve_extra(StrBuf *b, size_t extra);
void strbuf_append_n(StrBuf *b, const char *s, size_t n);
void strbuf_append(StrBuf *b, const char *s);
void strbuf_appendf(StrBuf *b, const char *fmt, ...) _printf_(2, 3);
void strbuf_append_char(StrBuf *b, char c);
void strbuf_reset(StrBuf *b);
/* Takes the string out (never NULL unless out of memory); the buffer is empty afterwards. */
char *strbuf_steal(StrBuf *b);
int strbuf_error(const StrBuf *b);
void strbuf_done(StrBuf *b);
/* Like strbuf_done() but wipes the bytes first (buffers that held secrets). */
void strbuf_done_erase(StrBuf *b);
static inline const char *strbuf_str(const StrBuf *b) {
        return b->s ? b->s : "";
}
#define _cleanup_strbuf_ _cleanup_(strbuf_done)
