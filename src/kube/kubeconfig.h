/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* KubeConfig: the kubelet's kubeconfig as kubeadm, kops and EKS write it, reduced to what one
 * API connection needs (the current context's cluster and user). Owns the reading of the file
 * (the only user of libyaml), the choice of where to read it from (--kubeconfig, else
 * --api-server + --api-token, else the kubelet's usual paths), and the reading of the files it
 * names (CA, client certificate and key, token file) into KubeCredentials, again on every call
 * so that a rotated kubelet-client-current.pem is picked up. Keys and tokens only live in Secret.
 * Reference: kubernetes.io/docs/reference/config-api/kubeconfig.v1 and the client-go
 * credential plugins page (exec). */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "secret.h"
#include "time-util.h"

/* A kubeconfig is a few KiB; kubeadm's with embedded certificates about 6 KiB. 1 MiB is far
 * beyond any real one and keeps a wrong path (a log file, /dev/zero) from eating memory. */
#define KUBECONFIG_MAX_BYTES (1024 * 1024)
/* A PEM CA bundle, certificate, key or token file: the largest real ones (a CA bundle of a
 * few hundred certificates) stay well under 1 MiB. */
#define KUBE_CREDENTIAL_FILE_MAX_BYTES (1024 * 1024)

/* The kubelet's kubeconfig paths, in the order they are tried when --kubeconfig is not given:
 * EKS (nodeadm) and kops write the first, kubeadm the second. */
#define KUBECONFIG_DEFAULT_PATHS "/var/lib/kubelet/kubeconfig", "/etc/kubernetes/kubelet.conf"

typedef struct KubeExecConfig {
        char *api_version; /* client.authentication.k8s.io/v1beta1 or /v1 */
        char *command;     /* absolute, or resolved through $PATH at run time */
        char **args;
        char **env; /* "NAME=value", added to the daemon's environment */
        bool provide_cluster_info;
} KubeExecConfig;

typedef struct KubeConfig {
        char *path;    /* the file, or NULL when built from --api-server */
        char *context; /* current-context (for messages) */
        char *server;  /* https://host[:port][/prefix], no trailing '/' */
        char *tls_server_name;
        bool insecure_skip_tls_verify;
        char *ca_file; /* absolute; NULL when ca_data is set or none is given */
        char *ca_data; /* decoded PEM (certificate-authority-data wins over the file) */
        size_t ca_size;
        char *client_cert_file;
        char *client_cert_data;
        size_t client_cert_size;
        char *client_key_file;
        Secret *client_key_data;
        Secret *token; /* wins over token_file */
        char *token_file;
        KubeExecConfig *exec;
} KubeConfig;

/* What a request carries, read from the files (or the exec plugin) at one moment. */
typedef struct KubeCredentials {
        char *ca_pem; /* NULL: the system trust store */
        size_t ca_size;
        char *cert_pem; /* NULL: no client certificate */
        size_t cert_size;
        Secret *key_pem;
        Secret *token;  /* bearer token, NULL: none */
        usec_t expires; /* CLOCK_REALTIME; USEC_INFINITY when they do not expire */
} KubeCredentials;

/* Parses a kubeconfig held in memory. path names the file in errors and anchors relative paths
 * (NULL: the current directory). A bad file gives -EINVAL after one log line naming the file and
 * the field. */
int kubeconfig_parse(const char *text, size_t size, const char *path, KubeConfig **ret);
/* Reads and parses a file (at most KUBECONFIG_MAX_BYTES). -ENOENT when it does not exist (not
 * logged: the caller may be waiting for it); other errors are logged. */
int kubeconfig_load(const char *path, KubeConfig **ret);
/* Where the daemon's kubeconfig comes from: the flags that name it (borrowed strings). */
typedef struct KubeconfigSource {
        const char *kubeconfig;  /* --kubeconfig */
        const char *api_server;  /* --api-server, only with api_token */
        const Secret *api_token; /* --api-token */
        bool insecure;           /* --insecure: skip TLS verification, with a kubeconfig too */
} KubeconfigSource;

/* The kubeconfig the daemon should use under s: --kubeconfig, else --api-server with
 * --api-token, else the first of KUBECONFIG_DEFAULT_PATHS that exists. -ENOENT when none
 * exists yet (kubelet's TLS bootstrap writes it later); *ret_waiting_for (optional) then names
 * what is being waited for. */
int kubeconfig_from_source(const KubeconfigSource *s, KubeConfig **ret, char **ret_waiting_for);
KubeConfig *kubeconfig_free(KubeConfig *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeConfig *, kubeconfig_free);

/* Reads the CA, client certificate, key and token named by k now (files are read again on every
 * call, so rotated ones are picked up). Exec credentials are not included: see kube-exec.h. */
int kubeconfig_read_credentials(const KubeConfig *k, KubeCredentials **ret);
KubeCredentials *kube_credentials_free(KubeCredentials *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeCredentials *, kube_credentials_free);

/* Reads a whole file of at most max bytes (-EFBIG beyond), NUL-terminated. */
int kube_read_file(const char *path, size_t max, char **ret, size_t *ret_size);
/* Decodes standard base64 (whitespace ignored). -EINVAL on anything else. */
int kube_base64_decode(const char *in, size_t n, char **ret, size_t *ret_size);
