/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "kubeconfig.h"
#include "log.h"
#include "macro.h"
#include "string-util.h"

/* Nesting deeper than this in a kubeconfig is garbage, not a config; the document loader
 * recurses, so bound it before loading. */
#define KUBECONFIG_MAX_DEPTH 32

int kube_read_file(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > max)
                return -EFBIG;
        cap = S_ISREG(st.st_mode) ? (size_t) st.st_size + 1 : 4096;
        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n;

                if (len + 1 >= cap) {
                        char *p;

                        if (cap > max + 1)
                                return -EFBIG;
                        cap = MIN(cap * 2, max + 2);
                        p = realloc(buf, cap);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                }
                n = read(fd, buf + len, cap - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max)
                        return -EFBIG;
        }
        buf[len] = '\0';
        if (ret_size)
                *ret_size = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int base64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int kube_base64_decode(const char *in, size_t n, char **ret, size_t *ret_size) {
        _cleanup_free_ char *out = NULL;
        unsigned acc = 0, bits = 0, pad = 0;
        size_t len = 0;

        out = malloc(n / 4 * 3 + 4);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char c = in[i];
                int v;

                if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                        continue;
                if (c == '=') {
                        pad++;
                        continue;
                }
                if (pad > 0)
                        return -EINVAL; /* data after padding */
                v = base64_value(c);
                if (v < 0)
                        return -EINVAL;
                acc = (acc << 6) | (unsigned) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[len++] = (char) ((acc >> bits) & 0xff);
                }
        }
        if (pad > 2 || bits >= 6)
                return -EINVAL;
        out[len] = '\0';
        *ret_size = len;
        *ret = TAKE_PTR(out);
        return 0;
}

/* The parsing context: the file for messages and its folder for relative paths. */
typedef struct Parse {
        const char *path;
        char *dir;
        yaml_document_t *doc;
} Parse;

static int parse_error(const Parse *p, const char *field, const char *what) {
        log_error("Invalid kubeconfig %s: %s: %s", p->path ?: "(--api-server)", field, what);
        return -EINVAL;
}

static yaml_node_t *map_get(const Parse *p, yaml_node_t *map, const char *key) {
        if (!map || map->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *i = map->data.mapping.pairs.start; i < map->data.mapping.pairs.top; i++) {
                yaml_node_t *k = yaml_document_get_node(p->doc, i->key);
                if (k && k->type == YAML_SCALAR_NODE && streq((const char *) k->data.scalar.value, key))
                        return yaml_document_get_node(p->doc, i->value);
        }
        return NULL;
}

static bool node_is_null(const yaml_node_t *n) {
        if (!n)
                return true;
        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *v = (const char *) n->data.scalar.value;
        return streq(v, "") || streq(v, "~") || streq(v, "null") || streq(v, "Null") || streq(v, "NULL");
}

/* A scalar field; absent or null gives NULL (0), anything but a scalar an error naming field. */
static int get_string(const Parse *p, yaml_node_t *map, const char *key, const char *field,
                      const char **ret) {
        yaml_node_t *n = map_get(p, map, key);

        if (node_is_null(n)) {
                *ret = NULL;
                return 0;
        }
        if (n->type != YAML_SCALAR_NODE) {
                char f[256];
                snprintf(f, sizeof f, "%s.%s", field, key);
                return parse_error(p, f, "expected a string");
        }
        if (strlen((const char *) n->data.scalar.value) != n->data.scalar.length) {
                char f[256];
                snprintf(f, sizeof f, "%s.%s", field, key);
                return parse_error(p, f, "contains a NUL byte");
        }
        *ret = (const char *) n->data.scalar.value;
        return 0;
}

static int get_bool(const Parse *p, yaml_node_t *map, const char *key, const char *field, bool *ret) {
        const char *v;
        int r;

        r = get_string(p, map, key, field, &v);
        if (r < 0)
                return r;
        if (!v)
                *ret = false;
        else if (streq(v, "true") || streq(v, "True") || streq(v, "TRUE"))
                *ret = true;
        else if (streq(v, "false") || streq(v, "False") || streq(v, "FALSE"))
                *ret = false;
        else {
                char f[256];
                snprintf(f, sizeof f, "%s.%s", field, key);
                return parse_error(p, f, "expected true or false");
        }
        return 0;
}

