/* SPDX-License-Identifier: BSD-3-Clause */
#include "server.h"
#include "tap.h"

/* The connection cap follows the fd limit, so accept() meets the cap (and MHD stops accepting)
 * before it meets EMFILE. */
TEST(connection_cap_fits_the_fd_limit) {
        const uint64_t full = (uint64_t) HTTP_SERVERS_MAX * HTTP_MAX_CONNECTIONS + HTTP_FD_RESERVE;

        ASSERT_EQ(http_server_connection_cap(full), HTTP_MAX_CONNECTIONS);
        ASSERT_EQ(http_server_connection_cap(4096), HTTP_MAX_CONNECTIONS); /* the unit's LimitNOFILE */
        ASSERT_EQ(http_server_connection_cap(UINT64_MAX), HTTP_MAX_CONNECTIONS);
        ASSERT_EQ(http_server_connection_cap(full - 2), HTTP_MAX_CONNECTIONS - 1);
        /* the shell's default soft limit: both servers' connections and the reserve still fit */
        ASSERT_EQ(http_server_connection_cap(1024 + HTTP_FD_RESERVE), 512);
        ASSERT_TRUE((uint64_t) HTTP_SERVERS_MAX * http_server_connection_cap(1500) + HTTP_FD_RESERVE <=
                    1500);
        /* never zero: one connection at a time still serves */
        ASSERT_EQ(http_server_connection_cap(HTTP_FD_RESERVE), 1);
        ASSERT_EQ(http_server_connection_cap(0), 1);
}

TEST(one_address_cannot_fill_the_server) {
        /* it takes this many addresses (pods) to hold every connection */
        ASSERT_TRUE(HTTP_MAX_CONNECTIONS / HTTP_MAX_CONNECTIONS_PER_IP >= 8);
        /* a head deadline is shorter than the idle timeout, or trickling would be the cheaper hold */
        ASSERT_TRUE(HTTP_HEAD_DEADLINE_SEC < HTTP_IDLE_TIMEOUT_SEC);
}
