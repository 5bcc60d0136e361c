/* SPDX-License-Identifier: BSD-3-Clause */
/* Draining the kernel's answers to a batch, without a kernel: ACK datagrams are built here as
 * nfnetlink sends them (NLMSG_ERROR with the request's sequence number, capped, with extended-ACK
 * TLVs), and fed in pieces. Every ACK must arrive before the batch counts as done, and an error
 * is reported against the message that caused it. */
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <string.h>

#include <libmnl/libmnl.h>

#include "nft/redirect-batch.h"
#include "nft/redirect-netlink.h"
#include "tap.h"

#define PORTID 4242
#define SEQ 1000

static char *interfaces[] = { "cali*", "docker0", NULL };

static RedirectBatch *install_batch(void) {
        RedirectSpec s = { .interfaces = interfaces, .port = 8181 };
        RedirectBatch *b = NULL;

        ASSERT_EQ(inet_pton(AF_INET, "169.254.169.254", &s.imds4), 1);
        ASSERT_EQ(inet_pton(AF_INET, "10.0.0.1", &s.host4), 1);
        ASSERT_OK(redirect_batch_build(&s, REDIRECT_OP_INSTALL, SEQ, &b));
        /* begin, 8 commands (ip: add, del, add, chain, 2 rules; ip6: add, del), end */
        ASSERT_UEQ(b->n_messages, 8);
        return b;
}

typedef struct Datagram {
        char buf[4096];
        size_t len;
} Datagram;

/* Appends one capped ACK for seq with error (0 = accepted) and an optional extack message. */
static void put_ack(Datagram *d, uint32_t portid, uint32_t seq, int error, const char *extack) {
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(d->buf + d->len);
        struct nlmsgerr *err;

        nlh->nlmsg_type = NLMSG_ERROR;
        nlh->nlmsg_flags = NLM_F_CAPPED | (extack ? NLM_F_ACK_TLVS : 0);
        nlh->nlmsg_seq = seq;
        nlh->nlmsg_pid = portid;
        err = mnl_nlmsg_put_extra_header(nlh, sizeof *err);
        err->error = -error;
        err->msg = (struct nlmsghdr){ .nlmsg_len = sizeof(struct nlmsghdr), .nlmsg_seq = seq };
        if (extack)
                mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, extack);
        d->len += NLMSG_ALIGN(nlh->nlmsg_len);
        ASSERT_TRUE(d->len < sizeof d->buf - 512);
}

TEST(batch_is_done_only_when_every_message_is_acked) {
        RedirectBatch *b = install_batch();
        Datagram d1 = {}, d2 = {};
        RedirectAcks a;

        ASSERT_OK(redirect_acks_init(&a, b, PORTID));
        for (uint32_t seq = SEQ + 1; seq <= SEQ + 5; seq++)
                put_ack(&d1, PORTID, seq, 0, NULL);
        ASSERT_EQ(redirect_acks_feed(&a, d1.buf, d1.len), 0);
        ASSERT_UEQ(a.pending, 3);
        /* a duplicate does not count twice */
        ASSERT_EQ(redirect_acks_feed(&a, d1.buf, d1.len), 0);
        ASSERT_UEQ(a.pending, 3);
        for (uint32_t seq = SEQ + 6; seq <= SEQ + 8; seq++)
                put_ack(&d2, PORTID, seq, 0, NULL);
        ASSERT_EQ(redirect_acks_feed(&a, d2.buf, d2.len), 1);
        ASSERT_EQ(redirect_acks_result(&a), 0);
        redirect_acks_done(&a);
        redirect_batch_free(b);
}

TEST(answers_to_other_requests_are_skipped) {
        RedirectBatch *b = install_batch();
        Datagram d = {};
        RedirectAcks a;

        ASSERT_OK(redirect_acks_init(&a, b, PORTID));
        put_ack(&d, PORTID, SEQ - 1, EINVAL, NULL);     /* an older request */
        put_ack(&d, PORTID, SEQ + 100, EINVAL, NULL);   /* not ours */
        put_ack(&d, PORTID + 1, SEQ + 1, EINVAL, NULL); /* another socket */
        ASSERT_EQ(redirect_acks_feed(&a, d.buf, d.len), 0);
        ASSERT_EQ(a.error, 0);
        ASSERT_UEQ(a.pending, 8);
        redirect_acks_done(&a);
        redirect_batch_free(b);
}

TEST(rule_error_is_reported_against_its_message_after_all_acks) {
        RedirectBatch *b = install_batch();
        Datagram d = {};
        RedirectAcks a;

        ASSERT_OK(redirect_acks_init(&a, b, PORTID));
        for (uint32_t seq = SEQ + 1; seq <= SEQ + 8; seq++)
                put_ack(&d, PORTID, seq,
                        seq == SEQ + 6   ? EINVAL
                        : seq == SEQ + 7 ? ENOENT
                                         : 0,
                        seq == SEQ + 6 ? "Could not process rule" : NULL);
        ASSERT_EQ(redirect_acks_feed(&a, d.buf, d.len), 1);
        ASSERT_EQ(a.error, EINVAL); /* the first error, not the consequence after it */
        ASSERT_UEQ(a.error_seq, SEQ + 6);
        ASSERT_STREQ(redirect_batch_describe(b, a.error_seq),
                     "add rule ip kube2iam prerouting iifname \"docker0\"");
        ASSERT_STREQ(a.extack, "Could not process rule");
        ASSERT_FALSE(a.whole_batch);
        ASSERT_ERROR(redirect_acks_result(&a), -EPROTO);
        redirect_acks_done(&a);
        redirect_batch_free(b);
}

