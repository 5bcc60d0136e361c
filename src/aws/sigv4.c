/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sigv4.h"

#define SHA256_BYTES 32
/* Region and service names are short identifiers ("us-gov-west-1", "sts"). */
#define SIGV4_MAX_SCOPE_PART 64

struct SigV4Signer {
        char *region;
        char *service;
        /* The derived key depends on the secret, the date, the region and the service; region and
         * service are fixed per signer, so the cache holds one (secret, date) pair. */
        Secret *cached_secret;
        char cached_date[9];
        unsigned char cached_key[SHA256_BYTES];
        bool cached;
        unsigned derivations;
};

static bool scope_part_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > SIGV4_MAX_SCOPE_PART)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
                      (s[i] >= 'A' && s[i] <= 'Z')))
                        return false;
        return true;
}

int sigv4_signer_new(const char *region, const char *service, SigV4Signer **ret) {
        SigV4Signer *s;

        if (!region || !service || !ret || !scope_part_valid(region) || !scope_part_valid(service))
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->region = strdup(region);
        s->service = strdup(service);
        if (!s->region || !s->service) {
                sigv4_signer_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

SigV4Signer *sigv4_signer_free(SigV4Signer *s) {
        if (!s)
                return NULL;
        free(s->region);
        free(s->service);
        secret_free(s->cached_secret);
        explicit_bzero(s->cached_key, sizeof s->cached_key);
        free(s);
        return NULL;
}

const char *sigv4_signer_region(const SigV4Signer *s) {
        return s ? s->region : NULL;
}

unsigned sigv4_signer_derivations(const SigV4Signer *s) {
        return s ? s->derivations : 0;
}

void sigv4_signature_done(SigV4Signature *s) {
        if (!s)
                return;
        s->canonical_request = erase_and_free(s->canonical_request);
        s->string_to_sign = mfree(s->string_to_sign);
        s->authorization = mfree(s->authorization);
}

static int hmac_sha256(const void *key, size_t key_len, const void *data, size_t n,
                       unsigned char out[static SHA256_BYTES]) {
        size_t len = 0;

        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, data, n, out, SHA256_BYTES, &len) ||
            len != SHA256_BYTES)
                return -EIO;
        return 0;
}

static void hex_encode(const unsigned char *in, size_t n, char *out) {
        static const char hex[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hex[in[i] >> 4];
                out[2 * i + 1] = hex[in[i] & 15];
        }
        out[2 * n] = '\0';
}

int sigv4_sha256_hex(const void *data, size_t n, char out[static SIGV4_HEX_SHA256_MAX]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;

        if (!EVP_Digest(data ?: "", n, md, &len, EVP_sha256(), NULL) || len != SHA256_BYTES)
                return -EIO;
        hex_encode(md, SHA256_BYTES, out);
        return 0;
}

static bool unreserved(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '.' || c == '_' || c == '~';
}

void sigv4_uri_encode(StrBuf *out, const char *s, size_t n, bool keep_slash) {
        static const char hex[] = "0123456789ABCDEF";

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];

                if (unreserved(c) || (keep_slash && c == '/'))
                        strbuf_append_char(out, (char) c);
                else {
                        char e[3] = { '%', hex[c >> 4], hex[c & 15] };
                        strbuf_append_n(out, e, 3);
                }
        }
}

/* Query components may arrive encoded ("%E1%88%B4") or raw: decode, then encode canonically. */
static void uri_decode_encode(StrBuf *out, const char *s, size_t n) {
        _cleanup_strbuf_ StrBuf raw = {};

        for (size_t i = 0; i < n; i++) {
                int hi, lo;

                if (s[i] == '%' && i + 2 < n && (hi = unhexchar(s[i + 1])) >= 0 &&
                    (lo = unhexchar(s[i + 2])) >= 0) {
                        strbuf_append_char(&raw, (char) (hi << 4 | lo));
                        i += 2;
                } else
                        strbuf_append_char(&raw, s[i]);
        }
        sigv4_uri_encode(out, strbuf_str(&raw), raw.len, false);
}

/* RFC 3986 dot-segment removal plus dropping empty segments, as the test suite's "normalize". */
static void canonical_path(StrBuf *out, const char *path, bool normalize) {
        const char *segs[256];
        size_t lens[256], n = 0;
        bool trailing;

        if (isempty(path)) {
                strbuf_append_char(out, '/');
                return;
        }
        if (!normalize) {
                sigv4_uri_encode(out, path, strlen(path), true);
                return;
        }
        trailing = path[strlen(path) - 1] == '/';
        for (const char *p = path; *p;) {
                const char *e;
                size_t l;

                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                e = strchrnul(p, '/');
                l = (size_t) (e - p);
                if (l == 1 && p[0] == '.')
                        ;
                else if (l == 2 && p[0] == '.' && p[1] == '.') {
                        if (n > 0)
                                n--;
                } else if (n < ELEMENTSOF(segs)) {
                        segs[n] = p;
                        lens[n] = l;
                        n++;
                } else {
                        /* absurdly deep path: sign it as given rather than truncate it */
                        sigv4_uri_encode(out, path, strlen(path), true);
                        return;
                }
                p = e;
        }
        for (size_t i = 0; i < n; i++) {
                strbuf_append_char(out, '/');
                sigv4_uri_encode(out, segs[i], lens[i], false);
        }
        if (n == 0 || trailing)
                strbuf_append_char(out, '/');
}

