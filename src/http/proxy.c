/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "router.h"
#include "string-util.h"

typedef struct ProxyCall ProxyCall;

struct Proxy {
        HttpClient *client;
        char *base_url; /* http://host:port */
        CURL *pool[PROXY_POOL_MAX];
        unsigned n_pool;
        unsigned in_flight;
        MetricFamily *m_requests; /* proxied requests by category and status */
        MetricFamily *m_latency;  /* the upstream's answers */
        LogRatelimit error_ratelimit;
};

struct ProxyCall {
        Proxy *proxy;
        HttpRequest *req;
        CURL *easy;
        struct curl_slist *headers;
        HttpBody body;
        StrBuf resp_headers; /* "name\0value\0" pairs */
        char *url;
        char *path;
        ProxyFilter filter;
        const void *filter_data;
        usec_t started; /* CLOCK_MONOTONIC */
};

static const char *const hop_headers[] = {
        "Connection", "Proxy-Connection",  "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te",
        "Trailer",    "Transfer-Encoding", "Upgrade",
};

bool proxy_is_hop_header(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(hop_headers); i++)
                if (strcasecmp(name, hop_headers[i]) == 0)
                        return true;
        return false;
}

bool proxy_adds_xff(const char *method, const char *path, const char *token_header) {
        if (streq(method, "PUT")) {
                /* ^/?[^/]+/api/token$ */
                const char *p = path[0] == '/' ? path + 1 : path;
                const char *slash = strchr(p, '/');
                if (slash && slash != p && streq(slash, "/api/token"))
                        return false;
        }
        if (streq(method, "GET") && !isempty(token_header))
                return false;
        return true;
}

