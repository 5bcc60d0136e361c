/* SPDX-License-Identifier: BSD-3-Clause */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "aws/sigv4.h"
#include "tap.h"

/* A vector's file is small; anything bigger means the suite changed shape. */
#define VECTOR_FILE_MAX (64 * 1024)

static char *read_text(const char *dir, const char *name) {
        char path[4096];
        FILE *f;
        char *buf;
        size_t n;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "re");
        if (!f)
                return NULL;
        buf = calloc(1, VECTOR_FILE_MAX + 1);
        n = buf ? fread(buf, 1, VECTOR_FILE_MAX, f) : 0;
        fclose(f);
        if (buf)
                buf[n] = '\0';
        return buf;
}

typedef struct Vector {
        char method[16];
        char *path;
        char *query;
        SigV4Header headers[SIGV4_MAX_HEADERS];
        char *names[SIGV4_MAX_HEADERS];
        char *values[SIGV4_MAX_HEADERS];
        size_t n_headers;
        char *body;
} Vector;

static void vector_done(Vector *v) {
        free(v->path);
        free(v->query);
        free(v->body);
        for (size_t i = 0; i < v->n_headers; i++) {
                free(v->names[i]);
                free(v->values[i]);
        }
}

/* request.txt: "METHOD target HTTP/1.1", headers (continuation lines start with blanks), a blank
 * line, the body. The target may contain a space (get-space-*). */
static int parse_request(char *text, Vector *v) {
        char *line_end = strchr(text, '\n'), *sp, *last, *p, *q;

        if (!line_end)
                line_end = text + strlen(text);
        *line_end = '\0';
        sp = strchr(text, ' ');
        last = strrchr(text, ' ');
        if (!sp || last == sp)
                return -EINVAL;
        snprintf(v->method, sizeof v->method, "%.*s", (int) (sp - text), text);
        *last = '\0';
        q = strchr(sp + 1, '?');
        if (q) {
                v->query = strdup(q + 1);
                *q = '\0';
        }
        v->path = strdup(sp + 1);

        p = *line_end == '\0' && line_end[1] ? line_end + 1 : line_end + 1;
        for (;;) {
                char *e = strchr(p, '\n'), *colon;

                if (!e)
                        e = p + strlen(p);
                if (e == p) {
                        if (*e)
                                v->body = strdup(e + 1);
                        break;
                }
                if ((*p == ' ' || *p == '\t') && v->n_headers > 0) {
                        char *old = v->values[v->n_headers - 1], *nv;
                        if (asprintf(&nv, "%s\n%.*s", old, (int) (e - p), p) < 0)
                                return -ENOMEM;
                        free(old);
                        v->values[v->n_headers - 1] = nv;
                } else {
                        colon = memchr(p, ':', (size_t) (e - p));
                        if (!colon || v->n_headers >= SIGV4_MAX_HEADERS)
                                return -EINVAL;
                        v->names[v->n_headers] = strndup(p, (size_t) (colon - p));
                        v->values[v->n_headers] = strndup(colon + 1, (size_t) (e - colon - 1));
                        v->n_headers++;
                }
                if (!*e)
                        break;
                p = e + 1;
        }
        for (size_t i = 0; i < v->n_headers; i++)
                v->headers[i] = (SigV4Header){ v->names[i], v->values[i] };
        return 0;
}

static bool json_bool(cJSON *o, const char *key, bool def) {
        cJSON *i = cJSON_GetObjectItemCaseSensitive(o, key);
        return cJSON_IsBool(i) ? cJSON_IsTrue(i) : def;
}

static const char *json_str(cJSON *o, const char *key) {
        cJSON *i = cJSON_GetObjectItemCaseSensitive(o, key);
        return cJSON_IsString(i) ? i->valuestring : NULL;
}

/* Returns the number of cases checked, or fails the test. */
static unsigned check_case(const char *dir) {
        _cleanup_free_ char *req_text = read_text(dir, "request.txt"),
                            *ctx_text = read_text(dir, "context.json"),
                            *want_creq = read_text(dir, "header-canonical-request.txt"),
                            *want_sts = read_text(dir, "header-string-to-sign.txt"),
                            *want_sig = read_text(dir, "header-signature.txt");
        _cleanup_secret_ Secret *secret = NULL, *token = NULL;
        _cleanup_(sigv4_signer_freep) SigV4Signer *signer = NULL;
        _cleanup_sigv4_signature_ SigV4Signature sig = {};
        Vector v = {};
        cJSON *ctx, *creds;
        usec_t ts;
        bool ok;

        if (!req_text || !want_creq)
                return 0; /* not a header-signing case */
        ASSERT_NOT_NULL(ctx_text);
        ASSERT_NOT_NULL(want_sts);
        ASSERT_NOT_NULL(want_sig);
        ctx = cJSON_Parse(ctx_text);
        ASSERT_NOT_NULL(ctx);
        creds = cJSON_GetObjectItemCaseSensitive(ctx, "credentials");
        ASSERT_NOT_NULL(json_str(creds, "access_key_id"));
        ASSERT_OK(secret_new(json_str(creds, "secret_access_key"),
                             strlen(json_str(creds, "secret_access_key")), &secret));
        if (json_str(creds, "token"))
                ASSERT_OK(secret_new(json_str(creds, "token"), strlen(json_str(creds, "token")), &token));
        ASSERT_OK(parse_timestamp_rfc3339(json_str(ctx, "timestamp"), &ts));
        ASSERT_OK(sigv4_signer_new(json_str(ctx, "region"), json_str(ctx, "service"), &signer));
        ASSERT_OK(parse_request(req_text, &v));

        SigV4Request req = {
                .method = v.method,
                .path = v.path,
                .query = v.query,
                .headers = v.headers,
                .n_headers = v.n_headers,
                .body = v.body,
                .body_size = v.body ? strlen(v.body) : 0,
                .normalize_path = json_bool(ctx, "normalize", true),
                .sign_body = json_bool(ctx, "sign_body", false),
                .omit_session_token = json_bool(ctx, "omit_session_token", false),
        };
        SigV4Credentials c = {
                .access_key_id = json_str(creds, "access_key_id"),
                .secret_access_key = secret,
                .session_token = token,
        };
        ASSERT_OK(sigv4_sign(signer, &req, &c, ts, &sig));
        ok = streq(sig.canonical_request, want_creq) && streq(sig.string_to_sign, want_sts) &&
             streq(sig.signature, want_sig);
        if (!ok)
                printf("# case %s\n# got creq:\n%s\n# want:\n%s\n# got sts:\n%s\n# got sig %s want %s\n",
                       dir, sig.canonical_request, want_creq, sig.string_to_sign, sig.signature, want_sig);
        vector_done(&v);
        cJSON_Delete(ctx);
        ASSERT_TRUE(ok);
        return 1;
}

