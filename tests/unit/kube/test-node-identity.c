/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "node-identity.h"
#include "tap.h"

/* A self-signed certificate (PEM, malloc'ed) whose subject has the given CNs, as kubelet's client
 * certificate has "system:node:<name>" with O=system:nodes. */
static char *make_cert(const char *cn1, const char *cn2) {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        X509 *x = X509_new();
        X509_NAME *name = X509_NAME_new();
        BIO *bio = BIO_new(BIO_s_mem());
        char *data, *out = NULL;
        long n;

        if (!key || !x || !name || !bio)
                goto done;
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *) "system:nodes", -1, -1,
                                   0);
        if (cn1)
                X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn1, -1, -1, 0);
        if (cn2)
                X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn2, -1, -1, 0);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_subject_name(x, name);
        X509_set_issuer_name(x, name);
        X509_set_pubkey(x, key);
        if (X509_sign(x, key, EVP_sha256()) <= 0 || PEM_write_bio_X509(bio, x) != 1)
                goto done;
        n = BIO_get_mem_data(bio, &data);
        out = strndup(data, (size_t) n);
done:
        BIO_free(bio);
        X509_NAME_free(name);
        X509_free(x);
        EVP_PKEY_free(key);
        return out;
}

static int from_cert(const char *cn1, const char *cn2, char **ret) {
        char *pem = make_cert(cn1, cn2);
        int r;

        ASSERT_NOT_NULL(pem);
        r = node_identity_from_certificate(pem, strlen(pem), ret);
        free(pem);
        return r;
}

TEST(kubelet_certificate_names_the_node) {
        char *name = NULL;

        ASSERT_OK(from_cert("system:node:ip-10-0-1-23.eu-west-1.compute.internal", NULL, &name));
        ASSERT_STREQ(name, "ip-10-0-1-23.eu-west-1.compute.internal");
        free(name);
}

TEST(other_certificates_name_no_node) {
        char *name = NULL;

        ASSERT_ERROR(from_cert("kubernetes-admin", NULL, &name), -ENOENT);
        ASSERT_ERROR(from_cert("system:serviceaccount:kube-system:kube2iam", NULL, &name), -ENOENT);
        ASSERT_ERROR(from_cert(NULL, NULL, &name), -ENOENT);
        ASSERT_NULL(name);
}

TEST(invalid_node_names_and_ambiguous_subjects_are_refused) {
        char *name = NULL;

        ASSERT_ERROR(from_cert("system:node:", NULL, &name), -EINVAL);
        ASSERT_ERROR(from_cert("system:node:Upper-Case", NULL, &name), -EINVAL);
        ASSERT_ERROR(from_cert("system:node:a b", NULL, &name), -EINVAL);
        ASSERT_ERROR(from_cert("system:node:a/../b", NULL, &name), -EINVAL);
        ASSERT_ERROR(from_cert("system:node:node-a", "system:node:node-b", &name), -EINVAL);
        ASSERT_NULL(name);
}

TEST(garbage_is_not_a_certificate) {
        char *name = NULL;
        const char *junk = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n";

        ASSERT_ERROR(node_identity_from_certificate(junk, strlen(junk), &name), -EINVAL);
        ASSERT_ERROR(node_identity_from_certificate("", 0, &name), -EINVAL);
        ASSERT_ERROR(node_identity_from_certificate(NULL, 10, &name), -EINVAL);
        ASSERT_NULL(name);
}