int proxy_new(HttpClient *client, const char *host, uint16_t port, Proxy **ret) {
        Proxy *p;

        if (!client || isempty(host) || !ret)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->client = client;
        p->error_ratelimit = (LogRatelimit){ .interval_usec = PROXY_ERROR_LOG_INTERVAL_USEC,
                                             .burst = PROXY_ERROR_LOG_BURST };
        if (asprintf(&p->base_url, strchr(host, ':') ? "http://[%s]:%u" : "http://%s:%u", host, port) < 0) {
                free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

Proxy *proxy_free(Proxy *p) {
        if (!p)
                return NULL;
        for (unsigned i = 0; i < p->n_pool; i++)
                curl_easy_cleanup(p->pool[i]);
        free(p->base_url);
        free(p);
        return NULL;
}

/* Seconds: the upstream IMDS answers in about a millisecond; PROXY_TIMEOUT_MSEC ends the rest. */
static const double latency_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 3 };

int proxy_set_metrics(Proxy *p, Metrics *m) {
        int r;

        r = metrics_add_family(m, "kube2iam_proxy_requests_total",
                               "Requests forwarded to the upstream IMDS, by category (the path's first part "
                               "after the version) and the status the pod got.",
                               METRIC_COUNTER, (const char *const[]){ "category", "status", NULL }, NULL, 0,
                               0, &p->m_requests);
        if (r < 0)
                return r;
        return metrics_add_family(m, "kube2iam_upstream_imds_duration_seconds",
                                  "How long the upstream IMDS took to answer a forwarded request.",
                                  METRIC_HISTOGRAM, NULL, latency_buckets, ELEMENTSOF(latency_buckets), 0,
                                  &p->m_latency);
}

const char *proxy_category(const char *path) {
        static const char *const known[] = { "meta-data", "dynamic", "user-data", "api" };
        const char *p = path[0] == '/' ? path + 1 : path, *slash = strchr(p, '/'), *end;
        size_t n;

        if (!slash)
                return "other";
        end = strchrnul(slash + 1, '/');
        n = (size_t) (end - (slash + 1));
        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (strlen(known[i]) == n && strncmp(slash + 1, known[i], n) == 0)
                        return known[i];
        return "other";
}

static void count_request(ProxyCall *c, unsigned status) {
        char st[8];

        if (!c->proxy->m_requests)
                return;
        snprintf(st, sizeof st, "%u", status);
        (void) metrics_counter_inc(c->proxy->m_requests,
                                   (const char *const[]){ proxy_category(strempty(c->path)), st });
}

unsigned proxy_in_flight(const Proxy *p) {
        return p ? p->in_flight : 0;
}

static CURL *pool_get(Proxy *p) {
        if (p->n_pool > 0) {
                CURL *e = p->pool[--p->n_pool];
                curl_easy_reset(e);
                return e;
        }
        return curl_easy_init();
}

static void pool_put(Proxy *p, CURL *e) {
        if (!e)
                return;
        if (p->n_pool < PROXY_POOL_MAX)
                p->pool[p->n_pool++] = e;
        else
                curl_easy_cleanup(e);
}

static void call_free(ProxyCall *c) {
        if (!c)
                return;
        if (c->easy) {
                http_client_cancel(c->proxy->client, c->easy);
                pool_put(c->proxy, c->easy);
        }
        c->proxy->in_flight--;
        curl_slist_free_all(c->headers);
        strbuf_done(&c->body.buf);
        strbuf_done(&c->resp_headers);
        free(c->url);
        free(c->path);
        free(c);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
        ProxyCall *c = userdata;
        size_t n = size * nmemb, len = n;
        const char *colon;

        if (n >= 5 && strneq(data, "HTTP/", 5)) {
                /* a new status line (after 100 Continue or a redirect): forget earlier headers */
                strbuf_reset(&c->resp_headers);
                return n;
        }
        while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
                len--;
        colon = memchr(data, ':', len);
        if (!colon || colon == data)
                return n;
        if (c->resp_headers.len + len > HTTP_MAX_HEADER_BYTES * 4)
                return 0;
        strbuf_append_n(&c->resp_headers, data, (size_t) (colon - data));
        strbuf_append_char(&c->resp_headers, '\0');
        colon++;
        while (colon < data + len && (*colon == ' ' || *colon == '\t'))
                colon++;
        strbuf_append_n(&c->resp_headers, colon, (size_t) (data + len - colon));
        strbuf_append_char(&c->resp_headers, '\0');
        return n;
}

static void respond_502(ProxyCall *c, const char *why) {
        Proxy *p = c->proxy;

        (void) log_ratelimited(NULL, &p->error_ratelimit, LOG_ERR, 0,
                               ((const LogField[]){ { "METADATA_URL", c->url },
                                                    { "REQ_REMOTE", http_request_peer(c->req) } }),
                               2, "http: proxy error: %s", why);
        count_request(c, 502);
        (void) http_request_respond(c->req, 502, NULL, 0, NULL, 0);
}

static void on_done(HttpClient *client, CURL *easy, int error, CURLcode result, void *userdata) {
        ProxyCall *c = userdata;
        HttpHeader *h = NULL;
        size_t n = 0, max;
        long status = 0;

        if (error < 0 || c->body.overflow) {
                respond_502(c,
                            c->body.overflow ? "upstream response too large" : curl_easy_strerror(result));
                goto finish;
        }
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        if (c->proxy->m_latency)
                (void) metrics_histogram_observe(c->proxy->m_latency, NULL,
                                                 (double) (now_monotonic() - c->started) / USEC_PER_SEC);
        if (status < 100 || status > 599) {
                respond_502(c, "invalid upstream status");
                goto finish;
        }

        max = 0;
        for (size_t i = 0; i < c->resp_headers.len; i++)
                if (c->resp_headers.s[i] == '\0')
                        max++;
        h = calloc(max / 2 + 1, sizeof *h);
        if (!h) {
                respond_502(c, "out of memory");
                goto finish;
        }
        for (const char *s = c->resp_headers.s; s && s < c->resp_headers.s + c->resp_headers.len;) {
                const char *name = s, *value = s + strlen(s) + 1;
                s = value + strlen(value) + 1;
                /* MHD writes its own framing and Date */
                if (proxy_is_hop_header(name) || strcasecmp(name, "Content-Length") == 0 ||
                    strcasecmp(name, "Date") == 0)
                        continue;
                h[n++] = (HttpHeader){ name, value };
        }
        if (status == 200 && c->filter) {
                _cleanup_strbuf_ StrBuf filtered = {};
                if (c->filter(c->path, strbuf_str(&c->body.buf), c->body.buf.len, c->filter_data,
                              &filtered) < 0) {
                        respond_502(c, "failed to filter the upstream answer");
                        goto finish;
                }
                (void) http_request_respond(c->req, 200, h, n, strbuf_str(&filtered), filtered.len);
        } else
                (void) http_request_respond(c->req, (unsigned) status, h, n, c->body.buf.s, c->body.buf.len);
        count_request(c, (unsigned) status);
        log_debug("Proxy ec2 metadata request %s (%ld)", c->url, status);

finish:
        free(h);
        c->easy = NULL; /* finished: back to the pool, no cancel needed */
        pool_put(c->proxy, easy);
        call_free(c);
}

static void on_abort(HttpRequest *req, void *owner_data) {
        call_free(owner_data);
}

typedef struct HeaderCopy {
        ProxyCall *call;
        const HttpHeader *extra;
        size_t n_extra;
        const char *const *drop;
        const char *connection; /* headers named in Connection: are hop-by-hop too */
        bool has_accept;
        StrBuf xff; /* prior X-Forwarded-For values, joined with ", " as Go does */
        bool oom;
} HeaderCopy;

static bool named_in_connection(const char *connection, const char *name) {
        _cleanup_strv_free_ char **l = NULL;
        if (!connection || strv_split(connection, ", \t", &l) < 0)
                return false;
        for (char **i = l; *i; i++)
                if (strcasecmp(*i, name) == 0)
                        return true;
        return false;
}

static bool copy_header(const char *name, const char *value, void *ud) {
        HeaderCopy *hc = ud;
        _cleanup_free_ char *line = NULL;
        struct curl_slist *l;

        if (proxy_is_hop_header(name) || named_in_connection(hc->connection, name) ||
            strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Expect") == 0)
                return true;
        for (size_t i = 0; i < hc->n_extra; i++)
                if (strcasecmp(name, hc->extra[i].name) == 0)
                        return true;
        for (const char *const *d = hc->drop; d && *d; d++)
                if (strcasecmp(name, *d) == 0)
                        return true;
        if (strcasecmp(name, "X-Forwarded-For") == 0) {
                if (hc->xff.len > 0)
                        strbuf_append(&hc->xff, ", ");
                strbuf_append(&hc->xff, value);
                return true;
        }
        if (strcasecmp(name, "Accept") == 0)
                hc->has_accept = true;
        /* "Name;" is curl's spelling of a header with an empty value */
        if (asprintf(&line, *value ? "%s: %s" : "%s;", name, value) < 0) {
                hc->oom = true;
                return false;
        }
        l = curl_slist_append(hc->call->headers, line);
        if (!l) {
                hc->oom = true;
                return false;
        }
        hc->call->headers = l;
        return true;
}

/* value NULL: "Name:", which tells curl not to send its own default of that header */
static int append_header(ProxyCall *c, const char *name, const char *value) {
        _cleanup_free_ char *line = NULL;
        struct curl_slist *l;

        if ((value ? asprintf(&line, "%s: %s", name, value) : asprintf(&line, "%s:", name)) < 0)
                return -ENOMEM;
        l = curl_slist_append(c->headers, line);
        if (!l)
                return -ENOMEM;
        c->headers = l;
        return 0;
}

void proxy_forward(Proxy *p, HttpRequest *req, const char *path, const HttpHeader *extra_headers,
                   size_t n_extra, const char *const *drop_headers, ProxyFilter filter,
                   const void *filter_data) {
        const char *method = http_request_method(req);
        _cleanup_strbuf_ StrBuf url = {};
        HeaderCopy hc = {};
        ProxyCall *c;
        const void *body;
        size_t body_size;
        int r = 0;

        c = calloc(1, sizeof *c);
        if (!c) {
                (void) http_request_respond(req, 502, NULL, 0, NULL, 0);
                return;
        }
        c->proxy = p;
        c->req = req;
        c->body.max = PROXY_MAX_RESPONSE_BYTES;
        c->filter = filter;
        c->filter_data = filter_data;
        c->started = now_monotonic();
        p->in_flight++;

        c->easy = pool_get(p);
        if (!c->easy)
                goto fail;

        /* Go's ReverseProxy sends the escaped form of the decoded path; no query (see proxy.h) */
        {
                _cleanup_free_ char *esc = NULL;
                esc = router_escape_path(path);
                if (!esc)
                        goto fail;
                strbuf_append(&url, p->base_url);
                strbuf_append(&url, esc);
                c->url = strbuf_steal(&url);
                c->path = strdup(path);
                if (!c->url || !c->path)
                        goto fail;
        }

        hc = (HeaderCopy){ .call = c,
                           .extra = extra_headers,
                           .n_extra = n_extra,
                           .drop = drop_headers,
                           .connection = http_request_header(req, "Connection") };
        http_request_foreach_header(req, copy_header, &hc);
        if (hc.oom || strbuf_error(&hc.xff) < 0)
                goto fail;
        if (proxy_adds_xff(method, path, http_request_header(req, "X-aws-ec2-metadata-token"))) {
                if (hc.xff.len > 0)
                        strbuf_append(&hc.xff, ", ");
                strbuf_append(&hc.xff, http_request_peer(req));
        }
        if (hc.xff.len > 0)
                r = append_header(c, "X-Forwarded-For", strbuf_str(&hc.xff));
        strbuf_done(&hc.xff);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < n_extra; i++)
                if (append_header(c, extra_headers[i].name, extra_headers[i].value) < 0)
                        goto fail;
        /* curl would add its own Accept and Expect */
        if (!hc.has_accept && append_header(c, "Accept", NULL) < 0)
                goto fail;
        if (append_header(c, "Expect", NULL) < 0)
                goto fail;

        body = http_request_body(req, &body_size);
        if (http_client_prepare(c->easy,
                                &(const HttpRequestOptions){ .url = c->url,
                                                             .protocols = HTTP_PROTOCOLS_HTTP,
                                                             .timeout = PROXY_TIMEOUT_MSEC * USEC_PER_MSEC,
                                                             .connect_timeout = PROXY_CONNECT_TIMEOUT_MSEC *
                                                                                USEC_PER_MSEC,
                                                             .direct = true,
                                                             .transparent = true }) < 0 ||
            curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, http_body_write) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, &c->body) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c) != CURLE_OK)
                goto fail;
        if (streq(method, "HEAD")) {
                if (curl_easy_setopt(c->easy, CURLOPT_NOBODY, 1L) != CURLE_OK)
                        goto fail;
        } else if (!streq(method, "GET") || body_size > 0) {
                if (curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
                        goto fail;
                if (body_size > 0 &&
                    (curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long) body_size) != CURLE_OK ||
                     curl_easy_setopt(c->easy, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK))
                        goto fail;
        }

        if (http_client_start(p->client, c->easy, on_done, c) < 0)
                goto fail;
        http_request_set_owner(req, on_abort, c);
        return;

fail:
        strbuf_done(&hc.xff);
        respond_502(c, "failed to set up the upstream request");
        call_free(c);
}
