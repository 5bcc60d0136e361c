/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>

#include "fake-sts.h"
#include "tap.h"

usec_t fake_now(void *userdata) {
        return ((FakeSts *) userdata)->now;
}

int fake_start(void *userdata, Creds *c, void *token, const char *role_arn, const char *session_name,
               unsigned duration, const char *external_id, const char *session, void **ret_handle,
               StsError **ret_error) {
        FakeSts *f = userdata;

        if (f->fail_start) {
                (void) sts_error_dup(f->fail_start, ret_error);
                return f->fail_start->error;
        }
        f->calls++;
        snprintf(f->last_session, sizeof f->last_session, "%s", session_name);
        snprintf(f->last_ext, sizeof f->last_ext, "%s", strempty(external_id));
        snprintf(f->last_params, sizeof f->last_params, "%s", strempty(session));
        f->last_duration = duration;
        if (f->n_pending >= FAKE_MAX_PENDING)
                return -EBUSY;
        f->pending[f->n_pending++] = token;
        *ret_handle = token;
        return 0;
}

void fake_cancel(void *userdata, void *handle) {
        FakeSts *f = userdata;
        for (unsigned i = 0; i < f->n_pending; i++)
                if (f->pending[i] == handle) {
                        f->pending[i] = f->pending[--f->n_pending];
                        f->cancelled++;
                        return;
                }
}

Credentials *make_creds(FakeSts *f, usec_t life) {
        Secret *s = NULL, *t = NULL;
        Credentials *c = NULL;
        char key[32];

        snprintf(key, sizeof key, "ASIAFAKE%u", ++f->serial);
        ASSERT_OK(secret_new("secret", 6, &s));
        ASSERT_OK(secret_new("token", 5, &t));
        ASSERT_OK(credentials_new(key, s, t, f->now + life, f->now, &c));
        return c;
}

/* Answers every pending call with credentials of the requested duration. */
void fake_succeed_all(FakeSts *f, Creds *c) {
        while (f->n_pending > 0) {
                void *token = f->pending[--f->n_pending];
                Credentials *cr = make_creds(f, (usec_t) f->last_duration * USEC_PER_SEC);
                creds_fetch_complete(c, token, cr, NULL);
                credentials_unref(cr);
        }
}

void fake_fail_all(FakeSts *f, Creds *c, StsErrorClass class, const char *code, long status) {
        while (f->n_pending > 0) {
                void *token = f->pending[--f->n_pending];
                StsError *e = NULL;
                ASSERT_OK(sts_error_new(class, class == STS_ERROR_DENIED ? -EACCES : -EAGAIN, status, code,
                                        "fake", &e));
                creds_fetch_complete(c, token, NULL, e);
                sts_error_free(e);
        }
}

Creds *new_cache(FakeSts *f, const CredsSettings *s, Metrics *m) {
        Creds *c = NULL;
        CredsFetcher fetcher = { .start = fake_start, .cancel = fake_cancel, .userdata = f };

        f->now = T0;
        ASSERT_OK(creds_new(s, &fetcher, m, &c));
        creds_set_clock(c, fake_now, f);
        creds_set_seed(c, 42);
        return c;
}