TEST(sigv4_reproduces_every_official_header_vector) {
        char base[4096];
        struct dirent **list = NULL;
        unsigned checked = 0;
        int n;

        /* In the tree (tests/vectors/sigv4/README.md): a missing folder is a failure, not a skip. */
        snprintf(base, sizeof base, "%s/tests/vectors/sigv4", tap_source_dir());
        n = scandir(base, &list, NULL, alphasort);
        if (n < 0)
                tap_fail(__FILE__, __LINE__, "cannot read %s: %m", base);
        for (int i = 0; i < n; i++) {
                char dir[8192];

                if (list[i]->d_name[0] != '.' && list[i]->d_type == DT_DIR) {
                        snprintf(dir, sizeof dir, "%s/%s", base, list[i]->d_name);
                        checked += check_case(dir);
                }
                free(list[i]);
        }
        free(list);
        printf("# %u SigV4 header-signing vectors reproduced\n", checked);
        ASSERT_TRUE(checked >= 38);
}

TEST(sigv4_caches_derived_key_per_date_and_secret) {
        _cleanup_(sigv4_signer_freep) SigV4Signer *s = NULL;
        _cleanup_secret_ Secret *k1 = NULL, *k2 = NULL;
        SigV4Header h[] = { { "Host", "sts.us-east-1.amazonaws.com" } };
        SigV4Request req = {
                .method = "POST", .path = "/", .headers = h, .n_headers = 1, .normalize_path = true
        };
        SigV4Signature sig = {};
        usec_t day = 1440000000ULL * USEC_PER_SEC;

        ASSERT_OK(sigv4_signer_new("us-east-1", "sts", &s));
        ASSERT_OK(secret_new("secret1", 7, &k1));
        ASSERT_OK(secret_new("secret2", 7, &k2));
        SigV4Credentials c1 = { .access_key_id = "AKID", .secret_access_key = k1 };
        SigV4Credentials c2 = { .access_key_id = "AKID", .secret_access_key = k2 };

        for (int i = 0; i < 3; i++) {
                ASSERT_OK(sigv4_sign(s, &req, &c1, day + (usec_t) i * USEC_PER_MINUTE, &sig));
                sigv4_signature_done(&sig);
        }
        ASSERT_EQ(sigv4_signer_derivations(s), 1);
        ASSERT_OK(sigv4_sign(s, &req, &c1, day + USEC_PER_DAY, &sig));
        sigv4_signature_done(&sig);
        ASSERT_EQ(sigv4_signer_derivations(s), 2);
        ASSERT_OK(sigv4_sign(s, &req, &c2, day + USEC_PER_DAY, &sig));
        sigv4_signature_done(&sig);
        ASSERT_EQ(sigv4_signer_derivations(s), 3);
}

TEST(sigv4_uri_encode_keeps_only_unreserved) {
        _cleanup_strbuf_ StrBuf b = {};

        sigv4_uri_encode(&b, "a-b._~ /+=:@\xe1\x88\xb4", 15, false);
        ASSERT_STREQ(strbuf_str(&b), "a-b._~%20%2F%2B%3D%3A%40%E1%88%B4");
        strbuf_reset(&b);
        sigv4_uri_encode(&b, "/a b/", 5, true);
        ASSERT_STREQ(strbuf_str(&b), "/a%20b/");
}

TEST(sigv4_rejects_garbage_requests) {
        _cleanup_(sigv4_signer_freep) SigV4Signer *s = NULL;
        _cleanup_secret_ Secret *k = NULL;
        SigV4Header bad[] = { { "Bad Name", "x" } };
        SigV4Request req = { .method = "GET", .path = "/", .headers = bad, .n_headers = 1 };
        SigV4Signature sig = {};

        ASSERT_ERROR(sigv4_signer_new("us east", "sts", &s), -EINVAL);
        ASSERT_OK(sigv4_signer_new("us-east-1", "sts", &s));
        ASSERT_OK(secret_new("k", 1, &k));
        SigV4Credentials c = { .access_key_id = "AKID", .secret_access_key = k };
        ASSERT_ERROR(sigv4_sign(s, &req, &c, USEC_PER_DAY, &sig), -EINVAL);
        c.access_key_id = "AK/ID";
        req.n_headers = 0;
        ASSERT_ERROR(sigv4_sign(s, &req, &c, USEC_PER_DAY, &sig), -EINVAL);
        req.n_headers = SIGV4_MAX_HEADERS + 1;
        c.access_key_id = "AKID";
        ASSERT_ERROR(sigv4_sign(s, &req, &c, USEC_PER_DAY, &sig), -E2BIG);
}
