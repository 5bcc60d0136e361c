/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>
#include <string.h>

#include "imds-surface.h"
#include "tap.h"

#define R IMDS_SURFACE_REFUSED
#define F IMDS_SURFACE_FORWARD
#define W IMDS_SURFACE_WITHHELD
#define S IMDS_SURFACE_SERVED
#define L IMDS_SURFACE_LISTING

/* AWS's documented instance-metadata tree (EC2 User Guide, instance metadata and dynamic data
 * categories), placeholders filled in, and what each path gets with no --metadata-allow. */
static const struct {
        const char *path;
        ImdsSurfaceVerdict want;
} documented[] = {
        { "/", L },
        { "/latest", L },
        { "/latest/", L },
        { "/latest/meta-data", L },
        { "/latest/meta-data/", L },
        { "/latest/meta-data/ami-id", F },
        { "/latest/meta-data/ami-launch-index", F },
        { "/latest/meta-data/ami-manifest-path", F },
        { "/latest/meta-data/ancestor-ami-ids", F },
        { "/latest/meta-data/autoscaling/", L },
        { "/latest/meta-data/autoscaling/target-lifecycle-state", F },
        { "/latest/meta-data/block-device-mapping/", F },
        { "/latest/meta-data/block-device-mapping/ami", F },
        { "/latest/meta-data/block-device-mapping/ebs1", F },
        { "/latest/meta-data/block-device-mapping/ephemeral0", F },
        { "/latest/meta-data/block-device-mapping/root", F },
        { "/latest/meta-data/block-device-mapping/swap", F },
        { "/latest/meta-data/elastic-gpus/associations/egpu-0123", F },
        { "/latest/meta-data/elastic-inference/associations/eia-0123", F },
        { "/latest/meta-data/events/maintenance/history", F },
        { "/latest/meta-data/events/maintenance/scheduled", F },
        { "/latest/meta-data/events/recommendations/rebalance", F },
        { "/latest/meta-data/hostname", F },
        { "/latest/meta-data/iam", S },
        { "/latest/meta-data/iam/", S },
        { "/latest/meta-data/iam/info", S },
        { "/latest/meta-data/iam/security-credentials/", S },
        { "/latest/meta-data/iam/security-credentials/node-role", S },
        { "/latest/meta-data/iam/security-credentials-extended/", S },
        { "/latest/meta-data/iam/security-credentials-extended/node-role", S },
        { "/latest/meta-data/identity-credentials/ec2/info", R },
        { "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance", R },
        { "/latest/meta-data/instance-action", F },
        { "/latest/meta-data/instance-id", F },
        { "/latest/meta-data/instance-life-cycle", F },
        { "/latest/meta-data/instance-type", F },
        { "/latest/meta-data/ipv6", F },
        { "/latest/meta-data/kernel-id", F },
        { "/latest/meta-data/local-hostname", F },
        { "/latest/meta-data/local-ipv4", F },
        { "/latest/meta-data/mac", F },
        { "/latest/meta-data/metrics/vhostmd", F },
        { "/latest/meta-data/network/", L },
        { "/latest/meta-data/network/interfaces/", L },
        { "/latest/meta-data/network/interfaces/macs/", F },
        { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/device-number", F },
        { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/ipv4-associations/203.0.113.1", F },
        { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/ipv6-prefix", F },
        { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/ipv6s", F },
        { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/public-hostname", F },
        { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/public-ipv4s", F },
        { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/security-group-ids", F },
        { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/subnet-ipv4-cidr-block", F },
        { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/vpc-ipv6-cidr-blocks", F },
        { "/latest/meta-data/placement/", F },
        { "/latest/meta-data/placement/availability-zone", F },
        { "/latest/meta-data/placement/availability-zone-id", F },
        { "/latest/meta-data/placement/group-name", F },
        { "/latest/meta-data/placement/host-id", F },
        { "/latest/meta-data/placement/partition-number", F },
        { "/latest/meta-data/placement/region", F },
        { "/latest/meta-data/product-codes", F },
        { "/latest/meta-data/public-hostname", F },
        { "/latest/meta-data/public-ipv4", F },
        { "/latest/meta-data/public-keys/", F },
        { "/latest/meta-data/public-keys/0/openssh-key", F },
        { "/latest/meta-data/ramdisk-id", F },
        { "/latest/meta-data/reservation-id", F },
        { "/latest/meta-data/security-groups", F },
        { "/latest/meta-data/services/domain", F },
        { "/latest/meta-data/services/partition", F },
        { "/latest/meta-data/spot/instance-action", F },
        { "/latest/meta-data/spot/termination-time", F },
        { "/latest/meta-data/tags/", L },
        { "/latest/meta-data/tags/instance", F },
        { "/latest/meta-data/tags/instance/Name", F },
        { "/latest/dynamic", L },
        { "/latest/dynamic/", L },
        { "/latest/dynamic/fws/", L },
        { "/latest/dynamic/fws/instance-monitoring", F },
        { "/latest/dynamic/instance-identity/", L },
        { "/latest/dynamic/instance-identity/document", F },
        { "/latest/dynamic/instance-identity/pkcs7", W },
        { "/latest/dynamic/instance-identity/signature", W },
        { "/latest/dynamic/instance-identity/rsa2048", W },
        { "/latest/user-data", W },
        { "/latest/api/token", S },
        { "/2021-03-23/meta-data/instance-id", F },
        { "/1.0/meta-data/ami-id", F },
};

TEST(every_documented_path_gets_its_table_verdict) {
        for (size_t i = 0; i < ELEMENTSOF(documented); i++) {
                ImdsSurfaceVerdict v = imds_surface_classify(documented[i].path, NULL);
                if (v != documented[i].want)
                        tap_fail(__FILE__, __LINE__, "%s: %s, want %s", documented[i].path,
                                 imds_surface_verdict_name(v),
                                 imds_surface_verdict_name(documented[i].want));
        }
}

/* entry (a table path, '*' one whole segment) names rel or a directory above it */
static bool entry_names(const char *entry, const char *rel) {
        while (*entry)
                if (*entry == '*') {
                        size_t seg = strcspn(rel, "/");
                        if (seg == 0)
                                return false;
                        rel += seg;
                        entry++;
                } else if (*entry++ != *rel++)
                        return false;
        return true;
}

TEST(every_table_entry_is_walked_by_the_documented_tree) {
        size_t n;
        const ImdsSurfaceEntry *t = imds_surface_table(&n);

        for (size_t i = 0; i < n; i++) {
                bool found = false;
                for (size_t j = 0; j < ELEMENTSOF(documented) && !found; j++)
                        found = strneq(documented[j].path, "/latest/", 8) &&
                                entry_names(t[i].path, documented[j].path + strlen("/latest/"));
                if (!found)
                        tap_fail(__FILE__, __LINE__, "table entry %s is not in the walk", t[i].path);
        }
}

TEST(unknown_paths_case_parameters_and_versions_are_refused) {
        static const char *const refused[] = {
                "/latest/meta-data/no-such-category",
                "/latest/meta-data/Instance-Id",
                "/latest/meta-data/instance-id;x=1",
                "/latest;a/meta-data/instance-id",
                "/latest/meta-data/instance-id/",
                "/latest/meta-data/instance-idX",
                "/latest/meta-data/ami-id/extra",
                "/latest/meta-data/iam/security-credentialsX",
                "/latest/meta-data/iam/other",
                "/latest/meta-data/identity-credentials",
                "/latest/meta-data/network/interfaces/other",
                "/latest/meta-data/tags/other",
                "/latest/dynamic/instance-identity/other",
                "/latest/user-data/x",
                "/latest/other",
                "/Latest/meta-data/instance-id",
                "/foo/meta-data/instance-id",
                "/2021-3-23/meta-data/instance-id",
                "/20210323xx/meta-data/instance-id",
                "/a-very-long-version-segment-here/meta-data/instance-id",
                "/healthz/",
                "/debug/store",
                "/metrics",
                "relative",
                "",
        };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                if (imds_surface_classify(refused[i], NULL) != IMDS_SURFACE_REFUSED)
                        tap_fail(__FILE__, __LINE__, "%s is not refused", refused[i]);
}

TEST(metadata_allow_narrows_and_widens_only_to_withheld_entries) {
        char *narrow[] = { (char *) "/latest/meta-data/placement/*", NULL };
        char *widen[] = { (char *) "/latest/meta-data/*", (char *) "/latest/dynamic/*",
                          (char *) "/latest/user-data", NULL };
        char *everything[] = { (char *) "*", NULL };

        ASSERT_EQ(imds_surface_classify("/latest/meta-data/placement/region", narrow), F);
        ASSERT_EQ(imds_surface_classify("/latest/meta-data/instance-id", narrow), W);
        ASSERT_EQ(imds_surface_classify("/latest/user-data", narrow), W);
        ASSERT_EQ(imds_surface_classify("/latest/meta-data/", narrow), L);

        ASSERT_EQ(imds_surface_classify("/latest/user-data", widen), F);
        ASSERT_EQ(imds_surface_classify("/latest/dynamic/instance-identity/pkcs7", widen), F);
        ASSERT_EQ(imds_surface_classify("/latest/meta-data/instance-id", widen), F);
        ASSERT_EQ(imds_surface_classify("/2021-03-23/user-data", widen), W);

        /* never beyond the table: iam/, identity credentials, unknown paths */
        ASSERT_EQ(imds_surface_classify("/latest/meta-data/identity-credentials/ec2/info", everything), R);
        ASSERT_EQ(imds_surface_classify("/latest/meta-data/iam/other", everything), R);
        ASSERT_EQ(imds_surface_classify("/latest/meta-data/iam/info", everything), S);
        ASSERT_EQ(imds_surface_classify("/latest/meta-data/no-such-category", everything), R);
        ASSERT_EQ(imds_surface_classify("/latest/user-data", everything), F);
}

static void assert_filtered(const char *dir, const char *body, char *const *allow, const char *want) {
        _cleanup_strbuf_ StrBuf b = {};
        ASSERT_OK(imds_surface_filter_listing(dir, body, strlen(body), allow, &b));
        ASSERT_STREQ(strbuf_str(&b), want);
}

TEST(listings_keep_only_what_the_pod_may_get) {
        char *allow_ud[] = { (char *) "/latest/*", NULL };

        assert_filtered(
                "/latest/meta-data/",
                "ami-id\nhostname\niam/\nidentity-credentials/\ninstance-id\nnew-category\nplacement/\n"
                "network/\nsecret;x\n../\n",
                NULL, "ami-id\nhostname\niam/\ninstance-id\nplacement/\nnetwork/");
        assert_filtered("/latest", "dynamic\nmeta-data\nuser-data", NULL, "dynamic\nmeta-data");
        assert_filtered("/latest/", "dynamic\nmeta-data\nuser-data", allow_ud,
                        "dynamic\nmeta-data\nuser-data");
        assert_filtered("/latest/dynamic/instance-identity/", "document\npkcs7\nrsa2048\nsignature\n", NULL,
                        "document");
        assert_filtered("/", "1.0\n2007-01-19\n2021-03-23\nlatest\nbogus\n", NULL,
                        "1.0\n2007-01-19\n2021-03-23\nlatest");
        assert_filtered("/latest/meta-data/", "", NULL, "");
}

TEST(versions_are_latest_one_point_oh_or_dates) {
        ASSERT_TRUE(imds_surface_version_valid("latest"));
        ASSERT_TRUE(imds_surface_version_valid("1.0"));
        ASSERT_TRUE(imds_surface_version_valid("2021-03-23"));
        ASSERT_FALSE(imds_surface_version_valid("LATEST"));
        ASSERT_FALSE(imds_surface_version_valid("2021-03-2x"));
        ASSERT_FALSE(imds_surface_version_valid(""));
}

TEST(only_fixed_instance_facts_are_kept_in_memory) {
        static const char *const fixed[] = {
                "/latest/meta-data/instance-id",       "/latest/meta-data/ami-id",
                "/2021-03-23/meta-data/instance-type", "/latest/meta-data/placement/availability-zone",
                "/latest/meta-data/placement/",        "/latest/meta-data/mac",
                "/latest/meta-data/local-ipv4",
        };
        static const char *const changing[] = {
                "/latest/meta-data/spot/instance-action",
                "/latest/meta-data/instance-action",
                "/latest/meta-data/events/maintenance/scheduled",
                "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/local-ipv4s",
                "/latest/meta-data/public-ipv4",
                "/latest/meta-data/public-hostname",
                "/latest/meta-data/security-groups",
                "/latest/meta-data/tags/instance/Name",
                "/latest/dynamic/instance-identity/document",
                "/latest/meta-data/iam/security-credentials/role",
                "/latest/user-data",
                "/latest/meta-data/",
                "/latest/meta-data/instance-id;x",
                "/LATEST/meta-data/instance-id",
                "/latest//meta-data/instance-id",
        };
        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
                ASSERT_TRUE(imds_surface_immutable(fixed[i]));
        for (size_t i = 0; i < ELEMENTSOF(changing); i++)
                ASSERT_FALSE(imds_surface_immutable(changing[i]));
}

TEST(answers_are_reused_only_as_long_as_imds_itself_would_show_them_stale) {
        static const struct {
                const char *path;
                unsigned ttl;
        } want[] = {
                /* notices, public addresses, tags, lifecycle: asked every time */
                { "/latest/meta-data/spot/instance-action", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/spot/", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/instance-action", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/events/maintenance/scheduled", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/events/recommendations/rebalance", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/autoscaling/target-lifecycle-state", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/public-ipv4", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/public-hostname", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/ipv6", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/public-ipv4s",
                  IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/public-hostname",
                  IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/ipv6s",
                  IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/ipv6-prefix",
                  IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/ipv4-associations/",
                  IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/ipv4-associations/"
                  "203.0.113.1",
                  IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/tags/instance/Name", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/tags/instance", IMDS_SURFACE_TTL_NEVER },
                /* node identity material, even when --metadata-allow lets it through */
                { "/latest/user-data", IMDS_SURFACE_TTL_NEVER },
                { "/latest/dynamic/instance-identity/pkcs7", IMDS_SURFACE_TTL_NEVER },
                /* kept for good instead (imds_surface_immutable), or never forwarded */
                { "/latest/meta-data/instance-id", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/placement/region", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/iam/security-credentials/role", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/identity-credentials/ec2/info", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/profile", IMDS_SURFACE_TTL_NEVER },
                { "/latest/meta-data/security-groups;x", IMDS_SURFACE_TTL_NEVER },
                /* what IMDS itself shows seconds late */
                { "/latest/meta-data/security-groups", IMDS_SURFACE_TTL_SHORT },
                { "/latest/meta-data/network/interfaces/macs/", IMDS_SURFACE_TTL_SHORT },
                { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/", IMDS_SURFACE_TTL_SHORT },
                { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/local-ipv4s",
                  IMDS_SURFACE_TTL_SHORT },
                { "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/subnet-id",
                  IMDS_SURFACE_TTL_SHORT },
                { "/2021-03-23/meta-data/network/interfaces/macs/0e:00:00:00:00:01/security-group-ids",
                  IMDS_SURFACE_TTL_SHORT },
                { "/latest/dynamic/fws/instance-monitoring", IMDS_SURFACE_TTL_SHORT },
                { "/latest/meta-data/", IMDS_SURFACE_TTL_LISTING },
                { "/", IMDS_SURFACE_TTL_LISTING },
                { "/latest/meta-data/network/interfaces", IMDS_SURFACE_TTL_LISTING },
                /* what IMDS changes only when the instance starts */
                { "/latest/meta-data/block-device-mapping/ebs1", IMDS_SURFACE_TTL_LAUNCH },
                { "/latest/meta-data/public-keys/0/openssh-key", IMDS_SURFACE_TTL_LAUNCH },
                { "/latest/meta-data/services/partition", IMDS_SURFACE_TTL_LAUNCH },
                { "/latest/dynamic/instance-identity/document", IMDS_SURFACE_TTL_LAUNCH },
        };
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                if (imds_surface_ttl(want[i].path) != want[i].ttl)
                        tap_fail(__FILE__, __LINE__, "%s: TTL %u, want %u", want[i].path,
                                 imds_surface_ttl(want[i].path), want[i].ttl);
        /* a short TTL only for what is forwarded anyway: the classification does not change */
        ASSERT_EQ(imds_surface_classify(
                          "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/public-ipv4s", NULL),
                  IMDS_SURFACE_FORWARD);
}