/* Finds the entry named name in a list of {name: ..., <inner>: {...}} and returns its inner map. */
static int find_named(const Parse *p, yaml_node_t *root, const char *list, const char *inner,
                      const char *name, yaml_node_t **ret) {
        yaml_node_t *l = map_get(p, root, list);

        if (!node_is_null(l) && l->type != YAML_SEQUENCE_NODE)
                return parse_error(p, list, "expected a list");
        if (l && l->type == YAML_SEQUENCE_NODE)
                for (yaml_node_item_t *i = l->data.sequence.items.start; i < l->data.sequence.items.top;
                     i++) {
                        yaml_node_t *e = yaml_document_get_node(p->doc, *i);
                        yaml_node_t *n = map_get(p, e, "name");

                        if (n && n->type == YAML_SCALAR_NODE &&
                            streq((const char *) n->data.scalar.value, name)) {
                                yaml_node_t *m = map_get(p, e, inner);
                                char f[256];

                                snprintf(f, sizeof f, "%s[%s].%s", list, name, inner);
                                if (!m || m->type != YAML_MAPPING_NODE)
                                        return parse_error(p, f, "missing or not a mapping");
                                *ret = m;
                                return 0;
                        }
                }
        {
                char f[256];
                snprintf(f, sizeof f, "%s[%s]", list, name);
                return parse_error(p, f, "not found");
        }
}

static int make_path(const Parse *p, const char *v, char **ret) {
        char *s;

        if (v[0] == '/' || !p->dir)
                s = strdup(v);
        else if (asprintf(&s, "%s/%s", p->dir, v) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int get_data(const Parse *p, yaml_node_t *map, const char *key, const char *field, char **ret,
                    size_t *ret_size) {
        const char *v;
        int r;

        r = get_string(p, map, key, field, &v);
        if (r < 0)
                return r;
        if (!v) {
                *ret = NULL;
                *ret_size = 0;
                return 0;
        }
        r = kube_base64_decode(v, strlen(v), ret, ret_size);
        if (r == -EINVAL) {
                char f[256];
                snprintf(f, sizeof f, "%s.%s", field, key);
                return parse_error(p, f, "invalid base64");
        }
        return r;
}

static int parse_exec(Parse *p, yaml_node_t *exec, const char *field, KubeExecConfig **ret) {
        _cleanup_free_ KubeExecConfig *x = NULL;
        const char *v;
        char f[320];
        yaml_node_t *n;
        int r;

        snprintf(f, sizeof f, "%s.exec", field);
        if (exec->type != YAML_MAPPING_NODE)
                return parse_error(p, f, "expected a mapping");
        x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;

        r = get_string(p, exec, "apiVersion", f, &v);
        if (r < 0)
                goto fail;
        if (!v || !(streq(v, "client.authentication.k8s.io/v1beta1") ||
                    streq(v, "client.authentication.k8s.io/v1"))) {
                r = parse_error(p, f, "apiVersion must be client.authentication.k8s.io/v1beta1 or /v1");
                goto fail;
        }
        x->api_version = strdup(v);
        r = get_string(p, exec, "command", f, &v);
        if (r < 0)
                goto fail;
        if (isempty(v)) {
                r = parse_error(p, f, "command is missing");
                goto fail;
        }
        /* kubectl resolves a relative command with a '/' against the kubeconfig's folder */
        if (strchr(v, '/'))
                r = make_path(p, v, &x->command);
        else
                x->command = strdup(v), r = x->command ? 0 : -ENOMEM;
        if (r < 0 || !x->api_version) {
                r = -ENOMEM;
                goto fail;
        }

        n = map_get(p, exec, "args");
        if (!node_is_null(n)) {
                if (n->type != YAML_SEQUENCE_NODE) {
                        r = parse_error(p, f, "args must be a list of strings");
                        goto fail;
                }
                for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
                     i++) {
                        yaml_node_t *a = yaml_document_get_node(p->doc, *i);
                        if (!a || a->type != YAML_SCALAR_NODE) {
                                r = parse_error(p, f, "args must be a list of strings");
                                goto fail;
                        }
                        r = strv_extend(&x->args, (const char *) a->data.scalar.value);
                        if (r < 0)
                                goto fail;
                }
        }
        n = map_get(p, exec, "env");
        if (!node_is_null(n)) {
                if (n->type != YAML_SEQUENCE_NODE) {
                        r = parse_error(p, f, "env must be a list of {name, value}");
                        goto fail;
                }
                for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
                     i++) {
                        yaml_node_t *e = yaml_document_get_node(p->doc, *i);
                        const char *name = NULL, *value = NULL;
                        char *s;

                        if (!e || e->type != YAML_MAPPING_NODE || get_string(p, e, "name", f, &name) < 0 ||
                            get_string(p, e, "value", f, &value) < 0 || isempty(name) || strchr(name, '=')) {
                                r = parse_error(p, f, "env must be a list of {name, value}");
                                goto fail;
                        }
                        if (asprintf(&s, "%s=%s", name, strempty(value)) < 0) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        r = strv_consume(&x->env, s);
                        if (r < 0)
                                goto fail;
                }
        }
        r = get_bool(p, exec, "provideClusterInfo", f, &x->provide_cluster_info);
        if (r < 0)
                goto fail;
        *ret = TAKE_PTR(x);
        return 0;
fail:
        free(x->api_version);
        free(x->command);
        strv_free(x->args);
        strv_free(x->env);
        return r;
}

