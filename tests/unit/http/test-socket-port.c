/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"
#include "tap.h"

/* A socket bound to loopback on a port the kernel picks; *ret_port is that port as the kernel
 * reports it, for comparison with what http_socket_local_port() reads. */
static int bound_socket(int family, uint16_t *ret_port) {
        struct sockaddr_storage ss = {};
        socklen_t len;
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        if (family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) &ss;
                in->sin_family = AF_INET;
                in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                len = sizeof *in;
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
                in6->sin6_family = AF_INET6;
                in6->sin6_addr = in6addr_loopback;
                len = sizeof *in6;
        }
        if (bind(fd, (struct sockaddr *) &ss, len) < 0 || listen(fd, 1) < 0 ||
            getsockname(fd, (struct sockaddr *) &ss, &len) < 0) {
                int e = -errno;
                close(fd);
                return e;
        }
        *ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                            : ((struct sockaddr_in6 *) &ss)->sin6_port);
        return fd;
}

TEST(local_port_of_an_ipv4_listener) {
        uint16_t want = 0, got = 0;
        int fd = bound_socket(AF_INET, &want);

        ASSERT_TRUE(fd >= 0);
        ASSERT_TRUE(want != 0);
        ASSERT_OK(http_socket_local_port(fd, &got));
        ASSERT_EQ(got, want);
        close(fd);
}

TEST(local_port_of_an_ipv6_listener) {
        uint16_t want = 0, got = 0;
        int fd = bound_socket(AF_INET6, &want);

        if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
                tap_skip("no IPv6 loopback here");
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(http_socket_local_port(fd, &got));
        ASSERT_EQ(got, want);
        close(fd);
}

TEST(local_port_refuses_a_unix_socket_and_a_closed_fd) {
        uint16_t port = 7;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ASSERT_TRUE(fd >= 0);
        ASSERT_ERROR(http_socket_local_port(fd, &port), -EAFNOSUPPORT);
        close(fd);
        ASSERT_ERROR(http_socket_local_port(fd, &port), -EBADF);
        ASSERT_EQ(port, 7);
}
