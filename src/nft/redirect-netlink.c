/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>

#include "log.h"
#include "macro.h"
#include "redirect-netlink.h"
#include "string-util.h"

/* The kernel caps a dump's skb at 32 KiB (netlink_recvmsg's max_recvmsg_len), so one read of
 * this size never truncates a message. */
#define REDIRECT_NETLINK_RECV_BYTES 32768

struct RedirectNetlink {
        struct mnl_socket *sock;
        uint32_t portid;
        uint32_t seq;
        char *buf;
};

int redirect_netlink_open(int bus, RedirectNetlink **ret) {
        _cleanup_(redirect_netlink_closep) RedirectNetlink *nl = NULL;
        int one = 1;

        nl = calloc(1, sizeof *nl);
        if (!nl)
                return -ENOMEM;
        nl->buf = malloc(REDIRECT_NETLINK_RECV_BYTES);
        if (!nl->buf)
                return -ENOMEM;
        nl->sock = mnl_socket_open(bus);
        if (!nl->sock)
                return -errno;
        if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0)
                return -errno;
        /* Best effort: extended ACKs give the kernel's own reason, capped ACKs keep the
         * replies to a batch small. Old kernels without them still report errno. */
        (void) mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof one);
        (void) mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof one);
        nl->portid = mnl_socket_get_portid(nl->sock);
        /* distinct from a previous run's numbers, as nft does, so a stale reply never matches */
        nl->seq = (uint32_t) time(NULL);
        *ret = TAKE_PTR(nl);
        return 0;
}

RedirectNetlink *redirect_netlink_close(RedirectNetlink *nl) {
        if (!nl)
                return NULL;
        if (nl->sock)
                mnl_socket_close(nl->sock);
        free(nl->buf);
        return mfree(nl);
}

uint32_t redirect_netlink_next_seq(RedirectNetlink *nl) {
        return nl->seq++;
}

void redirect_netlink_used_seq(RedirectNetlink *nl, uint32_t last) {
        nl->seq = last + 1;
}

/* Reads one datagram into nl->buf, waiting at most REDIRECT_NETLINK_TIMEOUT_MSEC. */
static ssize_t netlink_recv(RedirectNetlink *nl) {
        struct pollfd p = { .fd = mnl_socket_get_fd(nl->sock), .events = POLLIN };
        ssize_t n;
        int k;

        for (;;) {
                k = poll(&p, 1, REDIRECT_NETLINK_TIMEOUT_MSEC);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -ETIMEDOUT;
                n = mnl_socket_recvfrom(nl->sock, nl->buf, REDIRECT_NETLINK_RECV_BYTES);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                return n;
        }
}

/* The kernel's reason (NLMSGERR_ATTR_MSG) attached to an error ACK, or NULL. */
static const char *extack_message(const struct nlmsghdr *nlh) {
        const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
        size_t off = sizeof *err, len = mnl_nlmsg_get_payload_len(nlh);
        const struct nlattr *attr;
        const void *tlvs;
        size_t tlv_len;

        if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
                return NULL;
        if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
                /* the whole request is echoed before the TLVs */
                if (err->msg.nlmsg_len < sizeof(struct nlmsghdr) || err->msg.nlmsg_len > len)
                        return NULL;
                off += err->msg.nlmsg_len - sizeof(struct nlmsghdr);
        }
        if (off >= len)
                return NULL;
        tlvs = (const char *) err + off;
        tlv_len = len - off;
        mnl_attr_for_each_payload(tlvs, tlv_len) {
                if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
                    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
                        return mnl_attr_get_str(attr);
        }
        return NULL;
}

static int classify_rejection(int error, bool whole_batch, const char *description) {
        /* nfnetlink checks CAP_NET_ADMIN once per batch and answers on BATCH_BEGIN; EPERM on one
         * command means something else (a table owned by another process) */
        if ((error == EPERM || error == EACCES) && whole_batch)
                return -EPERM;
        if (error == EOPNOTSUPP || error == EAFNOSUPPORT)
                return -EOPNOTSUPP;
        /* a missing chain type or expression (nft_chain_nat, nft_nat not built or loadable) */
        if (error == ENOENT && description && startswith(description, "add ") &&
            !startswith(description, "add table"))
                return -EOPNOTSUPP;
        return -EPROTO;
}

int redirect_acks_init(RedirectAcks *a, const RedirectBatch *b, uint32_t portid) {
        *a = (RedirectAcks){
                .batch = b,
                .portid = portid,
                .pending = b->n_messages,
        };
        a->answered = calloc(b->n_messages ?: 1, sizeof(bool));
        return a->answered ? 0 : -ENOMEM;
}

void redirect_acks_done(RedirectAcks *a) {
        a->answered = mfree(a->answered);
}

