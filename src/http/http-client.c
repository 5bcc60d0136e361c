/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>

#include "http-client.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

/* A record per transfer, found through CURLOPT_PRIVATE. */
typedef struct Transfer {
        HttpClient *client;
        CURL *easy;
        struct Transfer *prev, *next;
        http_client_done_t done;
        void *userdata;
} Transfer;

struct HttpClient {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        unsigned n_running;
        Transfer *transfers; /* every running transfer, so free() can abort them */
};

static void transfer_unlink(HttpClient *c, Transfer *t) {
        if (t->prev)
                t->prev->next = t->next;
        else
                c->transfers = t->next;
        if (t->next)
                t->next->prev = t->prev;
        t->prev = t->next = NULL;
        if (c->n_running > 0)
                c->n_running--;
}

static void check_done(HttpClient *c) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(c->multi, &left))) {
                CURL *easy = msg->easy_handle;
                CURLcode result = msg->data.result;
                Transfer *t = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &t);
                curl_multi_remove_handle(c->multi, easy);
                (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                if (t) {
                        transfer_unlink(c, t);
                        http_client_done_t done = t->done;
                        void *userdata = t->userdata;
                        free(t);
                        done(c, easy, http_client_errno(result), result, userdata);
                }
        }
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HttpClient *c = userdata;
        int action = 0, running;

        if (revents & (EPOLLIN | EPOLLPRI))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        (void) curl_multi_socket_action(c->multi, fd, action, &running);
        check_done(c);
        return 0;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        HttpClient *c = userp;
        sd_event_source *s = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (s) {
                        sd_event_source_disable_unref(s);
                        curl_multi_assign(c->multi, fd, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (s) {
                r = sd_event_source_set_io_events(s, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(s, SD_EVENT_ON);
        } else {
                r = sd_event_add_io(c->event, &s, fd, events, on_io, c);
                if (r >= 0) {
                        (void) sd_event_source_set_description(s, "http-client-io");
                        curl_multi_assign(c->multi, fd, s);
                }
        }
        if (r == -ESTALE)
                return 0; /* the loop has finished: shutting down */
        if (r < 0) {
                log_error_errno(r, "Failed to watch an HTTP client socket: %m");
                return -1;
        }
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        HttpClient *c = userdata;
        int running;

        (void) curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(c);
        return 0;
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp) {
        HttpClient *c = userp;
        usec_t when;
        int r;

        if (timeout_ms < 0)
                return c->timer ? sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0 : 0;
        /* At shutdown the owners cancel their transfers after the loop finished, and curl re-arms its
         * timer for each: sd-event refuses (-ESTALE), and there is nothing left to time anyway. */
        if (sd_event_get_state(c->event) == SD_EVENT_FINISHED)
                return 0;

        when = usec_add(now_monotonic(), (usec_t) timeout_ms * USEC_PER_MSEC);
        if (c->timer) {
                r = sd_event_source_set_time(c->timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time(c->event, &c->timer, CLOCK_MONOTONIC, when, 1, on_timer, c);
                if (r >= 0)
                        (void) sd_event_source_set_description(c->timer, "http-client-timer");
        }
        if (r == -ESTALE)
                return 0; /* the loop has finished: shutting down, nothing will run anyway */
        if (r < 0) {
                log_error_errno(r, "Failed to set the HTTP client timer: %m");
                return -1;
        }
        return 0;
}

int http_client_new(sd_event *event, HttpClient **ret) {
        HttpClient *c;

        if (!event || !ret)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->multi = curl_multi_init();
        if (!c->multi) {
                http_client_free(c);
                return -ENOMEM;
        }
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_change) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
                http_client_free(c);
                return -EIO;
        }
        *ret = c;
        return 0;
}

HttpClient *http_client_free(HttpClient *c) {
        if (!c)
                return NULL;
        /* abort what still runs, without callbacks */
        while (c->transfers)
                http_client_cancel(c, c->transfers->easy);
        if (c->multi)
                curl_multi_cleanup(c->multi);
        sd_event_source_disable_unref(c->timer);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

int http_client_start(HttpClient *c, CURL *easy, http_client_done_t done, void *userdata) {
        Transfer *t;

        if (!c || !easy || !done)
                return -EINVAL;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        *t = (Transfer){ .client = c, .easy = easy, .done = done, .userdata = userdata };
        if (curl_easy_setopt(easy, CURLOPT_PRIVATE, t) != CURLE_OK) {
                free(t);
                return -EIO;
        }
        if (curl_multi_add_handle(c->multi, easy) != CURLM_OK) {
                (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                free(t);
                return -EIO;
        }
        t->next = c->transfers;
        if (c->transfers)
                c->transfers->prev = t;
        c->transfers = t;
        c->n_running++;
        return 0;
}

void http_client_cancel(HttpClient *c, CURL *easy) {
        Transfer *t = NULL;

        if (!c || !easy)
                return;
        (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &t);
        if (!t || t->client != c)
                return;
        curl_multi_remove_handle(c->multi, easy);
        (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        transfer_unlink(c, t);
        free(t);
}

unsigned http_client_running(const HttpClient *c) {
        return c ? c->n_running : 0;
}

sd_event *http_client_get_event(const HttpClient *c) {
        return c ? c->event : NULL;
}

int http_client_errno(CURLcode code) {
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_WRITE_ERROR:
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        case CURLE_FILESIZE_EXCEEDED:
                return -EFBIG;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
                return -EPROTO;
        case CURLE_URL_MALFORMAT:
        case CURLE_BAD_FUNCTION_ARGUMENT:
                return -EINVAL;
        default:
                return -EIO;
        }
}

/* CURLOPT_PROTOCOLS_STR is libcurl 7.85 (Debian 12 has 7.88); RHEL 9 ships 7.76, where only the
 * bitmask exists (deprecated from 7.85 on, hence not used where the string works). */
static CURLcode prepare_protocols(CURL *easy, HttpProtocols p) {
#if LIBCURL_VERSION_NUM >= 0x075500
        return curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR,
                                p == HTTP_PROTOCOLS_HTTP ? "http" : "https,http");
#else
        return curl_easy_setopt(easy, CURLOPT_PROTOCOLS,
                                p == HTTP_PROTOCOLS_HTTP ? (long) CURLPROTO_HTTP
                                                         : (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

int http_client_prepare(CURL *easy, const HttpRequestOptions *o) {
        /* every option here exists since libcurl 7.25 or earlier, but the protocols (see above) */
        if (!easy || !o || !o->url)
                return -EINVAL;
        if (curl_easy_setopt(easy, CURLOPT_URL, o->url) != CURLE_OK ||
            prepare_protocols(easy, o->protocols) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK)
                return -EIO;
        if (o->timeout > 0 &&
            curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) (o->timeout / USEC_PER_MSEC)) != CURLE_OK)
                return -EIO;
        if (o->connect_timeout > 0 &&
            curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) (o->connect_timeout / USEC_PER_MSEC)) !=
                    CURLE_OK)
                return -EIO;
        if (o->direct && curl_easy_setopt(easy, CURLOPT_PROXY, "") != CURLE_OK)
                return -EIO;
        if (!o->transparent &&
            curl_easy_setopt(easy, CURLOPT_USERAGENT, "kube2iam/" KUBE2IAM_VERSION) != CURLE_OK)
                return -EIO;
        return 0;
}

size_t http_body_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        HttpBody *b = userdata;
        size_t n = size * nmemb;

        if (b->buf.len + n > b->max) {
                b->overflow = true;
                return 0; /* aborts the transfer */
        }
        strbuf_append_n(&b->buf, ptr, n);
        return strbuf_error(&b->buf) < 0 ? 0 : n;
}

void http_body_reset(HttpBody *b) {
        strbuf_reset(&b->buf);
        b->overflow = false;
}
