/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy-flight.h"
#include "strmap.h"

struct ProxyFlight {
        ProxyFlights *table;
        char *key; /* the map's key */
        void *data;
        void **waiters;
        size_t n_waiters, n_allocated;
};

struct ProxyFlights {
        StrMap map; /* key -> ProxyFlight */
        size_t max_keys, max_waiters;
};

int proxy_flights_new(size_t max_keys, size_t max_waiters, ProxyFlights **ret) {
        ProxyFlights *t;

        if (max_keys == 0 || max_waiters == 0 || !ret)
                return -EINVAL;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        if (strmap_init(&t->map) < 0) {
                free(t);
                return -ENOMEM;
        }
        t->max_keys = max_keys;
        t->max_waiters = max_waiters;
        *ret = t;
        return 0;
}

static void flight_free(void *v) {
        ProxyFlight *f = v;

        if (!f)
                return;
        free(f->waiters);
        free(f->key);
        free(f);
}

ProxyFlights *proxy_flights_free(ProxyFlights *t) {
        if (!t)
                return NULL;
        strmap_done(&t->map, flight_free);
        free(t);
        return NULL;
}

size_t proxy_flights_count(const ProxyFlights *t) {
        return t ? t->map.n : 0;
}

ProxyFlight *proxy_flights_find(const ProxyFlights *t, const char *key) {
        return t && key ? strmap_get(&t->map, key) : NULL;
}

int proxy_flight_join(ProxyFlight *f, void *waiter) {
        if (f->n_waiters >= f->table->max_waiters)
                return -ENOSPC;
        if (f->n_waiters == f->n_allocated) {
                size_t n = MIN(MAX(f->n_allocated * 2, (size_t) 4), f->table->max_waiters);
                void **w = realloc(f->waiters, n * sizeof *w);
                if (!w)
                        return -ENOMEM;
                f->waiters = w;
                f->n_allocated = n;
        }
        f->waiters[f->n_waiters++] = waiter;
        return 0;
}

int proxy_flights_open(ProxyFlights *t, const char *key, void *data, void *leader, ProxyFlight **ret) {
        ProxyFlight *f;

        if (strmap_get(&t->map, key))
                return -EEXIST;
        if (t->map.n >= t->max_keys)
                return -ENOSPC;
        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->table = t;
        f->data = data;
        f->key = strdup(key);
        if (!f->key || proxy_flight_join(f, leader) < 0 || strmap_put(&t->map, f->key, f) < 0) {
                flight_free(f);
                return -ENOMEM;
        }
        *ret = f;
        return 0;
}

size_t proxy_flights_land(ProxyFlights *t, ProxyFlight *f, void ***ret_waiters) {
        size_t n = f->n_waiters;

        (void) strmap_remove(&t->map, f->key);
        *ret_waiters = n > 0 ? f->waiters : NULL;
        if (n > 0)
                f->waiters = NULL;
        flight_free(f);
        return n;
}

size_t proxy_flight_leave(ProxyFlight *f, void *waiter) {
        for (size_t i = 0; i < f->n_waiters; i++)
                if (f->waiters[i] == waiter) {
                        memmove(f->waiters + i, f->waiters + i + 1, (f->n_waiters - i - 1) * sizeof(void *));
                        f->n_waiters--;
                        break;
                }
        return f->n_waiters;
}

size_t proxy_flight_waiters(const ProxyFlight *f) {
        return f ? f->n_waiters : 0;
}

void *proxy_flight_data(const ProxyFlight *f) {
        return f ? f->data : NULL;
}

const char *proxy_flight_key(const ProxyFlight *f) {
        return f ? f->key : NULL;
}
