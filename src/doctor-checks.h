/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* What doctor.c shares with the checks of doctor-identity.c (the node's AWS credentials, the
 * node's RBAC): the verdict line, a bounded blocking HTTP request and where STS is. */

#include <stdbool.h>
#include <stdio.h>

#include <curl/curl.h>

#include "doctor.h"

/* What an answer may be for the doctor: an IMDS token is 56 bytes, instance-id ~20, the
 * instance-profile credentials ~1.5 KiB, a GetCallerIdentity reply or a SelfSubjectAccessReview
 * under 1 KiB. */
#define DOCTOR_MAX_BODY 8192U

typedef struct DoctorBody {
        char buf[DOCTOR_MAX_BODY + 1];
        size_t n;
} DoctorBody;

/* Prints one check's line: "PASS|FAIL|SKIP name what[ -- fix: fix]". False for FAIL. */
bool doctor_report(FILE *out, DoctorVerdict v, const char *name, const char *what, const char *fix);
/* CURLOPT_WRITEFUNCTION into a DoctorBody: past DOCTOR_MAX_BODY the transfer fails. */
size_t doctor_body_write(char *p, size_t size, size_t nmemb, void *userdata);
/* One blocking request (DOCTOR_IMDS_TIMEOUT_MS, no proxy) with headers and, unless NULL, the body
 * post (copied). The HTTP status, 0 when none came. */
long doctor_http(const char *url, const char *method, struct curl_slist *headers, const char *post,
                 DoctorBody *b);
/* The region as the daemon finds it: the environment, else the instance's placement. NULL: none. */
char *doctor_find_region(const DoctorOptions *o);
/* The STS endpoint the daemon would use (--sts-endpoint, else the region's) and the region
 * (NULL when --sts-endpoint is given and none is known). -ENXIO: no region and no endpoint. */
int doctor_sts_target(const DoctorOptions *o, char **ret_url, char **ret_region);

/* node-credentials: STS GetCallerIdentity signed with the node's credentials, found as the
 * daemon finds them (environment, profile, web identity, instance profile). */
bool doctor_check_node_credentials(const DoctorOptions *o, FILE *out);
/* rbac: SelfSubjectAccessReviews with the kubeconfig's identity: list pods, list namespaces. */
bool doctor_check_rbac(const DoctorOptions *o, FILE *out);
