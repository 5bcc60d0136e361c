/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* StrMap: a small string-keyed hash table (open addressing with linear probing, seeded hash, grows
 * at 3/4 full; an entry is a slot of two pointers, nothing is allocated per entry). The key of an
 * entry points into its value, so it costs no copy; the owner of the values frees them. Used by
 * the store (pods, IPs, namespaces) and pod-roles (decisions by pod uid). */

#include <stddef.h>
#include <stdint.h>

typedef struct StrMapEntry {
        const char *key; /* points into value; NULL: the slot is empty */
        void *value;
} StrMapEntry;

typedef struct StrMap {
        StrMapEntry *slots;
        size_t n_slots, n; /* n_slots: a power of two */
        uint64_t seed;
} StrMap;

int strmap_init(StrMap *m);
void *strmap_get(const StrMap *m, const char *key);
/* key must stay valid while the entry exists (it points into value) and must be absent. */
int strmap_put(StrMap *m, const char *key, void *value);
/* Puts value in place of the value under key, which must be present; key points into the new value.
 * Returns the old value. Never fails (nothing is allocated). */
void *strmap_replace(StrMap *m, const char *key, void *value);
/* Returns the value, NULL when absent. Moves other entries: not while iterating. */
void *strmap_remove(StrMap *m, const char *key);
/* Empties the map, calling free_value (may be NULL) on every value; the map stays usable (a grown
 * table is freed and allocated again by the next put). */
void strmap_clear(StrMap *m, void (*free_value)(void *));
/* strmap_clear() and the slots: the map must be initialised again before use. */
void strmap_done(StrMap *m, void (*free_value)(void *));

/* Every entry, in no particular order; the body must not change the map (break and continue work). */
#define STRMAP_FOREACH(e, m) \
        for (StrMapEntry *e = (m)->slots; e && e < (m)->slots + (m)->n_slots; e++) \
                if (!e->key) { \
                } else
