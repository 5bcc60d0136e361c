/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>

#include "kube/watch-parser.h"
#include "string-util.h"
#include "tap.h"

/* Records every event as "TYPE:name:rv[:code]" lines. */
static int record(const WatchEvent *ev, void *userdata) {
        StrBuf *b = userdata;
        const char *name = json_get_string_path(ev->object, (const char *const[]){ "metadata", "name" }, 2);

        strbuf_appendf(b, "%s:%s:%s", watch_event_type_to_string(ev->type), strna(name),
                       strna(ev->resource_version));
        if (ev->type == WATCH_EVENT_ERROR)
                strbuf_appendf(b, ":%d", ev->code);
        strbuf_append_char(b, '\n');
        return 0;
}

static const char stream[] =
        "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":"
        "\"10\"}}}\n"
        "\r\n"
        "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"b\u00e9\\n\","
        "\"resourceVersion\":\"11\"}}}\n"
        "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"12\"}}}\n"
        "{\"type\":\"DELETED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\","
        "\"resourceVersion\":\"13\"}}}\n"
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
        "\"status\":\"Failure\","
        "\"message\":\"too old resource version: 1 (3171407)\",\"reason\":\"Expired\",\"code\":410}}\n";

static const char expected[] = "ADDED:a:10\n"
                               "MODIFIED:b\u00e9\n:11\n"
                               "BOOKMARK:n/a:12\n"
                               "DELETED:a:13\n"
                               "ERROR:n/a:n/a:410\n";

TEST(watch_parser_every_two_chunk_split_gives_the_same_events) {
        size_t n = strlen(stream);
        _cleanup_(watch_parser_freep) WatchParser *p = NULL;

        ASSERT_OK(watch_parser_new(MAX_WATCH_EVENT_BYTES, &p));
        for (size_t i = 0; i <= n; i++)
                for (size_t j = i; j <= n; j += 7) {
                        _cleanup_strbuf_ StrBuf b = {};
                        ASSERT_OK(watch_parser_feed(p, stream, i, record, &b));
                        ASSERT_OK(watch_parser_feed(p, stream + i, j - i, record, &b));
                        ASSERT_OK(watch_parser_feed(p, stream + j, n - j, record, &b));
                        ASSERT_OK(watch_parser_finish(p, record, &b));
                        ASSERT_EQ(watch_parser_pending(p), 0);
                        if (!streq(strbuf_str(&b), expected))
                                tap_fail(__FILE__, __LINE__, "split %zu/%zu gave:\n%s", i, j,
                                         strbuf_str(&b));
                }
}

TEST(watch_parser_byte_at_a_time_and_missing_final_newline) {
        _cleanup_(watch_parser_freep) WatchParser *p = NULL;
        _cleanup_strbuf_ StrBuf b = {};
        size_t n = strlen(stream) - 1; /* drop the last newline: the stream ended without it */

        ASSERT_OK(watch_parser_new(MAX_WATCH_EVENT_BYTES, &p));
        for (size_t i = 0; i < n; i++)
                ASSERT_OK(watch_parser_feed(p, stream + i, 1, record, &b));
        ASSERT_OK(watch_parser_finish(p, record, &b));
        ASSERT_STREQ(strbuf_str(&b), expected);
}

TEST(watch_parser_event_larger_than_a_chunk_and_over_the_limit) {
        _cleanup_(watch_parser_freep) WatchParser *p = NULL;
        _cleanup_strbuf_ StrBuf ev = {}, b = {};

        strbuf_append(
                &ev,
                "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"big\",\"annotations\":{\"x\":\"");
        for (int i = 0; i < 100000; i++)
                strbuf_append_char(&ev, 'x');
        strbuf_append(&ev, "\"}}}}\n");

        ASSERT_OK(watch_parser_new(200000, &p));
        for (size_t off = 0; off < ev.len; off += 1000)
                ASSERT_OK(watch_parser_feed(p, ev.s + off, MIN((size_t) 1000, ev.len - off), record, &b));
        ASSERT_STREQ(strbuf_str(&b), "ADDED:big:n/a\n");

        p = watch_parser_free(p);
        ASSERT_OK(watch_parser_new(50000, &p));
        ASSERT_ERROR(watch_parser_feed(p, ev.s, 40000, record, &b), 0);
        ASSERT_ERROR(watch_parser_feed(p, ev.s + 40000, 20000, record, &b), -E2BIG);
        watch_parser_reset(p);
        ASSERT_ERROR(watch_parser_feed(p, ev.s, ev.len, record, &b), -E2BIG);
}

TEST(watch_parser_rejects_malformed_events) {
        static const char *const bad[] = {
                "not json\n",
                "[1,2]\n",
                "{\"type\":\"ADDED\"}\n",
                "{\"type\":\"RENAMED\",\"object\":{}}\n",
                "{\"type\":5,\"object\":{}}\n",
                "{\"type\":\"ADDED\",\"object\":\"x\"}\n",
                "{\"type\":\"ADDED\",\"object\":{}\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(watch_parser_freep) WatchParser *p = NULL;
                _cleanup_strbuf_ StrBuf b = {};
                ASSERT_OK(watch_parser_new(MAX_WATCH_EVENT_BYTES, &p));
                ASSERT_ERROR(watch_parser_feed(p, bad[i], strlen(bad[i]), record, &b), -EBADMSG);
                ASSERT_EQ(b.len, 0);
        }
}

static int stop_at_bookmark(const WatchEvent *ev, void *userdata) {
        (*(int *) userdata)++;
        return ev->type == WATCH_EVENT_BOOKMARK ? -ESTALE : 0;
}

TEST(watch_parser_handler_error_stops_feeding) {
        _cleanup_(watch_parser_freep) WatchParser *p = NULL;
        int n = 0;

        ASSERT_OK(watch_parser_new(MAX_WATCH_EVENT_BYTES, &p));
        ASSERT_ERROR(watch_parser_feed(p, stream, strlen(stream), stop_at_bookmark, &n), -ESTALE);
        ASSERT_EQ(n, 3);
}
