/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* StrMap: a small string-keyed hash table (chaining, seeded hash, grows at load 1). The key of an
 * entry points into its value, so it costs no copy; the owner of the values frees them. Used by
 * the store (pods, IPs, namespaces) and pod-roles (decisions by pod uid). */

#include <stddef.h>
#include <stdint.h>

typedef struct StrMapEntry {
        struct StrMapEntry *next;
        const char *key; /* points into value */
        void *value;
} StrMapEntry;

typedef struct StrMap {
        StrMapEntry **buckets;
        size_t n_buckets, n;
        uint64_t seed;
} StrMap;

int strmap_init(StrMap *m);
void *strmap_get(const StrMap *m, const char *key);
/* key must stay valid while the entry exists (it points into value) and must be absent. */
int strmap_put(StrMap *m, const char *key, void *value);
/* Puts value in place of the value under key, which must be present; key points into the new value.
 * Returns the old value. Never fails (nothing is allocated). */
void *strmap_replace(StrMap *m, const char *key, void *value);
/* Returns the value, NULL when absent. */
void *strmap_remove(StrMap *m, const char *key);
/* Empties the map, calling free_value (may be NULL) on every value; the map stays usable. */
void strmap_clear(StrMap *m, void (*free_value)(void *));
/* strmap_clear() and the buckets: the map must be initialised again before use. */
void strmap_done(StrMap *m, void (*free_value)(void *));

/* Every entry; the body must not change the map. */
#define STRMAP_FOREACH(e, m) \
        for (size_t _i = 0; _i < (m)->n_buckets; _i++) \
                for (StrMapEntry *e = (m)->buckets[_i]; e; e = e->next)
