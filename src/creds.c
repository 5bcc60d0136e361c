/* SPDX-License-Identifier: BSD-3-Clause */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "aws/sts-client.h"
#include "config.h"
#include "creds.h"
#include "log.h"
#include "metrics.h"
#include "string-util.h"

/* A power of two; at CREDS_MAX_ENTRIES this keeps chains short. */
#define CREDS_BUCKETS 1024
/* A backstop, not a schedule: creds_run() does everything due when it runs, so the timer never has a
 * reason to fire again within this gap. Should a change break that rule, the loop runs creds_run() at
 * most 1,000 times a second instead of spinning on "now" (issue 11). */
#define CREDS_TIMER_MIN_GAP_USEC (1 * USEC_PER_MSEC)

typedef enum FetchReason {
        FETCH_MISS,     /* a caller is waiting */
        FETCH_REFRESH,  /* background refresh ahead of expiry */
        FETCH_PREFETCH, /* a pod appeared */
} FetchReason;

typedef struct Entry Entry;

struct CredsWaiter {
        Entry *entry;
        CredsWaiter *prev, *next;
        usec_t deadline;
        void (*done)(Credentials *creds, const StsError *error, void *userdata);
        void *userdata;
};

struct Entry {
        Creds *owner;
        Entry *hnext;       /* hash chain */
        Entry *prev, *next; /* all entries */
        char *role_arn;
        char *external_id;  /* "" for none */
        char *session;      /* the session parameters (sts_session_tags_params()), "" for none */
        char *session_name; /* RoleSessionName; "" names it as kube2iam does, after session_ip */
        char *session_ip;   /* the caller that names the next STS session */
        Credentials *creds;
        usec_t obtained;
        usec_t refresh_at;
        StsError *error;       /* the last failure */
        usec_t error_until;    /* a denial is answered from the cache until then */
        CredsEntryState state; /* changed by entry_enter() only */
        FetchReason reason;    /* QUEUED, FETCHING: why the call is made */
        void *fetch;           /* FETCHING: the fetcher's handle */
        usec_t fetch_started;  /* FETCHING */
        usec_t retry_at;       /* 0: no retry planned */
        usec_t backoff;
        unsigned in_use;
        usec_t last_requested;
        CredsWaiter *waiters;
        unsigned n_waiters;
};

struct Creds {
        CredsSettings settings;
        CredsFetcher fetcher;
        Entry *buckets[CREDS_BUCKETS];
        Entry *entries;
        size_t n_entries;
        usec_t (*now)(void *userdata);
        void *now_userdata;
        uint64_t rng;
        double tokens;
        usec_t tokens_at;
        unsigned throttle_factor;
        usec_t last_throttle;
        sd_event_source *timer;
        usec_t last_run; /* the clock of the last creds_run(), 0 before the first */
        bool running;
        void (*on_change)(void *userdata); /* new credentials worth keeping (a snapshot) */
        void *on_change_userdata;
        Metrics *metrics;
        MetricFamily *m_duration, *m_hits, *m_misses, *m_prefetches, *m_refreshes, *m_errors, *m_entries;
};

static usec_t now_of(Creds *c) {
        return c->now ? c->now(c->now_userdata) : now_realtime();
}

/* xorshift64*: jitter only, not security */
static double rand01(Creds *c) {
        c->rng ^= c->rng >> 12;
        c->rng ^= c->rng << 25;
        c->rng ^= c->rng >> 27;
        return (double) ((c->rng * 2685821657736338717ULL) >> 11) / (double) (1ULL << 53);
}

void creds_settings_from_config(const Config *config, CredsSettings *ret) {
        *ret = (CredsSettings){
                .session_ttl = config->iam_role_session_ttl,
                .error_ttl = config->iam_role_error_ttl,
                .sts_rate = config->sts_rate,
                .sts_burst = config->sts_burst,
        };
}

static unsigned duration_sec(const Creds *c) {
        return (unsigned) (2 * c->settings.session_ttl / USEC_PER_SEC);
}

static uint32_t hash_more(uint32_t h, const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                h ^= *p;
                h *= 16777619u;
        }
        /* a separator, so that ("ab", "c") and ("a", "bc") differ */
        h ^= 0xffu;
        return h * 16777619u;
}

static unsigned key_hash(const char *role, const char *ext, const char *name, const char *session) {
        return hash_more(hash_more(hash_more(sts_fnv32a(role), ext), name), session) & (CREDS_BUCKETS - 1);
}

/* The key with "" for every absent part. */
static CredsKey key_normalize(const CredsKey *k) {
        return (CredsKey){ .role_arn = k->role_arn,
                           .external_id = strempty(k->external_id),
                           .session_name = strempty(k->session_name),
                           .session = strempty(k->session) };
}

static void metric_role(MetricFamily *f, const char *role) {
        if (f)
                (void) metrics_counter_inc(f, (const char *const[]){ role });
}