/* clusters[].cluster: where the API server is and how to trust it. */
static int parse_cluster(Parse *p, yaml_node_t *cluster, const char *cf, KubeConfig *k) {
        const char *v;
        int r;

        r = get_string(p, cluster, "server", cf, &v);
        if (r < 0)
                return r;
        if (isempty(v) || !(startswith(v, "https://") || startswith(v, "http://")))
                return parse_error(p, cf, "server must be an https:// URL");
        k->server = strdup(v);
        if (!k->server)
                return -ENOMEM;
        while (endswith(k->server, "/"))
                k->server[strlen(k->server) - 1] = '\0';
        r = get_string(p, cluster, "tls-server-name", cf, &v);
        if (r < 0)
                return r;
        if (v && !(k->tls_server_name = strdup(v)))
                return -ENOMEM;
        r = get_bool(p, cluster, "insecure-skip-tls-verify", cf, &k->insecure_skip_tls_verify);
        if (r < 0)
                return r;
        r = get_data(p, cluster, "certificate-authority-data", cf, &k->ca_data, &k->ca_size);
        if (r < 0)
                return r;
        r = get_string(p, cluster, "certificate-authority", cf, &v);
        if (r < 0)
                return r;
        if (v && !k->ca_data && (r = make_path(p, v, &k->ca_file)) < 0)
                return r;
        return 0;
}

/* users[].user: client certificate, token, exec plugin. */
static int parse_user(Parse *p, yaml_node_t *user, const char *uf, KubeConfig *k) {
        yaml_node_t *exec;
        const char *v;
        int r;

        r = get_data(p, user, "client-certificate-data", uf, &k->client_cert_data, &k->client_cert_size);
        if (r < 0)
                return r;
        r = get_string(p, user, "client-certificate", uf, &v);
        if (r < 0)
                return r;
        if (v && !k->client_cert_data && (r = make_path(p, v, &k->client_cert_file)) < 0)
                return r;
        {
                _cleanup_free_ char *key = NULL;
                size_t n = 0;

                r = get_data(p, user, "client-key-data", uf, &key, &n);
                if (r < 0)
                        return r;
                if (key) {
                        r = secret_new(key, n, &k->client_key_data);
                        explicit_bzero(key, n);
                        if (r < 0)
                                return r;
                }
        }
        r = get_string(p, user, "client-key", uf, &v);
        if (r < 0)
                return r;
        if (v && !k->client_key_data && (r = make_path(p, v, &k->client_key_file)) < 0)
                return r;
        if ((k->client_cert_data || k->client_cert_file) != (k->client_key_data || k->client_key_file))
                return parse_error(p, uf, "client-certificate and client-key must be given together");

        r = get_string(p, user, "token", uf, &v);
        if (r < 0)
                return r;
        if (v && (r = secret_new(v, strlen(v), &k->token)) < 0)
                return r;
        r = get_string(p, user, "tokenFile", uf, &v);
        if (r < 0)
                return r;
        if (v && !k->token && (r = make_path(p, v, &k->token_file)) < 0)
                return r;

        exec = map_get(p, user, "exec");
        if (!node_is_null(exec)) {
                r = parse_exec(p, exec, uf, &k->exec);
                if (r < 0)
                        return r;
        }
        if (map_get(p, user, "auth-provider"))
                return parse_error(p, uf, "auth-provider plugins are not supported (use exec)");
        return 0;
}

