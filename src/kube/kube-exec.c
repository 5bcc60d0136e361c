/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "kube-exec.h"
#include "log.h"
#include "string-util.h"
#include "watch-parser.h"

extern char **environ;

struct KubeExec {
        sd_event *event;
        char *what; /* the command, for messages */
        char *api_version;
        pid_t pid;
        sd_event_source *child_source, *out_source, *err_source, *timer;
        int out_fd, err_fd;
        StrBuf out, err;
        bool exited, timed_out, too_long;
        int status; /* exit code, or -signal */
        kube_exec_done_t done;
        void *userdata;
};

static void drop_source(sd_event_source **s, int *fd) {
        *s = sd_event_source_disable_unref(*s);
        if (fd)
                *fd = safe_close(*fd);
}

KubeExec *kube_exec_free(KubeExec *x) {
        if (!x)
                return NULL;
        /* the child source owns the process: freeing it kills a plugin still running with SIGKILL
         * and reaps it (not ignorable, so that wait is short) */
        drop_source(&x->child_source, NULL);
        drop_source(&x->out_source, &x->out_fd);
        drop_source(&x->err_source, &x->err_fd);
        drop_source(&x->timer, NULL);
        strbuf_done_erase(&x->out);
        strbuf_done(&x->err);
        free(x->what);
        free(x->api_version);
        sd_event_unref(x->event);
        free(x);
        return NULL;
}

int kube_exec_parse_credential(const char *json, size_t size, const char *api_version, const char *what,
                               KubeCredentials **ret) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = NULL;
        cJSON *root, *status, *v;
        int r = -EINVAL;

        root = cJSON_ParseWithLength(json, size);
        if (!root)
                return log_error_errno(-EINVAL, "Exec plugin %s printed no valid ExecCredential JSON", what);
        c = calloc(1, sizeof *c);
        if (!c) {
                r = -ENOMEM;
                goto out;
        }
        c->expires = USEC_INFINITY;

        v = cJSON_GetObjectItemCaseSensitive(root, "kind");
        if (!cJSON_IsString(v) || !streq(v->valuestring, "ExecCredential")) {
                log_error("Exec plugin %s: kind is not ExecCredential", what);
                goto out;
        }
        v = cJSON_GetObjectItemCaseSensitive(root, "apiVersion");
        if (!cJSON_IsString(v) || (api_version && !streq(v->valuestring, api_version))) {
                log_error("Exec plugin %s: apiVersion does not match %s", what, strna(api_version));
                goto out;
        }
        status = cJSON_GetObjectItemCaseSensitive(root, "status");
        if (!cJSON_IsObject(status)) {
                log_error("Exec plugin %s: status missing", what);
                goto out;
        }
        v = cJSON_GetObjectItemCaseSensitive(status, "token");
        if (cJSON_IsString(v) && !isempty(v->valuestring)) {
                r = secret_new(v->valuestring, strlen(v->valuestring), &c->token);
                if (r < 0)
                        goto out;
                r = -EINVAL;
        } else if (v && !cJSON_IsNull(v)) {
                log_error("Exec plugin %s: status.token is not a string", what);
                goto out;
        }
        {
                cJSON *cert = cJSON_GetObjectItemCaseSensitive(status, "clientCertificateData");
                cJSON *key = cJSON_GetObjectItemCaseSensitive(status, "clientKeyData");

                if (cJSON_IsString(cert) != cJSON_IsString(key)) {
                        log_error(
                                "Exec plugin %s: clientCertificateData and clientKeyData must come together",
                                what);
                        goto out;
                }
                if (cJSON_IsString(cert)) {
                        c->cert_pem = strdup(cert->valuestring);
                        c->cert_size = strlen(cert->valuestring);
                        if (!c->cert_pem ||
                            secret_new(key->valuestring, strlen(key->valuestring), &c->key_pem) < 0) {
                                r = -ENOMEM;
                                goto out;
                        }
                }
        }
        if (!c->token && !c->cert_pem) {
                log_error("Exec plugin %s: status has neither token nor clientCertificateData", what);
                goto out;
        }
        v = cJSON_GetObjectItemCaseSensitive(status, "expirationTimestamp");
        if (cJSON_IsString(v)) {
                if (parse_timestamp_rfc3339(v->valuestring, &c->expires) < 0) {
                        log_error("Exec plugin %s: status.expirationTimestamp is not RFC 3339", what);
                        goto out;
                }
        } else if (v && !cJSON_IsNull(v)) {
                log_error("Exec plugin %s: status.expirationTimestamp is not a string", what);
                goto out;
        }
        *ret = TAKE_PTR(c);
        r = 0;
