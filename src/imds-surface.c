/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "imds-surface.h"
#include "roles.h"

#define E(p, m, v) \
        { p, IMDS_SURFACE_##m, IMDS_SURFACE_##v, false, IMDS_SURFACE_TTL_NEVER }
/* FORWARD, and fixed for the life of the instance (a stop and start restarts the daemon too) */
#define FIXED(p, m) \
        { p, IMDS_SURFACE_##m, IMDS_SURFACE_FORWARD, true, IMDS_SURFACE_TTL_NEVER }
/* FORWARD; an upstream 200 answer is reused for IMDS_SURFACE_TTL_<ttl> seconds */
#define FWD(p, m, ttl) \
        { p, IMDS_SURFACE_##m, IMDS_SURFACE_FORWARD, false, IMDS_SURFACE_TTL_##ttl }

/* AWS's documented instance-metadata categories (EC2 User Guide, "Instance metadata categories"
 * and "Dynamic data categories") and what each gets; docs/imds-surface.md says why per entry. */
static const ImdsSurfaceEntry table[] = {
        /* the daemon's own answers (the router sends these to the credential handlers) */
        E("api/token", EXACT, SERVED),
        E("meta-data/iam/info", EXACT, SERVED),
        E("meta-data/iam/security-credentials", TREE, SERVED),
        E("meta-data/iam/security-credentials-extended", TREE, SERVED),
        E("meta-data/iam", DIR, SERVED),
        /* the node's own identity: never a pod's */
        E("meta-data/iam", TREE, REFUSED),
        E("meta-data/identity-credentials", TREE, REFUSED),
        /* plain facts about the instance */
        FIXED("meta-data/ami-id", EXACT),
        FIXED("meta-data/ami-launch-index", EXACT),
        FIXED("meta-data/ami-manifest-path", EXACT),
        FIXED("meta-data/ancestor-ami-ids", EXACT),
        FWD("meta-data/autoscaling/target-lifecycle-state", EXACT, NEVER),
        FWD("meta-data/block-device-mapping", TREE, LAUNCH),
        FWD("meta-data/elastic-gpus", TREE, LAUNCH),
        FWD("meta-data/elastic-inference", TREE, LAUNCH),
        FWD("meta-data/events", TREE, NEVER),
        FIXED("meta-data/hostname", EXACT),
        FWD("meta-data/instance-action", EXACT, NEVER),
        FIXED("meta-data/instance-id", EXACT),
        FIXED("meta-data/instance-life-cycle", EXACT),
        FIXED("meta-data/instance-type", EXACT),
        FWD("meta-data/ipv6", EXACT, NEVER),
        FIXED("meta-data/kernel-id", EXACT),
        FIXED("meta-data/local-hostname", EXACT),
        FIXED("meta-data/local-ipv4", EXACT),
        FIXED("meta-data/mac", EXACT),
        FWD("meta-data/metrics/vhostmd", EXACT, LAUNCH),
        /* an interface's public addresses ('*' is one path segment, the MAC) */
        FWD("meta-data/network/interfaces/macs/*/ipv4-associations", TREE, NEVER),
        FWD("meta-data/network/interfaces/macs/*/ipv6-prefix", EXACT, NEVER),
        FWD("meta-data/network/interfaces/macs/*/ipv6s", EXACT, NEVER),
        FWD("meta-data/network/interfaces/macs/*/public-hostname", EXACT, NEVER),
        FWD("meta-data/network/interfaces/macs/*/public-ipv4s", EXACT, NEVER),
        FWD("meta-data/network/interfaces/macs", TREE, SHORT),
        FIXED("meta-data/placement", TREE),
        FIXED("meta-data/product-codes", EXACT),
        FWD("meta-data/public-hostname", EXACT, NEVER),
        FWD("meta-data/public-ipv4", EXACT, NEVER),
        FWD("meta-data/public-keys", TREE, LAUNCH),
        FIXED("meta-data/ramdisk-id", EXACT),
        FIXED("meta-data/reservation-id", EXACT),
        FWD("meta-data/security-groups", EXACT, SHORT),
        FWD("meta-data/services", TREE, LAUNCH),
        FWD("meta-data/spot", TREE, NEVER),
        FWD("meta-data/tags/instance", TREE, NEVER),
        FWD("dynamic/fws/instance-monitoring", EXACT, SHORT),
        FWD("dynamic/instance-identity/document", EXACT, LAUNCH),
        /* proof of being the node, and the node's bootstrap secrets: the operator's call */
        E("dynamic/instance-identity/pkcs7", EXACT, WITHHELD),
        E("dynamic/instance-identity/signature", EXACT, WITHHELD),
        E("dynamic/instance-identity/rsa2048", EXACT, WITHHELD),
        E("user-data", EXACT, WITHHELD),
};

const ImdsSurfaceEntry *imds_surface_table(size_t *ret_n) {
        *ret_n = ELEMENTSOF(table);
        return table;
}

const char *imds_surface_verdict_name(ImdsSurfaceVerdict v) {
        static const char *const names[_IMDS_SURFACE_MAX] = {
                [IMDS_SURFACE_REFUSED] = "refused",   [IMDS_SURFACE_FORWARD] = "forwarded",
                [IMDS_SURFACE_WITHHELD] = "withheld", [IMDS_SURFACE_SERVED] = "served",
                [IMDS_SURFACE_LISTING] = "listing",
        };
        return (unsigned) v < _IMDS_SURFACE_MAX ? names[v] : NULL;
}

bool imds_surface_version_valid(const char *v) {
        if (streq(v, "latest") || streq(v, "1.0"))
                return true;
        /* YYYY-MM-DD */
        if (strlen(v) != 10 || v[4] != '-' || v[7] != '-')
                return false;
        for (size_t i = 0; i < 10; i++)
                if (i != 4 && i != 7 && !isdigit((unsigned char) v[i]))
                        return false;
        return true;
}

/* How much of rel an entry's path matches from rel's start, '*' standing for one whole non-empty
 * segment; -1 when it does not. */
static ssize_t entry_prefix(const char *pat, const char *rel) {
        const char *r = rel;

        for (const char *p = pat; *p;)
                if (*p == '*') {
                        size_t seg = strcspn(r, "/");
                        if (seg == 0)
                                return -1;
                        r += seg;
                        p++;
                } else if (*p++ != *r++)
                        return -1;
        return r - rel;
}

/* rel ("meta-data/x", "meta-data/x/", ...) against an entry; n: rel's length without a trailing '/' */
static bool entry_matches(const ImdsSurfaceEntry *e, const char *rel, size_t n) {
        ssize_t l = entry_prefix(e->path, rel);

        if (l < 0)
                return false;
        switch (e->match) {
        case IMDS_SURFACE_EXACT:
                return rel[l] == '\0';
        case IMDS_SURFACE_DIR:
                return (size_t) l == n;
        case IMDS_SURFACE_TREE:
                return rel[l] == '\0' || rel[l] == '/';
        }
        return false;
}

/* rel (without its trailing '/', n bytes) is a directory above an entry that is not refused */
static bool is_listing(const char *rel, size_t n) {
        if (n == 0)
                return true; /* /{version}/ */
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].verdict != IMDS_SURFACE_REFUSED && strneq(table[i].path, rel, n) &&
                    table[i].path[n] == '/')
                        return true;
        return false;
}

static bool allow_names(char *const *allow, const char *path) {
        for (size_t i = 0; allow && allow[i]; i++)
                if (roles_glob_match(allow[i], path))
                        return true;
        return false;
}

static ImdsSurfaceVerdict table_verdict(const char *rel) {
        size_t n = strlen(rel);

        if (n > 0 && rel[n - 1] == '/')
                n--;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (entry_matches(&table[i], rel, n))
                        return table[i].verdict;
        return is_listing(rel, n) ? IMDS_SURFACE_LISTING : IMDS_SURFACE_REFUSED;
}

/* The path below /{version}/ (no trailing '/' dropped), NULL when the version is not valid or the
 * path is not clean. */
static const char *relative_path(const char *path) {
        const char *v = path + 1, *slash = strchr(v, '/'), *rel;
        char version[16];

        if ((size_t) ((slash ?: v + strlen(v)) - v) >= sizeof version)
                return NULL;
        snprintf(version, sizeof version, "%.*s", (int) ((slash ?: v + strlen(v)) - v), v);
        if (!imds_surface_version_valid(version))
                return NULL;
        rel = slash ? slash + 1 : "";
        return rel[0] == '/' ? NULL : rel; /* not clean: the router never hands this over */
}

/* The table entry that decides path (as for imds_surface_classify), NULL when none does. */
static const ImdsSurfaceEntry *entry_of(const char *path) {
        const char *rel;
        size_t n;

        if (path[0] != '/' || strchr(path, ';') || !(rel = relative_path(path)))
                return NULL;
        n = strlen(rel);
        if (n > 0 && rel[n - 1] == '/')
                n--;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (entry_matches(&table[i], rel, n))
                        return &table[i];
        return NULL;
}

bool imds_surface_immutable(const char *path) {
        const ImdsSurfaceEntry *e = entry_of(path);
        return e && e->verdict == IMDS_SURFACE_FORWARD && e->immutable;
}

unsigned imds_surface_ttl(const char *path) {
        const ImdsSurfaceEntry *e = entry_of(path);

        if (e)
                return e->verdict == IMDS_SURFACE_FORWARD && !e->immutable ? e->ttl : IMDS_SURFACE_TTL_NEVER;
        return imds_surface_classify(path, NULL) == IMDS_SURFACE_LISTING ? IMDS_SURFACE_TTL_LISTING
                                                                         : IMDS_SURFACE_TTL_NEVER;
}

ImdsSurfaceVerdict imds_surface_classify(const char *path, char *const *allow) {
        const char *rel;
        ImdsSurfaceVerdict r;

        if (path[0] != '/' || strchr(path, ';'))
                return IMDS_SURFACE_REFUSED;
        if (streq(path, "/"))
                return IMDS_SURFACE_LISTING; /* the metadata versions */
        rel = relative_path(path);
        if (!rel)
                return IMDS_SURFACE_REFUSED;

        r = table_verdict(rel);
        if (!allow)
                return r;
        if (r == IMDS_SURFACE_FORWARD && !allow_names(allow, path))
                return IMDS_SURFACE_WITHHELD;
        if (r == IMDS_SURFACE_WITHHELD && allow_names(allow, path))
                return IMDS_SURFACE_FORWARD;
        return r;
}

/* A listing line is a plain name, or a plain name and '/' (a directory). */
static bool listing_name_valid(const char *s, size_t n) {
        if (n > 0 && s[n - 1] == '/')
                n--;
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f || s[i] == '/' || s[i] == ';')
                        return false;
        return true;
}

int imds_surface_filter_listing(const char *dir, const char *body, size_t size, char *const *allow,
                                StrBuf *out) {
        const char *end = body + size;
        bool slash = dir[0] != '\0' && dir[strlen(dir) - 1] == '/';
        bool first = true;

        for (const char *line = body; line < end;) {
                const char *nl = memchr(line, '\n', (size_t) (end - line));
                size_t n = (size_t) ((nl ?: end) - line);
                _cleanup_free_ char *child = NULL;
                ImdsSurfaceVerdict v;

                if (listing_name_valid(line, n)) {
                        if (asprintf(&child, "%s%s%.*s", dir, slash ? "" : "/", (int) n, line) < 0)
                                return -ENOMEM;
                        v = imds_surface_classify(child, allow);
                        if (v != IMDS_SURFACE_REFUSED && v != IMDS_SURFACE_WITHHELD) {
                                if (!first)
                                        strbuf_append_char(out, '\n');
                                strbuf_append_n(out, line, n);
                                first = false;
                        }
                }
                line = nl ? nl + 1 : end;
        }
        return strbuf_error(out);
}
