/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* WatchParser: the incremental parser of a Kubernetes watch stream: newline-delimited JSON
 * objects {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}} that arrive in
 * chunks whose boundaries fall anywhere (one event may span many chunks, one chunk may hold
 * many events). Owns the bytes of the event not yet complete, bounded by a named per-event
 * limit; each complete line is parsed with cJSON and handed to a callback, then freed.
 * Reference: kubernetes.io/docs/reference/using-api/api-concepts ("Efficient detection of
 * changes", "Watch bookmarks"). */

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "macro.h"

/* etcd refuses objects over 1.5 MiB (--max-request-bytes), so no real event exceeds that plus
 * the envelope; 4 MiB leaves room and still bounds what a broken server can make us hold. */
#define MAX_WATCH_EVENT_BYTES (4 * 1024 * 1024)

typedef enum WatchEventType {
        WATCH_EVENT_ADDED,
        WATCH_EVENT_MODIFIED,
        WATCH_EVENT_DELETED,
        WATCH_EVENT_BOOKMARK,
        WATCH_EVENT_ERROR,
} WatchEventType;

typedef struct WatchEvent {
        WatchEventType type;
        const cJSON *object;          /* valid during the callback only */
        const char *resource_version; /* object.metadata.resourceVersion, NULL when absent */
        int code;                     /* ERROR: status.code (410 = history expired, re-list) */
        const char *message;          /* ERROR: status.message */
} WatchEvent;

/* Returns 0 to go on, a negative errno to stop feeding (returned by watch_parser_feed()). */
typedef int (*watch_event_handler_t)(const WatchEvent *ev, void *userdata);

typedef struct WatchParser WatchParser;

int watch_parser_new(size_t max_event_bytes, WatchParser **ret);
WatchParser *watch_parser_free(WatchParser *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(WatchParser *, watch_parser_free);
/* Forgets any partial event (a new stream begins). */
void watch_parser_reset(WatchParser *p);
/* Feeds n bytes, calling handler for every event completed by them. Returns 0, or -EBADMSG for
 * a malformed event (not JSON, no known type, no object), -E2BIG for one over the limit, or the
 * handler's error. After an error the stream cannot be trusted: reset and re-list. */
int watch_parser_feed(WatchParser *p, const char *data, size_t n, watch_event_handler_t handler,
                      void *userdata);
/* End of stream: parses a last event that lacked its newline. */
int watch_parser_finish(WatchParser *p, watch_event_handler_t handler, void *userdata);
size_t watch_parser_pending(const WatchParser *p);

const char *watch_event_type_to_string(WatchEventType t);

/* Small cJSON helpers shared by the Kubernetes code. */
static inline void json_deletep(cJSON **j) {
        cJSON_Delete(*j);
}
/* object.a.b... as a string, NULL when absent or not a string. */
const char *json_get_string_path(const cJSON *o, const char *const *path, size_t n);
