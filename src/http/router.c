/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "string-util.h"

int router_unescape_path(const char *p, char **ret) {
        size_t n = strlen(p);
        char *out, *o;

        out = o = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (p[i] != '%') {
                        *o++ = p[i];
                        continue;
                }
                if (i + 2 >= n) {
                        free(out);
                        return -EINVAL;
                }
                int h = unhexchar(p[i + 1]), l = h >= 0 ? unhexchar(p[i + 2]) : -1;
                if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                        /* Go answers 400 to a malformed escape; we also refuse NUL, which no IMDS path has */
                        free(out);
                        return -EINVAL;
                }
                *o++ = (char) (h * 16 + l);
                i += 2;
        }
        *o = '\0';
        *ret = out;
        return 0;
}

char *router_escape_path(const char *p) {
        static const char hex[] = "0123456789ABCDEF";
        StrBuf b = {};

        for (const unsigned char *s = (const unsigned char *) p; *s; s++) {
                /* Go's shouldEscape(c, encodePath) */
                if (isalnum(*s) || strchr("-_.~$&+,/:;=@", *s))
                        strbuf_append_char(&b, (char) *s);
                else {
                        char e[3] = { '%', hex[*s >> 4], hex[*s & 15] };
                        strbuf_append_n(&b, e, 3);
                }
        }
        return strbuf_steal(&b);
}

/* Absolute, no empty segment but a trailing one, no "." or "..": cleaning would change nothing. */
static bool path_is_clean(const char *p) {
        if (*p != '/')
                return false;
        for (const char *seg = p + 1; *seg;) {
                size_t n = strcspn(seg, "/");
                if (n == 0 || (seg[0] == '.' && (n == 1 || (n == 2 && seg[1] == '.'))))
                        return false;
                seg += n;
                if (*seg)
                        seg++;
        }
        return true;
}

char *router_clean_path(const char *p) {
        _cleanup_strv_free_ char **parts = NULL, **out = NULL;
        StrBuf b = {};
        size_t n;
        bool trailing;

        if (isempty(p))
                return strdup("/");
        if (path_is_clean(p))
                return strdup(p); /* every request of a well-behaved client: no split, no rebuild */
        trailing = p[strlen(p) - 1] == '/';
        if (strv_split(p, "/", &parts) < 0)
                return NULL;
        for (char **e = parts; *e; e++) {
                if (streq(*e, "."))
                        continue;
                if (streq(*e, "..")) {
                        n = strv_length(out);
                        if (n > 0) {
                                free(out[n - 1]);
                                out[n - 1] = NULL;
                        }
                        continue; /* ".." at the root stays at the root */
                }
                if (strv_extend(&out, *e) < 0)
                        return NULL;
        }
        for (char **e = out; e && *e; e++) {
                strbuf_append_char(&b, '/');
                strbuf_append(&b, *e);
        }
        if (b.len == 0)
                strbuf_append_char(&b, '/');
        else if (trailing)
                strbuf_append_char(&b, '/');
        return strbuf_steal(&b);
}

const char *route_handler_name(RouteId id) {
        switch (id) {
        case ROUTE_DEBUG_STORE:
                return "debugStoreHandler";
        case ROUTE_ROLE_LIST:
                return "securityCredentialsHandler";
        case ROUTE_ROLE_CREDENTIALS:
                return "roleHandler";
        case ROUTE_HEALTHZ:
                return "healthHandler";
        case ROUTE_PROXY:
                return "reverseProxyHandler";
        case ROUTE_API_TOKEN:
                return "apiTokenHandler";
        case ROUTE_IAM_INFO:
                return "iamInfoHandler";
        case ROUTE_IDENTITY:
                return "identityCredentialsHandler";
        default:
                return NULL;
        }
}

void route_match_done(RouteMatch *m) {
        free(m->path);
        free(m->version);
        free(m->role);
        free(m->location);
        free(m->host);
        *m = (RouteMatch){};
}

/* Splits "/{version}/rest" into the version segment and "/rest" (mux's `[^/]+`). */
static int split_version(const char *path, char **ret_version, const char **ret_rest) {
        const char *v = path + 1, *slash;

        if (path[0] != '/')
                return 0;
        slash = strchr(v, '/');
        if (!slash || slash == v)
                return 0;
        *ret_version = strndup(v, (size_t) (slash - v));
        if (!*ret_version)
                return -ENOMEM;
        *ret_rest = slash;
        return 1;
}

