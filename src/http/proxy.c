/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"
#include "proxy-flight.h"
#include "proxy.h"
#include "router.h"
#include "string-util.h"
#include "strmap.h"
#include "time-util.h"

typedef struct ProxyCall ProxyCall;

/* A token bucket: tokens refill at rate per second up to burst. */
typedef struct TokenBucket {
        double tokens;
        usec_t at;
} TokenBucket;

typedef struct PodBucket {
        char *peer; /* the map's key */
        TokenBucket bucket;
} PodBucket;

/* One upstream 200 answer kept for its path: its headers ("name\0value\0" pairs, as received) and
 * body (as the client gets it, a listing filtered), until expires (USEC_INFINITY: a fixed fact). */
typedef struct ProxyMemo {
        char *path; /* the map's key */
        StrBuf headers;
        StrBuf body;
        usec_t expires; /* CLOCK_MONOTONIC */
} ProxyMemo;

struct Proxy {
        HttpClient *client;
        char *base_url; /* http://host:port */
        CURL *pool[PROXY_POOL_MAX];
        unsigned n_pool;
        unsigned in_flight;
        MetricFamily *m_requests; /* proxied requests by category and status */
        MetricFamily *m_latency;  /* the upstream's answers */
        LogRatelimit error_ratelimit;
        StrMap memo;           /* path -> ProxyMemo, fixed facts */
        StrMap kept;           /* path -> ProxyMemo, answers kept for their path's TTL */
        ProxyFlights *flights; /* path -> the GET in flight upstream and its waiters */
        uint64_t n_upstream, n_memo_hits, n_throttled, n_joined, n_kept_hits;
        TokenBucket budget; /* the whole daemon */
        StrMap pod_budgets; /* peer address -> PodBucket */
};

/* One upstream request. Its answer goes to the requests of its flight (a GET shared with later
 * GETs of its path), or to req alone (HEAD, or a GET the flight table had no room for). */