static int parse_document(Parse *p, KubeConfig *k) {
        yaml_node_t *root = yaml_document_get_root_node(p->doc), *cluster, *user, *context;
        const char *ctx, *cluster_name, *user_name;
        char cf[256], uf[256];
        int r;

        if (!root)
                return parse_error(p, "(document)", "empty file");
        if (root->type != YAML_MAPPING_NODE)
                return parse_error(p, "(document)", "expected a mapping at the top level");

        r = get_string(p, root, "current-context", "", &ctx);
        if (r < 0)
                return r;
        if (isempty(ctx))
                return parse_error(p, "current-context", "missing");
        k->context = strdup(ctx);
        if (!k->context)
                return -ENOMEM;

        r = find_named(p, root, "contexts", "context", ctx, &context);
        if (r < 0)
                return r;
        snprintf(cf, sizeof cf, "contexts[%s].context", ctx);
        r = get_string(p, context, "cluster", cf, &cluster_name);
        if (r < 0)
                return r;
        if (isempty(cluster_name))
                return parse_error(p, cf, "cluster is missing");
        r = get_string(p, context, "user", cf, &user_name);
        if (r < 0)
                return r;

        r = find_named(p, root, "clusters", "cluster", cluster_name, &cluster);
        if (r < 0)
                return r;
        snprintf(cf, sizeof cf, "clusters[%s].cluster", cluster_name);
        r = parse_cluster(p, cluster, cf, k);
        if (r < 0)
                return r;

        /* A context without a user: anonymous (only useful with a token from --api-token). */
        if (isempty(user_name))
                return 0;
        r = find_named(p, root, "users", "user", user_name, &user);
        if (r < 0)
                return r;
        snprintf(uf, sizeof uf, "users[%s].user", user_name);

        return parse_user(p, user, uf, k);
}

/* libyaml's loader recurses and expands aliases; refuse anchors/aliases (a kubeconfig never needs
 * them, and they enable "billion laughs") and deep nesting before loading. */
static int check_events(const char *text, size_t size, const Parse *p) {
        yaml_parser_t parser;
        yaml_event_t ev;
        int depth = 0, r = 0;

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *) text, size);
        for (;;) {
                if (!yaml_parser_parse(&parser, &ev)) {
                        char f[64];
                        snprintf(f, sizeof f, "line %zu", parser.problem_mark.line + 1);
                        r = parse_error(p, f, parser.problem ?: "malformed YAML");
                        break;
                }
                yaml_event_type_t t = ev.type;
                if (t == YAML_ALIAS_EVENT || (t == YAML_SCALAR_EVENT && ev.data.scalar.anchor) ||
                    (t == YAML_MAPPING_START_EVENT && ev.data.mapping_start.anchor) ||
                    (t == YAML_SEQUENCE_START_EVENT && ev.data.sequence_start.anchor)) {
                        yaml_event_delete(&ev);
                        r = parse_error(p, "(document)", "YAML anchors and aliases are not supported");
                        break;
                }
                if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT)
                        depth++;
                else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT)
                        depth--;
                yaml_event_delete(&ev);
                if (depth > KUBECONFIG_MAX_DEPTH) {
                        r = parse_error(p, "(document)", "nested too deeply");
                        break;
                }
                if (t == YAML_STREAM_END_EVENT)
                        break;
        }
        yaml_parser_delete(&parser);
        return r;
}

int kubeconfig_parse(const char *text, size_t size, const char *path, KubeConfig **ret) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        yaml_parser_t parser;
        yaml_document_t doc;
        Parse p = { .path = path ?: "(memory)" };
        int r;

        if (!text || !ret)
                return -EINVAL;
        if (size > KUBECONFIG_MAX_BYTES)
                return parse_error(&p, "(document)", "file too large");
        r = check_events(text, size, &p);
        if (r < 0)
                return r;

        k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        if (path) {
                k->path = strdup(path);
                if (!k->path)
                        return -ENOMEM;
                const char *slash = strrchr(path, '/');
                p.dir = slash ? strndup(path, slash == path ? 1 : (size_t) (slash - path)) : NULL;
                if (slash && !p.dir)
                        return -ENOMEM;
        }

        if (!yaml_parser_initialize(&parser)) {
                free(p.dir);
                return -ENOMEM;
        }
        yaml_parser_set_input_string(&parser, (const unsigned char *) text, size);
        if (!yaml_parser_load(&parser, &doc)) {
                r = parse_error(&p, "(document)", parser.problem ?: "malformed YAML");
                yaml_parser_delete(&parser);
                free(p.dir);
                return r;
        }
        p.doc = &doc;
        r = parse_document(&p, k);
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        free(p.dir);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(k);
        return 0;
}

