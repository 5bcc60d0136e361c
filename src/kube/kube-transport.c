/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "http/http-client.h"
#include "kube-transport.h"
#include "log.h"
#include "string-util.h"

/* libcurl 7.77 brought CURLOPT_CAINFO_BLOB, which takes the kubeconfig's CA as it is (often
 * certificate-authority-data, never a file). RHEL 9 ships 7.76: there the CA goes into the TLS
 * context through CURLOPT_SSL_CTX_FUNCTION instead (libcurl's OpenSSL backend, which RHEL's is).
 * -Dcurl_ca_callback=true takes that path on any libcurl, so the test suite proves it. */
#if LIBCURL_VERSION_NUM < 0x074d00 || KUBE_CA_CALLBACK
#define KUBE_CA_IN_SSL_CTX 1
#else
#define KUBE_CA_IN_SSL_CTX 0
#endif

void kube_request_release(KubeRequest *r) {
        /* the header list holds the bearer token: wipe it */
        for (struct curl_slist *h = r->headers; h; h = h->next)
                if (h->data)
                        explicit_bzero(h->data, strlen(h->data));
        curl_slist_free_all(r->headers);
        r->headers = NULL;
        curl_slist_free_all(r->connect_to);
        r->connect_to = NULL;
        r->creds = kube_credentials_free(r->creds);
}

void kube_request_done(KubeRequest *r) {
        kube_request_release(r);
        if (r->easy) {
                curl_easy_cleanup(r->easy);
                r->easy = NULL;
        }
}

long kube_response_code(CURL *easy) {
        long code = 0;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        return code;
}

/* tls-server-name: the URL names that host (libcurl verifies it and sends it as SNI) while
 * CONNECT_TO sends the connection to the server's own address. Replaces *url. */
static int request_sni(KubeRequest *r, const KubeConfig *kc, char **url) {
        _cleanup_free_ char *connect_to = NULL;
        char *host = NULL, *port = NULL, *newurl = NULL;
        CURLU *u = curl_url();
        bool ok = u && curl_url_set(u, CURLUPART_URL, *url, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
                  curl_url_set(u, CURLUPART_HOST, kc->tls_server_name, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_URL, &newurl, 0) == CURLUE_OK;
        int q = 0;

        curl_url_cleanup(u);
        if (!ok)
                q = log_error_errno(-EINVAL, "Invalid server URL %s with tls-server-name %s in %s",
                                    kc->server, kc->tls_server_name, strna(kc->path));
        else if (asprintf(&connect_to, "%s:%s:%s:%s", kc->tls_server_name, port, host, port) < 0)
                q = -ENOMEM;
        /* libcurl keeps the CONNECT_TO list by pointer until the transfer ends */
        else if (!(r->connect_to = curl_slist_append(NULL, connect_to)))
                q = -ENOMEM;
        else {
                char *copy = strdup(newurl);
                if (!copy)
                        q = -ENOMEM;
                else
                        free_and_replace(*url, copy);
        }
        curl_free(host);
        curl_free(port);
        curl_free(newurl);
        return q;
}

static int request_header(KubeRequest *r, const char *line) {
        struct curl_slist *h = curl_slist_append(r->headers, line);
        if (!h)
                return -ENOMEM;
        r->headers = h;
        return 0;
}

/* The kubeconfig's CA, and only it, as the trust store of the connection's TLS context (what
 * CURLOPT_CAINFO_BLOB does): curl calls this after it loaded its default bundle, which the new
 * store replaces. */
int kube_tls_trust_only(void *ssl_ctx, const char *pem, size_t size) {
        BIO *bio;
        X509_STORE *store;
        unsigned n = 0;

        if (!ssl_ctx || !pem || size == 0 || size > INT_MAX)
                return -EINVAL;
        bio = BIO_new_mem_buf(pem, (int) size);
        store = X509_STORE_new();
        if (!bio || !store) {
                BIO_free(bio);
                X509_STORE_free(store);
                return -ENOMEM;
        }
        for (;;) {
                X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                if (!x)
                        break;
                if (X509_STORE_add_cert(store, x) == 1)
                        n++;
                X509_free(x);
        }
        BIO_free(bio);
        ERR_clear_error(); /* the end of the PEM data reads as an error */
        if (n == 0) {
                X509_STORE_free(store);
                return -EBADMSG;
        }
        SSL_CTX_set_cert_store(ssl_ctx, store); /* takes the store */
        return (int) n;
}

#if KUBE_CA_IN_SSL_CTX
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *userdata) {
        const KubeCredentials *c = userdata;
        return kube_tls_trust_only(ssl_ctx, c->ca_pem, c->ca_size) > 0 ? CURLE_OK : CURLE_SSL_CACERT_BADFILE;
}
#endif

