/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "token-issuer.h"
#include "tap.h"

#define NOW (1000 * USEC_PER_SEC)

TEST(ttl_header_is_1_to_21600) {
        unsigned v;
        ASSERT_OK(token_parse_ttl("1", &v));
        ASSERT_EQ(v, 1);
        ASSERT_OK(token_parse_ttl("21600", &v));
        ASSERT_EQ(v, 21600);
        ASSERT_ERROR(token_parse_ttl("0", &v), -EINVAL);
        ASSERT_ERROR(token_parse_ttl("21601", &v), -EINVAL);
        ASSERT_ERROR(token_parse_ttl("", &v), -EINVAL);
        ASSERT_ERROR(token_parse_ttl(NULL, &v), -EINVAL);
        ASSERT_ERROR(token_parse_ttl("60s", &v), -EINVAL);
        ASSERT_ERROR(token_parse_ttl("-5", &v), -EINVAL);
        ASSERT_ERROR(token_parse_ttl(" 60", &v), -EINVAL);
        ASSERT_ERROR(token_parse_ttl("999999999999", &v), -EINVAL);
}

TEST(token_is_valid_for_its_address_until_it_expires) {
        _cleanup_(token_issuer_freep) TokenIssuer *t = NULL;
        _cleanup_free_ char *tok = NULL;

        ASSERT_OK(token_issuer_new(NULL, &t));
        ASSERT_OK(token_issuer_mint(t, "10.0.0.1", 60, NOW, &tok));
        ASSERT_TRUE(strlen(tok) <= TOKEN_MAX_LEN);
        ASSERT_OK(token_issuer_check(t, "10.0.0.1", tok, NOW));
        ASSERT_OK(token_issuer_check(t, "10.0.0.1", tok, NOW + 59 * USEC_PER_SEC));
        ASSERT_ERROR(token_issuer_check(t, "10.0.0.1", tok, NOW + 60 * USEC_PER_SEC), -EKEYEXPIRED);
        /* another pod cannot use it */
        ASSERT_ERROR(token_issuer_check(t, "10.0.0.12", tok, NOW), -EBADMSG);
        ASSERT_ERROR(token_issuer_check(t, "10.0.0.2", tok, NOW), -EBADMSG);
}

TEST(tampered_or_foreign_tokens_are_rejected) {
        _cleanup_(token_issuer_freep) TokenIssuer *a = NULL, *b = NULL;
        _cleanup_free_ char *tok = NULL;

        ASSERT_OK(token_issuer_new(NULL, &a));
        ASSERT_OK(token_issuer_new(NULL, &b));
        ASSERT_OK(token_issuer_mint(a, "10.0.0.1", 21600, NOW, &tok));
        /* another key (another boot) */
        ASSERT_ERROR(token_issuer_check(b, "10.0.0.1", tok, NOW), -EBADMSG);
        /* any changed character */
        for (size_t i = 0; tok[i]; i++) {
                char saved = tok[i];
                tok[i] = saved == 'A' ? 'B' : 'A';
                ASSERT_TRUE(token_issuer_check(a, "10.0.0.1", tok, NOW) < 0);
                tok[i] = saved;
        }
        ASSERT_ERROR(token_issuer_check(a, "10.0.0.1", "", NOW), -EBADMSG);
        ASSERT_ERROR(token_issuer_check(a, "10.0.0.1", "K2I1", NOW), -EBADMSG);
        ASSERT_ERROR(token_issuer_check(a, "10.0.0.1", "AQAAA...", NOW), -EBADMSG);
        ASSERT_ERROR(token_issuer_check(a, "10.0.0.1", NULL, NOW), -EBADMSG);
        ASSERT_ERROR(token_issuer_mint(a, "10.0.0.1", 0, NOW, &tok), -EINVAL);
}

TEST(key_in_runtime_dir_survives_a_restart) {
        char dir[] = "/tmp/k2i-token-XXXXXX";
        _cleanup_free_ char *tok = NULL, *path = NULL;
        TokenIssuer *a, *b;
        struct stat st;

        ASSERT_NOT_NULL(mkdtemp(dir));
        ASSERT_OK(token_issuer_new(dir, &a));
        ASSERT_OK(token_issuer_mint(a, "fd00::5", 600, NOW, &tok));
        token_issuer_free(a);
        ASSERT_OK(token_issuer_new(dir, &b));
        ASSERT_OK(token_issuer_check(b, "fd00::5", tok, NOW));
        token_issuer_free(b);
        ASSERT_TRUE(asprintf(&path, "%s/%s", dir, TOKEN_KEY_FILE) > 0);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 0777, 0600);
        unlink(path);
        rmdir(dir);
}

TEST(token_stays_valid_through_a_key_carried_in_a_snapshot) {
        _cleanup_(token_issuer_freep) TokenIssuer *old = NULL, *next = NULL, *other = NULL;
        _cleanup_free_ char *tok = NULL;

        ASSERT_OK(token_issuer_new(NULL, &old));
        ASSERT_OK(token_issuer_mint(old, "10.0.0.1", 60, NOW, &tok));
        ASSERT_OK(token_issuer_new_with_key(token_issuer_key(old), &next));
        ASSERT_OK(token_issuer_check(next, "10.0.0.1", tok, NOW));
        ASSERT_OK(token_issuer_new(NULL, &other));
        ASSERT_ERROR(token_issuer_check(other, "10.0.0.1", tok, NOW), -EBADMSG);
}