out:
        /* the tree holds the token: wipe before freeing */
        if (root) {
                cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "status");
                cJSON *i;
                cJSON_ArrayForEach(i, st) if (cJSON_IsString(i) && i->valuestring)
                        explicit_bzero(i->valuestring, strlen(i->valuestring));
                cJSON_Delete(root);
        }
        return r;
}

static void finish(KubeExec *x) {
        _cleanup_(kube_credentials_freep) KubeCredentials *c = NULL;
        int r;

        if (!x->exited || x->out_fd >= 0 || x->err_fd >= 0)
                return; /* wait for both the exit and EOF on the pipes */
        x->timer = sd_event_source_disable_unref(x->timer);

        if (x->timed_out)
                r = log_error_errno(-ETIMEDOUT, "Exec plugin %s did not finish within %llu s", x->what,
                                    (unsigned long long) (KUBE_EXEC_TIMEOUT_USEC / USEC_PER_SEC));
        else if (x->too_long)
                r = log_error_errno(-EFBIG, "Exec plugin %s printed more than %d bytes", x->what,
                                    KUBE_EXEC_MAX_STDOUT);
        else if (x->status != 0) {
                /* the last line of stderr is what plugins use for the reason */
                char *e = x->err.s;
                while (e && x->err.len > 0 && (x->err.s[x->err.len - 1] == '\n'))
                        x->err.s[--x->err.len] = '\0';
                const char *last = e ? strrchr(e, '\n') : NULL;
                if (x->status > 0)
                        r = log_error_errno(-EIO, "Exec plugin %s failed with exit status %d: %s", x->what,
                                            x->status, last ? last + 1 : strna(e));
                else
                        r = log_error_errno(-EIO, "Exec plugin %s was killed by signal %d", x->what,
                                            -x->status);
        } else
                r = kube_exec_parse_credential(strbuf_str(&x->out), x->out.len, x->api_version, x->what, &c);

        strbuf_done_erase(&x->out);
        x->done(x, r, r >= 0 ? &c : NULL, x->userdata);
}

static int read_pipe(KubeExec *x, int *fd, sd_event_source **s, StrBuf *b, size_t max, bool *too_long) {
        char buf[4096];

        for (;;) {
                ssize_t n = read(*fd, buf, sizeof buf);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                }
                if (n <= 0) {
                        drop_source(s, fd);
                        return 1;
                }
                if (b->len + (size_t) n > max) {
                        if (too_long)
                                *too_long = true;
                        n = (ssize_t) (max - b->len);
                }
                strbuf_append_n(b, buf, (size_t) n);
                explicit_bzero(buf, sizeof buf);
        }
}

static int on_stdout(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        KubeExec *x = userdata;
        if (read_pipe(x, &x->out_fd, &x->out_source, &x->out, KUBE_EXEC_MAX_STDOUT, &x->too_long) > 0)
                finish(x);
        return 0;
}

