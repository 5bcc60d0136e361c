/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* ProxyFlights: the IMDS proxy's single-flight table. Owns, per key (the path of a GET), the one
 * upstream request in flight and the requests waiting for its answer, in the order they came, and
 * the bounds on both (the proxy passes PROXY_FLIGHT_MAX_KEYS and PROXY_FLIGHT_MAX_WAITERS). No I/O
 * and no HTTP: the proxy opens a flight when it sends a request upstream, joins later requests for
 * the same path to it, and when the answer lands takes the flight out of the table and answers
 * every waiter alike. Waiters and the flight's data are the caller's opaque pointers. */

#include <stddef.h>

#include "macro.h"

typedef struct ProxyFlights ProxyFlights;
typedef struct ProxyFlight ProxyFlight;

int proxy_flights_new(size_t max_keys, size_t max_waiters, ProxyFlights **ret);
/* Frees the table and every flight still in it; their waiters and data stay the caller's. */
ProxyFlights *proxy_flights_free(ProxyFlights *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(ProxyFlights *, proxy_flights_free);

/* Flights in the table. */
size_t proxy_flights_count(const ProxyFlights *t);
/* The flight for key, NULL when there is none. */
ProxyFlight *proxy_flights_find(const ProxyFlights *t, const char *key);
/* A new flight for key, data its upstream request, leader its first waiter. -EEXIST: key has a
 * flight; -ENOSPC: the table holds max_keys flights; -ENOMEM. */
int proxy_flights_open(ProxyFlights *t, const char *key, void *data, void *leader, ProxyFlight **ret);
/* Takes f out of the table and frees it; its waiters, in the order they came, go to *ret_waiters
 * (a new array the caller frees, NULL when there were none). Returns how many. */
size_t proxy_flights_land(ProxyFlights *t, ProxyFlight *f, void ***ret_waiters);

/* waiter waits for f's answer too. -ENOSPC: f has max_waiters waiters; -ENOMEM. */
int proxy_flight_join(ProxyFlight *f, void *waiter);
/* waiter no longer waits (its client went away); the others keep their order. Returns how many
 * still wait. */
size_t proxy_flight_leave(ProxyFlight *f, void *waiter);
size_t proxy_flight_waiters(const ProxyFlight *f);
void *proxy_flight_data(const ProxyFlight *f);
const char *proxy_flight_key(const ProxyFlight *f);
