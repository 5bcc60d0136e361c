/* SPDX-License-Identifier: BSD-3-Clause */
/* Preloaded into wrk by bench/bench.py: each TCP connection to 127.0.0.0/8 is made from the next of
 * $K2I_BENCH_SOURCES loopback addresses (127.0.0.1, 127.0.0.2, ...), as a node's many pods make
 * theirs. Without it every connection of a load row comes from 127.0.0.1, and a row with more
 * connections than the daemon's per-address limit (HTTP_MAX_CONNECTIONS_PER_IP) measures refusals. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

/* 127.0.0.1 .. 127.0.0.254: one /24 of loopback is plenty of pods for a benchmark. */
#define SPREAD_SOURCES_MAX 254U

static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static unsigned n_sources;
static atomic_uint next_source;

__attribute__((constructor)) static void spread_init(void) {
        const char *n = getenv("K2I_BENCH_SOURCES");
        unsigned long k = n ? strtoul(n, NULL, 10) : 0;

        real_connect = (int (*)(int, const struct sockaddr *, socklen_t)) dlsym(RTLD_NEXT, "connect");
        n_sources = k > SPREAD_SOURCES_MAX ? SPREAD_SOURCES_MAX : (unsigned) k;
}

int connect(int fd, const struct sockaddr *sa, socklen_t len) {
        const struct sockaddr_in *to = (const struct sockaddr_in *) sa;

        if (n_sources > 0 && sa && sa->sa_family == AF_INET && len >= sizeof *to &&
            (ntohl(to->sin_addr.s_addr) >> 24) == 127) {
                struct sockaddr_in from = {
                        .sin_family = AF_INET,
                        .sin_addr.s_addr =
                                htonl(INADDR_LOOPBACK + atomic_fetch_add(&next_source, 1) % n_sources),
                };
                (void) bind(fd, (const struct sockaddr *) &from, sizeof from);
        }
        return real_connect(fd, sa, len);
}