typedef struct QueryPair {
        char *key;
        char *value;
} QueryPair;

static int query_pair_cmp(const void *a, const void *b) {
        const QueryPair *x = a, *y = b;
        int r = strcmp(x->key, y->key);
        return r != 0 ? r : strcmp(x->value, y->value);
}

/* A query string longer than this many parameters is not something STS or IMDS ever sends. */
#define SIGV4_MAX_QUERY_PARAMS 256

static int canonical_query(StrBuf *out, const char *query) {
        QueryPair pairs[SIGV4_MAX_QUERY_PARAMS];
        size_t n = 0;
        int r = 0;

        for (const char *p = strempty(query); *p;) {
                const char *e = strchrnul(p, '&'), *eq;
                StrBuf k = {}, v = {};

                if (e == p) {
                        p++;
                        continue;
                }
                if (n >= ELEMENTSOF(pairs)) {
                        r = -E2BIG;
                        break;
                }
                eq = memchr(p, '=', (size_t) (e - p));
                uri_decode_encode(&k, p, (size_t) ((eq ?: e) - p));
                if (eq)
                        uri_decode_encode(&v, eq + 1, (size_t) (e - eq - 1));
                pairs[n].key = strbuf_steal(&k);
                pairs[n].value = strbuf_steal(&v);
                n++;
                if (!pairs[n - 1].key || !pairs[n - 1].value) {
                        r = -ENOMEM;
                        break;
                }
                p = *e ? e + 1 : e;
        }
        if (r >= 0) {
                qsort(pairs, n, sizeof pairs[0], query_pair_cmp);
                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                strbuf_append_char(out, '&');
                        strbuf_appendf(out, "%s=%s", pairs[i].key, pairs[i].value);
                }
        }
        for (size_t i = 0; i < n; i++) {
                free(pairs[i].key);
                free(pairs[i].value);
        }
        return r;
}

typedef struct CanonHeader {
        char *name;   /* lower case */
        char *value;  /* trimmed, inner whitespace runs collapsed */
        size_t order; /* keeps duplicates in the order sent */
} CanonHeader;

static int canon_header_cmp(const void *a, const void *b) {
        const CanonHeader *x = a, *y = b;
        int r = strcmp(x->name, y->name);
        return r != 0 ? r : (x->order < y->order ? -1 : x->order > y->order);
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static char *canon_value(const char *v) {
        StrBuf b = {};
        bool pending = false;

        for (const char *p = strempty(v); *p; p++) {
                if (is_space(*p)) {
                        pending = b.len > 0;
                        continue;
                }
                if (pending)
                        strbuf_append_char(&b, ' ');
                pending = false;
                strbuf_append_char(&b, *p);
        }
        return strbuf_steal(&b);
}

static bool header_name_valid(const char *n) {
        if (isempty(n))
                return false;
        for (const char *p = n; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == ':' || (unsigned char) *p >= 0x7f)
                        return false;
        return true;
}

/* Headers the signer sets itself; a caller's copy would be signed twice. */
static bool header_reserved(const char *lname) {
        return streq(lname, "authorization") || streq(lname, "x-amz-date") ||
               streq(lname, "x-amz-security-token") || streq(lname, "x-amz-content-sha256");
}

static void canon_headers_free(CanonHeader *h, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(h[i].name);
                /* the token header's value is secret */
                erase_and_free(h[i].value);
        }
}

static int add_header(CanonHeader *h, size_t *n, const char *name, const char *value) {
        if (*n >= SIGV4_MAX_HEADERS + 3)
                return -E2BIG;
        h[*n].name = ascii_strlower(strdup(name));
        h[*n].value = canon_value(value);
        h[*n].order = *n;
        (*n)++;
        return h[*n - 1].name && h[*n - 1].value ? 0 : -ENOMEM;
}

static int derive_key(SigV4Signer *s, const Secret *secret, const char *date) {
        unsigned char k1[SHA256_BYTES], k2[SHA256_BYTES], k3[SHA256_BYTES];
        _cleanup_erase_ char *seed = NULL;
        int r;

        if (s->cached && streq(s->cached_date, date) && secret_equal(s->cached_secret, secret))
                return 0;
        s->cached = false;
        s->cached_secret = secret_free(s->cached_secret);
        if (asprintf(&seed, "AWS4%s", secret_reveal(secret)) < 0) {
                seed = NULL;
                return -ENOMEM;
        }
        r = hmac_sha256(seed, strlen(seed), date, strlen(date), k1);
        if (r >= 0)
                r = hmac_sha256(k1, sizeof k1, s->region, strlen(s->region), k2);
        if (r >= 0)
                r = hmac_sha256(k2, sizeof k2, s->service, strlen(s->service), k3);
        if (r >= 0)
                r = hmac_sha256(k3, sizeof k3, "aws4_request", strlen("aws4_request"), s->cached_key);
        explicit_bzero(k1, sizeof k1);
        explicit_bzero(k2, sizeof k2);
        explicit_bzero(k3, sizeof k3);
        if (r < 0)
                return r;
        r = secret_dup(secret, &s->cached_secret);
        if (r < 0)
                return r;
        memcpy(s->cached_date, date, 9);
        s->cached = true;
        s->derivations++;
        return 0;
}