TEST(permission_error_on_batch_begin_ends_the_wait) {
        RedirectBatch *b = install_batch();
        Datagram d = {};
        RedirectAcks a;

        ASSERT_OK(redirect_acks_init(&a, b, PORTID));
        put_ack(&d, PORTID, SEQ, EPERM, NULL);
        ASSERT_EQ(redirect_acks_feed(&a, d.buf, d.len), 1);
        ASSERT_TRUE(a.whole_batch);
        ASSERT_ERROR(redirect_acks_result(&a), -EPERM);
        redirect_acks_done(&a);
        redirect_batch_free(b);
}

TEST(eperm_on_one_command_is_a_rejection_not_missing_capabilities) {
        RedirectBatch *b = install_batch();
        Datagram d = {};
        RedirectAcks a;

        /* a table of that name owned by another process */
        ASSERT_OK(redirect_acks_init(&a, b, PORTID));
        for (uint32_t seq = SEQ + 1; seq <= SEQ + 8; seq++)
                put_ack(&d, PORTID, seq, seq == SEQ + 1 ? EPERM : 0, NULL);
        ASSERT_EQ(redirect_acks_feed(&a, d.buf, d.len), 1);
        ASSERT_ERROR(redirect_acks_result(&a), -EPROTO);
        redirect_acks_done(&a);
        redirect_batch_free(b);
}

TEST(missing_nat_support_maps_to_nf_tables_missing) {
        RedirectBatch *b = install_batch();
        Datagram d = {};
        RedirectAcks a;

        /* nfnetlink without nf_tables answers EOPNOTSUPP on BATCH_BEGIN */
        ASSERT_OK(redirect_acks_init(&a, b, PORTID));
        put_ack(&d, PORTID, SEQ, EOPNOTSUPP, NULL);
        ASSERT_EQ(redirect_acks_feed(&a, d.buf, d.len), 1);
        ASSERT_ERROR(redirect_acks_result(&a), -EOPNOTSUPP);
        redirect_acks_done(&a);

        /* nf_tables without the nat chain type answers ENOENT on "add chain" */
        d = (Datagram){};
        ASSERT_OK(redirect_acks_init(&a, b, PORTID));
        for (uint32_t seq = SEQ + 1; seq <= SEQ + 8; seq++)
                put_ack(&d, PORTID, seq, seq == SEQ + 4 ? ENOENT : 0, NULL);
        ASSERT_EQ(redirect_acks_feed(&a, d.buf, d.len), 1);
        ASSERT_STREQ(redirect_batch_describe(b, a.error_seq), "add chain ip kube2iam prerouting");
        ASSERT_ERROR(redirect_acks_result(&a), -EOPNOTSUPP);
        redirect_acks_done(&a);
        redirect_batch_free(b);
}

TEST(truncated_ack_is_refused) {
        RedirectBatch *b = install_batch();
        Datagram d = {};
        struct nlmsghdr *nlh;
        RedirectAcks a;

        ASSERT_OK(redirect_acks_init(&a, b, PORTID));
        nlh = mnl_nlmsg_put_header(d.buf);
        nlh->nlmsg_type = NLMSG_ERROR;
        nlh->nlmsg_seq = SEQ + 1;
        nlh->nlmsg_pid = PORTID;
        mnl_nlmsg_put_extra_header(nlh, 4); /* shorter than struct nlmsgerr */
        ASSERT_ERROR(redirect_acks_feed(&a, d.buf, nlh->nlmsg_len), -EBADMSG);
        /* garbage that is not even a netlink header is ignored, not read past */
        ASSERT_EQ(redirect_acks_feed(&a, "\x01\x02\x03", 3), 0);
        redirect_acks_done(&a);
        redirect_batch_free(b);
}

TEST(uncapped_error_with_echoed_request_still_yields_the_extack) {
        RedirectBatch *b = install_batch();
        Datagram d = {};
        struct nlmsghdr *nlh;
        struct nlmsgerr *err;
        RedirectAcks a;
        char *echo;

        ASSERT_OK(redirect_acks_init(&a, b, PORTID));
        nlh = mnl_nlmsg_put_header(d.buf);
        nlh->nlmsg_type = NLMSG_ERROR;
        nlh->nlmsg_flags = NLM_F_ACK_TLVS;
        nlh->nlmsg_seq = SEQ + 2;
        nlh->nlmsg_pid = PORTID;
        err = mnl_nlmsg_put_extra_header(nlh, sizeof *err);
        err->error = -EBUSY;
        /* the request echoed whole: its header is in err->msg, 8 more bytes follow */
        err->msg = (struct nlmsghdr){ .nlmsg_len = sizeof(struct nlmsghdr) + 8, .nlmsg_seq = SEQ + 2 };
        echo = mnl_nlmsg_put_extra_header(nlh, 8);
        memset(echo, 0xAA, 8);
        mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, "table is busy");
        ASSERT_EQ(redirect_acks_feed(&a, d.buf, nlh->nlmsg_len), 0);
        ASSERT_EQ(a.error, EBUSY);
        ASSERT_STREQ(a.extack, "table is busy");
        redirect_acks_done(&a);
        redirect_batch_free(b);
}
