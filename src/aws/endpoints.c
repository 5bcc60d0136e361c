/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "string-util.h"

/* botocore partitions.json regionRegex values, as (partition, prefixes): a region matches when it is
 * <prefix><word>-<digits>. The more specific prefixes come first (us-gov- before us-). */
static const struct {
        AwsPartition partition;
        const char *prefixes[10];
} partitions[] = {
        { { "aws-us-gov", "amazonaws.com" }, { "us-gov-" } },
        { { "aws-iso", "c2s.ic.gov" }, { "us-iso-" } },
        { { "aws-iso-b", "sc2s.sgov.gov" }, { "us-isob-" } },
        { { "aws-iso-e", "cloud.adc-e.uk" }, { "eu-isoe-" } },
        { { "aws-iso-f", "csp.hci.ic.gov" }, { "us-isof-" } },
        { { "aws-cn", "amazonaws.com.cn" }, { "cn-" } },
        { { "aws-eusc", "amazonaws.eu" }, { "eusc-de-" } },
        { { "aws", "amazonaws.com" }, { "us-", "eu-", "ap-", "sa-", "ca-", "me-", "af-", "il-", "mx-" } },
};

bool aws_region_valid(const char *region) {
        size_t n = region ? strlen(region) : 0;

        if (n == 0 || n > AWS_REGION_MAX || region[0] == '-' || region[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((region[i] >= 'a' && region[i] <= 'z') || (region[i] >= '0' && region[i] <= '9') ||
                      region[i] == '-'))
                        return false;
        return true;
}

/* "<word>-<digits>" */
static bool rest_matches(const char *s) {
        const char *dash = strrchr(s, '-');

        if (!dash || dash == s || !dash[1])
                return false;
        for (const char *p = s; p < dash; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
                        return false;
        for (const char *p = dash + 1; *p; p++)
                if (*p < '0' || *p > '9')
                        return false;
        return true;
}

const AwsPartition *aws_partition_for_region(const char *region) {
        if (!aws_region_valid(region))
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(partitions); i++)
                for (size_t j = 0; j < ELEMENTSOF(partitions[i].prefixes) && partitions[i].prefixes[j];
                     j++) {
                        const char *rest = startswith(region, partitions[i].prefixes[j]);
                        if (rest && rest_matches(rest))
                                return &partitions[i].partition;
                }
        /* botocore: a region no regex matches resolves in the default partition */
        return &partitions[ELEMENTSOF(partitions) - 1].partition;
}

int aws_arn_partition(const char *arn, char *buf, size_t size) {
        const char *p, *e;

        if (!arn || !buf || !(p = startswith(arn, "arn:")) || !(e = strchr(p, ':')) || e == p ||
            (size_t) (e - p) >= size)
                return -EINVAL;
        memcpy(buf, p, (size_t) (e - p));
        buf[e - p] = '\0';
        return 0;
}

int aws_region_from_env(char **ret) {
        const char *v = getenv("AWS_REGION");

        if (isempty(v))
                v = getenv("AWS_DEFAULT_REGION");
        if (isempty(v))
                return -ENOENT;
        if (!aws_region_valid(v))
                return -EINVAL;
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

int sts_endpoint_resolve(const char *override, const char *region, const char *role_arn, char **ret_url,
                         char **ret_signing_region) {
        const AwsPartition *part = NULL;
        _cleanup_free_ char *url = NULL, *signing = NULL;
        char arn_part[32];

        if (!role_arn || !ret_url || !ret_signing_region)
                return -EINVAL;
        if (aws_arn_partition(role_arn, arn_part, sizeof arn_part) < 0)
                return -EINVAL;
        if (region) {
                part = aws_partition_for_region(region);
                if (!part)
                        return -EINVAL;
                if (!streq(part->name, arn_part))
                        return -EXDEV;
        } else if (!override)
                return -EINVAL;

        if (override)
                url = strdup(override);
        else if (asprintf(&url, "https://sts.%s.%s/", region, part->dns_suffix) < 0)
                url = NULL;
        signing = strdup(region ?: "us-east-1");
        if (!url || !signing)
                return -ENOMEM;
        *ret_url = TAKE_PTR(url);
        *ret_signing_region = TAKE_PTR(signing);
        return 0;
}
