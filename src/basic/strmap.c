/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "string-util.h"
#include "strmap.h"

/* The first size: a node's pods and IPs fit without growing. */
#define STRMAP_INITIAL_BUCKETS 64

static uint64_t hash_string(const StrMap *m, const char *s) {
        /* FNV-1a, seeded per map so that names chosen by cluster users cannot be made to collide */
        uint64_t h = 1469598103934665603ULL ^ m->seed;
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 1099511628211ULL;
        }
        return h ^ (h >> 29);
}

int strmap_init(StrMap *m) {
        *m = (StrMap){ .n_buckets = STRMAP_INITIAL_BUCKETS };
        m->buckets = calloc(m->n_buckets, sizeof(StrMapEntry *));
        if (!m->buckets)
                return -ENOMEM;
        if (getrandom(&m->seed, sizeof m->seed, GRND_NONBLOCK) != sizeof m->seed)
                m->seed = (uint64_t) (uintptr_t) m ^ 0x9e3779b97f4a7c15ULL;
        return 0;
}

void *strmap_get(const StrMap *m, const char *key) {
        if (!m->buckets)
                return NULL;
        for (StrMapEntry *e = m->buckets[hash_string(m, key) % m->n_buckets]; e; e = e->next)
                if (streq(e->key, key))
                        return e->value;
        return NULL;
}

static int strmap_grow(StrMap *m) {
        size_t nb = m->n_buckets * 2;
        StrMapEntry **b = calloc(nb, sizeof(StrMapEntry *));

        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_buckets; i++)
                for (StrMapEntry *e = m->buckets[i], *next; e; e = next) {
                        size_t h = hash_string(m, e->key) % nb;
                        next = e->next;
                        e->next = b[h];
                        b[h] = e;
                }
        free(m->buckets);
        m->buckets = b;
        m->n_buckets = nb;
        return 0;
}

int strmap_put(StrMap *m, const char *key, void *value) {
        StrMapEntry *e;
        size_t h;

        if (m->n >= m->n_buckets && strmap_grow(m) < 0)
                return -ENOMEM;
        e = malloc(sizeof *e);
        if (!e)
                return -ENOMEM;
        h = hash_string(m, key) % m->n_buckets;
        *e = (StrMapEntry){ .next = m->buckets[h], .key = key, .value = value };
        m->buckets[h] = e;
        m->n++;
        return 0;
}

void *strmap_replace(StrMap *m, const char *key, void *value) {
        if (!m->buckets)
                return NULL;
        for (StrMapEntry *e = m->buckets[hash_string(m, key) % m->n_buckets]; e; e = e->next)
                if (streq(e->key, key)) {
                        void *old = e->value;
                        *e = (StrMapEntry){ .next = e->next, .key = key, .value = value };
                        return old;
                }
        return NULL;
}

void *strmap_remove(StrMap *m, const char *key) {
        if (!m->buckets)
                return NULL;
        for (StrMapEntry **p = &m->buckets[hash_string(m, key) % m->n_buckets]; *p; p = &(*p)->next)
                if (streq((*p)->key, key)) {
                        StrMapEntry *e = *p;
                        void *v = e->value;
                        *p = e->next;
                        free(e);
                        m->n--;
                        return v;
                }
        return NULL;
}

void strmap_clear(StrMap *m, void (*free_value)(void *)) {
        for (size_t i = 0; m->buckets && i < m->n_buckets; i++) {
                for (StrMapEntry *e = m->buckets[i], *next; e; e = next) {
                        next = e->next;
                        if (free_value)
                                free_value(e->value);
                        free(e);
                }
                m->buckets[i] = NULL;
        }
        m->n = 0;
}

void strmap_done(StrMap *m, void (*free_value)(void *)) {
        strmap_clear(m, free_value);
        free(m->buckets);
        *m = (StrMap){};
}
