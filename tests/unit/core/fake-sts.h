/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* A fake STS at the credential cache's boundary (CredsFetcher): records calls and answers when the
 * test says so, on a clock the test moves. Shared by the cache's and pod-roles' unit tests. */

#include "creds.h"

typedef struct Metrics Metrics;

#define T0 ((usec_t) 1780000000 * USEC_PER_SEC)

#define FAKE_MAX_PENDING 64

typedef struct FakeSts {
        usec_t now;
        unsigned calls;
        unsigned cancelled;
        char last_session[80];
        char last_ext[80];
        char last_params[512];
        unsigned last_duration;
        void *pending[FAKE_MAX_PENDING];
        unsigned n_pending;
        unsigned serial;
        StsError *fail_start; /* returned at start when set */
} FakeSts;

usec_t fake_now(void *userdata);
int fake_start(void *userdata, Creds *c, void *token, const char *role_arn, const char *session_name,
               unsigned duration, const char *external_id, const char *session, void **ret_handle,
               StsError **ret_error);
void fake_cancel(void *userdata, void *handle);
/* Credentials valid for life from f->now, with a new access key id each. */
Credentials *make_creds(FakeSts *f, usec_t life);
/* Answers every pending call with credentials of the requested duration. */
void fake_succeed_all(FakeSts *f, Creds *c);
void fake_fail_all(FakeSts *f, Creds *c, StsErrorClass class, const char *code, long status);
/* A cache on the fake, at T0, jitter seeded. */
Creds *new_cache(FakeSts *f, const CredsSettings *s, Metrics *m);
