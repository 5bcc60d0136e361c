/* SPDX-License-Identifier: BSD-3-Clause */
/* The warm-restart snapshot format: round trip, version, build, checksum, truncation, sealing. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "token-issuer.h"
#include "snapshot.h"
#include "tap.h"

#define BUILD "0.1.0 abc123"

static Credentials *make_creds(const char *akid, const char *secret, const char *token, usec_t exp) {
        Secret *s = NULL, *t = NULL;
        Credentials *c = NULL;

        if (secret_new(secret, strlen(secret), &s) < 0 || secret_new(token, strlen(token), &t) < 0)
                return NULL;
        if (credentials_new(akid, s, t, exp, exp - 3600 * USEC_PER_SEC, &c) < 0)
                return NULL;
        return c;
}

static Snapshot *make_snapshot(void) {
        _cleanup_(credentials_unrefp) Credentials *a =
                make_creds("ASIAAAAA", "secret-aa", "tok-a", 2000000000000000);
        _cleanup_(credentials_unrefp) Credentials *b =
                make_creds("ASIABBBB", "secret-b", "tok-b", 2000000001000000);
        unsigned char raw[TOKEN_KEY_BYTES];
        _cleanup_secret_ Secret *key = NULL;
        Snapshot *s = NULL;

        for (size_t i = 0; i < sizeof raw; i++)
                raw[i] = (unsigned char) i; /* includes a NUL: the key is bytes, not text */
        if (!a || !b || secret_new((const char *) raw, sizeof raw, &key) < 0 || snapshot_new(&s) < 0)
                return NULL;
        if (snapshot_set_token_key(s, key) < 0 ||
            snapshot_add_credentials(s, &(const CredsKey){ .role_arn = "arn:aws:iam::123456789012:role/a" },
                                     a) < 0 ||
            snapshot_add_credentials(s,
                                     &(const CredsKey){ .role_arn = "arn:aws:iam::123456789012:role/b",
                                                        .external_id = "ext-id",
                                                        .session_name = "default.app-0",
                                                        .session = "Tags.member.1.Key=ns" },
                                     b) < 0)
                return snapshot_free(s);
        return s;
}

static void encode(const Snapshot *s, char **buf, size_t *n) {
        if (snapshot_encode(s, BUILD, buf, n) < 0)
                tap_fail(__FILE__, __LINE__, "encode failed");
}

TEST(snapshot_round_trip_keeps_key_and_credentials) {
        _cleanup_(snapshot_freep) Snapshot *s = make_snapshot(), *back = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n;

        ASSERT_NOT_NULL(s);
        encode(s, &buf, &n);
        ASSERT_OK(snapshot_decode(buf, n, &back));
        ASSERT_STREQ(back->build, BUILD);
        ASSERT_TRUE(secret_equal(s->token_key, back->token_key));
        ASSERT_UEQ(back->n_creds, 2);
        ASSERT_STREQ(back->creds[0].role_arn, "arn:aws:iam::123456789012:role/a");
        ASSERT_STREQ(back->creds[0].external_id, "");
        ASSERT_STREQ(back->creds[1].external_id, "ext-id");
        ASSERT_STREQ(back->creds[0].session_name, "");
        ASSERT_STREQ(back->creds[0].session, "");
        ASSERT_STREQ(back->creds[1].session_name, "default.app-0");
        ASSERT_STREQ(back->creds[1].session, "Tags.member.1.Key=ns");
        ASSERT_STREQ(back->creds[1].creds->access_key_id, "ASIABBBB");
        ASSERT_TRUE(
                secret_equal(s->creds[0].creds->secret_access_key, back->creds[0].creds->secret_access_key));
        ASSERT_UEQ(secret_size(back->creds[0].creds->secret_access_key), 9);
        ASSERT_TRUE(secret_equal(s->creds[1].creds->session_token, back->creds[1].creds->session_token));
        ASSERT_UEQ(back->creds[1].creds->expiration, 2000000001000000);
        ASSERT_UEQ(back->creds[1].creds->last_updated, 2000000001000000 - 3600 * USEC_PER_SEC);
}

TEST(snapshot_empty_round_trips) {
        _cleanup_(snapshot_freep) Snapshot *s = NULL, *back = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n;

        ASSERT_OK(snapshot_new(&s));
        encode(s, &buf, &n);
        ASSERT_OK(snapshot_decode(buf, n, &back));
        ASSERT_NULL(back->token_key);
        ASSERT_UEQ(back->n_creds, 0);
}

TEST(snapshot_from_another_build_is_read_another_format_is_refused) {
        _cleanup_(snapshot_freep) Snapshot *s = make_snapshot(), *back = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n;

        ASSERT_OK(snapshot_encode(s, "0.0.9 old", &buf, &n));
        ASSERT_OK(snapshot_decode(buf, n, &back)); /* an upgrade keeps it: the format decides */
        ASSERT_STREQ(back->build, "0.0.9 old");
        back = snapshot_free(back);
        buf[SNAPSHOT_MAGIC_LEN] = 1; /* format version 1: default sessions only, no longer read */
        ASSERT_ERROR(snapshot_decode(buf, n, &back), -EPROTONOSUPPORT);
        buf[SNAPSHOT_MAGIC_LEN] = SNAPSHOT_FORMAT_VERSION + 1; /* a newer format */
        ASSERT_ERROR(snapshot_decode(buf, n, &back), -EPROTONOSUPPORT);
        buf[0] = 'X';
        ASSERT_ERROR(snapshot_decode(buf, n, &back), -EPROTO);
        ASSERT_NULL(back);
}

