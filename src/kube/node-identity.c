/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "macro.h"
#include "node-identity.h"
#include "string-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);

static bool node_name_valid(const char *s, size_t n) {
        if (n == 0 || n > NODE_IDENTITY_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '-' &&
                    s[i] != '.')
                        return false;
        return true;
}

int node_identity_from_certificate(const char *pem, size_t size, char **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        const X509_NAME *subject;
        const ASN1_STRING *cn;
        const char *value;
        size_t n, prefix = strlen(NODE_IDENTITY_CN_PREFIX);
        int i;
        char *name;

        if (!pem || size == 0 || size > INT_MAX)
                return -EINVAL;
        bio = BIO_new_mem_buf(pem, (int) size);
        if (!bio)
                return -ENOMEM;
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!cert)
                return -EINVAL;
        subject = X509_get_subject_name(cert);
        i = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
        if (i < 0)
                return -ENOENT;
        /* two CNs: which one the API server takes is not ours to guess */
        if (X509_NAME_get_index_by_NID(subject, NID_commonName, i) >= 0)
                return -EINVAL;
        cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        value = (const char *) ASN1_STRING_get0_data(cn);
        n = (size_t) ASN1_STRING_length(cn);
        if (!value || n < prefix || memcmp(value, NODE_IDENTITY_CN_PREFIX, prefix) != 0)
                return -ENOENT;
        if (!node_name_valid(value + prefix, n - prefix))
                return -EINVAL;
        name = strndup(value + prefix, n - prefix);
        if (!name)
                return -ENOMEM;
        *ret = name;
        return 0;
}
