/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "string-util.h"
#include "strmap.h"

/* The first size (a power of two): a node's pods and IPs fit without growing. */
#define STRMAP_INITIAL_SLOTS 64
/* Grows past 3/4 full: linear probing stays short (about 2.5 probes to find a key at that load),
 * and a table of 10,000 namespaces costs 16 bytes per slot, 26 per entry (docs/limits.md). */
#define STRMAP_MAX_LOAD_NUM 3
#define STRMAP_MAX_LOAD_DEN 4

static uint64_t hash_string(const StrMap *m, const char *s) {
        /* FNV-1a, seeded per map so that names chosen by cluster users cannot be made to collide */
        uint64_t h = 1469598103934665603ULL ^ m->seed;
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 1099511628211ULL;
        }
        return h ^ (h >> 29);
}

static size_t slot_of(const StrMap *m, const char *key) {
        return hash_string(m, key) & (m->n_slots - 1);
}

int strmap_init(StrMap *m) {
        *m = (StrMap){ .n_slots = STRMAP_INITIAL_SLOTS };
        m->slots = calloc(m->n_slots, sizeof(StrMapEntry));
        if (!m->slots)
                return -ENOMEM;
        if (getrandom(&m->seed, sizeof m->seed, GRND_NONBLOCK) != sizeof m->seed)
                m->seed = (uint64_t) (uintptr_t) m ^ 0x9e3779b97f4a7c15ULL;
        return 0;
}

/* The slot holding key, or the empty slot that ends its probe sequence. */
static StrMapEntry *find(const StrMap *m, const char *key) {
        size_t mask = m->n_slots - 1;

        for (size_t i = slot_of(m, key);; i = (i + 1) & mask)
                if (!m->slots[i].key || streq(m->slots[i].key, key))
                        return &m->slots[i];
}

/* The slot holding key, NULL when absent. */
static StrMapEntry *find_present(const StrMap *m, const char *key) {
        StrMapEntry *e = m->slots ? find(m, key) : NULL;
        return e && e->key ? e : NULL;
}

void *strmap_get(const StrMap *m, const char *key) {
        return m->slots ? find(m, key)->value : NULL;
}

static int strmap_grow(StrMap *m) {
        StrMap bigger = { .n_slots = m->slots ? m->n_slots * 2 : STRMAP_INITIAL_SLOTS,
                          .n = m->n,
                          .seed = m->seed };

        bigger.slots = calloc(bigger.n_slots, sizeof(StrMapEntry));
        if (!bigger.slots)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_slots; i++)
                if (m->slots[i].key)
                        *find(&bigger, m->slots[i].key) = m->slots[i];
        free(m->slots);
        *m = bigger;
        return 0;
}

int strmap_put(StrMap *m, const char *key, void *value) {
        if ((m->n + 1) * STRMAP_MAX_LOAD_DEN > m->n_slots * STRMAP_MAX_LOAD_NUM && strmap_grow(m) < 0)
                return -ENOMEM;
        *find(m, key) = (StrMapEntry){ .key = key, .value = value };
        m->n++;
        return 0;
}

void *strmap_replace(StrMap *m, const char *key, void *value) {
        StrMapEntry *e = find_present(m, key);
        void *old;

        if (!e)
                return NULL;
        old = e->value;
        *e = (StrMapEntry){ .key = key, .value = value };
        return old;
}

void *strmap_remove(StrMap *m, const char *key) {
        StrMapEntry *e = find_present(m, key);
        size_t mask, hole, i;
        void *v;

        if (!e)
                return NULL;
        v = e->value;
        /* backward-shift deletion: every later entry of the run that the hole would cut off from
         * its home slot moves into the hole, so that no probe sequence ever crosses an empty slot */
        mask = m->n_slots - 1;
        hole = e - m->slots;
        for (i = (hole + 1) & mask; m->slots[i].key; i = (i + 1) & mask) {
                size_t home = slot_of(m, m->slots[i].key);
                /* stays when its home lies cyclically in (hole, i] */
                if (hole <= i ? hole < home && home <= i : hole < home || home <= i)
                        continue;
                m->slots[hole] = m->slots[i];
                hole = i;
        }
        m->slots[hole] = (StrMapEntry){};
        m->n--;
        return v;
}

void strmap_clear(StrMap *m, void (*free_value)(void *)) {
        for (size_t i = 0; m->slots && i < m->n_slots; i++) {
                if (m->slots[i].key && free_value)
                        free_value(m->slots[i].value);
                m->slots[i] = (StrMapEntry){};
        }
        m->n = 0;
        if (m->n_slots > STRMAP_INITIAL_SLOTS) {
                /* a table grown for one large batch (a list's changes) is not kept once empty */
                m->slots = mfree(m->slots);
                m->n_slots = 0;
        }
}

void strmap_done(StrMap *m, void (*free_value)(void *)) {
        strmap_clear(m, free_value);
        free(m->slots);
        *m = (StrMap){};
}
