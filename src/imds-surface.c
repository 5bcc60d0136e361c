/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imds-surface.h"
#include "roles.h"

#define E(p, m, v) \
        { p, IMDS_SURFACE_##m, IMDS_SURFACE_##v, false }
/* FORWARD, and fixed for the life of the instance (a stop and start restarts the daemon too) */
#define FIXED(p, m) \
        { p, IMDS_SURFACE_##m, IMDS_SURFACE_FORWARD, true }

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
        E("meta-data/autoscaling/target-lifecycle-state", EXACT, FORWARD),
        E("meta-data/block-device-mapping", TREE, FORWARD),
        E("meta-data/elastic-gpus", TREE, FORWARD),
        E("meta-data/elastic-inference", TREE, FORWARD),
        E("meta-data/events", TREE, FORWARD),
        FIXED("meta-data/hostname", EXACT),
        E("meta-data/instance-action", EXACT, FORWARD),
        FIXED("meta-data/instance-id", EXACT),
        FIXED("meta-data/instance-life-cycle", EXACT),
        FIXED("meta-data/instance-type", EXACT),
        E("meta-data/ipv6", EXACT, FORWARD),
        FIXED("meta-data/kernel-id", EXACT),
        FIXED("meta-data/local-hostname", EXACT),
        FIXED("meta-data/local-ipv4", EXACT),
        FIXED("meta-data/mac", EXACT),
        E("meta-data/metrics/vhostmd", EXACT, FORWARD),
        E("meta-data/network/interfaces/macs", TREE, FORWARD),
        FIXED("meta-data/placement", TREE),
        FIXED("meta-data/product-codes", EXACT),
        E("meta-data/public-hostname", EXACT, FORWARD),
        E("meta-data/public-ipv4", EXACT, FORWARD),
        E("meta-data/public-keys", TREE, FORWARD),
        FIXED("meta-data/ramdisk-id", EXACT),
        FIXED("meta-data/reservation-id", EXACT),
        E("meta-data/security-groups", EXACT, FORWARD),
        E("meta-data/services", TREE, FORWARD),
        E("meta-data/spot", TREE, FORWARD),
        E("meta-data/tags/instance", TREE, FORWARD),
        E("dynamic/fws/instance-monitoring", EXACT, FORWARD),
        E("dynamic/instance-identity/document", EXACT, FORWARD),
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

/* rel ("meta-data/x", "meta-data/x/", ...) against an entry; n: rel's length without a trailing '/' */
static bool entry_matches(const ImdsSurfaceEntry *e, const char *rel, size_t n) {
        size_t l = strlen(e->path);

        switch (e->match) {
        case IMDS_SURFACE_EXACT:
                return streq(rel, e->path);
        case IMDS_SURFACE_DIR:
                return n == l && strneq(rel, e->path, l);
        case IMDS_SURFACE_TREE:
                return strneq(rel, e->path, l) && (rel[l] == '\0' || rel[l] == '/');
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

bool imds_surface_immutable(const char *path) {
        const char *rel;
        size_t n;

        if (path[0] != '/' || strchr(path, ';') || !(rel = relative_path(path)))
                return false;
        n = strlen(rel);
        if (n > 0 && rel[n - 1] == '/')
                n--;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (entry_matches(&table[i], rel, n))
                        return table[i].verdict == IMDS_SURFACE_FORWARD && table[i].immutable;
        return false;
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
