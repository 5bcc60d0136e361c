/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* ImdsSurface: the one table of what a pod may get from the instance-metadata tree
 * (docs/imds-surface.md). Owns, per documented IMDS category, whether the daemon answers it
 * itself, forwards it to the real IMDS, withholds it unless --metadata-allow names it, or
 * refuses it; which directory listings are forwarded and how their lines are filtered; and the
 * rule that a path the table does not name is refused (answered 404 locally, never forwarded).
 * Paths are matched as the router hands them over: decoded, cleaned, exact case; any `;`
 * refuses the path. Pure: no I/O, no state. */

#include <stdbool.h>
#include <stddef.h>

#include "string-util.h"

typedef enum ImdsSurfaceVerdict {
        IMDS_SURFACE_REFUSED,  /* answered 404 locally, never forwarded */
        IMDS_SURFACE_FORWARD,  /* forwarded to the real IMDS as it is */
        IMDS_SURFACE_WITHHELD, /* node identity material: forwarded only when --metadata-allow names it */
        IMDS_SURFACE_SERVED,   /* answered by the daemon itself (credentials, iam/info, tokens) */
        IMDS_SURFACE_LISTING,  /* a directory above table entries: forwarded, its lines filtered */
        _IMDS_SURFACE_MAX,
} ImdsSurfaceVerdict;

typedef enum ImdsSurfaceMatch {
        IMDS_SURFACE_EXACT, /* that path only */
        IMDS_SURFACE_DIR,   /* the directory listing, with or without its trailing '/' */
        IMDS_SURFACE_TREE,  /* the directory, with or without its '/', and everything below it */
} ImdsSurfaceMatch;

/* Seconds an upstream 200 answer to a forwarded path that is not fixed is reused for later GETs of
 * that path (docs/imds-surface.md says why per entry). Whatever the TTL, concurrent GETs of one
 * path share one upstream request (src/http/proxy.h). */
#define IMDS_SURFACE_TTL_NEVER 0U   /* notices, public addresses, tags, lifecycle: IMDS every time */
#define IMDS_SURFACE_TTL_SHORT 1U   /* what IMDS itself shows seconds late: interfaces, security groups */
#define IMDS_SURFACE_TTL_LAUNCH 10U /* what IMDS changes only when the instance starts */
/* Directory listings change when categories come and go (an interface attached, a notice
 * posted): IMDS itself shows that seconds late. */
#define IMDS_SURFACE_TTL_LISTING IMDS_SURFACE_TTL_SHORT

typedef struct ImdsSurfaceEntry {
        const char *path; /* below /{version}/, no leading or trailing '/'; '*' is one whole segment */
        ImdsSurfaceMatch match;
        ImdsSurfaceVerdict verdict;
        /* a fact fixed for the instance's life (docs/imds-surface.md says why per entry): the
         * upstream's 200 answer is kept in memory and served from there */
        bool immutable;
        unsigned ttl; /* IMDS_SURFACE_TTL_*, for a FORWARD entry that is not immutable */
} ImdsSurfaceEntry;

/* The table, in matching order (the first entry that matches decides). */
const ImdsSurfaceEntry *imds_surface_table(size_t *ret_n);

/* What a request for path (decoded, clean, absolute) gets. allow: --metadata-allow's patterns
 * ('*' matches any run of characters), NULL for the table's defaults. A non-NULL allow narrows:
 * a FORWARD path it does not name becomes WITHHELD; it widens only to WITHHELD entries it
 * names, never to SERVED, REFUSED or unknown paths. Listings are never narrowed by allow (their
 * lines are). */
ImdsSurfaceVerdict imds_surface_classify(const char *path, char *const *allow);

/* The path (as for imds_surface_classify) names an immutable FORWARD entry. */
bool imds_surface_immutable(const char *path);
/* Seconds an upstream 200 answer to path (as for imds_surface_classify) may be reused: its entry's
 * TTL, IMDS_SURFACE_TTL_LISTING for a listing, IMDS_SURFACE_TTL_NEVER for what is immutable (kept
 * for good, see imds_surface_immutable), withheld, served, refused or unknown. */
unsigned imds_surface_ttl(const char *path);

/* A valid {version} segment: "latest", "1.0" or a YYYY-MM-DD metadata build. */
bool imds_surface_version_valid(const char *v);

/* Filters an upstream listing of dir (a path classified LISTING) down to the lines whose path
 * would not be refused: each kept line as received, '\n'-separated. A line that is not a plain
 * name (empty, ".", "..", an inner '/', a control byte, ';') is dropped. */
int imds_surface_filter_listing(const char *dir, const char *body, size_t size, char *const *allow,
                                StrBuf *out);

const char *imds_surface_verdict_name(ImdsSurfaceVerdict v);
