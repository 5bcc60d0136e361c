/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "explain-socket.h"
#include "explain.h"
#include "log.h"
#include "string-util.h"

/* What a client accepts as an answer: one pod's explanation is a few KiB. */
#define EXPLAIN_MAX_ANSWER (256U * 1024U)

typedef struct Client Client;

struct ExplainSocket {
        sd_event *event;
        int fd;
        char *path;
        sd_event_source *source;
        explain_answer_t answer;
        void *userdata;
        Client *clients[EXPLAIN_MAX_CLIENTS];
};

struct Client {
        ExplainSocket *owner;
        int fd;
        sd_event_source *io, *timer;
        char line[EXPLAIN_MAX_QUERY + 2]; /* the query, its newline and a NUL */
        size_t n;
        char *out; /* the answer once known */
        size_t out_len, out_sent;
};

static void client_free(Client *c) {
        if (!c)
                return;
        for (size_t i = 0; i < EXPLAIN_MAX_CLIENTS; i++)
                if (c->owner->clients[i] == c)
                        c->owner->clients[i] = NULL;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        free(c->out);
        free(c);
}

static int client_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        client_free(userdata);
        return 0;
}

static int client_answer(Client *c) {
        char *nl = memchr(c->line, '\n', c->n);
        int r;

        *nl = '\0';
        r = c->owner->answer(c->line, &c->out, c->owner->userdata);
        if (r < 0) {
                /* the client sees a reason it can print; a bad query is the only one it can fix */
                r = asprintf(&c->out, "{\"error\":\"%s\"}",
                             r == -EINVAL ? "the query must be POD, NAMESPACE/POD or an address"
                                          : "internal error");
                if (r < 0)
                        return -ENOMEM;
        }
        c->out_len = strlen(c->out);
        return sd_event_source_set_io_events(c->io, EPOLLOUT);
}

static int client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Client *c = userdata;
        ssize_t k;

        (void) s;
        if (c->out) {
                k = send(fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                if (k < 0 || (c->out_sent += (size_t) k) == c->out_len)
                        client_free(c);
                return 0;
        }
        if (!(revents & (EPOLLIN | EPOLLHUP)))
                return 0;
        k = recv(fd, c->line + c->n, sizeof c->line - 1 - c->n, MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (k <= 0) { /* gone before its line */
                client_free(c);
                return 0;
        }
        c->n += (size_t) k;
        if (memchr(c->line, '\n', c->n)) {
                if (client_answer(c) < 0)
                        client_free(c);
        } else if (c->n >= sizeof c->line - 1) /* no newline within the limit: refused */
                client_free(c);
        return 0;
}

/* Only root and the daemon's own user may ask (the directory and the mode say so too). */
static bool peer_allowed(int fd) {
        struct ucred cred;
        socklen_t len = sizeof cred;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return false;
        return cred.uid == 0 || cred.uid == geteuid();
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        ExplainSocket *s = userdata;
        _cleanup_close_ int cfd = -EBADF;
        Client *c;
        size_t slot;

        (void) src;
        (void) revents;
        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return 0;
        for (slot = 0; slot < EXPLAIN_MAX_CLIENTS && s->clients[slot]; slot++)
                ;
        if (slot == EXPLAIN_MAX_CLIENTS || !peer_allowed(cfd))
                return 0; /* closed: busy, or not allowed */
        c = calloc(1, sizeof *c);
        if (!c)
                return 0;
        *c = (Client){ .owner = s, .fd = TAKE_FD(cfd) };
        s->clients[slot] = c;
        if (sd_event_add_io(s->event, &c->io, c->fd, EPOLLIN, client_io, c) < 0 ||
            sd_event_add_time_relative(s->event, &c->timer, CLOCK_MONOTONIC, EXPLAIN_CLIENT_TIMEOUT, 0,
                                       client_timeout, c) < 0)
                client_free(c);
        return 0;
}

static int socket_path(const char *dir, char **ret) {
        struct sockaddr_un sa;

        if (isempty(dir))
                return -ENOENT;
        if (asprintf(ret, "%s/%s", dir, EXPLAIN_SOCKET_NAME) < 0)
                return -ENOMEM;
        if (strlen(*ret) >= sizeof sa.sun_path) {
                *ret = mfree(*ret);
                return -ENAMETOOLONG;
        }
        return 0;
}

static socklen_t fill_address(struct sockaddr_un *sa, const char *path) {
        *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
        memcpy(sa->sun_path, path, strlen(path));
        return (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

int explain_socket_new(sd_event *event, const char *dir, explain_answer_t answer, void *userdata,
                       ExplainSocket **ret) {
        _cleanup_(explain_socket_freep) ExplainSocket *s = NULL;
        struct sockaddr_un sa;
        socklen_t len;
        mode_t old;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (ExplainSocket){
                .event = sd_event_ref(event), .fd = -EBADF, .answer = answer, .userdata = userdata
        };
        r = socket_path(dir, &s->path);
        if (r < 0)
                return r;
        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0)
                return -errno;
        len = fill_address(&sa, s->path);
        (void) unlink(s->path); /* a previous instance's */
        /* created 0600 from the start: no moment when others could connect */
        old = umask(0177);
        r = bind(s->fd, (struct sockaddr *) &sa, len) < 0 ? -errno : 0;
        umask(old);
        if (r < 0)
                return r;
        if (chmod(s->path, 0600) < 0 || listen(s->fd, (int) EXPLAIN_MAX_CLIENTS) < 0)
                return -errno;
        r = sd_event_add_io(event, &s->source, s->fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

ExplainSocket *explain_socket_free(ExplainSocket *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < EXPLAIN_MAX_CLIENTS; i++)
                client_free(s->clients[i]);
        sd_event_source_disable_unref(s->source);
        if (s->fd >= 0 && s->path)
                (void) unlink(s->path);
        safe_close(s->fd);
        free(s->path);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

static int ask_send(int fd, const char *query) {
        _cleanup_free_ char *line = NULL;
        size_t n;

        if (asprintf(&line, "%s\n", query) < 0)
                return -ENOMEM;
        n = strlen(line);
        for (size_t sent = 0; sent < n;) {
                ssize_t k = send(fd, line + sent, n - sent, MSG_NOSIGNAL);
                if (k < 0)
                        return errno == EINTR ? 0 : -errno;
                sent += (size_t) k;
        }
        return 0;
}

int explain_socket_ask(const char *dir, const char *query, char **ret) {
        _cleanup_free_ char *path = NULL, *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        size_t n = 0;
        int r;

        if (isempty(query) || strlen(query) > EXPLAIN_MAX_QUERY || strchr(query, '\n'))
                return -EINVAL;
        r = socket_path(dir, &path);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, fill_address(&sa, path)) < 0)
                return -errno;
        r = ask_send(fd, query);
        if (r < 0)
                return r;
        buf = malloc(EXPLAIN_MAX_ANSWER + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t k;

                r = poll(&p, 1, (int) (EXPLAIN_CLIENT_TIMEOUT / USEC_PER_MSEC));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return r < 0 ? -errno : -ETIMEDOUT;
                k = recv(fd, buf + n, EXPLAIN_MAX_ANSWER - n, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n == EXPLAIN_MAX_ANSWER)
                        return -EBADMSG;
        }
        if (n == 0)
                return -EBADMSG;
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}
