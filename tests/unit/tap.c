/* SPDX-License-Identifier: BSD-3-Clause */
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>

#include "tap.h"

#define TAP_MAX_TESTS 1024

static struct {
        const char *name;
        tap_test_fn fn;
} tests[TAP_MAX_TESTS];
static size_t n_tests;
static unsigned failed;
static size_t n_run;
static jmp_buf env;
static char skip_reason[256];

void tap_register(const char *name, tap_test_fn fn) {
        if (n_tests >= TAP_MAX_TESTS) {
                fprintf(stderr, "too many tests\n");
                exit(99);
        }
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
}

void tap_fail(const char *file, int line, const char *fmt, ...) {
        va_list ap;
        printf("# %s:%d: ", file, line);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
        longjmp(env, 1);
}

void tap_skip(const char *reason) {
        snprintf(skip_reason, sizeof skip_reason, "%s", reason);
        longjmp(env, 2);
}

void tap_skip_all(const char *reason) {
        printf("1..0 # SKIP %s\n", reason);
        fflush(stdout);
        exit(77);
}

const char *tap_source_dir(void) {
        const char *d = getenv("KUBE2IAM_SOURCE_DIR");
        return d ? d : SOURCE_DIR;
}

int main(int argc, char *argv[]) {
        const char *only = argc > 1 ? argv[1] : NULL;
        size_t total = 0;

        for (size_t i = 0; i < n_tests; i++)
                if (!only || strcmp(only, tests[i].name) == 0)
                        total++;
        printf("1..%zu\n", total);
        /* state that must survive longjmp lives in statics (n_run, failed) */
        for (size_t i = 0; i < n_tests; i++) {
                int r;
                if (only && strcmp(only, tests[i].name) != 0)
                        continue;
                n_run++;
                fflush(stdout);
                r = setjmp(env);
                if (r == 0) {
                        tests[i].fn();
                        printf("ok %zu - %s\n", n_run, tests[i].name);
                } else if (r == 2)
                        printf("ok %zu - %s # SKIP %s\n", n_run, tests[i].name, skip_reason);
                else {
                        printf("not ok %zu - %s\n", n_run, tests[i].name);
                        failed++;
                }
                fflush(stdout);
        }
        return failed ? 1 : 0;
}