static int request_ca(KubeRequest *r) {
        const KubeCredentials *c = r->creds;
#if KUBE_CA_IN_SSL_CTX
        if (curl_easy_setopt(r->easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_SSL_CTX_DATA, (void *) c) != CURLE_OK)
                return log_error_errno(-EOPNOTSUPP,
                                       "This libcurl cannot take the kubeconfig's CA: it needs libcurl 7.77 "
                                       "or an OpenSSL-backed libcurl");
#else
        struct curl_blob b = { .data = c->ca_pem, .len = c->ca_size, .flags = CURL_BLOB_NOCOPY };
        if (curl_easy_setopt(r->easy, CURLOPT_CAINFO_BLOB, &b) != CURLE_OK)
                return -EIO;
#endif
        return 0;
}

static int request_tls(KubeRequest *r, const KubeConfig *kc) {
        const KubeCredentials *c = r->creds;

        if (kc->insecure_skip_tls_verify) {
                if (curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK ||
                    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK)
                        return -EIO;
        } else if (c->ca_pem) {
                int q = request_ca(r);
                if (q < 0)
                        return q;
        }
        if (c->cert_pem && c->key_pem) {
                struct curl_blob cert = { .data = c->cert_pem,
                                          .len = c->cert_size,
                                          .flags = CURL_BLOB_NOCOPY };
                struct curl_blob key = { .data = (void *) secret_reveal(c->key_pem),
                                         .len = secret_size(c->key_pem),
                                         .flags = CURL_BLOB_NOCOPY };
                if (curl_easy_setopt(r->easy, CURLOPT_SSLCERT_BLOB, &cert) != CURLE_OK ||
                    curl_easy_setopt(r->easy, CURLOPT_SSLCERTTYPE, "PEM") != CURLE_OK ||
                    curl_easy_setopt(r->easy, CURLOPT_SSLKEY_BLOB, &key) != CURLE_OK ||
                    curl_easy_setopt(r->easy, CURLOPT_SSLKEYTYPE, "PEM") != CURLE_OK)
                        return -EIO;
        }
        return 0;
}

static int request_auth(KubeRequest *r) {
        _cleanup_erase_ char *auth = NULL;
        int q;

        q = request_header(r, "Accept: application/json");
        if (q < 0 || !r->creds->token)
                return q;
        if (asprintf(&auth, "Authorization: Bearer %s", secret_reveal(r->creds->token)) < 0)
                return -ENOMEM;
        return request_header(r, auth);
}

int kube_request_prepare(KubeRequest *r, const KubeConfig *kc, KubeCredentials *creds, const char *path,
                         usec_t timeout) {
        _cleanup_free_ char *url = NULL;
        int q;

        kube_request_release(r);
        r->creds = creds;
        if (!r->easy) {
                r->easy = curl_easy_init();
                if (!r->easy)
                        return -ENOMEM;
        } else
                curl_easy_reset(r->easy); /* keeps the connection cache and TLS sessions */

        if (asprintf(&url, "%s%s", kc->server, path) < 0)
                return -ENOMEM;
        if (kc->tls_server_name) {
                q = request_sni(r, kc, &url);
                if (q < 0)
                        return q;
        }
        q = http_client_prepare(r->easy,
                                &(const HttpRequestOptions){ .url = url,
                                                             .protocols = HTTP_PROTOCOLS_HTTP_HTTPS,
                                                             .timeout = timeout,
                                                             .connect_timeout = KUBE_CONNECT_TIMEOUT_USEC });
        if (q < 0)
                return q;
        if ((r->connect_to && curl_easy_setopt(r->easy, CURLOPT_CONNECT_TO, r->connect_to) != CURLE_OK) ||
            curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPIDLE, 30L) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPINTVL, 10L) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, "") !=
                    CURLE_OK) /* gzip lists of 10,000 namespaces */
                return -EIO;
        q = request_tls(r, kc);
        if (q < 0)
                return q;
        q = request_auth(r);
        if (q < 0)
                return q;
        if (curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK)
                return -EIO;
        return 0;
}
