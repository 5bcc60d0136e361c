/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* AWS partitions and STS endpoints: region name -> partition (aws, aws-cn, aws-us-gov, the iso
 * partitions, aws-eusc) -> regional STS host sts.<region>.<dnsSuffix>, per botocore's
 * partitions.json (the endpoint rules of the AWS SDKs). No ec2:DescribeRegions: the region
 * comes from the environment or the upstream IMDS. */

#include <stdbool.h>

/* Region names are short ("ap-southeast-5", "us-gov-west-1"). */
#define AWS_REGION_MAX 64

typedef struct AwsPartition {
        const char *name;       /* "aws-cn" */
        const char *dns_suffix; /* "amazonaws.com.cn" */
} AwsPartition;

bool aws_region_valid(const char *region);
/* The partition of a region; regions no table names fall back to "aws" as botocore does. NULL for an
 * invalid region name. */
const AwsPartition *aws_partition_for_region(const char *region);
/* The partition of an ARN ("arn:aws-us-gov:iam::..."), copied into buf. -EINVAL if not an ARN. */
int aws_arn_partition(const char *arn, char *buf, size_t size);

/* AWS_REGION, else AWS_DEFAULT_REGION, validated. -ENOENT when neither is set, -EINVAL when invalid. */
int aws_region_from_env(char **ret);

/* Where AssumeRole for role_arn goes and which region signs it. override is --sts-endpoint (NULL
 * for none). region may be NULL only with an override (signed as us-east-1, as the global endpoint
 * is). -EXDEV when the role ARN's partition differs from the region's; -EINVAL for a bad region or
 * ARN. */
int sts_endpoint_resolve(const char *override, const char *region, const char *role_arn, char **ret_url,
                         char **ret_signing_region);