static int register_metrics(Creds *c) {
        static const char *const role_label[] = { "role_arn", NULL };
        static const char *const code_role[] = { "code", "role_arn", NULL };
        Metrics *m = c->metrics;
        int r;

        r = metrics_add_family(m, "kube2iam_iam_request_duration_seconds",
                               "Duration of every STS AssumeRole call (misses, prefetches and refreshes).",
                               METRIC_HISTOGRAM, code_role, metrics_kube2iam_buckets,
                               ELEMENTSOF(metrics_kube2iam_buckets), 0, &c->m_duration);
        if (r >= 0)
                r = metrics_add_family(m, "kube2iam_iam_cache_hits_total",
                                       "Credential requests answered from the cache (errors included).",
                                       METRIC_COUNTER, role_label, NULL, 0, 0, &c->m_hits);
        if (r >= 0)
                r = metrics_add_family(m, "kube2iam_iam_cache_misses_total",
                                       "Credential requests that had to wait for STS.", METRIC_COUNTER,
                                       role_label, NULL, 0, 0, &c->m_misses);
        if (r >= 0)
                r = metrics_add_family(m, "kube2iam_iam_prefetches_total",
                                       "AssumeRole calls made to warm the cache for a new pod.",
                                       METRIC_COUNTER, role_label, NULL, 0, 0, &c->m_prefetches);
        if (r >= 0)
                r = metrics_add_family(
                        m, "kube2iam_iam_refreshes_total",
                        "AssumeRole calls made to refresh cached credentials ahead of expiry.",
                        METRIC_COUNTER, role_label, NULL, 0, 0, &c->m_refreshes);
        if (r >= 0)
                r = metrics_add_family(m, "kube2iam_iam_errors_total",
                                       "Failed AssumeRole calls by error code.", METRIC_COUNTER, code_role,
                                       NULL, 0, 0, &c->m_errors);
        if (r >= 0)
                r = metrics_add_family(m, "kube2iam_iam_cache_entries", "Roles in the credential cache.",
                                       METRIC_GAUGE, NULL, NULL, 0, 0, &c->m_entries);
        if (r < 0)
                return r;
        (void) metrics_touch(c->m_duration, (const char *const[]){ "Success", "" });
        (void) metrics_touch(c->m_duration, (const char *const[]){ "UnknownError", "" });
        (void) metrics_gauge_set(c->m_entries, NULL, 0);
        return 0;
}

