/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "string-util.h"
#include "watch-parser.h"

struct WatchParser {
        char *buf;
        size_t len, cap;
        size_t max;
};

static const char *const type_names[] = {
        [WATCH_EVENT_ADDED] = "ADDED",     [WATCH_EVENT_MODIFIED] = "MODIFIED",
        [WATCH_EVENT_DELETED] = "DELETED", [WATCH_EVENT_BOOKMARK] = "BOOKMARK",
        [WATCH_EVENT_ERROR] = "ERROR",
};

const char *watch_event_type_to_string(WatchEventType t) {
        return (size_t) t < ELEMENTSOF(type_names) ? type_names[t] : NULL;
}

const char *json_get_string_path(const cJSON *o, const char *const *path, size_t n) {
        for (size_t i = 0; i < n && o; i++)
                o = cJSON_GetObjectItemCaseSensitive(o, path[i]);
        return cJSON_IsString(o) ? o->valuestring : NULL;
}

int watch_parser_new(size_t max_event_bytes, WatchParser **ret) {
        WatchParser *p;

        if (!ret || max_event_bytes == 0)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->max = max_event_bytes;
        *ret = p;
        return 0;
}

WatchParser *watch_parser_free(WatchParser *p) {
        if (!p)
                return NULL;
        free(p->buf);
        free(p);
        return NULL;
}

void watch_parser_reset(WatchParser *p) {
        p->len = 0;
        /* a huge event should not pin its buffer for the life of the watch */
        if (p->cap > 64 * 1024) {
                p->buf = mfree(p->buf);
                p->cap = 0;
        }
}

size_t watch_parser_pending(const WatchParser *p) {
        return p->len;
}

static int parse_line(const char *line, size_t n, watch_event_handler_t handler, void *userdata) {
        _cleanup_(json_deletep) cJSON *root = NULL;
        const cJSON *type, *object;
        WatchEvent ev = {};
        size_t t;

        /* blank lines (keep-alives some proxies insert) are not events */
        while (n > 0 && strchr(" \t\r", line[n - 1]))
                n--;
        while (n > 0 && strchr(" \t\r", line[0]))
                line++, n--;
        if (n == 0)
                return 0;

        root = cJSON_ParseWithLength(line, n);
        if (!cJSON_IsObject(root))
                return -EBADMSG;
        type = cJSON_GetObjectItemCaseSensitive(root, "type");
        object = cJSON_GetObjectItemCaseSensitive(root, "object");
        if (!cJSON_IsString(type) || !cJSON_IsObject(object))
                return -EBADMSG;
        for (t = 0; t < ELEMENTSOF(type_names); t++)
                if (streq(type->valuestring, type_names[t]))
                        break;
        if (t >= ELEMENTSOF(type_names))
                return -EBADMSG;

        ev.type = (WatchEventType) t;
        ev.object = object;
        ev.resource_version =
                json_get_string_path(object, (const char *const[]){ "metadata", "resourceVersion" }, 2);
        if (ev.type == WATCH_EVENT_ERROR) {
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(object, "code");
                ev.code = cJSON_IsNumber(code) ? code->valueint : 0;
                ev.message = json_get_string_path(object, (const char *const[]){ "message" }, 1);
        }
        return handler(&ev, userdata);
}

int watch_parser_feed(WatchParser *p, const char *data, size_t n, watch_event_handler_t handler,
                      void *userdata) {
        size_t start = 0;
        int r;

        if (!p || (!data && n > 0) || !handler)
                return -EINVAL;

        /* Events wholly inside data are parsed in place; only the unfinished tail is copied. */
        if (p->len == 0) {
                for (;;) {
                        const char *nl = memchr(data + start, '\n', n - start);
                        if (!nl)
                                break;
                        size_t m = (size_t) (nl - (data + start));
                        if (m > p->max)
                                return -E2BIG;
                        r = parse_line(data + start, m, handler, userdata);
                        if (r < 0)
                                return r;
                        start += m + 1;
                }
                data += start;
                n -= start;
                if (n == 0)
                        return 0;
        }

        for (;;) {
                const char *nl = memchr(data, '\n', n);
                size_t take = nl ? (size_t) (nl - data) : n;

                if (p->len + take > p->max)
                        return -E2BIG;
                if (p->len + take + 1 > p->cap) {
                        size_t cap = MAX(p->cap * 2, p->len + take + 1);
                        char *b;

                        cap = MIN(MAX(cap, (size_t) 4096), p->max + 1);
                        b = realloc(p->buf, cap);
                        if (!b)
                                return -ENOMEM;
                        p->buf = b;
                        p->cap = cap;
                }
                memcpy(p->buf + p->len, data, take);
                p->len += take;
                if (!nl)
                        return 0;
                r = parse_line(p->buf, p->len, handler, userdata);
                p->len = 0;
                if (r < 0)
                        return r;
                data = nl + 1;
                n -= take + 1;
                /* the rest may again hold whole events: parse them in place */
                if (n > 0)
                        return watch_parser_feed(p, data, n, handler, userdata);
                return 0;
        }
}

int watch_parser_finish(WatchParser *p, watch_event_handler_t handler, void *userdata) {
        int r;

        if (!p || p->len == 0)
                return 0;
        r = parse_line(p->buf, p->len, handler, userdata);
        p->len = 0;
        return r;
}
