/* SPDX-License-Identifier: BSD-3-Clause */
/* sigv4-sign: test tool. Reads a request description on stdin, one "key=value" a line:
 *   access_key, secret_key, token (optional), region, service, time (unix seconds),
 *   method, path, query (optional), header=Name:Value (repeatable), body (optional, one line)
 * and prints "Authorization: <value>" as our signer computes it. The integration test compares it
 * with botocore's SigV4Auth. Blank lines separate requests, so one process signs hundreds. */
#include <stdio.h>
#include <stdlib.h>

#include "aws/sigv4.h"
#include "string-util.h"

/* One request description never needs more; longer lines are a broken test. */
#define LINE_MAX_BYTES (64 * 1024)

typedef struct Desc {
        char *access_key, *secret_key, *token, *region, *service, *method, *path, *query, *body;
        unsigned long long time;
        char *names[SIGV4_MAX_HEADERS], *values[SIGV4_MAX_HEADERS];
        size_t n_headers;
        bool any;
} Desc;

static void desc_done(Desc *d) {
        free(d->access_key);
        erase_and_free(d->secret_key);
        erase_and_free(d->token);
        free(d->region);
        free(d->service);
        free(d->method);
        free(d->path);
        free(d->query);
        free(d->body);
        for (size_t i = 0; i < d->n_headers; i++) {
                free(d->names[i]);
                free(d->values[i]);
        }
        *d = (Desc){};
}

static int sign_one(Desc *d) {
        _cleanup_(sigv4_signer_freep) SigV4Signer *s = NULL;
        _cleanup_secret_ Secret *secret = NULL, *token = NULL;
        _cleanup_sigv4_signature_ SigV4Signature sig = {};
        SigV4Header h[SIGV4_MAX_HEADERS];
        int r;

        if (!d->access_key || !d->secret_key || !d->region || !d->service || !d->method)
                return -EINVAL;
        r = sigv4_signer_new(d->region, d->service, &s);
        if (r < 0)
                return r;
        r = secret_new(d->secret_key, strlen(d->secret_key), &secret);
        if (r >= 0 && d->token)
                r = secret_new(d->token, strlen(d->token), &token);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_headers; i++)
                h[i] = (SigV4Header){ d->names[i], d->values[i] };
        SigV4Request req = {
                .method = d->method,
                .path = d->path ?: "/",
                .query = d->query,
                .headers = h,
                .n_headers = d->n_headers,
                .body = d->body,
                .body_size = d->body ? strlen(d->body) : 0,
                .normalize_path = true,
        };
        SigV4Credentials c = { .access_key_id = d->access_key,
                               .secret_access_key = secret,
                               .session_token = token };
        r = sigv4_sign(s, &req, &c, d->time * USEC_PER_SEC, &sig);
        if (r < 0)
                return r;
        printf("X-Amz-Date: %s\nAuthorization: %s\n\n", sig.amz_date, sig.authorization);
        return 0;
}

int main(void) {
        _cleanup_free_ char *line = malloc(LINE_MAX_BYTES);
        Desc d = {};
        int ret = 0;

        if (!line)
                return 1;
        while (fgets(line, LINE_MAX_BYTES, stdin)) {
                char *eq, *v;

                line[strcspn(line, "\n")] = '\0';
                if (line[0] == '\0') {
                        if (d.any && sign_one(&d) < 0) {
                                printf("error\n\n");
                                ret = 1;
                        }
                        desc_done(&d);
                        fflush(stdout);
                        continue;
                }
                eq = strchr(line, '=');
                if (!eq)
                        return 2;
                *eq = '\0';
                v = eq + 1;
                d.any = true;
                if (streq(line, "header")) {
                        char *colon = strchr(v, ':');
                        if (!colon || d.n_headers >= SIGV4_MAX_HEADERS)
                                return 2;
                        d.names[d.n_headers] = strndup(v, (size_t) (colon - v));
                        d.values[d.n_headers] = strdup(colon + 1);
                        d.n_headers++;
                } else if (streq(line, "time"))
                        d.time = strtoull(v, NULL, 10);
                else {
                        char **f = streq(line, "access_key")   ? &d.access_key
                                   : streq(line, "secret_key") ? &d.secret_key
                                   : streq(line, "token")      ? &d.token
                                   : streq(line, "region")     ? &d.region
                                   : streq(line, "service")    ? &d.service
                                   : streq(line, "method")     ? &d.method
                                   : streq(line, "path")       ? &d.path
                                   : streq(line, "query")      ? &d.query
                                   : streq(line, "body")       ? &d.body
                                                               : NULL;
                        if (!f)
                                return 2;
                        free(*f);
                        *f = strdup(v);
                }
        }
        if (d.any && sign_one(&d) < 0)
                ret = 1;
        desc_done(&d);
        return ret;
}
