/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "http/http-client.h"
#include "upstream-client.h"
#include "log.h"
#include "node-credentials.h"
#include "sigv4.h"
#include "string-util.h"
#include "sts-client.h"

struct StsCall {
        StsClient *client;
        StsCall *prev, *next;
        CURL *easy;
        struct curl_slist *headers; /* holds the session token and the signature: wiped */
        char *form;
        HttpBody reply; /* holds secrets: wiped */
        sts_done_t done;
        void *userdata;
};

struct StsClient {
        HttpClient *http;
        NodeCredentials *node;
        char *override;
        char *region;
        SigV4Signer *signer; /* for the current region; keeps the derived key */
        usec_t timeout;
        StsCall *calls;
        unsigned n_calls;
        CURL *idle[STS_CLIENT_MAX_CALLS]; /* reused easy handles: the multi handle keeps the connections */
        unsigned n_idle;
        UpstreamClient *imds; /* region discovery, not owned */
        sd_event_source *region_timer;
        usec_t region_retry;
        bool region_fetching;
};

int sts_client_new(HttpClient *http, NodeCredentials *node, const char *endpoint_override, StsClient **ret) {
        _cleanup_(sts_client_freep) StsClient *c = NULL;

        if (!http || !ret)
                return -EINVAL;
        if (endpoint_override && !startswith(endpoint_override, "https://") &&
            !startswith(endpoint_override, "http://"))
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->http = http;
        c->node = node;
        c->timeout = STS_CLIENT_TIMEOUT_USEC;
        if (endpoint_override && !(c->override = strdup(endpoint_override)))
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

static void call_free(StsCall *call) {
        StsClient *c = call->client;

        if (call->prev)
                call->prev->next = call->next;
        else
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        c->n_calls--;
        if (call->easy) {
                http_client_cancel(c->http, call->easy);
                if (c->n_idle < ELEMENTSOF(c->idle))
                        c->idle[c->n_idle++] = call->easy;
                else
                        curl_easy_cleanup(call->easy);
        }
        sts_headers_free_erase(call->headers);
        call->form = erase_and_free(call->form); /* a web identity token travels in the form */
        strbuf_done_erase(&call->reply.buf);
        free(call);
}

StsClient *sts_client_free(StsClient *c) {
        if (!c)
                return NULL;
        while (c->calls)
                call_free(c->calls);
        for (unsigned i = 0; i < c->n_idle; i++)
                curl_easy_cleanup(c->idle[i]);
        sd_event_source_disable_unref(c->region_timer);
        sigv4_signer_free(c->signer);
        free(c->override);
        free(c->region);
        free(c);
        return NULL;
}

int sts_client_set_region(StsClient *c, const char *region) {
        SigV4Signer *s = NULL;
        char *copy;
        int r;

        if (!c || !aws_region_valid(region))
                return -EINVAL;
        if (c->region && streq(c->region, region))
                return 0;
        r = sigv4_signer_new(region, "sts", &s);
        if (r < 0)
                return r;
        copy = strdup(region);
        if (!copy) {
                sigv4_signer_free(s);
                return -ENOMEM;
        }
        free(c->region);
        c->region = copy;
        sigv4_signer_free(c->signer);
        c->signer = s;
        return 0;
}

const char *sts_client_get_region(const StsClient *c) {
        return c ? c->region : NULL;
}

void sts_client_set_timeout(StsClient *c, usec_t timeout) {
        if (c && timeout > 0)
                c->timeout = timeout;
}

unsigned sts_client_calls_running(const StsClient *c) {
        return c ? c->n_calls : 0;
}

void sts_call_cancel(StsCall *call) {
        if (call)
                call_free(call);
}

static void finish_error(StsCall *call, StsErrorClass class, int error, long status, const char *code,
                         const char *message) {
        _cleanup_(sts_error_freep) StsError *e = NULL;
        StsClient *c = call->client;
        sts_done_t done = call->done;
        void *userdata = call->userdata;

        call_free(call);
        if (sts_error_new(class, error, status, code, message, &e) < 0) {
                /* still report, without the details we could not allocate */
                StsError fallback = { .class = class,
                                      .error = -ENOMEM,
                                      .http_status = status,
                                      .code = (char *) "OutOfMemory" };
                done(c, NULL, &fallback, userdata);
                return;
        }
        done(c, NULL, e, userdata);
}

static void on_done(HttpClient *http, CURL *easy, int error, CURLcode result, void *userdata) {
        StsCall *call = userdata;
        StsClient *c = call->client;
        _cleanup_credentials_ Credentials *creds = NULL;
        _cleanup_(sts_error_freep) StsError *e = NULL;
        sts_done_t done = call->done;
        void *done_userdata = call->userdata;
        long status = 0;
        int r;

        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        if (call->reply.overflow)
                return finish_error(call, STS_ERROR_TRANSIENT, -EFBIG, status, "MalformedReply",
                                    "reply too large");
        if (error < 0)
                return finish_error(call, STS_ERROR_TRANSIENT, error, 0,
                                    error == -ETIMEDOUT ? "RequestTimeout" : "TransportError",
                                    curl_easy_strerror(result));
        r = sts_reply_parse(call->reply.buf.s, call->reply.buf.len, status, now_realtime(), &creds, &e);
        if (r < 0)
                return finish_error(call, STS_ERROR_TRANSIENT, r, status, "OutOfMemory", NULL);
        call_free(call);
        done(c, creds, e, done_userdata);
}

void sts_headers_free_erase(struct curl_slist *l) {
        for (struct curl_slist *h = l; h; h = h->next)
                explicit_bzero(h->data, strlen(h->data));
        curl_slist_free_all(l);
}

int sts_url_host_header(const char *url, char **ret_host, char **ret_path) {
        CURLU *u = curl_url();
        char *host = NULL, *port = NULL, *path = NULL;
        int r = -EINVAL;

        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
                goto finish;
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port) {
                if (asprintf(ret_host, "%s:%s", host, port) < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
        } else if (!(*ret_host = strdup(host))) {
                r = -ENOMEM;
                goto finish;
        }
        if (!(*ret_path = strdup(path))) {
                *ret_host = mfree(*ret_host);
                r = -ENOMEM;
                goto finish;
        }
        r = 0;
finish:
        curl_free(host);
        curl_free(port);
        curl_free(path);
        curl_url_cleanup(u);
        return r;
}

int sts_header_append(struct curl_slist **l, const char *name, const char *value) {
        _cleanup_erase_ char *h = NULL;
        struct curl_slist *n;

        if ((value ? asprintf(&h, "%s: %s", name, value) : asprintf(&h, "%s:", name)) < 0) {
                h = NULL;
                return -ENOMEM;
        }
        n = curl_slist_append(*l, h);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static int call_start(StsClient *c, const char *url, char *form, const SigV4Signature *sig,
                      const Secret *session_token, sts_done_t done, void *userdata, StsCall **ret_call);

static int refuse(StsRefusal *ret, StsRefusal why, int error) {
        if (ret)
                *ret = why;
        return error;
}

int sts_assume_role(StsClient *c, const char *role_arn, const char *session_name, unsigned duration_sec,
                    const char *external_id, const char *session_params, sts_done_t done, void *userdata,
                    StsCall **ret_call, StsRefusal *ret_refusal) {
        _cleanup_free_ char *url = NULL, *signing_region = NULL, *form = NULL, *host = NULL, *path = NULL;
        _cleanup_(sigv4_signer_freep) SigV4Signer *override_signer = NULL;
        _cleanup_sigv4_signature_ SigV4Signature sig = {};
        SigV4Signer *signer;
        Credentials *node;
        int r;

        /* anything not named below is an internal failure (memory, signing) */
        refuse(ret_refusal, STS_REFUSAL_INTERNAL, 0);
        if (!c || !role_arn || !session_name || !done)
                return refuse(ret_refusal, STS_REFUSAL_INVALID_PARAMETER, -EINVAL);
        r = sts_assume_role_form(role_arn, session_name, duration_sec, external_id, session_params, &form);
        if (r == -EINVAL)
                return refuse(ret_refusal, STS_REFUSAL_INVALID_PARAMETER, r);
        if (r < 0)
                return r;
        r = sts_endpoint_resolve(c->override, c->region, role_arn, &url, &signing_region);
        if (r == -EINVAL && !c->region && !c->override)
                return refuse(ret_refusal, STS_REFUSAL_NO_REGION, -EADDRNOTAVAIL);
        if (r == -EXDEV)
                return refuse(ret_refusal, STS_REFUSAL_PARTITION_MISMATCH, r);
        if (r == -EINVAL)
                return refuse(ret_refusal, STS_REFUSAL_INVALID_PARAMETER, r);
        if (r < 0)
                return r;
        node = c->node ? node_credentials_get(c->node) : NULL;
        if (!node)
                return refuse(ret_refusal, STS_REFUSAL_NO_NODE_CREDENTIALS, -ENOKEY);
        if (c->n_calls >= STS_CLIENT_MAX_CALLS)
                return refuse(ret_refusal, STS_REFUSAL_BUSY, -EBUSY);
        r = sts_url_host_header(url, &host, &path);
        if (r < 0)
                return r;

        signer = c->signer;
        if (!signer) {
                r = sigv4_signer_new(signing_region, "sts", &override_signer);
                if (r < 0)
                        return r;
                signer = override_signer;
        }
        SigV4Header headers[] = {
                { "Host", host },
                { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" },
        };
        SigV4Request req = {
                .method = "POST",
                .path = path,
                .headers = headers,
                .n_headers = ELEMENTSOF(headers),
                .body = form,
                .body_size = strlen(form),
                .normalize_path = true,
        };
        SigV4Credentials sc = {
                .access_key_id = node->access_key_id,
                .secret_access_key = node->secret_access_key,
                .session_token = node->session_token,
        };
        r = sigv4_sign(signer, &req, &sc, now_realtime(), &sig);
        if (r < 0)
                return r;

        return call_start(c, url, TAKE_PTR(form), &sig, node->session_token, done, userdata, ret_call);
}

/* Sends form (taken) to url; sig NULL for an unsigned call. */
static int call_start(StsClient *c, const char *url, char *form, const SigV4Signature *sig,
                      const Secret *session_token, sts_done_t done, void *userdata, StsCall **ret_call) {
        StsCall *call;
        int r;

        call = calloc(1, sizeof *call);
        if (!call) {
                erase_and_free(form);
                return -ENOMEM;
        }
        call->client = c;
        call->done = done;
        call->userdata = userdata;
        call->reply.max = STS_REPLY_MAX_BYTES;
        call->reply.buf.erase = true;
        call->form = form;
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        c->n_calls++;

        r = sts_header_append(&call->headers, "Content-Type",
                              "application/x-www-form-urlencoded; charset=utf-8");
        if (r >= 0 && sig)
                r = sts_header_append(&call->headers, "X-Amz-Date", sig->amz_date);
        if (r >= 0 && sig)
                r = sts_header_append(&call->headers, "Authorization", sig->authorization);
        if (r >= 0 && sig && session_token)
                r = sts_header_append(&call->headers, "X-Amz-Security-Token", secret_reveal(session_token));
        if (r >= 0)
                r = sts_header_append(&call->headers, "Expect", NULL);
        if (r < 0)
                goto fail;

        call->easy = c->n_idle > 0 ? c->idle[--c->n_idle] : curl_easy_init();
        if (!call->easy) {
                r = -ENOMEM;
                goto fail;
        }
        curl_easy_reset(call->easy);
        r = http_client_prepare(call->easy,
                                &(const HttpRequestOptions){ .url = url,
                                                             .protocols = HTTP_PROTOCOLS_HTTP_HTTPS,
                                                             .timeout = c->timeout });
        if (r < 0)
                goto fail;
        if (curl_easy_setopt(call->easy, CURLOPT_POSTFIELDS, call->form) != CURLE_OK ||
            curl_easy_setopt(call->easy, CURLOPT_POSTFIELDSIZE, (long) strlen(call->form)) != CURLE_OK ||
            curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, call->headers) != CURLE_OK ||
            curl_easy_setopt(call->easy, CURLOPT_WRITEFUNCTION, http_body_write) != CURLE_OK ||
            curl_easy_setopt(call->easy, CURLOPT_WRITEDATA, &call->reply) != CURLE_OK) {
                r = -EIO;
                goto fail;
        }
        r = http_client_start(c->http, call->easy, on_done, call);
        if (r < 0)
                goto fail;
        if (ret_call)
                *ret_call = call;
        return 0;
fail:
        call_free(call);
        return r;
}

int sts_assume_role_with_web_identity(StsClient *c, const char *role_arn, const char *session_name,
                                      unsigned duration_sec, const Secret *token, sts_done_t done,
                                      void *userdata, StsCall **ret_call) {
        _cleanup_free_ char *url = NULL, *signing_region = NULL;
        char *form = NULL;
        int r;

        if (!c || !role_arn || !session_name || !token || !done)
                return -EINVAL;
        r = sts_web_identity_form(role_arn, session_name, duration_sec, token, &form);
        if (r < 0)
                return r;
        r = sts_endpoint_resolve(c->override, c->region, role_arn, &url, &signing_region);
        if (r == -EINVAL && !c->region && !c->override)
                r = -EADDRNOTAVAIL;
        if (r >= 0 && c->n_calls >= STS_CLIENT_MAX_CALLS)
                r = -EBUSY;
        if (r < 0) {
                erase_and_free(form);
                return r;
        }
        /* unsigned: the token proves who calls (the STS API reference says so for this action) */
        return call_start(c, url, form, NULL, NULL, done, userdata, ret_call);
}

static int region_fetch(StsClient *c);

static int on_region_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        StsClient *c = userdata;

        if (region_fetch(c) < 0) {
                c->region_retry = MIN(2 * c->region_retry, STS_REGION_RETRY_MAX_USEC);
                (void) sd_event_source_set_time_relative(c->region_timer, c->region_retry);
                (void) sd_event_source_set_enabled(c->region_timer, SD_EVENT_ONESHOT);
        }
        return 0;
}

static void on_region(UpstreamClient *imds, int error, const char *value, void *userdata) {
        StsClient *c = userdata;
        int r;

        c->region_fetching = false;
        r = error < 0 ? error : sts_client_set_region(c, value);
        if (r >= 0) {
                log_info("AWS region %s (from the instance metadata), STS calls go to its regional endpoint",
                         value);
                return;
        }
        log_warning_errno(r,
                          "Failed to read the AWS region from the instance metadata, retrying in %llus: %m",
                          (unsigned long long) (c->region_retry / USEC_PER_SEC));
        (void) sd_event_source_set_time_relative(c->region_timer, c->region_retry);
        (void) sd_event_source_set_enabled(c->region_timer, SD_EVENT_ONESHOT);
        c->region_retry = MIN(2 * c->region_retry, STS_REGION_RETRY_MAX_USEC);
}

static int region_fetch(StsClient *c) {
        int r;

        if (c->region_fetching)
                return 0;
        r = upstream_client_get_region(c->imds, on_region, c);
        if (r < 0)
                return r;
        c->region_fetching = true;
        return 0;
}

int sts_client_discover_region(StsClient *c, UpstreamClient *imds) {
        _cleanup_free_ char *region = NULL;
        int r;

        if (!c)
                return -EINVAL;
        r = aws_region_from_env(&region);
        if (r == -EINVAL)
                return log_error_errno(r, "AWS_REGION / AWS_DEFAULT_REGION is not a valid region name");
        if (r >= 0) {
                r = sts_client_set_region(c, region);
                if (r < 0)
                        return r;
                log_info("AWS region %s (from the environment)", region);
                return 0;
        }
        if (!imds)
                return log_error_errno(-ENOENT,
                                       "No AWS region: set AWS_REGION or let the instance metadata tell it");
        c->imds = imds;
        c->region_retry = STS_REGION_RETRY_MIN_USEC;
        if (!c->region_timer) {
                r = sd_event_add_time(http_client_get_event(c->http), &c->region_timer, CLOCK_MONOTONIC,
                                      USEC_INFINITY, USEC_PER_MSEC, on_region_timer, c);
                if (r < 0)
                        return log_error_errno(r, "Failed to add the region discovery timer: %m");
                (void) sd_event_source_set_enabled(c->region_timer, SD_EVENT_OFF);
        }
        r = region_fetch(c);
        if (r < 0) {
                (void) sd_event_source_set_time_relative(c->region_timer, c->region_retry);
                (void) sd_event_source_set_enabled(c->region_timer, SD_EVENT_ONESHOT);
        }
        return 1;
}