static int on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        KubeExec *x = userdata;
        if (read_pipe(x, &x->err_fd, &x->err_source, &x->err, KUBE_EXEC_MAX_STDERR, NULL) > 0)
                finish(x);
        return 0;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        KubeExec *x = userdata;

        /* sd-event reaps the child when this returns (WEXITED only: stops are not reported) */
        x->exited = true;
        x->status = si->si_code == CLD_EXITED ? si->si_status : -si->si_status;
        drop_source(&x->child_source, NULL);
        /* a plugin that left a grandchild holding the pipes open must not stall us: read what is
         * there now and stop listening */
        if (x->out_fd >= 0 &&
            read_pipe(x, &x->out_fd, &x->out_source, &x->out, KUBE_EXEC_MAX_STDOUT, &x->too_long) == 0)
                drop_source(&x->out_source, &x->out_fd);
        if (x->err_fd >= 0 &&
            read_pipe(x, &x->err_fd, &x->err_source, &x->err, KUBE_EXEC_MAX_STDERR, NULL) == 0)
                drop_source(&x->err_source, &x->err_fd);
        finish(x);
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        KubeExec *x = userdata;

        x->timed_out = true;
        if (x->child_source)
                (void) sd_event_source_send_child_signal(x->child_source, SIGKILL, NULL, 0);
        return 0;
}

static char *exec_info(const KubeConfig *k) {
        _cleanup_(json_deletep) cJSON *o = cJSON_CreateObject();
        cJSON *spec;

        if (!o)
                return NULL;
        cJSON_AddStringToObject(o, "apiVersion", k->exec->api_version);
        cJSON_AddStringToObject(o, "kind", "ExecCredential");
        spec = cJSON_AddObjectToObject(o, "spec");
        if (!spec)
                return NULL;
        cJSON_AddBoolToObject(spec, "interactive", false);
        if (k->exec->provide_cluster_info) {
                cJSON *cl = cJSON_AddObjectToObject(spec, "cluster");
                if (!cl)
                        return NULL;
                cJSON_AddStringToObject(cl, "server", k->server);
                if (k->tls_server_name)
                        cJSON_AddStringToObject(cl, "tls-server-name", k->tls_server_name);
                cJSON_AddBoolToObject(cl, "insecure-skip-tls-verify", k->insecure_skip_tls_verify);
                /* the plugin gets the CA as kubectl passes it: base64 of the PEM */
                _cleanup_free_ char *pem = NULL;
                size_t n = 0;
                if (k->ca_data) {
                        pem = strndup_safe(k->ca_data, k->ca_size);
                        n = k->ca_size;
                } else if (k->ca_file &&
                           kube_read_file(k->ca_file, KUBE_CREDENTIAL_FILE_MAX_BYTES, &pem, &n) < 0)
                        pem = NULL;
                if (pem) {
                        _cleanup_free_ char *b64 = malloc(4 * ((n + 2) / 3) + 1);
                        if (!b64)
                                return NULL;
                        EVP_EncodeBlock((unsigned char *) b64, (const unsigned char *) pem, (int) n);
                        cJSON_AddStringToObject(cl, "certificate-authority-data", b64);
                }
        }
        return cJSON_PrintUnformatted(o);
}

/* Starts command with stdin from /dev/null and stdout/stderr on the pipes. The plugin gets a clean
 * signal state: no signal blocked (the daemon blocks the ones its loop handles, which posix_spawn
 * would pass on) and SIGPIPE at its default (the daemon ignores it). */
static int spawn_plugin(const char *command, char **argv, char **envp, int out_w, int err_w, pid_t *ret) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, deflt;
        int r;

        sigemptyset(&none);
        sigemptyset(&deflt);
        sigaddset(&deflt, SIGPIPE);
        if (posix_spawn_file_actions_init(&fa) != 0)
                return -ENOMEM;
        if (posix_spawnattr_init(&attr) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -ENOMEM;
        }
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
                r = posix_spawnattr_setsigmask(&attr, &none);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(&attr, &deflt);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, out_w, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, err_w, STDERR_FILENO);
        if (r == 0)
                r = posix_spawnp(ret, command, &fa, &attr, argv, envp);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

