/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "token-issuer.h"
#include "log.h"
#include "secret.h"
#include "string-util.h"

#define TOKEN_PREFIX "K2I1"
/* 8 bytes of expiry and a MAC cut to 24 bytes (192 bits: far beyond guessing within a TTL). */
#define TOKEN_MAC_BYTES 24U
#define TOKEN_RAW_BYTES (8U + TOKEN_MAC_BYTES)

struct TokenIssuer {
        Secret *key;
};

static int random_key(unsigned char *buf) {
        size_t got = 0;
        while (got < TOKEN_KEY_BYTES) {
                ssize_t n = getrandom(buf + got, TOKEN_KEY_BYTES - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t) n;
        }
        return 0;
}

/* Reads the per-boot key, or creates it (O_EXCL: two instances starting at once agree). */
static int load_key(const char *dir, unsigned char *buf) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;
        int r;

        if (asprintf(&path, "%s/%s", dir, TOKEN_KEY_FILE) < 0)
                return -ENOMEM;
        for (int attempt = 0; attempt < 2; attempt++) {
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd >= 0) {
                        n = read(fd, buf, TOKEN_KEY_BYTES);
                        if (n == (ssize_t) TOKEN_KEY_BYTES)
                                return 0;
                        return log_warning_errno(n < 0 ? errno : EBADMSG,
                                                 "Ignoring unreadable token key %s: %m", path);
                }
                if (errno != ENOENT)
                        return log_warning_errno(errno, "Failed to open token key %s: %m", path);
                r = random_key(buf);
                if (r < 0)
                        return r;
                fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0) {
                        if (errno == EEXIST)
                                continue; /* another instance won the race: read its key */
                        return log_warning_errno(errno, "Failed to create token key %s: %m", path);
                }
                if (write(fd, buf, TOKEN_KEY_BYTES) != (ssize_t) TOKEN_KEY_BYTES) {
                        r = -errno;
                        (void) unlink(path);
                        return log_warning_errno(r, "Failed to write token key %s: %m", path);
                }
                return 0;
        }
        return -EBUSY;
}

int token_issuer_new(const char *runtime_dir, TokenIssuer **ret) {
        unsigned char key[TOKEN_KEY_BYTES];
        TokenIssuer *t;
        int r = -ENOENT;

        if (runtime_dir)
                r = load_key(runtime_dir, key);
        if (r < 0) {
                /* in memory: tokens then end with this process, and clients simply ask for new ones */
                r = random_key(key);
                if (r < 0)
                        return r;
        }
        t = calloc(1, sizeof *t);
        if (!t) {
                explicit_bzero(key, sizeof key);
                return -ENOMEM;
        }
        r = secret_new((const char *) key, sizeof key, &t->key);
        explicit_bzero(key, sizeof key);
        if (r < 0) {
                free(t);
                return r;
        }
        *ret = t;
        return 0;
}

int token_issuer_new_with_key(const Secret *key, TokenIssuer **ret) {
        TokenIssuer *t;
        int r;

        if (!key || secret_size(key) != TOKEN_KEY_BYTES)
                return -EINVAL;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        r = secret_dup(key, &t->key);
        if (r < 0) {
                free(t);
                return r;
        }
        *ret = t;
        return 0;
}

const Secret *token_issuer_key(const TokenIssuer *t) {
        return t->key;
}