/* Routes below a {version} segment; ROUTE_PROXY when none matches. */
static RouteId match_versioned(const char *rest, char **ret_role, bool *ret_extended) {
        const char *r;

        /* the SDKs' extended API (2025) asks first: same rules, the document adds AccountId */
        r = startswith(rest, "/meta-data/iam/security-credentials-extended");
        if (r && (streq(r, "") || r[0] == '/'))
                *ret_extended = true;
        else
                r = startswith(rest, "/meta-data/iam/security-credentials");
        if (r) {
                if (streq(r, "") || streq(r, "/"))
                        return ROUTE_ROLE_LIST;
                if (r[0] == '/') {
                        *ret_role = strdup(r + 1);
                        return *ret_role ? ROUTE_ROLE_CREDENTIALS : _ROUTE_MAX;
                }
                return ROUTE_PROXY; /* e.g. /latest/meta-data/iam/security-credentialsX */
        }
        if (streq(rest, "/api/token"))
                return ROUTE_API_TOKEN;
        if (streq(rest, "/meta-data/iam/info"))
                return ROUTE_IAM_INFO;
        r = startswith(rest, "/meta-data/identity-credentials");
        if (r && (streq(r, "") || r[0] == '/'))
                return ROUTE_IDENTITY;
        return ROUTE_PROXY;
}

int router_match(const RouterOptions *o, const char *raw_path, const char *raw_query, RouteMatch *ret) {
        RouteMatch m = {};
        _cleanup_free_ char *decoded = NULL, *clean = NULL;
        const char *path = raw_path, *rest;
        int r;

        /* absolute-form: scheme://authority/path (RFC 9112 3.2.2) */
        const char *after =
                startswith_no_case(raw_path, "http://") ?: startswith_no_case(raw_path, "https://");
        if (after) {
                size_t hl = strcspn(after, "/");
                m.host = strndup(after, hl);
                if (!m.host)
                        return -ENOMEM;
                path = after + hl;
        }

        r = router_unescape_path(path, &decoded);
        if (r == -EINVAL) {
                m.id = ROUTE_BAD_REQUEST;
                *ret = m;
                return 0;
        }
        if (r < 0) {
                route_match_done(&m);
                return r;
        }

        clean = router_clean_path(decoded);
        if (!clean) {
                route_match_done(&m);
                return -ENOMEM;
        }
        if (!streq(clean, decoded)) {
                _cleanup_free_ char *esc = router_escape_path(clean);
                StrBuf b = {};
                if (!esc) {
                        route_match_done(&m);
                        return -ENOMEM;
                }
                if (m.host)
                        strbuf_appendf(&b, "http://%s", m.host);
                strbuf_append(&b, esc);
                if (raw_query && *raw_query)
                        strbuf_appendf(&b, "?%s", raw_query);
                m.location = strbuf_steal(&b);
                if (!m.location) {
                        route_match_done(&m);
                        return -ENOMEM;
                }
                m.id = ROUTE_REDIRECT;
                m.path = TAKE_PTR(clean);
                *ret = m;
                return 0;
        }

        if (o->debug && streq(decoded, "/debug/store"))
                m.id = ROUTE_DEBUG_STORE;
        else if (streq(decoded, "/healthz"))
                m.id = ROUTE_HEALTHZ;
        else if (o->metrics && streq(decoded, "/metrics"))
                m.id = ROUTE_METRICS;
        else {
                r = split_version(decoded, &m.version, &rest);
                if (r < 0) {
                        route_match_done(&m);
                        return r;
                }
                m.id = r > 0 ? match_versioned(rest, &m.role, &m.extended) : ROUTE_PROXY;
                if (m.id == _ROUTE_MAX) {
                        route_match_done(&m);
                        return -ENOMEM;
                }
        }

        if (m.id == ROUTE_PROXY) {
                m.version = mfree(m.version);
                m.extended = false;
        }
        m.path = TAKE_PTR(decoded);
        *ret = m;
        return 0;
}