int kube_exec_start(sd_event *event, const KubeConfig *k, kube_exec_done_t done, void *userdata,
                    KubeExec **ret) {
        _cleanup_(kube_exec_freep) KubeExec *x = NULL;
        _cleanup_strv_free_ char **argv = NULL, **envp = NULL;
        _cleanup_free_ char *info = NULL;
        _cleanup_close_ int out_w = -EBADF, err_w = -EBADF;
        int out_pipe[2], err_pipe[2], r;

        if (!event || !k || !k->exec || !done || !ret)
                return -EINVAL;
        x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        x->out_fd = x->err_fd = -EBADF;
        x->event = sd_event_ref(event);
        x->done = done;
        x->userdata = userdata;
        x->what = strdup(k->exec->command);
        x->api_version = strdup(k->exec->api_version);
        if (!x->what || !x->api_version)
                return -ENOMEM;

        if (strv_extend(&argv, k->exec->command) < 0)
                return -ENOMEM;
        for (char **a = k->exec->args; a && *a; a++)
                if (strv_extend(&argv, *a) < 0)
                        return -ENOMEM;
        info = exec_info(k);
        if (!info)
                return -ENOMEM;
        for (char **e = environ; e && *e; e++)
                if (!startswith(*e, "KUBERNETES_EXEC_INFO=") && strv_extend(&envp, *e) < 0)
                        return -ENOMEM;
        for (char **e = k->exec->env; e && *e; e++)
                if (strv_extend(&envp, *e) < 0)
                        return -ENOMEM;
        {
                char *s;
                if (asprintf(&s, "KUBERNETES_EXEC_INFO=%s", info) < 0 || strv_consume(&envp, s) < 0)
                        return -ENOMEM;
        }

        if (pipe2(out_pipe, O_CLOEXEC) < 0)
                return log_error_errno(-errno, "Failed to create a pipe for exec plugin %s: %m", x->what);
        x->out_fd = out_pipe[0];
        out_w = out_pipe[1];
        if (pipe2(err_pipe, O_CLOEXEC) < 0)
                return log_error_errno(-errno, "Failed to create a pipe for exec plugin %s: %m", x->what);
        x->err_fd = err_pipe[0];
        err_w = err_pipe[1];
        (void) fcntl(x->out_fd, F_SETFL, O_NONBLOCK);
        (void) fcntl(x->err_fd, F_SETFL, O_NONBLOCK);

        r = spawn_plugin(k->exec->command, argv, envp, out_w, err_w, &x->pid);
        if (r < 0)
                return log_error_errno(r, "Failed to run exec plugin %s named by kubeconfig %s: %m", x->what,
                                       strna(k->path));
        out_w = safe_close(out_w);
        err_w = safe_close(err_w);

        /* sd-event watches the child through a pidfd of its own (a raw system call, so the binary
         * needs no glibc 2.36) and needs SIGCHLD blocked, as the programs' main() does */
        r = sd_event_add_child(event, &x->child_source, x->pid, WEXITED, on_child, x);
        if (r < 0) {
                (void) kill(x->pid, SIGKILL);
                (void) waitpid(x->pid, NULL, 0);
                x->exited = true;
                return log_error_errno(r, "Failed to watch exec plugin %s%s: %m", x->what,
                                       r == -EBUSY ? " (SIGCHLD is not blocked)" : "");
        }
        r = sd_event_source_set_child_process_own(x->child_source, true);
        if (r >= 0)
                r = sd_event_add_io(event, &x->out_source, x->out_fd, EPOLLIN, on_stdout, x);
        if (r >= 0)
                r = sd_event_add_io(event, &x->err_source, x->err_fd, EPOLLIN, on_stderr, x);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &x->timer, CLOCK_MONOTONIC, KUBE_EXEC_TIMEOUT_USEC, 0,
                                               on_timeout, x);
        if (r < 0)
                return log_error_errno(r, "Failed to watch exec plugin %s: %m", x->what);
        *ret = TAKE_PTR(x);
        return 0;
}
