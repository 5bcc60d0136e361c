/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "string-util.h"

const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

const char *startswith_no_case(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncasecmp(s, prefix, l) == 0 ? s + l : NULL;
}

bool endswith(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

char *ascii_strlower(char *s) {
        for (char *p = s; p && *p; p++)
                *p = (char) tolower((unsigned char) *p);
        return s;
}

int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

char *strconcat3(const char *a, const char *b, const char *c) {
        size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
        char *s = malloc(na + nb + nc + 1);

        if (!s)
                return NULL;
        memcpy(s, a, na);
        memcpy(s + na, b, nb);
        memcpy(s + na + nb, c, nc + 1);
        return s;
}

char *strndup_safe(const char *s, size_t n) {
        return s ? strndup(s, n) : NULL;
}

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **p = l; *p; p++)
                free(*p);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

int strv_consume(char ***l, char *value) {
        size_t n = strv_length(*l);
        char **c;

        if (!value)
                return -ENOMEM;
        c = reallocarray(*l, n + 2, sizeof(char *));
        if (!c) {
                free(value);
                return -ENOMEM;
        }
        c[n] = value;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

int strv_extend(char ***l, const char *value) {
        return strv_consume(l, strdup(value));
}

bool strv_contains(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

int strv_split(const char *s, const char *seps, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        int r;

        while (*s) {
                size_t n = strcspn(s, seps);
                if (n > 0) {
                        r = strv_consume(&l, strndup(s, n));
                        if (r < 0)
                                return r;
                }
                s += n;
                if (*s)
                        s++;
        }
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int split_args(const char *s, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_strbuf_ StrBuf w = {};
        bool in_word = false;
        char quote = 0;
        int r;

        for (const char *p = s; *p; p++) {
                char c = *p;

                if (quote) {
                        if (c == quote)
                                quote = 0;
                        else if (c == '\\' && quote == '"' && p[1] && strchr("\"\\$`", p[1]))
                                strbuf_append_char(&w, *++p);
                        else
                                strbuf_append_char(&w, c);
                        continue;
                }
                if (c == '\'' || c == '"') {
                        quote = c;
                        in_word = true;
                } else if (c == '\\' && p[1]) {
                        strbuf_append_char(&w, *++p);
                        in_word = true;
                } else if (isspace((unsigned char) c)) {
                        if (in_word) {
                                r = strv_consume(&l, strbuf_steal(&w));
                                if (r < 0)
                                        return r;
                                in_word = false;
                        }
                } else {
                        strbuf_append_char(&w, c);
                        in_word = true;
                }
        }
        if (quote)
                return -EINVAL;
        if (in_word) {
                r = strv_consume(&l, strbuf_steal(&w));
                if (r < 0)
                        return r;
        }
        if (strbuf_error(&w) < 0)
                return -ENOMEM;
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static bool strbuf_reserve(StrBuf *b, size_t extra) {
        size_t need, cap;
        char *s;

        if (b->oom)
                return false;
        if (extra > SIZE_MAX / 2 - b->len - 1) {
                b->oom = true;
                return false;
        }
        need = b->len + extra + 1;
        if (need <= b->cap)
                return true;
        cap = MAX(need, MAX((size_t) 64, b->cap * 2));
        if (b->erase && b->s) {
                /* realloc would leave the old bytes behind in freed memory */
                s = malloc(cap);
                if (!s) {
                        b->oom = true;
                        return false;
                }
                memcpy(s, b->s, b->len + 1);
                explicit_bzero(b->s, b->cap);
                free(b->s);
        } else
                s = realloc(b->s, cap);
        if (!s) {
                b->oom = true;
                return false;
        }
        b->s = s;
        b->cap = cap;
        return true;
}

int strbuf_reserve_extra(StrBuf *b, size_t extra) {
        return strbuf_reserve(b, extra) ? 0 : -ENOMEM;
}

void strbuf_append_n(StrBuf *b, const char *s, size_t n) {
        if (!strbuf_reserve(b, n))
                return;
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
}

void strbuf_append(StrBuf *b, const char *s) {
        strbuf_append_n(b, s, strlen(s));
}

void strbuf_append_char(StrBuf *b, char c) {
        strbuf_append_n(b, &c, 1);
}

void strbuf_appendf(StrBuf *b, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0 || !strbuf_reserve(b, (size_t) n)) {
                b->oom = true;
                return;
        }
        va_start(ap, fmt);
        vsnprintf(b->s + b->len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
}

void strbuf_reset(StrBuf *b) {
        b->len = 0;
        if (b->s)
                b->s[0] = '\0';
}

char *strbuf_steal(StrBuf *b) {
        char *s;

        if (b->oom)
                return NULL;
        s = b->s ? b->s : strdup("");
        b->s = NULL;
        b->len = b->cap = 0;
        return s;
}

int strbuf_error(const StrBuf *b) {
        return b->oom ? -ENOMEM : 0;
}

void strbuf_done(StrBuf *b) {
        free(b->s);
        *b = (StrBuf){};
}

void strbuf_done_erase(StrBuf *b) {
        if (b->s)
                explicit_bzero(b->s, b->cap);
        strbuf_done(b);
}
