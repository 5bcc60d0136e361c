/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* ExplainSocket: the daemon's local question socket, $RUNTIME_DIRECTORY/explain.sock (0600, root
 * only; never a network listener), served on the daemon's loop. The protocol is one line: the
 * client writes a query and a newline (at most EXPLAIN_MAX_QUERY bytes), the daemon answers one
 * JSON document (explain.h) and closes. Owns the listener, its connections and their limits. */

#include <systemd/sd-event.h>

#include "macro.h"
#include "time-util.h"

#define EXPLAIN_SOCKET_NAME "explain.sock"
/* Where the client looks without $RUNTIME_DIRECTORY: the unit's RuntimeDirectory=kube2iam. */
#define EXPLAIN_DEFAULT_DIR "/run/kube2iam"
/* `kube2iam explain`'s exit status when the daemon could not be asked (1: no credentials). */
#define EXPLAIN_EXIT_NO_ANSWER 3
/* Operators ask one question at a time; a few at once (a script looping over pods) is plenty,
 * and a stuck client cannot hold more than this many file descriptors. */
#define EXPLAIN_MAX_CLIENTS 4U
/* A client must have sent its line and read its answer within this long. */
#define EXPLAIN_CLIENT_TIMEOUT (5 * USEC_PER_SEC)

typedef struct ExplainSocket ExplainSocket;

/* Answers a query: a JSON document in *ret (malloc'd), or a negative errno (-EINVAL: a bad query). */
typedef int (*explain_answer_t)(const char *query, char **ret, void *userdata);

/* Binds dir/EXPLAIN_SOCKET_NAME (replacing a stale one) with mode 0600. */
int explain_socket_new(sd_event *event, const char *dir, explain_answer_t answer, void *userdata,
                       ExplainSocket **ret);
/* Closes the connections and the listener and unlinks the socket. */
ExplainSocket *explain_socket_free(ExplainSocket *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ExplainSocket *, explain_socket_free);

/* The client side (`kube2iam explain`): sends query to the socket in dir and returns the answer.
 * -ENOENT/-ECONNREFUSED: no daemon; -EBADMSG: an answer over the limit or cut short. */
int explain_socket_ask(const char *dir, const char *query, char **ret);