struct ProxyCall {
        Proxy *proxy;
        HttpRequest *req;
        ProxyFlight *flight;
        char peer[64]; /* the first requester's address, for the error log */
        CURL *easy;
        struct curl_slist *headers;
        HttpBody body;
        StrBuf resp_headers; /* "name\0value\0" pairs */
        char *url;
        char *path;
        ProxyFilter filter;
        const void *filter_data;
        usec_t started; /* CLOCK_MONOTONIC */
        usec_t keep;    /* how long a 200 answer is kept for later GETs (proxy_forward) */
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
        p->budget = (TokenBucket){ .tokens = PROXY_UPSTREAM_BURST, .at = now_monotonic() };
        if (strmap_init(&p->memo) < 0 || strmap_init(&p->kept) < 0 || strmap_init(&p->pod_budgets) < 0 ||
            proxy_flights_new(PROXY_FLIGHT_MAX_KEYS, PROXY_FLIGHT_MAX_WAITERS, &p->flights) < 0 ||
            asprintf(&p->base_url, strchr(host, ':') ? "http://[%s]:%u" : "http://%s:%u", host, port) < 0) {
                strmap_done(&p->memo, NULL);
                strmap_done(&p->kept, NULL);
                strmap_done(&p->pod_budgets, NULL);
                proxy_flights_free(p->flights);
                free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

static void pod_bucket_free(void *v) {
        PodBucket *b = v;

        if (b)
                free(b->peer);
        free(b);
}

static void memo_free(void *v) {
        ProxyMemo *m = v;

        if (!m)
                return;
        free(m->path);
        strbuf_done(&m->headers);
        strbuf_done(&m->body);
        free(m);
}

Proxy *proxy_free(Proxy *p) {
        if (!p)
                return NULL;
        strmap_done(&p->memo, memo_free);
        strmap_done(&p->kept, memo_free);
        strmap_done(&p->pod_budgets, pod_bucket_free);
        proxy_flights_free(p->flights);
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

/* Every forwarded request the pod got an answer to: from upstream, from memory, or 429. */
static void count_path(Proxy *p, const char *path, unsigned status) {
        char st[8];

        if (!p->m_requests)
                return;
        snprintf(st, sizeof st, "%u", status);
        (void) metrics_counter_inc(p->m_requests,
                                   (const char *const[]){ proxy_category(strempty(path)), st });
}

uint64_t proxy_upstream_requests(const Proxy *p) {
        return p ? p->n_upstream : 0;
}

uint64_t proxy_throttled(const Proxy *p) {
        return p ? p->n_throttled : 0;
}

static void bucket_refill(TokenBucket *b, unsigned rate, unsigned burst, usec_t now) {
        if (now > b->at)
                b->tokens = MIN((double) burst, b->tokens + (double) (now - b->at) * rate / USEC_PER_SEC);
        b->at = now;
}

/* The pod's bucket, refilled; NULL only when out of memory. A full map drops the buckets that
 * have refilled completely (their pods have been quiet): forgetting them changes nothing. */
static TokenBucket *pod_bucket(Proxy *p, const char *peer, usec_t now) {
        PodBucket *b = strmap_get(&p->pod_budgets, peer);

        if (b) {
                bucket_refill(&b->bucket, PROXY_POD_RATE, PROXY_POD_BURST, now);
                return &b->bucket;
        }
        if (p->pod_budgets.n >= PROXY_POD_BUCKETS_MAX) {
                _cleanup_free_ char **idle = calloc(p->pod_budgets.n + 1, sizeof(char *));
                size_t n = 0;
                if (!idle)
                        return NULL;
                STRMAP_FOREACH(e, &p->pod_budgets) {
                        PodBucket *x = e->value;
                        bucket_refill(&x->bucket, PROXY_POD_RATE, PROXY_POD_BURST, now);
                        if (x->bucket.tokens >= PROXY_POD_BURST)
                                idle[n++] = x->peer;
                }
                for (size_t i = 0; i < n; i++)
                        pod_bucket_free(strmap_remove(&p->pod_budgets, idle[i]));
                if (p->pod_budgets.n >= PROXY_POD_BUCKETS_MAX)
                        return NULL; /* that many busy pods: the daemon-wide bucket still holds */
        }
        b = calloc(1, sizeof *b);
        if (!b || !(b->peer = strdup(peer)) || strmap_put(&p->pod_budgets, b->peer, b) < 0) {
                pod_bucket_free(b);
                return NULL;
        }
        b->bucket = (TokenBucket){ .tokens = PROXY_POD_BURST, .at = now };
        return &b->bucket;
}

/* One upstream request's worth of budget for peer: false when the daemon's or the pod's bucket
 * is empty (or the pod's cannot be had: never more than the budget). */
static bool budget_take(Proxy *p, const char *peer) {
        usec_t now = now_monotonic();
        TokenBucket *pod;

        bucket_refill(&p->budget, PROXY_UPSTREAM_RATE, PROXY_UPSTREAM_BURST, now);
        pod = pod_bucket(p, strempty(peer), now);
        if (!pod || pod->tokens < 1 || p->budget.tokens < 1)
                return false;
        pod->tokens -= 1;
        p->budget.tokens -= 1;
        return true;
}

uint64_t proxy_memo_hits(const Proxy *p) {
        return p ? p->n_memo_hits : 0;
}

uint64_t proxy_kept_hits(const Proxy *p) {
        return p ? p->n_kept_hits : 0;
}

uint64_t proxy_joined(const Proxy *p) {
        return p ? p->n_joined : 0;
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
        if (c->flight) {
                /* nobody is left to answer: the flight goes, so the path's next GET starts anew */
                _cleanup_free_ void **w = NULL;
                (void) proxy_flights_land(c->proxy->flights, c->flight, &w);
        }
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

/* Gives c's answer to every request waiting for it, alike; c has none left after this. */
static void answer_waiters(ProxyCall *c, unsigned status, const HttpHeader *h, size_t n, const void *body,
                           size_t size) {
        _cleanup_free_ void **w = NULL;
        HttpRequest *solo = TAKE_PTR(c->req);
        size_t n_w = solo ? 1 : 0;

        if (c->flight) {
                n_w = proxy_flights_land(c->proxy->flights, c->flight, &w);
                c->flight = NULL;
        }
        for (size_t i = 0; i < n_w; i++) {
                HttpRequest *r = w ? w[i] : solo;
                http_request_set_owner(r, NULL, NULL);
                count_path(c->proxy, c->path, status);
                (void) http_request_respond(r, status, h, n, body, size);
        }
}

/* One line for the upstream failure (rate-limited), a 502 for each request waiting for it. */
static void respond_502(ProxyCall *c, const char *why) {
        Proxy *p = c->proxy;

        (void) log_ratelimited(NULL, &p->error_ratelimit, LOG_ERR, 0,
                               ((const LogField[]){ { "METADATA_URL", c->url }, { "REQ_REMOTE", c->peer } }),
                               2, "http: proxy error: %s", why);
        answer_waiters(c, 502, NULL, 0, NULL, 0);
}

/* The upstream's headers as they go to the client (MHD writes its own framing and Date); the
 * array points into raw. NULL: out of memory. */
static HttpHeader *relayed_headers(const StrBuf *raw, size_t *ret_n) {
        size_t max = 0, n = 0;
        HttpHeader *h;

        for (size_t i = 0; i < raw->len; i++)
                if (raw->s[i] == '\0')
                        max++;
        h = calloc(max / 2 + 1, sizeof *h);
        if (!h)
                return NULL;
        for (const char *s = raw->s; s && s < raw->s + raw->len;) {
                const char *name = s, *value = s + strlen(s) + 1;
                s = value + strlen(value) + 1;
                if (proxy_is_hop_header(name) || strcasecmp(name, "Content-Length") == 0 ||
                    strcasecmp(name, "Date") == 0)
                        continue;
                h[n++] = (HttpHeader){ name, value };
        }
        *ret_n = n;
        return h;
}

/* Drops the kept answers whose TTL has run out. */
static void kept_sweep(Proxy *p, usec_t now) {
        _cleanup_free_ char **expired = calloc(p->kept.n + 1, sizeof(char *));
        size_t n = 0;

        if (!expired)
                return;
        STRMAP_FOREACH(e, &p->kept) {
                ProxyMemo *m = e->value;
                if (m->expires <= now)
                        expired[n++] = m->path;
        }
        for (size_t i = 0; i < n; i++)
                memo_free(strmap_remove(&p->kept, expired[i]));
}

/* Keeps c's 200 answer (body as the client gets it) for c->keep; a full map or no memory just
 * keeps nothing. */
static void answer_keep(ProxyCall *c, const char *body, size_t size) {
        Proxy *p = c->proxy;
        bool fixed = c->keep == USEC_INFINITY;
        StrMap *map = fixed ? &p->memo : &p->kept;
        usec_t now = now_monotonic();
        ProxyMemo *m;

        if (fixed && (p->memo.n >= PROXY_MEMO_MAX || strmap_get(&p->memo, c->path)))
                return;
        if (!fixed) {
                memo_free(strmap_remove(&p->kept, c->path));
                if (p->kept.n >= PROXY_KEPT_MAX)
                        kept_sweep(p, now);
                if (p->kept.n >= PROXY_KEPT_MAX)
                        return;
        }
        m = calloc(1, sizeof *m);
        if (!m)
                return;
        m->path = strdup(c->path);
        m->expires = fixed ? USEC_INFINITY : usec_add(now, c->keep);
        strbuf_append_n(&m->headers, c->resp_headers.s ?: "", c->resp_headers.len);
        strbuf_append_n(&m->body, body ?: "", size);
        if (!m->path || strbuf_error(&m->headers) < 0 || strbuf_error(&m->body) < 0 ||
            strmap_put(map, m->path, m) < 0)
                memo_free(m);
}

/* Answers req from a kept answer for path: true when it did. */
static bool kept_answer(Proxy *p, HttpRequest *req, const char *path, bool fixed) {
        StrMap *map = fixed ? &p->memo : &p->kept;
        ProxyMemo *m = strmap_get(map, path);
        _cleanup_free_ HttpHeader *h = NULL;
        size_t n = 0;

        if (!m)
                return false;
        if (m->expires != USEC_INFINITY && m->expires <= now_monotonic()) {
                memo_free(strmap_remove(map, path));
                return false;
        }
        if (!(h = relayed_headers(&m->headers, &n)))
                return false;
        if (fixed)
                p->n_memo_hits++;
        else
                p->n_kept_hits++;
        count_path(p, path, 200);
        (void) http_request_respond(req, 200, h, n, m->body.s, m->body.len);
        return true;
}

static void on_done(HttpClient *client, CURL *easy, int error, CURLcode result, void *userdata) {
        ProxyCall *c = userdata;
        _cleanup_strbuf_ StrBuf filtered = {};
        _cleanup_free_ HttpHeader *h = NULL;
        const char *body;
        size_t n = 0, size;
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

        h = relayed_headers(&c->resp_headers, &n);
        if (!h) {
                respond_502(c, "out of memory");
                goto finish;
        }
        body = c->body.buf.s;
        size = c->body.buf.len;
        if (status == 200 && c->filter) {
                if (c->filter(c->path, strbuf_str(&c->body.buf), c->body.buf.len, c->filter_data,
                              &filtered) < 0) {
                        respond_502(c, "failed to filter the upstream answer");
                        goto finish;
                }
                body = strbuf_str(&filtered);
                size = filtered.len;
        }
        if (status == 200 && c->keep > 0)
                answer_keep(c, body, size);
        answer_waiters(c, (unsigned) status, h, n, body, size);
        log_debug("Proxy ec2 metadata request %s (%ld)", c->url, status);

finish:
        c->easy = NULL; /* finished: back to the pool, no cancel needed */
        pool_put(c->proxy, easy);
        call_free(c);
}

/* A waiting request ended unanswered (client gone, server stopping): the upstream request goes on
 * while others wait for it, and is cancelled when nobody does. */
static void on_abort(HttpRequest *req, void *owner_data) {
        ProxyCall *c = owner_data;

        if (c->flight && proxy_flight_leave(c->flight, req) > 0)
                return;
        c->req = NULL;
        call_free(c);
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

/* The upstream request's headers: the client's but hop-by-hop and dropped ones, extra ones,
 * kube2iam's X-Forwarded-For rule. */
static int call_set_headers(ProxyCall *c, HttpRequest *req, const char *path, const HttpHeader *extra,
                            size_t n_extra, const char *const *drop) {
        HeaderCopy hc = { .call = c,
                          .extra = extra,
                          .n_extra = n_extra,
                          .drop = drop,
                          .connection = http_request_header(req, "Connection") };
        int r = 0;

        http_request_foreach_header(req, copy_header, &hc);
        if (hc.oom || strbuf_error(&hc.xff) < 0) {
                strbuf_done(&hc.xff);
                return -ENOMEM;
        }
        if (proxy_adds_xff(http_request_method(req), path,
                           http_request_header(req, "X-aws-ec2-metadata-token"))) {
                if (hc.xff.len > 0)
                        strbuf_append(&hc.xff, ", ");
                strbuf_append(&hc.xff, http_request_peer(req));
        }
        if (hc.xff.len > 0)
                r = append_header(c, "X-Forwarded-For", strbuf_str(&hc.xff));
        strbuf_done(&hc.xff);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_extra; i++)
                if (append_header(c, extra[i].name, extra[i].value) < 0)
                        return -ENOMEM;
        /* curl would add its own Accept and Expect */
        if (!hc.has_accept && append_header(c, "Accept", NULL) < 0)
                return -ENOMEM;
        return append_header(c, "Expect", NULL);
}

/* A GET answered without a request of its own: from a kept answer, or by joining the upstream
 * request already in flight for its path. Neither costs budget: nothing more goes upstream. */
static bool answer_shared(Proxy *p, HttpRequest *req, const char *path, usec_t keep) {
        ProxyFlight *f;

        if (keep > 0 && kept_answer(p, req, path, keep == USEC_INFINITY))
                return true;
        f = proxy_flights_find(p->flights, path);
        if (!f || proxy_flight_join(f, req) < 0)
                return false; /* a flight with all its waiters: this one goes on its own */
        p->n_joined++;
        http_request_set_owner(req, on_abort, proxy_flight_data(f));
        return true;
}

void proxy_forward(Proxy *p, HttpRequest *req, const char *path, const HttpHeader *extra_headers,
                   size_t n_extra, const char *const *drop_headers, ProxyFilter filter,
                   const void *filter_data, usec_t keep) {
        const char *method = http_request_method(req);
        _cleanup_strbuf_ StrBuf url = {};
        ProxyCall *c;
        size_t body_size;
        const void *body = http_request_body(req, &body_size);
        bool shared;

        /* a GET is answered alike whoever asks (the upstream token is the daemon's own) */
        shared = streq(method, "GET") && body_size == 0;
        if (shared && answer_shared(p, req, path, keep))
                return;
        if (!budget_take(p, http_request_peer(req))) {
                const HttpHeader h[] = { { "Server", "EC2ws" } };
                p->n_throttled++;
                count_path(p, path, 429);
                (void) http_request_respond(req, 429, h, ELEMENTSOF(h), NULL, 0);
                return;
        }
        c = calloc(1, sizeof *c);
        if (!c) {
                (void) http_request_respond(req, 502, NULL, 0, NULL, 0);
                return;
        }
        c->proxy = p;
        c->req = req;
        snprintf(c->peer, sizeof c->peer, "%s", http_request_peer(req));
        c->body.max = PROXY_MAX_RESPONSE_BYTES;
        c->filter = filter;
        c->filter_data = filter_data;
        c->started = now_monotonic();
        c->keep = shared ? keep : 0;
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

        if (call_set_headers(c, req, path, extra_headers, n_extra, drop_headers) < 0)
                goto fail;
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
        p->n_upstream++;
        /* later GETs of path join this one; with the table full it answers req alone */
        if (shared && proxy_flights_open(p->flights, path, c, req, &c->flight) >= 0)
                c->req = NULL;
        http_request_set_owner(req, on_abort, c);
        return;

fail:
        respond_502(c, "failed to set up the upstream request");
        call_free(c);
}
