/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube/kube-watch.h"
#include "token-issuer.h"
#include "snapshot.h"
#include "string-util.h"

/* Longest string field: an annotation, as Kubernetes bounds all of one object's annotations to
 * 256 KiB; session parameters (CREDS_SESSION_PARAMS_MAX), ARNs, external ids and session tokens are
 * shorter. */
#define SNAPSHOT_FIELD_MAX ((size_t) 256 * 1024)
#define SNAPSHOT_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static void snapshot_credentials_done(SnapshotCredentials *e) {
        free(e->role_arn);
        free(e->external_id);
        free(e->session_name);
        free(e->session);
}

int snapshot_new(Snapshot **ret) {
        Snapshot *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

Snapshot *snapshot_free(Snapshot *s) {
        if (!s)
                return NULL;
        free(s->build);
        secret_free(s->token_key);
        for (size_t i = 0; i < s->n_creds; i++) {
                snapshot_credentials_done(&s->creds[i]);
                credentials_unref(s->creds[i].creds);
        }
        free(s->creds);
        s->pods_rv = mfree(s->pods_rv);
        s->namespaces_rv = mfree(s->namespaces_rv);
        snapshot_clear_view(s);
        free(s->pods);
        free(s->namespaces);
        free(s);
        return NULL;
}

void snapshot_clear_view(Snapshot *s) {
        if (!s->pods_rv)
                for (; s->n_pods > 0; s->n_pods--)
                        s->pods[s->n_pods - 1] = kube_pod_free(s->pods[s->n_pods - 1]);
        if (!s->namespaces_rv)
                for (; s->n_namespaces > 0; s->n_namespaces--)
                        s->namespaces[s->n_namespaces - 1] = mfree(s->namespaces[s->n_namespaces - 1]);
}

int snapshot_set_view(Snapshot *s, const char *pods_rv, const char *namespaces_rv) {
        char *p = NULL, *n = NULL;

        if (!s)
                return -EINVAL;
        if ((pods_rv && !(p = strdup(pods_rv))) || (namespaces_rv && !(n = strdup(namespaces_rv)))) {
                free(p);
                return -ENOMEM;
        }
        free_and_replace(s->pods_rv, p);
        free_and_replace(s->namespaces_rv, n);
        return 0;
}

static int strdup_opt(const char *from, char **to) {
        if (from && !(*to = strdup(from)))
                return -ENOMEM;
        return 0;
}

int snapshot_add_pod(Snapshot *s, const KubePod *pod) {
        _cleanup_(kube_pod_freep) KubePod *c = NULL;
        KubePod **n;
        int r;

        if (!s || !pod)
                return -EINVAL;
        if (s->n_pods >= SNAPSHOT_PODS_MAX)
                return -E2BIG;
        r = kube_pod_new(pod->uid, pod->namespace, pod->name, &c);
        if (r < 0)
                return r;
        free(c->phase);
        c->phase = NULL;
        if (strdup_opt(pod->phase ?: "", &c->phase) < 0 || strdup_opt(pod->role, &c->role) < 0 ||
            strdup_opt(pod->external_id, &c->external_id) < 0 ||
            strdup_opt(pod->service_account, &c->service_account) < 0 ||
            strdup_opt(pod->resource_version, &c->resource_version) < 0)
                return -ENOMEM;
        c->host_network = pod->host_network;
        c->terminating = pod->terminating;
        for (char **ip = pod->ips; ip && *ip; ip++) {
                r = kube_pod_add_ip(c, *ip);
                if (r < 0)
                        return r;
        }
        n = reallocarray(s->pods, s->n_pods + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        s->pods = n;
        n[s->n_pods++] = TAKE_PTR(c);
        return 0;
}

int snapshot_add_namespace(Snapshot *s, const char *name) {
        char **n;

        if (!s || isempty(name))
                return -EINVAL;
        if (s->n_namespaces >= SNAPSHOT_NAMESPACES_MAX)
                return -E2BIG;
        n = reallocarray(s->namespaces, s->n_namespaces + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        s->namespaces = n;
        n[s->n_namespaces] = strdup(name);
        if (!n[s->n_namespaces])
                return -ENOMEM;
        s->n_namespaces++;
        return 0;
}

int snapshot_set_token_key(Snapshot *s, const Secret *key) {
        Secret *copy;
        int r;

        if (!s || !key || secret_size(key) != TOKEN_KEY_BYTES)
                return -EINVAL;
        r = secret_dup(key, &copy);
        if (r < 0)
                return r;
        secret_free(s->token_key);
        s->token_key = copy;
        return 0;
}

int snapshot_add_credentials(Snapshot *s, const CredsKey *key, Credentials *creds) {
        SnapshotCredentials *n, *e;

        if (!s || !key || !key->role_arn || !creds || !creds->session_token)
                return -EINVAL;
        if (s->n_creds >= SNAPSHOT_CREDS_MAX)
                return -E2BIG;
        n = reallocarray(s->creds, s->n_creds + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        s->creds = n;
        e = &n[s->n_creds];
        *e = (SnapshotCredentials){ .role_arn = strdup(key->role_arn),
                                    .external_id = strdup(strempty(key->external_id)),
                                    .session_name = strdup(strempty(key->session_name)),
                                    .session = strdup(strempty(key->session)) };
        if (!e->role_arn || !e->external_id || !e->session_name || !e->session) {
                snapshot_credentials_done(e);
                return -ENOMEM;
        }
        e->creds = credentials_ref(creds);
        s->n_creds++;
        return 0;
}

/* ---- encoding ---- */

/* A growing buffer that wipes whatever it gives back (it holds secrets). */
typedef struct Writer {
        char *buf;
        size_t len, cap;
        int error;
} Writer;

static void writer_put(Writer *w, const void *p, size_t n) {
        if (w->error)
                return;
        if (w->len + n > SNAPSHOT_SIZE_MAX) {
                w->error = -E2BIG;
                return;
        }
        if (w->len + n > w->cap) {
                size_t cap = MAX(w->cap * 2, w->len + n + 4096);
                char *b = malloc(cap);
                if (!b) {
                        w->error = -ENOMEM;
                        return;
                }
                if (w->buf)
                        memcpy(b, w->buf, w->len);
                erase_and_free_n(w->buf, w->cap);
                w->buf = b;
                w->cap = cap;
        }
        memcpy(w->buf + w->len, p, n);
        w->len += n;
}

static void writer_u8(Writer *w, uint8_t v) {
        writer_put(w, &v, 1);
}

static void writer_u32(Writer *w, uint32_t v) {
        uint8_t b[4];
        for (size_t i = 0; i < sizeof b; i++)
                b[i] = (uint8_t) (v >> (8 * i));
        writer_put(w, b, sizeof b);
}

static void writer_u64(Writer *w, uint64_t v) {
        uint8_t b[8];
        for (size_t i = 0; i < sizeof b; i++)
                b[i] = (uint8_t) (v >> (8 * i));
        writer_put(w, b, sizeof b);
}

static void writer_str(Writer *w, const char *s, size_t n) {
        if (n > SNAPSHOT_FIELD_MAX) {
                w->error = w->error ?: -E2BIG;
                return;
        }
        writer_u32(w, (uint32_t) n);
        writer_put(w, s, n);
}

/* A record: its length is patched in once the payload is written. */
static size_t writer_record_start(Writer *w, SnapshotRecordType type) {
        size_t at;
        writer_u8(w, (uint8_t) type);
        at = w->len;
        writer_u32(w, 0);
        return at;
}

static void writer_record_end(Writer *w, size_t at) {
        uint32_t n;
        if (w->error)
                return;
        n = (uint32_t) (w->len - at - 4);
        for (size_t i = 0; i < 4; i++)
                w->buf[at + i] = (char) (uint8_t) (n >> (8 * i));
}

static void write_credentials(Writer *w, const SnapshotCredentials *e) {
        const Credentials *c = e->creds;
        size_t at = writer_record_start(w, SNAPSHOT_RECORD_CREDENTIALS);

        writer_str(w, e->role_arn, strlen(e->role_arn));
        writer_str(w, e->external_id, strlen(e->external_id));
        writer_str(w, e->session_name, strlen(e->session_name));
        writer_str(w, e->session, strlen(e->session));
        writer_str(w, c->access_key_id, strlen(c->access_key_id));
        writer_str(w, secret_reveal(c->secret_access_key), secret_size(c->secret_access_key));
        writer_str(w, secret_reveal(c->session_token), secret_size(c->session_token));
        writer_u64(w, c->expiration);
        writer_u64(w, c->last_updated);
        writer_record_end(w, at);
}

static void writer_cstr(Writer *w, const char *s) {
        writer_str(w, s, strlen(s));
}

/* u8 present, then the string when it is */
static void writer_opt(Writer *w, const char *s) {
        writer_u8(w, s ? 1 : 0);
        if (s)
                writer_cstr(w, s);
}

static void write_view(Writer *w, KubeResourceType type, const char *rv) {
        size_t at = writer_record_start(w, SNAPSHOT_RECORD_VIEW);
        writer_u8(w, (uint8_t) type);
        writer_cstr(w, rv);
        writer_record_end(w, at);
}

static void write_pod(Writer *w, const KubePod *p) {
        size_t at = writer_record_start(w, SNAPSHOT_RECORD_POD), n = 0;

        writer_cstr(w, p->uid);
        writer_cstr(w, p->namespace);
        writer_cstr(w, p->name);
        writer_cstr(w, strempty(p->phase));
        writer_cstr(w, strempty(p->resource_version));
        writer_opt(w, p->role);
        writer_opt(w, p->external_id);
        writer_opt(w, p->service_account);
        writer_u8(w, (uint8_t) ((p->host_network ? 1 : 0) | (p->terminating ? 2 : 0)));
        for (char **ip = p->ips; ip && *ip; ip++)
                n++;
        writer_u8(w, (uint8_t) n);
        for (char **ip = p->ips; ip && *ip; ip++)
                writer_cstr(w, *ip);
        writer_record_end(w, at);
}

static void write_namespace(Writer *w, const char *name) {
        size_t at = writer_record_start(w, SNAPSHOT_RECORD_NAMESPACE);
        writer_cstr(w, name);
        writer_record_end(w, at);
}

static void write_view_records(Writer *w, const Snapshot *s) {
        if (s->pods_rv) {
                write_view(w, KUBE_RESOURCE_PODS, s->pods_rv);
                for (size_t i = 0; i < s->n_pods; i++)
                        write_pod(w, s->pods[i]);
        }
        if (s->namespaces_rv) {
                write_view(w, KUBE_RESOURCE_NAMESPACES, s->namespaces_rv);
                for (size_t i = 0; i < s->n_namespaces; i++)
                        write_namespace(w, s->namespaces[i]);
        }
}

static int checksum(const void *buf, size_t n, uint8_t out[static SNAPSHOT_CHECKSUM_BYTES]) {
        unsigned len = 0;
        if (!EVP_Digest(buf, n, out, &len, EVP_sha256(), NULL) || len != SNAPSHOT_CHECKSUM_BYTES)
                return -EIO;
        return 0;
}

int snapshot_encode(const Snapshot *s, const char *build, char **ret, size_t *ret_size) {
        uint8_t sum[SNAPSHOT_CHECKSUM_BYTES];
        Writer w = {};
        int r;

        if (!s || !build || strlen(build) > SNAPSHOT_BUILD_MAX)
                return -EINVAL;
        writer_put(&w, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN);
        writer_u32(&w, SNAPSHOT_FORMAT_VERSION);
        writer_str(&w, build, strlen(build));
        if (s->token_key) {
                size_t at = writer_record_start(&w, SNAPSHOT_RECORD_TOKEN_KEY);
                writer_put(&w, secret_reveal(s->token_key), secret_size(s->token_key));
                writer_record_end(&w, at);
        }
        for (size_t i = 0; i < s->n_creds; i++)
                write_credentials(&w, &s->creds[i]);
        write_view_records(&w, s);
        r = w.error;
        if (r >= 0)
                r = checksum(w.buf, w.len, sum);
        if (r >= 0)
                writer_put(&w, sum, sizeof sum);
        r = r < 0 ? r : w.error;
        if (r < 0) {
                erase_and_free_n(w.buf, w.cap);
                return r;
        }
        *ret = w.buf;
        *ret_size = w.len;
        return 0;
}

/* ---- decoding ---- */

typedef struct Reader {
        const uint8_t *p;
        size_t left;
        bool bad;
} Reader;

static const uint8_t *reader_take(Reader *r, size_t n) {
        const uint8_t *p = r->p;
        if (r->bad || n > r->left) {
                r->bad = true;
                return NULL;
        }
        r->p += n;
        r->left -= n;
        return p;
}

static uint64_t reader_uint(Reader *r, size_t n) {
        const uint8_t *p = reader_take(r, n);
        uint64_t v = 0;
        for (size_t i = 0; p && i < n; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

/* A length-prefixed field, viewed in place; *ret_n its length. */
static const char *reader_str(Reader *r, size_t *ret_n) {
        size_t n = (size_t) reader_uint(r, 4);
        const uint8_t *p;
        if (n > SNAPSHOT_FIELD_MAX)
                r->bad = true;
        p = reader_take(r, n);
        *ret_n = p ? n : 0;
        return (const char *) p;
}

static bool field_text(const char *p, size_t n, bool allow_empty) {
        if (!p || (!allow_empty && n == 0))
                return false;
        return memchr(p, '\0', n) == NULL;
}

/* The cache key's four parts, then access key id, secret key, session token. */
enum { F_ROLE, F_EXT, F_NAME, F_SESSION, F_AKID, F_SECRET, F_TOKEN, _F_MAX };

static int read_credentials(Reader *rec, Snapshot *s) {
        _cleanup_free_ char *role = NULL, *ext = NULL, *name = NULL, *session = NULL, *akid = NULL;
        _cleanup_(credentials_unrefp) Credentials *creds = NULL;
        Secret *secret = NULL, *token = NULL;
        const char *f[_F_MAX];
        size_t n[_F_MAX];
        uint64_t expiration, updated;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                f[i] = reader_str(rec, &n[i]);
        expiration = reader_uint(rec, 8);
        updated = reader_uint(rec, 8);
        if (rec->bad || rec->left != 0 || !field_text(f[F_ROLE], n[F_ROLE], false) ||
            !field_text(f[F_EXT], n[F_EXT], true) || !field_text(f[F_NAME], n[F_NAME], true) ||
            !field_text(f[F_SESSION], n[F_SESSION], true) || !field_text(f[F_AKID], n[F_AKID], false) ||
            n[F_SECRET] == 0 || n[F_TOKEN] == 0)
                return -EBADMSG;
        role = strndup(f[F_ROLE], n[F_ROLE]);
        ext = strndup(f[F_EXT], n[F_EXT]);
        name = strndup(f[F_NAME], n[F_NAME]);
        session = strndup(f[F_SESSION], n[F_SESSION]);
        akid = strndup(f[F_AKID], n[F_AKID]);
        if (!role || !ext || !name || !session || !akid)
                return -ENOMEM;
        r = secret_new(f[F_SECRET], n[F_SECRET], &secret);
        if (r < 0)
                return r;
        r = secret_new(f[F_TOKEN], n[F_TOKEN], &token);
        if (r < 0) {
                secret_free(secret);
                return r;
        }
        r = credentials_new(akid, secret, token, (usec_t) expiration, (usec_t) updated, &creds);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        r = snapshot_add_credentials(
                s,
                &(const CredsKey){
                        .role_arn = role, .external_id = ext, .session_name = name, .session = session },
                creds);
        return r == -E2BIG ? -EBADMSG : r;
}

/* A text field, copied; NULL and rd->bad when it is not one. */
static char *reader_text(Reader *rd, bool allow_empty) {
        size_t n;
        const char *p = reader_str(rd, &n);
        char *c;

        if (rd->bad || !field_text(p, n, allow_empty)) {
                rd->bad = true;
                return NULL;
        }
        c = strndup(p, n);
        if (!c)
                rd->bad = true;
        return c;
}

static char *reader_opt(Reader *rd) {
        uint8_t present = (uint8_t) reader_uint(rd, 1);
        if (present > 1)
                rd->bad = true;
        return present == 1 ? reader_text(rd, true) : NULL;
}

static int read_view(Reader *rec, Snapshot *s) {
        uint8_t type = (uint8_t) reader_uint(rec, 1);
        _cleanup_free_ char *rv = reader_text(rec, false);
        char **slot = type == KUBE_RESOURCE_PODS         ? &s->pods_rv
                      : type == KUBE_RESOURCE_NAMESPACES ? &s->namespaces_rv
                                                         : NULL;

        if (rec->bad || rec->left != 0 || !slot || *slot)
                return -EBADMSG;
        *slot = TAKE_PTR(rv);
        return 0;
}

static int read_pod(Reader *rec, Snapshot *s) {
        _cleanup_free_ char *uid = reader_text(rec, false), *ns = reader_text(rec, false),
                            *name = reader_text(rec, false);
        _cleanup_(kube_pod_freep) KubePod *p = NULL;
        uint8_t flags, n_ips;
        int r;

        if (rec->bad || !s->pods_rv || s->n_pods >= SNAPSHOT_PODS_MAX)
                return -EBADMSG;
        r = kube_pod_new(uid, ns, name, &p);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        free(p->phase);
        p->phase = reader_text(rec, true);
        p->resource_version = reader_text(rec, true);
        p->role = reader_opt(rec);
        p->external_id = reader_opt(rec);
        p->service_account = reader_opt(rec);
        flags = (uint8_t) reader_uint(rec, 1);
        n_ips = (uint8_t) reader_uint(rec, 1);
        if (rec->bad || !p->phase || !p->resource_version || flags > 3 || n_ips > KUBE_POD_MAX_IPS)
                return -EBADMSG;
        if (isempty(p->resource_version))
                p->resource_version = mfree(p->resource_version);
        p->host_network = flags & 1;
        p->terminating = flags & 2;
        for (uint8_t i = 0; i < n_ips; i++) {
                _cleanup_free_ char *ip = reader_text(rec, false);
                if (rec->bad || kube_pod_add_ip(p, ip) < 0)
                        return -EBADMSG;
        }
        if (rec->left != 0)
                return -EBADMSG;
        r = snapshot_add_pod(s, p);
        return r == -E2BIG ? -EBADMSG : r;
}

static int read_namespace(Reader *rec, Snapshot *s) {
        _cleanup_free_ char *name = reader_text(rec, false);
        int r;

        if (rec->bad || rec->left != 0 || !s->namespaces_rv)
                return -EBADMSG;
        r = snapshot_add_namespace(s, name);
        return r == -E2BIG || r == -EINVAL ? -EBADMSG : r;
}

static int read_record(Reader *rd, Snapshot *s) {
        uint8_t type = (uint8_t) reader_uint(rd, 1);
        size_t len = (size_t) reader_uint(rd, 4);
        Reader rec;
        int r;

        rec.p = reader_take(rd, len);
        rec.left = len;
        rec.bad = rd->bad;
        if (rd->bad)
                return -EBADMSG;
        switch (type) {
        case SNAPSHOT_RECORD_TOKEN_KEY:
                if (s->token_key || len != TOKEN_KEY_BYTES)
                        return -EBADMSG;
                r = secret_new((const char *) rec.p, len, &s->token_key);
                return r;
        case SNAPSHOT_RECORD_CREDENTIALS:
                return read_credentials(&rec, s);
        case SNAPSHOT_RECORD_VIEW:
                return read_view(&rec, s);
        case SNAPSHOT_RECORD_POD:
                return read_pod(&rec, s);
        case SNAPSHOT_RECORD_NAMESPACE:
                return read_namespace(&rec, s);
        default:
                return -EBADMSG; /* not understood: not used */
        }
}

int snapshot_decode(const void *buf, size_t size, Snapshot **ret) {
        _cleanup_(snapshot_freep) Snapshot *s = NULL;
        uint8_t sum[SNAPSHOT_CHECKSUM_BYTES];
        const char *b;
        size_t blen;
        Reader rd;
        int r;

        if (!buf || size > SNAPSHOT_SIZE_MAX)
                return -EBADMSG;
        if (size < SNAPSHOT_MAGIC_LEN || memcmp(buf, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN) != 0)
                return -EPROTO;
        if (size < SNAPSHOT_MAGIC_LEN + 4 + SNAPSHOT_CHECKSUM_BYTES)
                return -EBADMSG;
        rd = (Reader){ .p = (const uint8_t *) buf + SNAPSHOT_MAGIC_LEN,
                       .left = size - SNAPSHOT_MAGIC_LEN - SNAPSHOT_CHECKSUM_BYTES };
        if (reader_uint(&rd, 4) != SNAPSHOT_FORMAT_VERSION)
                return -EPROTONOSUPPORT;
        r = checksum(buf, size - SNAPSHOT_CHECKSUM_BYTES, sum);
        if (r < 0)
                return r;
        if (CRYPTO_memcmp(sum, (const uint8_t *) buf + size - SNAPSHOT_CHECKSUM_BYTES, sizeof sum) != 0)
                return -EBADMSG;
        b = reader_str(&rd, &blen);
        if (rd.bad || blen > SNAPSHOT_BUILD_MAX)
                return -EBADMSG;
        if (!field_text(b, blen, true))
                return -EBADMSG;
        r = snapshot_new(&s);
        if (r < 0)
                return r;
        s->build = strndup(b, blen);
        if (!s->build)
                return -ENOMEM;
        while (rd.left > 0) {
                r = read_record(&rd, s);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- the memfd ---- */

int snapshot_to_memfd(const Snapshot *s, const char *build, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        char *buf = NULL;
        size_t n = 0;
        void *map;
        int r;

        r = snapshot_encode(s, build, &buf, &n);
        if (r < 0)
                return r;
        fd = memfd_create("kube2iam-snapshot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 || ftruncate(fd, (off_t) n) < 0) {
                r = -errno;
                erase_and_free_n(buf, n);
                return r;
        }
        map = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
                r = -errno;
                erase_and_free_n(buf, n);
                return r;
        }
        memcpy(map, buf, n);
        erase_and_free_n(buf, n);
        (void) munmap(map, n); /* F_SEAL_WRITE needs no writable mapping left */
        if (fcntl(fd, F_ADD_SEALS, SNAPSHOT_SEALS) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int snapshot_from_memfd(int fd, Snapshot **ret, uint8_t *ret_checksum) {
        struct stat st;
        void *map;
        int seals, r;

        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return -errno;
        if ((seals & SNAPSHOT_SEALS) != SNAPSHOT_SEALS)
                return -EPERM; /* anyone could still change it under us */
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size < (off_t) SNAPSHOT_CHECKSUM_BYTES || st.st_size > (off_t) SNAPSHOT_SIZE_MAX)
                return -EBADMSG;
        map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
                return -errno;
        r = snapshot_decode(map, (size_t) st.st_size, ret);
        if (r >= 0 && ret_checksum)
                memcpy(ret_checksum, (const uint8_t *) map + st.st_size - SNAPSHOT_CHECKSUM_BYTES,
                       SNAPSHOT_CHECKSUM_BYTES);
        (void) munmap(map, (size_t) st.st_size);
        return r;
}