int redirect_acks_feed(RedirectAcks *a, const void *buf, size_t size) {
        const RedirectBatch *b = a->batch;
        int len = (int) MIN(size, (size_t) INT32_MAX);

        for (const struct nlmsghdr *nlh = buf; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
                const struct nlmsgerr *err;
                uint32_t seq = nlh->nlmsg_seq;
                size_t idx;

                if (nlh->nlmsg_pid != a->portid || seq < b->seq_begin || seq > b->seq_end)
                        continue; /* not an answer to this batch */
                if (nlh->nlmsg_type != NLMSG_ERROR)
                        continue; /* no NLM_F_ECHO asked: nothing else is expected */
                if (mnl_nlmsg_get_payload_len(nlh) < sizeof(struct nlmsgerr))
                        return -EBADMSG;
                err = mnl_nlmsg_get_payload(nlh);

                if (err->error != 0) {
                        int e = -err->error;
                        if (e <= 0 || e >= 4096)
                                e = EPROTO;
                        if (a->error == 0) {
                                const char *msg = extack_message(nlh);
                                a->error = e;
                                a->error_seq = seq;
                                snprintf(a->extack, sizeof a->extack, "%s", strempty(msg));
                        } else
                                log_debug_errno(e, "Kernel also rejected %s: %m",
                                                strna(redirect_batch_describe(b, seq)));
                        /* an error on BATCH_BEGIN/END is about the batch as a whole
                         * (permission, nf_tables missing): nothing else will follow */
                        if (seq == b->seq_begin || seq == b->seq_end) {
                                a->whole_batch = true;
                                return 1;
                        }
                }
                idx = seq - b->seq_begin - 1;
                if (idx < b->n_messages && !a->answered[idx]) {
                        a->answered[idx] = true;
                        a->pending--;
                }
        }
        return a->pending == 0;
}

int redirect_acks_result(const RedirectAcks *a) {
        const RedirectBatch *b = a->batch;
        const char *what, *extack = isempty(a->extack) ? NULL : a->extack;
        int r;

        if (a->error == 0)
                return 0;
        what = redirect_batch_describe(b, a->error_seq);
        r = classify_rejection(a->error, a->error_seq == b->seq_begin, what);
        if (r == -EPERM)
                log_error_errno(a->error, "No permission to change nftables (CAP_NET_ADMIN needed in this "
                                          "network namespace): %m");
        else if (r == -EOPNOTSUPP)
                log_error_errno(a->error,
                                "nf_tables with NAT support is not available in this kernel (%s): %m%s%s",
                                strna(what), extack ? ": " : "", strempty(extack));
        else
                log_error_errno(a->error, "Kernel rejected %s (batch message %u): %m%s%s", strna(what),
                                a->error_seq - b->seq_begin, extack ? ": " : "", strempty(extack));
        return r;
}

int redirect_netlink_send_batch(RedirectNetlink *nl, const RedirectBatch *b) {
        RedirectAcks a;
        int r;

        r = redirect_acks_init(&a, b, nl->portid);
        if (r < 0)
                return r;
        if (mnl_socket_sendto(nl->sock, b->buf, b->size) < 0) {
                r = log_error_errno(errno, "Failed to send the nftables batch: %m");
                goto finish;
        }
        for (;;) {
                ssize_t n = netlink_recv(nl);

                if (n == -ETIMEDOUT) {
                        r = log_error_errno(n,
                                            "No answer from the kernel to the nftables batch "
                                            "(%zu of %zu messages unanswered)",
                                            a.pending, b->n_messages);
                        goto finish;
                }
                if (n < 0) {
                        /* ENOBUFS: replies were dropped, so the outcome of the batch is unknown */
                        r = log_error_errno((int) n,
                                            "Failed to read the kernel's answer to the nftables batch: %m");
                        goto finish;
                }
                r = redirect_acks_feed(&a, nl->buf, (size_t) n);
                if (r < 0) {
                        r = log_error_errno(r, "Malformed answer from the kernel to the nftables batch: %m");
                        goto finish;
                }
                if (r > 0)
                        break;
        }
        r = redirect_acks_result(&a);
finish:
        redirect_acks_done(&a);
        return r;
}

struct dump_ctx {
        redirect_dump_cb cb;
        void *userdata;
        int error;
};

static int dump_one(const struct nlmsghdr *nlh, void *data) {
        struct dump_ctx *ctx = data;
        int r = ctx->cb(nlh, ctx->userdata);

        if (r < 0) {
                ctx->error = r;
                return MNL_CB_ERROR;
        }
        return MNL_CB_OK;
}

int redirect_netlink_dump(RedirectNetlink *nl, struct nlmsghdr *req, redirect_dump_cb cb, void *userdata) {
        struct dump_ctx ctx = { .cb = cb, .userdata = userdata };
        uint32_t seq = req->nlmsg_seq;

        if (mnl_socket_sendto(nl->sock, req, req->nlmsg_len) < 0)
                return -errno;
        for (;;) {
                ssize_t n = netlink_recv(nl);
                int k;

                if (n < 0)
                        return (int) n;
                k = mnl_cb_run(nl->buf, (size_t) n, seq, nl->portid, dump_one, &ctx);
                if (k == MNL_CB_STOP)
                        return 0;
                if (k < 0) {
                        if (ctx.error < 0)
                                return ctx.error;
                        return -errno;
                }
        }
}