int token_issuer_remove_key_file(const char *runtime_dir) {
        _cleanup_free_ char *path = NULL;

        if (!runtime_dir)
                return 0;
        if (asprintf(&path, "%s/%s", runtime_dir, TOKEN_KEY_FILE) < 0)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

TokenIssuer *token_issuer_free(TokenIssuer *t) {
        if (!t)
                return NULL;
        secret_free(t->key);
        free(t);
        return NULL;
}

int token_parse_ttl(const char *header, unsigned *ret) {
        unsigned long v = 0;

        if (isempty(header) || strlen(header) > 5)
                return -EINVAL;
        for (const char *p = header; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long) (*p - '0');
        }
        if (v < TOKEN_TTL_MIN || v > TOKEN_TTL_MAX)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int mac(const TokenIssuer *t, const char *peer, uint64_t expiry_sec,
               unsigned char out[TOKEN_MAC_BYTES]) {
        unsigned char full[EVP_MAX_MD_SIZE], msg[64 + 8];
        size_t plen = strlen(peer);
        unsigned len = 0;

        /* peer, its NUL (so "10.0.0.1" + expiry never reads as "10.0.0.12" + ...), then the expiry */
        if (plen + 1 + 8 > sizeof msg)
                return -EINVAL;
        memcpy(msg, peer, plen + 1);
        for (int i = 0; i < 8; i++)
                msg[plen + 1 + (size_t) i] = (unsigned char) (expiry_sec >> (56 - 8 * i));
        if (!HMAC(EVP_sha256(), secret_reveal(t->key), (int) secret_size(t->key), msg, plen + 9, full,
                  &len) ||
            len < TOKEN_MAC_BYTES)
                return -EIO;
        memcpy(out, full, TOKEN_MAC_BYTES);
        explicit_bzero(full, sizeof full);
        return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void encode(const unsigned char *in, size_t n, char *out) {
        size_t o = 0;
        uint32_t acc = 0;
        int bits = 0;

        for (size_t i = 0; i < n; i++) {
                acc = (acc << 8) | in[i];
                bits += 8;
                while (bits >= 6) {
                        bits -= 6;
                        out[o++] = b64url[(acc >> bits) & 63];
                }
        }
        if (bits > 0)
                out[o++] = b64url[(acc << (6 - bits)) & 63];
        out[o] = '\0';
}

static int decode(const char *in, unsigned char *out, size_t n) {
        size_t o = 0;
        uint32_t acc = 0;
        int bits = 0;

        for (const char *p = in; *p; p++) {
                const char *c = strchr(b64url, *p);
                if (!c || !*p)
                        return -EBADMSG;
                acc = (acc << 6) | (uint32_t) (c - b64url);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        if (o >= n)
                                return -EBADMSG;
                        out[o++] = (unsigned char) (acc >> bits);
                }
        }
        /* canonical encoding only: the unused low bits of the last character must be zero, or
         * several spellings would decode to the same token */
        if (bits > 0 && (acc & ((1U << bits) - 1)) != 0)
                return -EBADMSG;
        return o == n ? 0 : -EBADMSG;
}

int token_issuer_mint(const TokenIssuer *t, const char *peer, unsigned ttl_sec, usec_t now, char **ret) {
        unsigned char raw[TOKEN_RAW_BYTES];
        char enc[TOKEN_RAW_BYTES * 2];
        uint64_t expiry;
        int r;

        if (ttl_sec < TOKEN_TTL_MIN || ttl_sec > TOKEN_TTL_MAX || isempty(peer))
                return -EINVAL;
        expiry = now / USEC_PER_SEC + ttl_sec;
        for (int i = 0; i < 8; i++)
                raw[i] = (unsigned char) (expiry >> (56 - 8 * i));
        r = mac(t, peer, expiry, raw + 8);
        if (r < 0)
                return r;
        encode(raw, sizeof raw, enc);
        if (asprintf(ret, TOKEN_PREFIX "%s", enc) < 0)
                return -ENOMEM;
        return 0;
}

int token_issuer_check(const TokenIssuer *t, const char *peer, const char *token, usec_t now) {
        unsigned char raw[TOKEN_RAW_BYTES], want[TOKEN_MAC_BYTES];
        const char *body;
        uint64_t expiry = 0;
        int r;

        if (!token || strlen(token) > TOKEN_MAX_LEN || isempty(peer))
                return -EBADMSG;
        body = startswith(token, TOKEN_PREFIX);
        if (!body || decode(body, raw, sizeof raw) < 0)
                return -EBADMSG;
        for (int i = 0; i < 8; i++)
                expiry = (expiry << 8) | raw[i];
        r = mac(t, peer, expiry, want);
        if (r < 0)
                return r;
        if (CRYPTO_memcmp(want, raw + 8, TOKEN_MAC_BYTES) != 0)
                return -EBADMSG;
        if (now / USEC_PER_SEC >= expiry)
                return -EKEYEXPIRED;
        return 0;
}