int creds_new(const CredsSettings *settings, const CredsFetcher *fetcher, Metrics *metrics, Creds **ret) {
        _cleanup_(creds_freep) Creds *c = NULL;
        uint64_t seed = 0;
        int r;

        if (!settings || !fetcher || !fetcher->start || !ret)
                return -EINVAL;
        if (settings->session_ttl * 2 / USEC_PER_SEC < 900 ||
            settings->session_ttl * 2 / USEC_PER_SEC > 43200 || !(settings->sts_rate > 0) ||
            settings->sts_burst == 0)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->settings = *settings;
        c->fetcher = *fetcher;
        c->throttle_factor = 1;
        c->tokens = settings->sts_burst;
        c->tokens_at = USEC_INFINITY; /* set at first use, so an injected clock starts where it wants */
        if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
                seed = now_monotonic();
        c->rng = seed | 1;
        if (metrics) {
                c->metrics = metrics;
                r = register_metrics(c);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

void creds_set_clock(Creds *c, usec_t (*now)(void *userdata), void *userdata) {
        c->now = now;
        c->now_userdata = userdata;
}

void creds_set_seed(Creds *c, uint64_t seed) {
        c->rng = seed | 1;
}

size_t creds_size(const Creds *c) {
        return c ? c->n_entries : 0;
}

static Entry *entry_find(Creds *c, const CredsKey *k) {
        unsigned h = key_hash(k->role_arn, k->external_id, k->session_name, k->session);

        for (Entry *e = c->buckets[h]; e; e = e->hnext)
                if (streq(e->role_arn, k->role_arn) && streq(e->external_id, k->external_id) &&
                    streq(e->session_name, k->session_name) && streq(e->session, k->session))
                        return e;
        return NULL;
}

/* key's strings must not be NULL (key_normalize()). */
static int entry_get(Creds *c, const CredsKey *key, bool create, Entry **ret) {
        unsigned h;
        Entry *e = entry_find(c, key);

        if (e || !create) {
                *ret = e;
                return e ? 0 : -ENOENT;
        }
        if (c->n_entries >= CREDS_MAX_ENTRIES)
                return -ENOSPC;
        if (strlen(key->role_arn) > STS_ROLE_ARN_MAX || strlen(key->external_id) > STS_EXTERNAL_ID_MAX ||
            strlen(key->session_name) > STS_SESSION_NAME_MAX ||
            strlen(key->session) > CREDS_SESSION_PARAMS_MAX)
                return -EINVAL;
        e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->owner = c;
        e->role_arn = strdup(key->role_arn);
        e->external_id = strdup(key->external_id);
        e->session_name = strdup(key->session_name);
        e->session = strdup(key->session);
        if (!e->role_arn || !e->external_id || !e->session_name || !e->session) {
                free(e->role_arn);
                free(e->external_id);
                free(e->session_name);
                free(e->session);
                free(e);
                return -ENOMEM;
        }
        h = key_hash(e->role_arn, e->external_id, e->session_name, e->session);
        e->hnext = c->buckets[h];
        c->buckets[h] = e;
        e->next = c->entries;
        if (c->entries)
                c->entries->prev = e;
        c->entries = e;
        c->n_entries++;
        if (c->m_entries)
                (void) metrics_gauge_set(c->m_entries, NULL, (double) c->n_entries);
        *ret = e;
        return 0;
}

static void entry_free(Entry *e) {
        Creds *c = e->owner;
        Entry **pp = &c->buckets[key_hash(e->role_arn, e->external_id, e->session_name, e->session)];

        assert(!e->waiters);
        while (*pp && *pp != e)
                pp = &(*pp)->hnext;
        if (*pp)
                *pp = e->hnext;
        if (e->prev)
                e->prev->next = e->next;
        else
                c->entries = e->next;
        if (e->next)
                e->next->prev = e->prev;
        c->n_entries--;
        if (c->m_entries)
                (void) metrics_gauge_set(c->m_entries, NULL, (double) c->n_entries);
        if (e->state == CREDS_ENTRY_FETCHING && c->fetcher.cancel)
                c->fetcher.cancel(c->fetcher.userdata, e->fetch);
        credentials_unref(e->creds);
        sts_error_free(e->error);
        free(e->role_arn);
        free(e->external_id);
        free(e->session);
        free(e->session_name);
        free(e->session_ip);
        free(e);
}

static void waiter_unlink(CredsWaiter *w) {
        Entry *e = w->entry;

        if (w->prev)
                w->prev->next = w->next;
        else
                e->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        e->n_waiters--;
        w->prev = w->next = NULL;
}

void creds_waiter_cancel(CredsWaiter *w) {
        if (!w)
                return;
        waiter_unlink(w);
        free(w);
}

Creds *creds_free(Creds *c) {
        if (!c)
                return NULL;
        while (c->entries) {
                Entry *e = c->entries;
                StsError cancelled = { .class = STS_ERROR_TRANSIENT,
                                       .error = -ECANCELED,
                                       .code = (char *) "Cancelled" };

                while (e->waiters) {
                        CredsWaiter *w = e->waiters;
                        waiter_unlink(w);
                        w->done(NULL, &cancelled, w->userdata);
                        free(w);
                }
                entry_free(e);
        }
        sd_event_source_disable_unref(c->timer);
        free(c);
        return NULL;
}

/* The least life an entry's credentials must have to be handed out while STS works: the session TTL
 * (30 min at the defaults), or half the life STS granted if that is shorter. */
static usec_t min_serve(const Creds *c, const Entry *e) {
        usec_t life = e->creds ? usec_sub(e->creds->expiration, e->obtained) : 0;
        return MIN(c->settings.session_ttl, life / 2);
}

static bool fresh(const Creds *c, const Entry *e, usec_t now) {
        return e->creds && credentials_remaining(e->creds, now) >= min_serve(c, e) &&
               credentials_remaining(e->creds, now) > 0;
}

static bool valid(const Entry *e, usec_t now) {
        return e->creds && credentials_remaining(e->creds, now) > 0;
}

static double rate_now(const Creds *c) {
        return c->settings.sts_rate / c->throttle_factor;
}

static void bucket_refill(Creds *c, usec_t now) {
        if (c->tokens_at == USEC_INFINITY || now < c->tokens_at) {
                c->tokens_at = now;
                return;
        }
        c->tokens = MIN((double) c->settings.sts_burst,
                        c->tokens + rate_now(c) * (double) (now - c->tokens_at) / (double) USEC_PER_SEC);
        c->tokens_at = now;
        if (c->throttle_factor > 1 && now >= c->last_throttle + CREDS_THROTTLE_RECOVER_USEC) {
                c->throttle_factor = 1;
                log_info("STS calls back at their full rate (%g/s)", c->settings.sts_rate);
        }
}

static bool bucket_take(Creds *c, usec_t now) {
        bucket_refill(c, now);
        if (c->tokens < 1)
                return false;
        c->tokens -= 1;
        return true;
}

static usec_t backoff_next(Creds *c, Entry *e) {
        usec_t b = e->backoff == 0 ? CREDS_RETRY_MIN_USEC : MIN(2 * e->backoff, CREDS_RETRY_MAX_USEC);
        e->backoff = b;
        /* "equal jitter": half fixed, half random, so retries of many roles spread out */
        return b / 2 + (usec_t) (rand01(c) * (double) (b / 2));
}

/* Where an entry rests when no call runs or waits: what its last call left. */
static CredsEntryState entry_rest(const Entry *e) {
        return e->error ? CREDS_ENTRY_FAILED : e->creds ? CREDS_ENTRY_CACHED : CREDS_ENTRY_EMPTY;
}

static bool entry_busy(const Entry *e) {
        return e->state == CREDS_ENTRY_QUEUED || e->state == CREDS_ENTRY_FETCHING;
}

/* The one place an entry changes state. reason: why a call is queued or made (else unused). A call
 * is never queued or started while one runs; an entry rests in the state its contents say. */
static void entry_enter(Entry *e, CredsEntryState to, FetchReason reason, usec_t now) {
        switch (to) {
        case CREDS_ENTRY_QUEUED:
                assert(e->state != CREDS_ENTRY_FETCHING);
                e->reason = reason;
                break;
        case CREDS_ENTRY_FETCHING:
                assert(e->state != CREDS_ENTRY_FETCHING);
                e->reason = reason;
                e->fetch_started = now;
                break;
        case CREDS_ENTRY_EMPTY:
        case CREDS_ENTRY_CACHED:
        case CREDS_ENTRY_FAILED:
                assert(to == entry_rest(e));
                break;
        }
        if (e->state == CREDS_ENTRY_FETCHING)
                e->fetch = NULL; /* the call completed, failed to start, or was cancelled */
        e->state = to;
}

const char *creds_entry_state_to_string(CredsEntryState s) {
        static const char *const names[] = {
                [CREDS_ENTRY_EMPTY] = "empty",       [CREDS_ENTRY_QUEUED] = "queued",
                [CREDS_ENTRY_FETCHING] = "fetching", [CREDS_ENTRY_CACHED] = "cached",
                [CREDS_ENTRY_FAILED] = "failed",
        };
        return (size_t) s < ELEMENTSOF(names) ? names[s] : NULL;
}

static void set_error(Entry *e, StsError *err) {
        sts_error_free(e->error);
        e->error = err;
}

static void fail_fetch(Creds *c, Entry *e, const StsError *err, usec_t now);
static void reschedule(Creds *c);

static void start_fetch(Creds *c, Entry *e, FetchReason reason, usec_t now) {
        _cleanup_free_ char *session = NULL;
        _cleanup_(sts_error_freep) StsError *err = NULL;
        void *handle = NULL;
        int r;

        if (!isempty(e->session_name))
                r = (session = strdup(e->session_name)) ? 0 : -ENOMEM;
        else
                r = sts_role_session_name(e->session_ip ?: "0.0.0.0", e->role_arn, &session);
        if (r < 0) {
                e->retry_at = now + backoff_next(c, e);
                entry_enter(e, entry_rest(e), reason, now);
                return;
        }
        entry_enter(e, CREDS_ENTRY_FETCHING, reason, now);
        r = c->fetcher.start(c->fetcher.userdata, c, e, e->role_arn, session, duration_sec(c),
                             e->external_id, e->session, &handle, &err);
        if (r < 0) {
                entry_enter(e, entry_rest(e), reason, now);
                if (!err && sts_error_new(STS_ERROR_TRANSIENT, r, 0, "InternalError", NULL, &err) < 0)
                        return;
                fail_fetch(c, e, err, now);
                return;
        }
        e->fetch = handle;
        if (reason == FETCH_REFRESH)
                metric_role(c->m_refreshes, e->role_arn);
        else if (reason == FETCH_PREFETCH)
                metric_role(c->m_prefetches, e->role_arn);
}

/* Starts a fetch now if a token allows, else queues it for creds_run(). */
static void want_fetch(Creds *c, Entry *e, FetchReason reason, usec_t now) {
        if (e->state == CREDS_ENTRY_FETCHING)
                return;
        if (e->retry_at > now && !(reason == FETCH_MISS && e->error && e->error->class == STS_ERROR_DENIED))
                return; /* backing off: the retry is scheduled */
        if (bucket_take(c, now))
                start_fetch(c, e, reason, now);
        else
                entry_enter(e, CREDS_ENTRY_QUEUED, reason, now);
}

/* Answers and frees every waiter, in place: done() answers its own client and touches nothing
 * of the cache (no caller re-enters it; docs/pod-store.md). The entry's state is final by now. */
static void answer_waiters(Entry *e, Credentials *creds, const StsError *error) {
        while (e->waiters) {
                CredsWaiter *w = e->waiters;

                waiter_unlink(w);
                w->done(creds, creds ? NULL : error, w->userdata);
                free(w);
        }
}

static void fail_fetch(Creds *c, Entry *e, const StsError *err, usec_t now) {
        _cleanup_credentials_ Credentials *serve = NULL;
        bool answer = false;
        StsError *copy = NULL;

        if (c->m_errors)
                (void) metrics_counter_inc(c->m_errors, (const char *const[]){ err->code, e->role_arn });
        if (sts_error_dup(err, &copy) >= 0)
                set_error(e, copy);

        log_fields(
                err->class == STS_ERROR_DENIED ? LOG_WARNING : LOG_NOTICE,
                ((LogField[]){ { "MESSAGE_ID", err->class == STS_ERROR_DENIED ? LOG_MESSAGE_ID_ROLE_DENIED
                                                                              : LOG_MESSAGE_ID_STS_FAILURE },
                               { "ROLE_ARN", e->role_arn },
                               { "STS_ERROR_CODE", err->code },
                               { "STS_REQUEST_ID", err->request_id } }),
                4, "AssumeRole %s failed (%s, %s): %s", e->role_arn, err->code,
                sts_error_class_to_string(err->class), strna(err->message));

        switch (err->class) {
        case STS_ERROR_DENIED:
                e->error_until = now + c->settings.error_ttl;
                e->backoff = 0;
                e->retry_at = e->in_use > 0 ? now + MAX(c->settings.error_ttl, CREDS_DENIED_RETRY_USEC) : 0;
                /* a denial answers every waiter now, with valid credentials if some remain */
                answer = true;
                break;
        case STS_ERROR_THROTTLED:
                /* calls throttled together count once: escalate at most once a second */
                if (c->throttle_factor == 1 || now >= c->last_throttle + USEC_PER_SEC)
                        c->throttle_factor = MIN(c->throttle_factor * 2, CREDS_THROTTLE_MAX_FACTOR);
                c->last_throttle = now;
                c->tokens = 0;
                log_warning("STS is throttling: AssumeRole calls slowed to %g/s", rate_now(c));
                /* fall through */
        case STS_ERROR_TRANSIENT:
                e->retry_at = now + backoff_next(c, e);
                /* waiters keep waiting for the retry (until their deadline), unless something valid
                 * can be served right now */
                answer = valid(e, now);
                break;
        }
        entry_enter(e, entry_rest(e), e->reason, now);
        if (valid(e, now))
                serve = credentials_ref(e->creds);
        if (answer)
                answer_waiters(e, serve, e->error ?: err);
}

void creds_fetch_complete(Creds *c, void *token, Credentials *creds, const StsError *error) {
        Entry *e = token;
        usec_t now = now_of(c), life;
        double frac;

        if (!c || !e || e->state != CREDS_ENTRY_FETCHING)
                return;
        /* every AssumeRole call, whatever started it: kube2iam made STS calls only on a miss, so
         * dashboards read this histogram as "all STS calls" (kube2iam_iam_prefetches_total and
         * kube2iam_iam_refreshes_total tell the triggers apart, keeping kube2iam's label set) */
        if (c->m_duration)
                (void) metrics_histogram_observe(
                        c->m_duration,
                        (const char *const[]){ creds                  ? "Success"
                                               : error && error->code ? error->code
                                                                      : "UnknownError",
                                               e->role_arn },
                        (double) usec_sub(now, e->fetch_started) / (double) USEC_PER_SEC);

        if (!creds || credentials_remaining(creds, now) == 0) {
                StsError expired = { .class = STS_ERROR_TRANSIENT,
                                     .error = -ESTALE,
                                     .code = (char *) "ExpiredCredentials",
                                     .message =
                                             (char *) "STS returned credentials that are already expired" };
                fail_fetch(c, e, error ?: &expired, now);
                reschedule(c);
                return;
        }
        credentials_unref(e->creds);
        e->creds = credentials_ref(creds);
        e->obtained = now;
        life = usec_sub(creds->expiration, now);
        frac = CREDS_REFRESH_REMAINING_MIN +
               rand01(c) * (CREDS_REFRESH_REMAINING_MAX - CREDS_REFRESH_REMAINING_MIN);
        e->refresh_at = now + (usec_t) ((1.0 - frac) * (double) life);
        e->retry_at = 0;
        e->backoff = 0;
        e->error_until = 0;
        set_error(e, NULL);
        log_fields(
                LOG_DEBUG,
                ((LogField[]){ { "MESSAGE_ID", LOG_MESSAGE_ID_CREDS_ISSUED }, { "ROLE_ARN", e->role_arn } }),
                2, "AssumeRole %s: credentials valid for %llus", e->role_arn,
                (unsigned long long) (life / USEC_PER_SEC));
        entry_enter(e, CREDS_ENTRY_CACHED, e->reason, now);
        answer_waiters(e, creds, NULL);
        reschedule(c);
        if (c->on_change)
                c->on_change(c->on_change_userdata);
}

void creds_set_on_change(Creds *c, void (*on_change)(void *userdata), void *userdata) {
        c->on_change = on_change;
        c->on_change_userdata = userdata;
}

int creds_restore(Creds *c, const CredsKey *k, Credentials *creds) {
        usec_t now, life;
        double frac;
        CredsKey key;
        Entry *e;
        int r;

        if (!c || !k || !k->role_arn || !creds)
                return -EINVAL;
        now = now_of(c);
        if (credentials_remaining(creds, now) == 0 || creds->last_updated >= creds->expiration)
                return -ESTALE;
        /* every key: default sessions, tagged ones, pod-named ones, scoped-down ones */
        key = key_normalize(k);
        r = entry_get(c, &key, true, &e);
        if (r < 0)
                return r;
        if (e->creds || e->error || entry_busy(e))
                return -EEXIST; /* this run already knows better */
        e->creds = credentials_ref(creds);
        e->obtained = creds->last_updated;
        life = creds->expiration - creds->last_updated;
        frac = CREDS_REFRESH_REMAINING_MIN +
               rand01(c) * (CREDS_REFRESH_REMAINING_MAX - CREDS_REFRESH_REMAINING_MIN);
        e->refresh_at = e->obtained + (usec_t) ((1.0 - frac) * (double) life);
        entry_enter(e, CREDS_ENTRY_CACHED, FETCH_REFRESH, now);
        reschedule(c);
        return 0;
}

int creds_foreach_valid(Creds *c, int (*f)(const CredsKey *key, Credentials *creds, void *userdata),
                        void *userdata) {
        usec_t now = now_of(c);

        for (Entry *e = c->entries; e; e = e->next) {
                CredsKey key = { .role_arn = e->role_arn,
                                 .external_id = e->external_id,
                                 .session_name = e->session_name,
                                 .session = e->session };
                int r;

                if (!valid(e, now))
                        continue;
                r = f(&key, e->creds, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int immediate_error(StsErrorClass class, int error, const char *code, const char *message,
                           StsError **ret) {
        int r = sts_error_new(class, error, 0, code, message, ret);
        return r < 0 ? r : error;
}

int creds_get(Creds *c, const CredsRequest *req, Credentials **ret_creds, StsError **ret_error,
              CredsWaiter **ret_waiter) {
        usec_t now;
        Entry *e;
        CredsWaiter *w;
        int r;

        if (!c || !req || !req->role_arn || !req->done || !ret_creds || !ret_error)
                return -EINVAL;
        now = now_of(c);
        CredsKey key = key_normalize(&(const CredsKey){ .role_arn = req->role_arn,
                                                        .external_id = req->external_id,
                                                        .session_name = req->session_name,
                                                        .session = req->session });
        r = entry_get(c, &key, true, &e);
        if (r == -ENOSPC)
                return immediate_error(STS_ERROR_TRANSIENT, r, "TooManyRoles",
                                       "the credential cache is full", ret_error);
        if (r < 0)
                return immediate_error(STS_ERROR_DENIED, r, "InvalidParameter",
                                       "role ARN or external id too long", ret_error);
        e->last_requested = now;
        if (req->caller_ip && (!e->session_ip || !streq(e->session_ip, req->caller_ip))) {
                char *ip = strdup(req->caller_ip);
                if (ip)
                        free_and_replace(e->session_ip, ip);
        }

        if (fresh(c, e, now)) {
                metric_role(c->m_hits, e->role_arn);
                *ret_creds = credentials_ref(e->creds);
                return 0;
        }
        if (e->error && e->error->class == STS_ERROR_DENIED && now < e->error_until) {
                /* kube2iam counts error-cache hits as hits */
                metric_role(c->m_hits, e->role_arn);
                if (valid(e, now)) {
                        *ret_creds = credentials_ref(e->creds);
                        return 0;
                }
                r = sts_error_dup(e->error, ret_error);
                return r < 0 ? r : e->error->error;
        }
        /* STS is failing and we hold valid credentials: serve them rather than make the caller wait */
        if (valid(e, now) && e->error && e->state != CREDS_ENTRY_FETCHING) {
                metric_role(c->m_hits, e->role_arn);
                /* and ask again in the background once any backoff has passed */
                if (e->state != CREDS_ENTRY_QUEUED && e->retry_at <= now)
                        want_fetch(c, e, FETCH_REFRESH, now);
                *ret_creds = credentials_ref(e->creds);
                return 0;
        }
        if (e->n_waiters >= CREDS_MAX_WAITERS_PER_ENTRY)
                return immediate_error(STS_ERROR_THROTTLED, -EBUSY, "TooManyWaiters", NULL, ret_error);

        metric_role(c->m_misses, e->role_arn);
        /* Start (or queue) the fetch before this caller waits, so a failure known at once (a bad ARN,
         * a partition mismatch) is returned here rather than through done() from inside this call. */
        if (e->state != CREDS_ENTRY_FETCHING) {
                if (e->error && e->error->class == STS_ERROR_DENIED)
                        e->retry_at = 0; /* the cached denial expired: ask again */
                want_fetch(c, e, FETCH_MISS, now);
                if (e->state == CREDS_ENTRY_FAILED && e->error->class == STS_ERROR_DENIED) {
                        r = sts_error_dup(e->error, ret_error);
                        reschedule(c);
                        return r < 0 ? r : e->error->error;
                }
        }
        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        *w = (CredsWaiter){
                .entry = e, .deadline = req->deadline, .done = req->done, .userdata = req->userdata
        };
        w->next = e->waiters;
        if (e->waiters)
                e->waiters->prev = w;
        e->waiters = w;
        e->n_waiters++;
        if (ret_waiter)
                *ret_waiter = w;
        reschedule(c);
        return CREDS_WAIT;
}

int creds_prefetch(Creds *c, const CredsKey *key, const char *caller_ip) {
        CredsKey k;
        usec_t now;
        Entry *e;
        int r;

        if (!c || !key || !key->role_arn)
                return -EINVAL;
        now = now_of(c);
        k = key_normalize(key);
        r = entry_get(c, &k, true, &e);
        if (r < 0)
                return r;
        if (caller_ip && !e->session_ip)
                e->session_ip = strdup(caller_ip);
        if (fresh(c, e, now) || entry_busy(e) || (e->error && now < e->error_until))
                return 0;
        want_fetch(c, e, FETCH_PREFETCH, now);
        reschedule(c);
        return 0;
}

int creds_set_in_use(Creds *c, const CredsKey *key, bool in_use) {
        CredsKey k;
        Entry *e;
        int r;

        if (!c || !key || !key->role_arn)
                return -EINVAL;
        k = key_normalize(key);
        r = entry_get(c, &k, in_use, &e);
        if (r < 0)
                return in_use ? r : 0;
        if (in_use)
                e->in_use++;
        else if (e->in_use > 0)
                e->in_use--;
        reschedule(c);
        return 0;
}

static bool entry_droppable(const Creds *c, const Entry *e, usec_t now) {
        return !entry_busy(e) && !e->waiters && e->in_use == 0 && !fresh(c, e, now) &&
               !(e->error && e->error->class == STS_ERROR_DENIED && now < e->error_until);
}

/* Someone still wants this entry kept fresh: a live pod, a waiting caller, or a request since the
 * last fetch that is recent (within one credential life, 2 x session TTL), so a role nobody asks
 * for any more is not retried forever while STS fails. */
static bool entry_wanted(const Creds *c, const Entry *e, usec_t now) {
        return e->in_use > 0 || e->waiters ||
               (e->last_requested > e->obtained && now < e->last_requested + 2 * c->settings.session_ttl);
}

typedef enum EntryAction {
        ENTRY_IDLE,
        ENTRY_FETCH, /* a retry or a refresh is due: queue it for a token */
        ENTRY_DROP,
} EntryAction;

/* What creds_run() does for an entry at `now`, waiters' deadlines and queued fetches aside. The one
 * place that decides it: creds_next_wakeup() asks this same function at every time its answer can
 * change, so the timer is never due for an entry that creds_run() would skip. A timer due "now"
 * without progress outran the HTTP server once (issue 11: annotation churn starved every request). */
static EntryAction entry_action(const Creds *c, const Entry *e, usec_t now) {
        bool wanted;

        if (entry_busy(e))
                return ENTRY_IDLE; /* the fetch's completion or a token moves it on */
        wanted = entry_wanted(c, e, now);
        if (e->retry_at > 0 && wanted)
                return now >= e->retry_at ? ENTRY_FETCH : ENTRY_IDLE;
        if (e->creds && e->retry_at == 0 && wanted && !(e->error && e->error->class == STS_ERROR_DENIED) &&
            now >= e->refresh_at)
                return ENTRY_FETCH;
        return entry_droppable(c, e, now) ? ENTRY_DROP : ENTRY_IDLE;
}

/* The earliest time >= now at which entry_action() has something to do, USEC_INFINITY for never.
 * entry_action() compares the clock with these thresholds only (with <, <= or >=), so its answer is
 * constant between them: trying each threshold and the microsecond after it is exact. */
static usec_t entry_due(const Creds *c, const Entry *e, usec_t now) {
        const usec_t at[] = {
                now,
                e->retry_at,
                e->refresh_at,
                e->creds ? usec_sub(e->creds->expiration, min_serve(c, e)) : USEC_INFINITY,
                e->creds ? e->creds->expiration : USEC_INFINITY,
                e->error_until,
                usec_add(e->last_requested, 2 * c->settings.session_ttl),
        };
        usec_t due = USEC_INFINITY;

        if (entry_busy(e))
                return USEC_INFINITY;
        for (size_t i = 0; i < ELEMENTSOF(at); i++)
                for (usec_t k = 0; k <= 1; k++) {
                        usec_t t = usec_add(at[i], k);

                        if (t >= now && t < due && entry_action(c, e, t) != ENTRY_IDLE)
                                due = t;
                }
        return due;
}

/* A waiter whose deadline passed: at the deadline, valid credentials beat an error. */
static void answer_expired(Entry *e, CredsWaiter *w, usec_t now) {
        _cleanup_(sts_error_freep) StsError *error = NULL;

        waiter_unlink(w);
        if (valid(e, now)) {
                w->done(e->creds, NULL, w->userdata);
                free(w);
                return;
        }
        if (e->error && sts_error_dup(e->error, &error) >= 0)
                error->error = -ETIMEDOUT; /* keep the code that explains why */
        else
                (void) sts_error_new(STS_ERROR_TRANSIENT, -ETIMEDOUT, 0, "RequestTimeout",
                                     "no credentials from STS before the deadline", &error);
        if (error)
                w->done(NULL, error, w->userdata);
        else {
                StsError oom = { .class = STS_ERROR_TRANSIENT,
                                 .error = -ETIMEDOUT,
                                 .code = (char *) "RequestTimeout" };
                w->done(NULL, &oom, w->userdata);
        }
        free(w);
}

void creds_run(Creds *c) {
        usec_t now;

        if (!c || c->running)
                return;
        c->running = true;
        now = now_of(c);
        c->last_run = now;
        bucket_refill(c, now);

        for (Entry *e = c->entries, *next; e; e = next) {
                next = e->next;

                for (CredsWaiter *w = e->waiters, *wn; w; w = wn) {
                        wn = w->next;
                        if (w->deadline <= now)
                                answer_expired(e, w, now);
                }
                /* A queued prefetch or refresh whose pod is gone (its external id changed again, say)
                 * is worth no STS call: under annotation churn these would queue by the thousand. */
                if (e->state == CREDS_ENTRY_QUEUED && !entry_wanted(c, e, now))
                        entry_enter(e, entry_rest(e), e->reason, now);
                switch (entry_action(c, e, now)) {
                case ENTRY_FETCH:
                        entry_enter(e, CREDS_ENTRY_QUEUED, e->waiters ? FETCH_MISS : FETCH_REFRESH, now);
                        break;
                case ENTRY_DROP:
                        log_debug("Dropping unused credentials of %s", e->role_arn);
                        entry_free(e);
                        break;
                case ENTRY_IDLE:
                        break;
                }
        }

        /* queued fetches: entries with waiting callers first, then refreshes and prefetches */
        for (int pass = 0; pass < 2; pass++)
                for (Entry *e = c->entries; e; e = e->next) {
                        if (e->state != CREDS_ENTRY_QUEUED || (pass == 0) != (e->waiters != NULL))
                                continue;
                        if (!bucket_take(c, now))
                                goto out;
                        start_fetch(c, e, e->waiters ? FETCH_MISS : e->reason, now);
                }
out:
        c->running = false;
        reschedule(c);
}

usec_t creds_next_wakeup(Creds *c) {
        usec_t t = USEC_INFINITY, now;
        bool queued = false;

        if (!c)
                return USEC_INFINITY;
        now = now_of(c);
        for (Entry *e = c->entries; e; e = e->next) {
                for (CredsWaiter *w = e->waiters; w; w = w->next)
                        t = MIN(t, w->deadline);
                if (e->state == CREDS_ENTRY_QUEUED)
                        queued = true;
                t = MIN(t, entry_due(c, e, now));
        }
        if (queued) {
                /* the next token; a microsecond over, so rounding never wakes us just before it */
                double need = c->tokens >= 1 ? 0 : (1 - c->tokens) / rate_now(c);
                t = MIN(t, now + (usec_t) ceil(need * (double) USEC_PER_SEC) + (c->tokens >= 1 ? 0 : 1));
        }
        return t;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        creds_run(userdata);
        return 0;
}

static void reschedule(Creds *c) {
        usec_t t;
        int r;

        if (!c->timer || c->running)
                return;
        /* shutdown: pod-roles gives its in-use counts back after the loop finished, when sd-event
         * refuses timers (-ESTALE) and nothing is left to schedule */
        if (sd_event_get_state(sd_event_source_get_event(c->timer)) == SD_EVENT_FINISHED)
                return;
        t = creds_next_wakeup(c);
        if (t != USEC_INFINITY && c->last_run > 0)
                t = MAX(t, usec_add(c->last_run, CREDS_TIMER_MIN_GAP_USEC));
        if (t == USEC_INFINITY) {
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
                return;
        }
        r = sd_event_source_set_time(c->timer, MAX(t, 1));
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Failed to schedule the credential cache timer: %m");
}

int creds_attach_event(Creds *c, sd_event *event) {
        int r;

        if (!c || !event || c->timer)
                return -EINVAL;
        r = sd_event_add_time(event, &c->timer, CLOCK_REALTIME, USEC_INFINITY, 1, on_timer, c);
        if (r < 0)
                return log_error_errno(r, "Failed to add the credential cache timer: %m");
        (void) sd_event_source_set_description(c->timer, "creds-timer");
        reschedule(c);
        return 0;
}

static const char *entry_state_now(const Creds *c, const Entry *e, usec_t now) {
        /* the state; at rest, what its credentials are worth now */
        return entry_busy(e) || e->state == CREDS_ENTRY_EMPTY ? creds_entry_state_to_string(e->state)
               : fresh(c, e, now)                             ? "fresh"
               : valid(e, now)                                ? "stale"
                                                              : "error";
}

int creds_describe(Creds *c, const CredsKey *key, CredsEntryInfo *ret) {
        CredsKey k = key_normalize(key);
        Entry *e = entry_find(c, &k);
        usec_t now = now_of(c);

        if (!e)
                return -ENOENT;
        *ret = (CredsEntryInfo){
                .state = entry_state_now(c, e, now),
                .expiration = e->creds ? e->creds->expiration : 0,
                .refresh_at = e->creds ? e->refresh_at : 0,
                .retry_at = e->retry_at,
                .in_use = e->in_use,
                .waiters = e->n_waiters,
                .error = e->error,
        };
        return 0;
}

int creds_debug_json(Creds *c, StrBuf *out) {
        usec_t now = now_of(c);
        bool first = true;

        strbuf_append_char(out, '[');
        for (Entry *e = c->entries; e; e = e->next) {
                char buf[TIMESTAMP_MAX];
                const char *state = entry_state_now(c, e, now);

                strbuf_appendf(out, "%s{\"roleArn\":\"", first ? "" : ",");
                /* role ARNs are validated printable ASCII; escape what JSON needs anyway */
                for (const char *p = e->role_arn; *p; p++)
                        if (*p == '"' || *p == '\\')
                                strbuf_appendf(out, "\\%c", *p);
                        else if ((unsigned char) *p >= 0x20)
                                strbuf_append_char(out, *p);
                strbuf_appendf(out, "\",\"externalId\":%s,\"state\":\"%s\",\"inUse\":%u,\"waiters\":%u",
                               isempty(e->external_id) ? "false" : "true", state, e->in_use, e->n_waiters);
                if (e->creds)
                        strbuf_appendf(out, ",\"expiration\":\"%s\"",
                                       format_timestamp_imds(e->creds->expiration, buf, sizeof buf));
                if (e->error)
                        strbuf_appendf(out, ",\"lastError\":\"%s\"", e->error->code);
                strbuf_append_char(out, '}');
                first = false;
        }
        strbuf_append_char(out, ']');
        return strbuf_error(out);
}

/* The production fetcher: AssumeRole through an StsClient. */
typedef struct StsFetch {
        Creds *creds;
        void *token;
        StsCall *call;
} StsFetch;

static void on_sts_done(StsClient *sts, Credentials *creds, const StsError *error, void *userdata) {
        StsFetch *f = userdata;
        Creds *c = f->creds;
        void *token = f->token;

        free(f);
        creds_fetch_complete(c, token, creds, error);
}

static int sts_fetch_start(void *userdata, Creds *c, void *token, const char *role_arn,
                           const char *session_name, unsigned duration, const char *external_id,
                           const char *session, void **ret_handle, StsError **ret_error) {
        StsFetch *f = calloc(1, sizeof *f);
        StsRefusal refusal;
        int r;

        if (!f)
                return -ENOMEM;
        f->creds = c;
        f->token = token;
        r = sts_assume_role(userdata, role_arn, session_name, duration, external_id, session, on_sts_done, f,
                            &f->call, &refusal);
        if (r < 0) {
                free(f);
                (void) sts_refusal_error(refusal, r, ret_error);
                return r;
        }
        *ret_handle = f;
        return 0;
}

static void sts_fetch_cancel(void *userdata, void *handle) {
        StsFetch *f = handle;

        if (!f)
                return;
        sts_call_cancel(f->call);
        free(f);
}

int creds_new_sts(const CredsSettings *settings, StsClient *sts, Metrics *metrics, Creds **ret) {
        CredsFetcher f = { .start = sts_fetch_start, .cancel = sts_fetch_cancel, .userdata = sts };

        if (!sts)
                return -EINVAL;
        return creds_new(settings, &f, metrics, ret);
}
