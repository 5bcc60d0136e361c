/* SPDX-License-Identifier: BSD-3-Clause */
/* The only file that includes libxml2 (docs/design.md, "Processes and modules"). */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "string-util.h"
#include "sts.h"

/* STS replies are three or four levels deep; a deeper search is a hostile document. */
#define STS_XML_MAX_DEPTH 16

static bool name_is(const xmlNode *n, const char *local) {
        return n && n->type == XML_ELEMENT_NODE && n->name && streq((const char *) n->name, local);
}

/* Breadth doesn't matter: element order is not guaranteed, so search the whole subtree. */
static xmlNode *find_element(xmlNode *n, const char *local, unsigned depth) {
        if (depth > STS_XML_MAX_DEPTH)
                return NULL;
        for (xmlNode *c = n ? n->children : NULL; c; c = c->next) {
                xmlNode *f;

                if (name_is(c, local))
                        return c;
                if (c->type == XML_ELEMENT_NODE && (f = find_element(c, local, depth + 1)))
                        return f;
        }
        return NULL;
}

/* The text of an element's direct text/CDATA children, surrounding whitespace trimmed, into *ret
 * (a plain string; the caller wipes it when it was secret). -ENOENT when absent or empty. */
static int element_text(xmlNode *parent, const char *local, size_t max, char **ret) {
        xmlNode *e = find_element(parent, local, 0);
        _cleanup_strbuf_ StrBuf b = {};
        const char *s;
        size_t n;

        if (!e)
                return -ENOENT;
        for (xmlNode *c = e->children; c; c = c->next)
                if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
                        strbuf_append(&b, (const char *) c->content);
                else if (c->type == XML_ELEMENT_NODE) {
                        strbuf_done_erase(&b);
                        return -EBADMSG;
                }
        s = strbuf_str(&b);
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
                s++;
        n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
                n--;
        if (n == 0) {
                strbuf_done_erase(&b);
                return -ENOENT;
        }
        if (n > max) {
                strbuf_done_erase(&b);
                return -E2BIG;
        }
        *ret = strndup(s, n);
        strbuf_done_erase(&b);
        return *ret ? 0 : -ENOMEM;
}

/* Secrets sit in libxml2's text nodes too: wipe them before the tree is freed. */
static void wipe_text(xmlNode *n, unsigned depth) {
        if (depth > STS_XML_MAX_DEPTH)
                return;
        for (xmlNode *c = n ? n->children : NULL; c; c = c->next) {
                if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
                        explicit_bzero(c->content, strlen((const char *) c->content));
                wipe_text(c, depth + 1);
        }
}

static int make_error(StsErrorClass class, int error, long status, const char *code, const char *message,
                      StsError **ret) {
        return sts_error_new(class, error, status, code, message, ret);
}

/* A reply that is not the XML we expect: classify by status alone. */
static int garbage_error(long status, const char *why, StsError **ret) {
        char code[32];

        if (status >= 200 && status < 300)
                return make_error(STS_ERROR_TRANSIENT, -EBADMSG, status, "MalformedReply", why, ret);
        (void) snprintf(code, sizeof code, "HTTP%ld", status);
        return make_error(sts_error_classify(NULL, status),
                          status >= 500 || status == 429 ? -EAGAIN : -EACCES, status, code, why, ret);
}

static int parse_error(xmlNode *root, long status, StsError **ret) {
        xmlNode *err = name_is(root, "Error") ? root : find_element(root, "Error", 0);
        _cleanup_free_ char *code = NULL, *message = NULL, *type = NULL, *request_id = NULL;
        _cleanup_(sts_error_freep) StsError *e = NULL;
        StsErrorClass class;
        int r;

        if (!err)
                return garbage_error(status, "no Error element in the reply", ret);
        r = element_text(err, "Code", STS_ERROR_CODE_MAX, &code);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return garbage_error(status, "no error code in the reply", ret);
        for (const char *p = code; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      *p == '.' || *p == '_' || *p == '-'))
                        /* codes become metric labels and log fields: only identifiers pass */
                        return garbage_error(status, "malformed error code in the reply", ret);
        if (element_text(err, "Message", STS_ERROR_MESSAGE_MAX, &message) == -ENOMEM ||
            element_text(err, "Type", STS_ERROR_CODE_MAX, &type) == -ENOMEM ||
            element_text(root, "RequestId", STS_ERROR_CODE_MAX, &request_id) == -ENOMEM)
                return -ENOMEM;
        class = sts_error_classify(code, status);
        r = make_error(class, class == STS_ERROR_DENIED ? -EACCES : -EAGAIN, status, code, message, &e);
        if (r < 0)
                return r;
        e->type = TAKE_PTR(type);
        e->request_id = TAKE_PTR(request_id);
        *ret = TAKE_PTR(e);
        return 0;
}