int sigv4_sign(SigV4Signer *s, const SigV4Request *req, const SigV4Credentials *c, usec_t realtime,
               SigV4Signature *ret) {
        CanonHeader headers[SIGV4_MAX_HEADERS + 3] = {};
        size_t n = 0;
        _cleanup_strbuf_ StrBuf signed_names = {}, sts = {}, auth = {};
        StrBuf creq = {};
        SigV4Signature sig = {};
        char date[9], creq_hash[SIGV4_HEX_SHA256_MAX], scope[3 * SIGV4_MAX_SCOPE_PART + 32];
        unsigned char mac[SHA256_BYTES];
        struct tm tm;
        time_t t;
        int r;

        if (!s || !req || !c || !ret || isempty(req->method) || !c->access_key_id || !c->secret_access_key)
                return -EINVAL;
        if (req->n_headers > SIGV4_MAX_HEADERS)
                return -E2BIG;
        if (req->body_size > 0 && !req->body)
                return -EINVAL;
        for (const char *p = c->access_key_id; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')))
                        return -EINVAL;

        t = (time_t) (realtime / USEC_PER_SEC);
        if (!gmtime_r(&t, &tm) || strftime(sig.amz_date, sizeof sig.amz_date, "%Y%m%dT%H%M%SZ", &tm) != 16)
                return -EINVAL;
        memcpy(date, sig.amz_date, 8);
        date[8] = '\0';

        r = sigv4_sha256_hex(req->body, req->body_size, sig.payload_hash);
        if (r < 0)
                return r;

        for (size_t i = 0; i < req->n_headers; i++) {
                if (!header_name_valid(req->headers[i].name) || !req->headers[i].value) {
                        r = -EINVAL;
                        goto finish;
                }
                r = add_header(headers, &n, req->headers[i].name, req->headers[i].value);
                if (r < 0)
                        goto finish;
                if (header_reserved(headers[n - 1].name)) {
                        n--;
                        canon_headers_free(headers + n, 1);
                }
        }
        r = add_header(headers, &n, "x-amz-date", sig.amz_date);
        if (r >= 0 && req->sign_body)
                r = add_header(headers, &n, "x-amz-content-sha256", sig.payload_hash);
        if (r >= 0 && c->session_token && !req->omit_session_token)
                r = add_header(headers, &n, "x-amz-security-token", secret_reveal(c->session_token));
        if (r < 0)
                goto finish;
        qsort(headers, n, sizeof headers[0], canon_header_cmp);

        strbuf_appendf(&creq, "%s\n", req->method);
        canonical_path(&creq, req->path, req->normalize_path);
        strbuf_append_char(&creq, '\n');
        r = canonical_query(&creq, req->query);
        if (r < 0)
                goto finish;
        strbuf_append_char(&creq, '\n');
        for (size_t i = 0; i < n; i++) {
                bool dup = i > 0 && streq(headers[i].name, headers[i - 1].name);

                if (dup)
                        strbuf_appendf(&creq, ",%s", headers[i].value);
                else {
                        if (i > 0)
                                strbuf_append_char(&creq, '\n');
                        strbuf_appendf(&creq, "%s:%s", headers[i].name, headers[i].value);
                        if (signed_names.len > 0)
                                strbuf_append_char(&signed_names, ';');
                        strbuf_append(&signed_names, headers[i].name);
                }
        }
        strbuf_appendf(&creq, "\n\n%s\n%s", strbuf_str(&signed_names), sig.payload_hash);
        r = strbuf_error(&creq);
        if (r < 0)
                goto finish;

        r = sigv4_sha256_hex(creq.s, creq.len, creq_hash);
        if (r < 0)
                goto finish;
        (void) snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, s->region, s->service);
        strbuf_appendf(&sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", sig.amz_date, scope, creq_hash);

        r = derive_key(s, c->secret_access_key, date);
        if (r < 0)
                goto finish;
        r = hmac_sha256(s->cached_key, sizeof s->cached_key, strbuf_str(&sts), sts.len, mac);
        if (r < 0)
                goto finish;
        hex_encode(mac, sizeof mac, sig.signature);

        strbuf_appendf(&auth, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                       c->access_key_id, scope, strbuf_str(&signed_names), sig.signature);
        r = strbuf_error(&sts);
        if (r >= 0)
                r = strbuf_error(&auth);
        if (r < 0)
                goto finish;
        sig.canonical_request = strbuf_steal(&creq);
        sig.string_to_sign = strbuf_steal(&sts);
        sig.authorization = strbuf_steal(&auth);
        *ret = sig;
        r = 0;
finish:
        canon_headers_free(headers, n);
        strbuf_done_erase(&creq);
        return r;
}
