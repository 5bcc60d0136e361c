/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "secret.h"

struct Secret {
        size_t size;
        char data[]; /* size bytes and a NUL */
};

int secret_new(const char *s, size_t n, Secret **ret) {
        Secret *x;

        if (!s || !ret)
                return -EINVAL;
        x = malloc(sizeof(Secret) + n + 1);
        if (!x)
                return -ENOMEM;
        x->size = n;
        memcpy(x->data, s, n);
        x->data[n] = '\0';
        *ret = x;
        return 0;
}

int secret_dup(const Secret *s, Secret **ret) {
        if (!s)
                return -EINVAL;
        return secret_new(s->data, s->size, ret);
}

Secret *secret_free(Secret *s) {
        if (!s)
                return NULL;
        explicit_bzero(s->data, s->size);
        free(s);
        return NULL;
}

const char *secret_reveal(const Secret *s) {
        return s ? s->data : NULL;
}

size_t secret_size(const Secret *s) {
        return s ? s->size : 0;
}

int secret_equal(const Secret *a, const Secret *b) {
        if (!a || !b)
                return a == b;
        if (a->size != b->size)
                return 0;
        return CRYPTO_memcmp(a->data, b->data, a->size) == 0;
}

char *erase_and_free(char *p) {
        if (!p)
                return NULL;
        explicit_bzero(p, strlen(p));
        free(p);
        return NULL;
}

char *erase_and_free_n(char *p, size_t n) {
        if (!p)
                return NULL;
        explicit_bzero(p, n);
        free(p);
        return NULL;
}
