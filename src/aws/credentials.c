/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "credentials.h"

bool credentials_access_key_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > CREDENTIALS_ACCESS_KEY_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

int credentials_new(const char *access_key_id, Secret *secret, Secret *token, usec_t expiration,
                    usec_t last_updated, Credentials **ret) {
        Credentials *c;

        if (!ret || !secret || secret_size(secret) == 0 || !credentials_access_key_valid(access_key_id)) {
                secret_free(secret);
                secret_free(token);
                return -EINVAL;
        }
        c = calloc(1, sizeof *c);
        if (!c || !(c->access_key_id = strdup(access_key_id))) {
                free(c);
                secret_free(secret);
                secret_free(token);
                return -ENOMEM;
        }
        c->n_ref = 1;
        c->secret_access_key = secret;
        c->session_token = token;
        c->expiration = expiration;
        c->last_updated = last_updated;
        *ret = c;
        return 0;
}

Credentials *credentials_ref(Credentials *c) {
        if (c)
                c->n_ref++;
        return c;
}

Credentials *credentials_unref(Credentials *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        if (c->memo_free)
                c->memo_free(c->memo);
        free(c->access_key_id);
        free(c->assumed_role_id);
        secret_free(c->secret_access_key);
        secret_free(c->session_token);
        free(c);
        return NULL;
}

usec_t credentials_remaining(const Credentials *c, usec_t now_realtime) {
        return c ? usec_sub(c->expiration, now_realtime) : 0;
}
