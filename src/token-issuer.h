/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* TokenIssuer: IMDSv2 session tokens, minted and checked by the daemon itself so pods never
 * depend on the upstream's hop limit (docs/compatibility.md, "What changes"). A token is a keyed MAC
 * (HMAC-SHA256) over the pod's address and the token's expiry: it is worthless from any other
 * address and after its TTL. The key is random per boot and survives daemon restarts and upgrades:
 * in the warm-restart snapshot in systemd's fd store (docs/warm-restart.md), else in
 * $RUNTIME_DIRECTORY (tmpfs, cleared at boot) when systemd gives us one, else in memory only. Expiry is on CLOCK_BOOTTIME, which wall-clock changes do not move. */

#include <stdbool.h>

#include "macro.h"
#include "secret.h"
#include "time-util.h"

/* IMDS's own bounds for X-aws-ec2-metadata-token-ttl-seconds. */
#define TOKEN_TTL_MIN 1U
#define TOKEN_TTL_MAX 21600U
/* Our tokens are 47 characters; real IMDS tokens 56. Anything longer is not a token. */
#define TOKEN_MAX_LEN 128U
#define TOKEN_KEY_BYTES 32U
#define TOKEN_KEY_FILE "imds-token.key"

typedef struct TokenIssuer TokenIssuer;

/* runtime_dir: where the per-boot key lives, or NULL for an in-memory key. */
int token_issuer_new(const char *runtime_dir, TokenIssuer **ret);
/* Warm restarts (src/snapshot.h): the key an earlier run kept in systemd's fd store. */
int token_issuer_new_with_key(const Secret *key, TokenIssuer **ret);
/* For the snapshot only: never logged, never served. */
const Secret *token_issuer_key(const TokenIssuer *t);
/* Once the fd store has proven to carry the key (a warm start), the file in runtime_dir goes. */
int token_issuer_remove_key_file(const char *runtime_dir);
TokenIssuer *token_issuer_free(TokenIssuer *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(TokenIssuer *, token_issuer_free);

/* Parses the TTL header: decimal 1..21600, nothing else (-EINVAL). */
int token_parse_ttl(const char *header, unsigned *ret);

/* now: CLOCK_BOOTTIME microseconds (now_clock(CLOCK_BOOTTIME)); injectable for tests. */
int token_issuer_mint(const TokenIssuer *t, const char *peer, unsigned ttl_sec, usec_t now, char **ret);
/* 0: valid for peer; -EKEYEXPIRED: expired; -EBADMSG: malformed, or not minted for peer. */
int token_issuer_check(const TokenIssuer *t, const char *peer, const char *token, usec_t now);