TEST(snapshot_any_flipped_byte_is_refused) {
        _cleanup_(snapshot_freep) Snapshot *s = make_snapshot();
        _cleanup_free_ char *buf = NULL;
        size_t n;

        encode(s, &buf, &n);
        for (size_t i = 0; i < n; i++) {
                Snapshot *back = NULL;
                buf[i] ^= 0x01;
                ASSERT_TRUE(snapshot_decode(buf, n, &back) < 0);
                ASSERT_NULL(back);
                buf[i] ^= 0x01;
        }
}

TEST(snapshot_truncated_or_extended_is_refused) {
        _cleanup_(snapshot_freep) Snapshot *s = make_snapshot();
        _cleanup_free_ char *buf = NULL, *longer = NULL;
        size_t n;

        encode(s, &buf, &n);
        for (size_t len = 0; len < n; len++) {
                Snapshot *back = NULL;
                ASSERT_TRUE(snapshot_decode(buf, len, &back) < 0);
                ASSERT_NULL(back);
        }
        longer = calloc(1, n + 1);
        ASSERT_NOT_NULL(longer);
        memcpy(longer, buf, n);
        {
                Snapshot *back = NULL;
                ASSERT_TRUE(snapshot_decode(longer, n + 1, &back) < 0);
        }
}

TEST(snapshot_memfd_is_sealed_and_reads_back) {
        _cleanup_(snapshot_freep) Snapshot *s = make_snapshot(), *back = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t sum[SNAPSHOT_CHECKSUM_BYTES];
        int seals;

        ASSERT_OK(snapshot_to_memfd(s, BUILD, &fd));
        seals = fcntl(fd, F_GET_SEALS);
        ASSERT_TRUE(seals & F_SEAL_WRITE);
        ASSERT_TRUE(seals & F_SEAL_GROW);
        ASSERT_TRUE(seals & F_SEAL_SHRINK);
        ASSERT_TRUE(write(fd, "x", 1) < 0);
        ASSERT_TRUE(ftruncate(fd, 1) < 0);
        ASSERT_OK(snapshot_from_memfd(fd, &back, sum));
        ASSERT_UEQ(back->n_creds, 2);
        ASSERT_TRUE(secret_equal(s->token_key, back->token_key));
}

TEST(snapshot_unsealed_memfd_is_refused) {
        _cleanup_(snapshot_freep) Snapshot *s = make_snapshot(), *back = NULL;
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n;

        encode(s, &buf, &n);
        fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        ASSERT_TRUE(fd >= 0);
        ASSERT_TRUE(write(fd, buf, n) == (ssize_t) n);
        ASSERT_ERROR(snapshot_from_memfd(fd, &back, NULL), -EPERM);
        ASSERT_NULL(back);
}

TEST(snapshot_view_round_trips_pods_namespaces_and_versions) {
        _cleanup_(snapshot_freep) Snapshot *s = make_snapshot(), *back = NULL;
        _cleanup_(kube_pod_freep) KubePod *p = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n;

        ASSERT_NOT_NULL(s);
        ASSERT_OK(kube_pod_new("uid-1", "payments", "api-0", &p));
        ASSERT_OK(kube_pod_add_ip(p, "10.0.0.7"));
        ASSERT_OK(kube_pod_add_ip(p, "fd00::7"));
        p->role = strdup("app-role");
        p->resource_version = strdup("4711");
        p->terminating = true;
        ASSERT_OK(snapshot_set_view(s, "5000", "5001"));
        ASSERT_OK(snapshot_add_pod(s, p));
        ASSERT_OK(snapshot_add_namespace(s, "payments"));
        encode(s, &buf, &n);
        ASSERT_OK(snapshot_decode(buf, n, &back));
        ASSERT_STREQ(back->pods_rv, "5000");
        ASSERT_STREQ(back->namespaces_rv, "5001");
        ASSERT_UEQ(back->n_pods, 1);
        ASSERT_STREQ(back->pods[0]->uid, "uid-1");
        ASSERT_STREQ(back->pods[0]->role, "app-role");
        ASSERT_NULL(back->pods[0]->external_id);
        ASSERT_STREQ(back->pods[0]->resource_version, "4711");
        ASSERT_TRUE(back->pods[0]->terminating);
        ASSERT_FALSE(back->pods[0]->host_network);
        ASSERT_STREQ(back->pods[0]->ips[1], "fd00::7");
        ASSERT_UEQ(back->n_namespaces, 1);
        ASSERT_STREQ(back->namespaces[0], "payments");
}

TEST(snapshot_view_not_kept_leaves_its_objects_out) {
        _cleanup_(snapshot_freep) Snapshot *s = make_snapshot(), *back = NULL;
        _cleanup_(kube_pod_freep) KubePod *p = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n;

        ASSERT_NOT_NULL(s);
        ASSERT_OK(kube_pod_new("uid-1", "default", "app", &p));
        ASSERT_OK(snapshot_set_view(s, "5000", NULL));
        ASSERT_OK(snapshot_add_pod(s, p));
        ASSERT_OK(snapshot_add_namespace(s, "default"));
        snapshot_clear_view(s); /* namespaces were being listed: not kept */
        ASSERT_UEQ(s->n_namespaces, 0);
        ASSERT_UEQ(s->n_pods, 1);
        encode(s, &buf, &n);
        ASSERT_OK(snapshot_decode(buf, n, &back));
        ASSERT_NULL(back->namespaces_rv);
        ASSERT_UEQ(back->n_pods, 1);
}
