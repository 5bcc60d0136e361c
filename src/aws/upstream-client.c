/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "endpoints.h"
#include "http/http-client.h"
#include "upstream-client.h"
#include "log.h"
#include "string-util.h"

/* An IAM role name is at most 64 characters; an instance profile ARN at most ~2 KB. */
#define IMDS_VALUE_MAX 2048

typedef enum ReadState {
        READ_TOKEN,
        READ_GET,
} ReadState;

typedef struct ImdsRead ImdsRead;
struct ImdsRead {
        UpstreamClient *client;
        ImdsRead *prev, *next;
        ReadState state;
        char *path;
        CURL *easy;
        struct curl_slist *headers;
        HttpBody body; /* may hold credentials: wiped */
        bool retried_token;
        upstream_done_t done;
        void *userdata;
        void (*userdata_free)(void *); /* frees userdata when the read ends without its callback */
};

struct UpstreamClient {
        HttpClient *http;
        char *base; /* "http://host:port" */
        Secret *token;
        usec_t token_until; /* CLOCK_MONOTONIC */
        ImdsRead *reads;
};

int upstream_client_new(HttpClient *http, const char *host, uint16_t port, UpstreamClient **ret) {
        UpstreamClient *c;
        int r;

        if (!http || isempty(host) || strpbrk(host, "/?#@ []") || !ret)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->http = http;
        r = strchr(host, ':') ? asprintf(&c->base, "http://[%s]:%u", host, port)
                              : asprintf(&c->base, "http://%s:%u", host, port);
        if (r < 0) {
                free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

static void read_free(ImdsRead *rd) {
        UpstreamClient *c = rd->client;

        if (rd->userdata_free)
                rd->userdata_free(rd->userdata);

        if (rd->prev)
                rd->prev->next = rd->next;
        else
                c->reads = rd->next;
        if (rd->next)
                rd->next->prev = rd->prev;
        if (rd->easy) {
                http_client_cancel(c->http, rd->easy);
                curl_easy_cleanup(rd->easy);
        }
        for (struct curl_slist *h = rd->headers; h; h = h->next)
                explicit_bzero(h->data, strlen(h->data));
        curl_slist_free_all(rd->headers);
        strbuf_done_erase(&rd->body.buf);
        free(rd->path);
        free(rd);
}

UpstreamClient *upstream_client_free(UpstreamClient *c) {
        if (!c)
                return NULL;
        while (c->reads)
                read_free(c->reads);
        secret_free(c->token);
        free(c->base);
        free(c);
        return NULL;
}

static int read_start(ImdsRead *rd);

static void read_finish(ImdsRead *rd, int error, long status) {
        upstream_done_t done = rd->done;
        void *userdata = rd->userdata;
        UpstreamClient *c = rd->client;
        StrBuf body = rd->body.buf;

        rd->body.buf = (StrBuf){};
        rd->userdata_free = NULL; /* the callback owns userdata now */
        read_free(rd);
        done(c, error, status, strbuf_str(&body), body.len, userdata);
        strbuf_done_erase(&body);
}

static void on_done(HttpClient *http, CURL *easy, int error, CURLcode result, void *userdata) {
        ImdsRead *rd = userdata;
        UpstreamClient *c = rd->client;
        long status = 0;
        int r;

        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        if (rd->body.overflow)
                error = -EFBIG;
        if (error < 0)
                return read_finish(rd, error, status);

        if (rd->state == READ_TOKEN) {
                if (status == 200 && rd->body.buf.len > 0 && rd->body.buf.len <= IMDS_VALUE_MAX) {
                        c->token = secret_free(c->token);
                        r = secret_new(rd->body.buf.s, rd->body.buf.len, &c->token);
                        if (r < 0)
                                return read_finish(rd, r, status);
                        c->token_until = usec_add(now_monotonic(), UPSTREAM_TOKEN_TTL_SEC * USEC_PER_SEC -
                                                                           UPSTREAM_TOKEN_RENEW_BEFORE_USEC);
                } else if (status == 403 || status == 404 || status == 405) {
                        /* IMDSv1 only, as the SDKs fall back: go on without a token */
                        c->token = secret_free(c->token);
                        c->token_until = 0;
                } else
                        return read_finish(rd, -EIO, status);
                rd->state = READ_GET;
                strbuf_done_erase(&rd->body.buf);
                r = read_start(rd);
                if (r < 0)
                        return read_finish(rd, r, 0);
                return;
        }

        if (status == 401 && !rd->retried_token) {
                /* our token expired or IMDS restarted: one new token, one more try */
                rd->retried_token = true;
                c->token = secret_free(c->token);
                rd->state = READ_TOKEN;
                strbuf_done_erase(&rd->body.buf);
                r = read_start(rd);
                if (r < 0)
                        return read_finish(rd, r, 0);
                return;
        }
        read_finish(rd,
                    status == 200                    ? 0
                    : status == 404                  ? -ENOENT
                    : status == 401 || status == 403 ? -EACCES
                                                     : -EIO,
                    status);
}

static int read_start(ImdsRead *rd) {
        UpstreamClient *c = rd->client;
        _cleanup_free_ char *url = NULL;
        _cleanup_erase_ char *token_header = NULL;
        struct curl_slist *h;
        int r;

        for (struct curl_slist *x = rd->headers; x; x = x->next)
                explicit_bzero(x->data, strlen(x->data));
        curl_slist_free_all(rd->headers);
        rd->headers = NULL;
        rd->body.overflow = false;
        rd->body.max = UPSTREAM_REPLY_MAX_BYTES;
        rd->body.buf.erase = true;

        if (rd->state == READ_GET && c->token && now_monotonic() >= c->token_until)
                c->token = secret_free(c->token);
        if (rd->state == READ_TOKEN) {
                if (asprintf(&url, "%s/latest/api/token", c->base) < 0 ||
                    asprintf(&token_header, "X-aws-ec2-metadata-token-ttl-seconds: %d",
                             UPSTREAM_TOKEN_TTL_SEC) < 0)
                        return -ENOMEM;
        } else {
                if (asprintf(&url, "%s/latest/%s", c->base, rd->path) < 0)
                        return -ENOMEM;
                if (c->token &&
                    asprintf(&token_header, "X-aws-ec2-metadata-token: %s", secret_reveal(c->token)) < 0)
                        return -ENOMEM;
        }
        if (token_header) {
                h = curl_slist_append(NULL, token_header);
                if (!h)
                        return -ENOMEM;
                rd->headers = h;
        }
        if (!rd->easy && !(rd->easy = curl_easy_init()))
                return -ENOMEM;
        curl_easy_reset(rd->easy);
        r = http_client_prepare(rd->easy, &(const HttpRequestOptions){ .url = url,
                                                                       .protocols = HTTP_PROTOCOLS_HTTP,
                                                                       .timeout = UPSTREAM_TIMEOUT_USEC,
                                                                       .direct = true });
        if (r < 0)
                return r;
        if (curl_easy_setopt(rd->easy, CURLOPT_HTTPHEADER, rd->headers) != CURLE_OK ||
            curl_easy_setopt(rd->easy, CURLOPT_WRITEFUNCTION, http_body_write) != CURLE_OK ||
            curl_easy_setopt(rd->easy, CURLOPT_WRITEDATA, &rd->body) != CURLE_OK)
                return -EIO;
        if (rd->state == READ_TOKEN && curl_easy_setopt(rd->easy, CURLOPT_CUSTOMREQUEST, "PUT") != CURLE_OK)
                return -EIO;
        return http_client_start(c->http, rd->easy, on_done, rd);
}

static int read_get(UpstreamClient *c, const char *path, upstream_done_t done, void *userdata,
                    void (*userdata_free)(void *)) {
        ImdsRead *rd;
        int r;

        if (!c || !path || path[0] == '/' || strstr(path, "..") || !done)
                return -EINVAL;
        rd = calloc(1, sizeof *rd);
        if (!rd)
                return -ENOMEM;
        rd->client = c;
        rd->done = done;
        rd->userdata = userdata;
        rd->state = c->token && now_monotonic() < c->token_until ? READ_GET : READ_TOKEN;
        rd->path = strdup(path);
        rd->next = c->reads;
        if (c->reads)
                c->reads->prev = rd;
        c->reads = rd;
        if (!rd->path) {
                read_free(rd);
                return -ENOMEM;
        }
        r = read_start(rd);
        if (r < 0) {
                read_free(rd);
                return r;
        }
        rd->userdata_free = userdata_free; /* from here on the read owns userdata until done */
        return 0;
}

/* Chained reads: a callback record carried through one or two GETs. */
typedef struct Chain {
        upstream_string_done_t string_done;
        upstream_credentials_done_t creds_done;
        void *userdata;
        void (*userdata_free)(void *); /* when the chain ends without its callback */
} Chain;

/* A chain dropped unfinished (the client is freed mid-read) frees what it carries. */
static void chain_free(void *p) {
        Chain *ch = p;
        if (ch->userdata_free)
                ch->userdata_free(ch->userdata);
        free(ch);
}

static int chain_new(upstream_string_done_t sd, upstream_credentials_done_t cd, void *userdata,
                     Chain **ret) {
        Chain *ch = calloc(1, sizeof *ch);
        if (!ch)
                return -ENOMEM;
        *ch = (Chain){ .string_done = sd, .creds_done = cd, .userdata = userdata };
        *ret = ch;
        return 0;
}

static int chain_get(UpstreamClient *c, const char *path, upstream_done_t cb, Chain *ch) {
        int r = read_get(c, path, cb, ch, chain_free);
        if (r < 0)
                free(ch);
        return r;
}

static char *first_line(const char *body, size_t size) {
        size_t n = 0;

        while (n < size && body[n] != '\n' && body[n] != '\r')
                n++;
        return n > 0 && n <= IMDS_VALUE_MAX ? strndup(body, n) : NULL;
}

static void on_region(UpstreamClient *c, int error, long status, const char *body, size_t size,
                      void *userdata) {
        _cleanup_free_ Chain *ch = userdata;
        _cleanup_free_ char *v = NULL;

        if (error >= 0) {
                v = first_line(body, size);
                if (!v || !aws_region_valid(v))
                        error = -EBADMSG;
        }
        ch->string_done(c, error < 0 ? error : 0, error < 0 ? NULL : v, ch->userdata);
}

int upstream_client_get_region(UpstreamClient *c, upstream_string_done_t done, void *userdata) {
        Chain *ch;
        int r = chain_new(done, NULL, userdata, &ch);
        return r < 0 ? r : chain_get(c, "meta-data/placement/region", on_region, ch);
}

static void on_iam_info(UpstreamClient *c, int error, long status, const char *body, size_t size,
                        void *userdata) {
        _cleanup_free_ Chain *ch = userdata;
        cJSON *j = NULL, *code, *arn;
        const char *v = NULL;

        if (error >= 0) {
                j = cJSON_ParseWithLength(body, size);
                code = cJSON_GetObjectItemCaseSensitive(j, "Code");
                arn = cJSON_GetObjectItemCaseSensitive(j, "InstanceProfileArn");
                if (!cJSON_IsString(code) || !streq(code->valuestring, "Success") || !cJSON_IsString(arn) ||
                    !startswith(arn->valuestring, "arn:") || strlen(arn->valuestring) > IMDS_VALUE_MAX)
                        error = -EBADMSG;
                else
                        v = arn->valuestring;
        }
        ch->string_done(c, error < 0 ? error : 0, error < 0 ? NULL : v, ch->userdata);
        cJSON_Delete(j);
}

int upstream_client_get_instance_profile_arn(UpstreamClient *c, upstream_string_done_t done,
                                             void *userdata) {
        Chain *ch;
        int r = chain_new(done, NULL, userdata, &ch);
        return r < 0 ? r : chain_get(c, "meta-data/iam/info", on_iam_info, ch);
}

static bool role_name_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || strchr("+=,.@_-", s[i])))
                        return false;
        return true;
}