int kubeconfig_load(const char *path, KubeConfig **ret) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ char *absolute = NULL;
        size_t n;
        int r;

        r = kube_read_file(path, KUBECONFIG_MAX_BYTES, &text, &n);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return log_error_errno(r, "Failed to read kubeconfig %s: %m", path);
        if (path[0] != '/') {
                char cwd[PATH_MAX];
                if (getcwd(cwd, sizeof cwd) && asprintf(&absolute, "%s/%s", cwd, path) < 0)
                        return -ENOMEM;
        }
        r = kubeconfig_parse(text, n, absolute ?: path, ret);
        explicit_bzero(text, n); /* embedded keys and tokens */
        return r;
}

int kubeconfig_from_source(const KubeconfigSource *c, KubeConfig **ret, char **ret_waiting_for) {
        static const char *const defaults[] = { KUBECONFIG_DEFAULT_PATHS };
        int r;

        if (c->kubeconfig) {
                _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;

                r = kubeconfig_load(c->kubeconfig, &k);
                if (r == -ENOENT && ret_waiting_for)
                        *ret_waiting_for = strdup(c->kubeconfig);
                if (r < 0)
                        return r;
                /* kube2iam: --insecure skips verification with a kubeconfig too; --api-server is
                 * ignored (the kubeconfig names the server) */
                if (c->insecure)
                        k->insecure_skip_tls_verify = true;
                *ret = TAKE_PTR(k);
                return 0;
        }
        /* kube2iam used --api-server only with --api-token (else its in-cluster identity, for which
         * the kubeconfigs below stand in on a node): never an anonymous client */
        if (c->api_server && c->api_token) {
                _cleanup_(kubeconfig_freep) KubeConfig *k = calloc(1, sizeof *k);

                if (!k)
                        return -ENOMEM;
                k->server = strdup(c->api_server);
                if (!k->server)
                        return -ENOMEM;
                /* "host:port" as client-go takes it, but always https: the token must not travel in
                 * clear (client-go would pick http for a token without TLS settings) */
                if (!startswith(k->server, "https://") && !startswith(k->server, "http://")) {
                        free(k->server);
                        if (asprintf(&k->server, "https://%s", c->api_server) < 0) {
                                k->server = NULL;
                                return -ENOMEM;
                        }
                }
                while (endswith(k->server, "/"))
                        k->server[strlen(k->server) - 1] = '\0';
                if ((r = secret_dup(c->api_token, &k->token)) < 0)
                        return r;
                k->insecure_skip_tls_verify = c->insecure;
                *ret = TAKE_PTR(k);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
                r = kubeconfig_load(defaults[i], ret);
                if (r != -ENOENT)
                        return r;
        }
        if (ret_waiting_for)
                *ret_waiting_for = strdup(defaults[0]);
        return -ENOENT;
}

static void exec_config_free(KubeExecConfig *x) {
        if (!x)
                return;
        free(x->api_version);
        free(x->command);
        strv_free(x->args);
        strv_free(x->env);
        free(x);
}

KubeConfig *kubeconfig_free(KubeConfig *k) {
        if (!k)
                return NULL;
        free(k->path);
        free(k->context);
        free(k->server);
        free(k->tls_server_name);
        free(k->ca_file);
        free(k->ca_data);
        free(k->client_cert_file);
        free(k->client_cert_data);
        free(k->client_key_file);
        secret_free(k->client_key_data);
        secret_free(k->token);
        free(k->token_file);
        exec_config_free(k->exec);
        free(k);
        return NULL;
}

KubeCredentials *kube_credentials_free(KubeCredentials *c) {
        if (!c)
                return NULL;
        free(c->ca_pem);
        free(c->cert_pem);
        secret_free(c->key_pem);
        secret_free(c->token);
        free(c);
        return NULL;
}