static bool assumed_role_id_valid(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("_+=,.@:-", *s)))
                        return false;
        return true;
}

static int parse_success(xmlNode *root, long status, usec_t now, Credentials **ret_creds,
                         StsError **ret_error) {
        xmlNode *cred = find_element(root, "Credentials", 0);
        _cleanup_free_ char *key_id = NULL, *expiration = NULL;
        _cleanup_erase_ char *secret = NULL, *token = NULL;
        Secret *s = NULL, *t = NULL;
        usec_t exp;
        int r;

        if (!cred)
                return garbage_error(status, "no Credentials element in the reply", ret_error);
        r = element_text(cred, "AccessKeyId", CREDENTIALS_ACCESS_KEY_MAX, &key_id);
        if (r >= 0)
                r = element_text(cred, "SecretAccessKey", STS_REPLY_MAX_BYTES, &secret);
        if (r >= 0)
                r = element_text(cred, "SessionToken", STS_REPLY_MAX_BYTES, &token);
        if (r >= 0)
                r = element_text(cred, "Expiration", STS_ERROR_CODE_MAX, &expiration);
        wipe_text(cred, 0);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return garbage_error(status, "incomplete Credentials in the reply", ret_error);
        if (parse_timestamp_rfc3339(expiration, &exp) < 0)
                return garbage_error(status, "unparsable Expiration in the reply", ret_error);
        if (!credentials_access_key_valid(key_id))
                return garbage_error(status, "malformed AccessKeyId in the reply", ret_error);

        r = secret_new(secret, strlen(secret), &s);
        if (r < 0)
                return r;
        r = secret_new(token, strlen(token), &t);
        if (r < 0) {
                secret_free(s);
                return r;
        }
        r = credentials_new(key_id, s, t, exp, now, ret_creds);
        if (r < 0)
                return r;
        /* AssumedRoleId maps a CloudTrail row back to the pod's audit entry: kept when well formed */
        xmlNode *user = find_element(root, "AssumedRoleUser", 0);
        _cleanup_free_ char *role_id = NULL;
        if (user && element_text(user, "AssumedRoleId", STS_ASSUMED_ROLE_ID_MAX, &role_id) == -ENOMEM) {
                *ret_creds = credentials_unref(*ret_creds);
                return -ENOMEM;
        }
        if (role_id && assumed_role_id_valid(role_id))
                (*ret_creds)->assumed_role_id = TAKE_PTR(role_id);
        return 0;
}

int sts_reply_parse(const char *body, size_t size, long http_status, usec_t now_realtime,
                    Credentials **ret_creds, StsError **ret_error) {
        Credentials *creds = NULL;
        StsError *error = NULL;
        xmlDoc *doc = NULL;
        xmlNode *root;
        int r;

        if (!ret_creds || !ret_error || (!body && size > 0))
                return -EINVAL;
        if (size > STS_REPLY_MAX_BYTES)
                r = garbage_error(http_status, "reply too large", &error);
        else if (size == 0 || size > INT32_MAX)
                r = garbage_error(http_status, "empty reply", &error);
        else {
                /* No network, no entity substitution, no DTD loading: the reply is data, not a program. */
                doc = xmlReadMemory(body, (int) size, "sts-reply.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                            XML_PARSE_NOCDATA);
                root = doc ? xmlDocGetRootElement(doc) : NULL;
                if (!root)
                        r = garbage_error(http_status, "reply is not XML", &error);
                else if (doc->intSubset || doc->extSubset)
                        r = garbage_error(http_status, "reply carries a DTD", &error);
                else if (http_status == 200 && (name_is(root, "AssumeRoleResponse") ||
                                                name_is(root, "AssumeRoleWithWebIdentityResponse")))
                        r = parse_success(root, http_status, now_realtime, &creds, &error);
                else
                        r = parse_error(root, http_status, &error);
                if (root)
                        wipe_text(root, 0);
                xmlFreeDoc(doc);
        }
        if (r < 0) {
                credentials_unref(creds);
                sts_error_free(error);
                return r;
        }
        assert(!!creds != !!error);
        *ret_creds = creds;
        *ret_error = error;
        return 0;
}