static void on_role_name(UpstreamClient *c, int error, long status, const char *body, size_t size,
                         void *userdata) {
        _cleanup_free_ Chain *ch = userdata;
        _cleanup_free_ char *v = NULL;

        if (error >= 0) {
                v = first_line(body, size);
                if (!v || !role_name_valid(v))
                        error = -EBADMSG;
        }
        ch->string_done(c, error < 0 ? error : 0, error < 0 ? NULL : v, ch->userdata);
}

int upstream_client_get_role_name(UpstreamClient *c, upstream_string_done_t done, void *userdata) {
        Chain *ch;
        int r = chain_new(done, NULL, userdata, &ch);
        return r < 0 ? r : chain_get(c, "meta-data/iam/security-credentials/", on_role_name, ch);
}

static char *json_take_string(cJSON *j, const char *key) {
        cJSON *i = cJSON_GetObjectItemCaseSensitive(j, key);
        return cJSON_IsString(i) && i->valuestring ? i->valuestring : NULL;
}

int upstream_parse_credentials(const char *body, size_t size, usec_t now, Credentials **ret) {
        cJSON *j;
        const char *code, *key, *secret, *token, *exp;
        Secret *s = NULL, *t = NULL;
        usec_t expiration;
        int r;

        if (!body || !ret || size == 0 || size > UPSTREAM_REPLY_MAX_BYTES)
                return -EBADMSG;
        j = cJSON_ParseWithLength(body, size);
        if (!j)
                return -EBADMSG;
        code = json_take_string(j, "Code");
        key = json_take_string(j, "AccessKeyId");
        secret = json_take_string(j, "SecretAccessKey");
        token = json_take_string(j, "Token");
        exp = json_take_string(j, "Expiration");
        if (!code || !streq(code, "Success") || !key || isempty(secret) || isempty(token) || !exp ||
            parse_timestamp_rfc3339(exp, &expiration) < 0)
                r = -EBADMSG;
        else {
                r = secret_new(secret, strlen(secret), &s);
                if (r >= 0)
                        r = secret_new(token, strlen(token), &t);
                if (r >= 0)
                        r = credentials_new(key, TAKE_PTR(s), TAKE_PTR(t), expiration, now, ret);
                secret_free(s);
        }
        /* cJSON copied the secrets: wipe its copies */
        if (secret)
                explicit_bzero((char *) secret, strlen(secret));
        if (token)
                explicit_bzero((char *) token, strlen(token));
        cJSON_Delete(j);
        return r;
}

