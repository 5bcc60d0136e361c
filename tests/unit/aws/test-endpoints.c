/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>

#include "aws/endpoints.h"
#include "macro.h"
#include "tap.h"

TEST(partition_chosen_by_region) {
        static const struct {
                const char *region, *partition, *suffix;
        } cases[] = {
                { "us-east-1", "aws", "amazonaws.com" },
                { "eu-west-3", "aws", "amazonaws.com" },
                { "ap-southeast-5", "aws", "amazonaws.com" },
                { "cn-north-1", "aws-cn", "amazonaws.com.cn" },
                { "cn-northwest-1", "aws-cn", "amazonaws.com.cn" },
                { "us-gov-west-1", "aws-us-gov", "amazonaws.com" },
                { "us-iso-east-1", "aws-iso", "c2s.ic.gov" },
                { "us-isob-east-1", "aws-iso-b", "sc2s.sgov.gov" },
                { "eu-isoe-west-1", "aws-iso-e", "cloud.adc-e.uk" },
                { "us-isof-south-1", "aws-iso-f", "csp.hci.ic.gov" },
                { "eusc-de-east-1", "aws-eusc", "amazonaws.eu" },
                { "xx-unknown-9", "aws", "amazonaws.com" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const AwsPartition *p = aws_partition_for_region(cases[i].region);
                ASSERT_NOT_NULL(p);
                ASSERT_STREQ(p->name, cases[i].partition);
                ASSERT_STREQ(p->dns_suffix, cases[i].suffix);
        }
        ASSERT_NULL(aws_partition_for_region("US-EAST-1"));
        ASSERT_NULL(aws_partition_for_region("us east 1"));
        ASSERT_NULL(aws_partition_for_region(""));
        ASSERT_NULL(aws_partition_for_region("us-east-1.evil.com"));
}

TEST(sts_endpoint_is_regional_and_checks_arn_partition) {
        _cleanup_free_ char *url = NULL, *signing = NULL;
        char *u = NULL, *s = NULL;

        ASSERT_OK(
                sts_endpoint_resolve(NULL, "eu-west-1", "arn:aws:iam::123456789012:role/r", &url, &signing));
        ASSERT_STREQ(url, "https://sts.eu-west-1.amazonaws.com/");
        ASSERT_STREQ(signing, "eu-west-1");
        url = mfree(url);
        signing = mfree(signing);
        ASSERT_OK(sts_endpoint_resolve(NULL, "cn-north-1", "arn:aws-cn:iam::123456789012:role/r", &url,
                                       &signing));
        ASSERT_STREQ(url, "https://sts.cn-north-1.amazonaws.com.cn/");
        url = mfree(url);
        signing = mfree(signing);
        ASSERT_OK(
                sts_endpoint_resolve(NULL, "us-gov-east-1", "arn:aws-us-gov:iam::1:role/r", &url, &signing));
        ASSERT_STREQ(url, "https://sts.us-gov-east-1.amazonaws.com/");
        url = mfree(url);
        signing = mfree(signing);
        ASSERT_OK(
                sts_endpoint_resolve("http://127.0.0.1:9/", NULL, "arn:aws:iam::1:role/r", &url, &signing));
        ASSERT_STREQ(url, "http://127.0.0.1:9/");
        ASSERT_STREQ(signing, "us-east-1");

        ASSERT_ERROR(sts_endpoint_resolve(NULL, "us-east-1", "arn:aws-cn:iam::1:role/r", &u, &s), -EXDEV);
        ASSERT_ERROR(sts_endpoint_resolve("http://x/", "cn-north-1", "arn:aws:iam::1:role/r", &u, &s),
                     -EXDEV);
        ASSERT_ERROR(sts_endpoint_resolve(NULL, NULL, "arn:aws:iam::1:role/r", &u, &s), -EINVAL);
        ASSERT_ERROR(sts_endpoint_resolve(NULL, "us-east-1", "role/r", &u, &s), -EINVAL);
        ASSERT_NULL(u);
        ASSERT_NULL(s);
}

TEST(region_from_environment) {
        _cleanup_free_ char *r = NULL;
        char *x = NULL;

        unsetenv("AWS_REGION");
        unsetenv("AWS_DEFAULT_REGION");
        ASSERT_ERROR(aws_region_from_env(&x), -ENOENT);
        setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
        ASSERT_OK(aws_region_from_env(&r));
        ASSERT_STREQ(r, "eu-central-1");
        r = mfree(r);
        setenv("AWS_REGION", "ap-south-1", 1);
        ASSERT_OK(aws_region_from_env(&r));
        ASSERT_STREQ(r, "ap-south-1");
        setenv("AWS_REGION", "bad region", 1);
        ASSERT_ERROR(aws_region_from_env(&x), -EINVAL);
        ASSERT_NULL(x);
}