/* kubelet-client-current.pem holds the certificate and the key in one file: keep only the
 * CERTIFICATE blocks in the (non-secret) certificate copy and wipe the rest. */
static int pem_certificates_only(char **pem, size_t *size) {
        static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
        _cleanup_free_ char *out = malloc(*size * 2 + 2); /* one newline per block at most */
        const char *p = *pem;
        size_t len = 0;

        if (!out)
                return -ENOMEM;
        for (;;) {
                const char *b = strstr(p, begin), *e;
                if (!b)
                        break;
                e = strstr(b, end);
                if (!e)
                        break;
                e += sizeof end - 1;
                memcpy(out + len, b, (size_t) (e - b));
                len += (size_t) (e - b);
                out[len++] = '\n';
                p = e;
        }
        if (len == 0)
                return -EINVAL;
        out[len] = '\0';
        explicit_bzero(*pem, *size);
        free(*pem);
        *pem = TAKE_PTR(out);
        *size = len;
        return 0;
}

static int read_named(const KubeConfig *k, const char *field, const char *file, char **ret,
                      size_t *ret_size) {
        int r = kube_read_file(file, KUBE_CREDENTIAL_FILE_MAX_BYTES, ret, ret_size);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s %s named by kubeconfig %s: %m", field, file,
                                       k->path ?: "(--api-server)");
        return 0;
}

int kubeconfig_read_credentials(const KubeConfig *k, KubeCredentials **ret) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = NULL;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->expires = USEC_INFINITY;

        if (k->ca_data) {
                c->ca_pem = malloc(k->ca_size + 1);
                if (!c->ca_pem)
                        return -ENOMEM;
                memcpy(c->ca_pem, k->ca_data, k->ca_size);
                c->ca_pem[k->ca_size] = '\0';
                c->ca_size = k->ca_size;
        } else if (k->ca_file &&
                   (r = read_named(k, "certificate-authority", k->ca_file, &c->ca_pem, &c->ca_size)) < 0)
                return r;

        if (k->client_cert_data) {
                c->cert_pem = malloc(k->client_cert_size + 1);
                if (!c->cert_pem)
                        return -ENOMEM;
                memcpy(c->cert_pem, k->client_cert_data, k->client_cert_size);
                c->cert_pem[k->client_cert_size] = '\0';
                c->cert_size = k->client_cert_size;
        } else if (k->client_cert_file && (r = read_named(k, "client-certificate", k->client_cert_file,
                                                          &c->cert_pem, &c->cert_size)) < 0)
                return r;
        if (c->cert_pem && pem_certificates_only(&c->cert_pem, &c->cert_size) < 0)
                return log_error_errno(-EINVAL,
                                       "Invalid kubeconfig %s: client certificate holds no PEM CERTIFICATE",
                                       strna(k->path));

        if (k->client_key_data) {
                r = secret_dup(k->client_key_data, &c->key_pem);
                if (r < 0)
                        return r;
        } else if (k->client_key_file) {
                _cleanup_free_ char *key = NULL;
                size_t n = 0;

                r = read_named(k, "client-key", k->client_key_file, &key, &n);
                if (r < 0)
                        return r;
                r = secret_new(key, n, &c->key_pem);
                explicit_bzero(key, n);
                if (r < 0)
                        return r;
        }

        if (k->token) {
                r = secret_dup(k->token, &c->token);
                if (r < 0)
                        return r;
        } else if (k->token_file) {
                _cleanup_free_ char *t = NULL;
                size_t n = 0;

                r = read_named(k, "tokenFile", k->token_file, &t, &n);
                if (r < 0)
                        return r;
                /* files written by hand or by a projector end in a newline that is not part of the token */
                size_t m = n;
                while (m > 0 && (t[m - 1] == '\n' || t[m - 1] == '\r' || t[m - 1] == ' '))
                        m--;
                r = m > 0 ? secret_new(t, m, &c->token) : 0;
                if (t)
                        explicit_bzero(t, n);
                if (r < 0)
                        return r;
                if (m == 0)
                        return log_error_errno(-EINVAL, "Token file %s named by kubeconfig %s is empty",
                                               k->token_file, strna(k->path));
        }
        *ret = TAKE_PTR(c);
        return 0;
}