static void on_credentials(UpstreamClient *c, int error, long status, const char *body, size_t size,
                           void *userdata) {
        _cleanup_free_ Chain *ch = userdata;
        _cleanup_credentials_ Credentials *creds = NULL;

        if (error >= 0)
                error = upstream_parse_credentials(body, size, now_realtime(), &creds);
        ch->creds_done(c, error < 0 ? error : 0, creds, ch->userdata);
}

static void on_role_for_credentials(UpstreamClient *c, int error, const char *value, void *userdata) {
        Chain *ch = userdata;
        _cleanup_free_ char *path = NULL;
        int r;

        if (error < 0) {
                ch->creds_done(c, error, NULL, ch->userdata);
                free(ch);
                return;
        }
        if (asprintf(&path, "meta-data/iam/security-credentials/%s", value) < 0) {
                path = NULL;
                r = -ENOMEM;
        } else
                r = read_get(c, path, on_credentials, ch, chain_free);
        if (r < 0) {
                ch->creds_done(c, r, NULL, ch->userdata);
                free(ch);
        }
}

int upstream_client_get_credentials(UpstreamClient *c, upstream_credentials_done_t done, void *userdata) {
        Chain *ch, *inner;
        int r = chain_new(NULL, done, userdata, &ch);

        if (r < 0)
                return r;
        /* the role name first; the inner chain carries (and, dropped, frees) the outer one */
        r = chain_new(on_role_for_credentials, NULL, ch, &inner);
        if (r < 0) {
                free(ch);
                return r;
        }
        inner->userdata_free = free;
        r = chain_get(c, "meta-data/iam/security-credentials/", on_role_name, inner);
        if (r < 0)
                free(ch); /* chain_get freed inner, not what it carries */
        return r;
}

int upstream_client_token(UpstreamClient *c, char **ret) {
        char *t;

        if (!c || !ret)
                return -EINVAL;
        if (!c->token || now_monotonic() >= c->token_until) {
                *ret = NULL;
                return 0;
        }
        t = strdup(secret_reveal(c->token));
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 1;
}

int upstream_client_get(UpstreamClient *c, const char *path, upstream_done_t done, void *userdata) {
        return read_get(c, path, done, userdata, NULL);
}