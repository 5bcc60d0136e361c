/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "shared-config.h"
#include "string-util.h"

/* Credential keys the SDK honoured that have no counterpart here: the daemon refuses to start
 * rather than fall back to the instance profile (another identity). */
static const char *const unsupported_keys[] = {
        "credential_process", "source_profile", "credential_source",
        "sso_start_url",      "sso_session",    "sso_account_id",
};

AwsProfile *aws_profile_free(AwsProfile *p) {
        if (!p)
                return NULL;
        free(p->name);
        free(p->access_key_id);
        secret_free(p->secret_access_key);
        secret_free(p->session_token);
        free(p->role_arn);
        free(p->web_identity_token_file);
        free(p->role_session_name);
        free(p->unsupported);
        free(p);
        return NULL;
}

bool aws_profile_has_credentials(const AwsProfile *p) {
        return p && (p->access_key_id || p->secret_access_key || p->role_arn || p->web_identity_token_file ||
                     p->unsupported);
}

static char *strip(char *s) {
        char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                *--e = '\0';
        return s;
}

/* "[name]" (credentials) or "[profile name]" / "[default]" (config): is it our section? */
static bool section_is(char *inner, bool config, const char *name) {
        char *s = strip(inner);
        const char *p = startswith(s, "profile");

        if (config && p && isspace((unsigned char) *p))
                s = strip((char *) p);
        else if (config && !streq(s, "default"))
                return false;
        return streq(s, name);
}

static int set_once(char **dst, const char *v) {
        if (*dst)
                return 0; /* the credentials file (read first) wins */
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

static int set_secret_once(Secret **dst, const char *v) {
        if (*dst)
                return 0;
        return secret_new(v, strlen(v), dst);
}

static int apply_key(AwsProfile *p, const char *key, const char *value) {
        if (strcasecmp(key, "aws_access_key_id") == 0)
                return set_once(&p->access_key_id, value);
        if (strcasecmp(key, "aws_secret_access_key") == 0)
                return set_secret_once(&p->secret_access_key, value);
        if (strcasecmp(key, "aws_session_token") == 0)
                return set_secret_once(&p->session_token, value);
        if (strcasecmp(key, "role_arn") == 0)
                return set_once(&p->role_arn, value);
        if (strcasecmp(key, "web_identity_token_file") == 0)
                return set_once(&p->web_identity_token_file, value);
        if (strcasecmp(key, "role_session_name") == 0)
                return set_once(&p->role_session_name, value);
        for (size_t i = 0; i < ELEMENTSOF(unsupported_keys); i++)
                if (strcasecmp(key, unsupported_keys[i]) == 0)
                        return set_once(&p->unsupported, unsupported_keys[i]);
        return 0;
}

static int parse_text(const char *text, bool config, AwsProfile *p) {
        _cleanup_(erase_and_freep) char *copy = NULL;
        bool in_ours = false;
        unsigned lineno = 0;
        char *save = NULL;

        if (!text)
                return 0;
        copy = strdup(text);
        if (!copy)
                return -ENOMEM;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *s = strip(line), *eq;
                int r;

                lineno++;
                if (!*s || *s == '#' || *s == ';')
                        continue;
                if (*s == '[') {
                        char *close = strchr(s, ']');
                        if (!close || !isempty(strip(close + 1)))
                                return log_error_errno(-EINVAL, "AWS %s file, line %u: bad section header",
                                                       config ? "config" : "credentials", lineno);
                        *close = '\0';
                        in_ours = section_is(s + 1, config, p->name);
                        if (in_ours)
                                p->found = true;
                        continue;
                }
                eq = strchr(s, '=');
                if (!eq)
                        return log_error_errno(-EINVAL, "AWS %s file, line %u: expected key = value",
                                               config ? "config" : "credentials", lineno);
                /* an indented line after "s3 =" is a sub-key of a nested section: not ours */
                if (!in_ours || isspace((unsigned char) line[0]))
                        continue;
                *eq = '\0';
                r = apply_key(p, strip(s), strip(eq + 1));
                if (r < 0)
                        return r;
        }
        return 0;
}

int aws_profile_parse(const char *credentials_text, const char *config_text, const char *name,
                      AwsProfile **ret) {
        _cleanup_(aws_profile_freep) AwsProfile *p = NULL;
        int r;

        if (isempty(name) || !ret)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p || !(p->name = strdup(name)))
                return -ENOMEM;
        r = parse_text(credentials_text, false, p);
        if (r >= 0)
                r = parse_text(config_text, true, p);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

static int read_text(const char *path, char **ret) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_(erase_and_freep) char *buf = NULL;
        size_t n;

        *ret = NULL;
        if (!path)
                return 0;
        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "Failed to open %s: %m", path);
        buf = malloc(AWS_SHARED_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        n = fread(buf, 1, AWS_SHARED_FILE_MAX + 1, f);
        if (ferror(f))
                return log_error_errno(-EIO, "Failed to read %s", path);
        if (n > AWS_SHARED_FILE_MAX)
                return log_error_errno(-EFBIG, "%s is larger than %u bytes", path, AWS_SHARED_FILE_MAX);
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

int aws_profile_load(const char *credentials_path, const char *config_path, const char *name,
                     AwsProfile **ret) {
        _cleanup_(erase_and_freep) char *cred = NULL, *conf = NULL;
        _cleanup_free_ char *cred_default = NULL, *conf_default = NULL;
        const char *home = getenv("HOME");
        int r;

        if (!credentials_path && !isempty(home) && asprintf(&cred_default, "%s/.aws/credentials", home) < 0)
                return -ENOMEM;
        if (!config_path && !isempty(home) && asprintf(&conf_default, "%s/.aws/config", home) < 0)
                return -ENOMEM;
        r = read_text(credentials_path ?: cred_default, &cred);
        if (r >= 0)
                r = read_text(config_path ?: conf_default, &conf);
        if (r < 0)
                return r;
        return aws_profile_parse(cred, conf, name, ret);
}
