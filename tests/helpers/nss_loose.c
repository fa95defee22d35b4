/* A test NSS module that behaves like a directory matching names loosely (SSSD/AD with
 * `case_sensitive = false`, LDAP's case-insensitive `uid`, `user@domain` logins): a lookup
 * of `ALICE`, `Alice` or `alice@example.com` answers with the entry of `alice`, under its
 * canonical name. Loaded through nss_wrapper (NSS_WRAPPER_MODULE_SO_PATH, prefix `loose`).
 *
 * Entries come from files in passwd(5)/group(5) format named by LOOSE_PASSWD and LOOSE_GROUP.
 * LOOSE_DOWN names a file; while it exists the "directory server" is unreachable. Its first
 * word says how:
 *   `groups` (or empty): every group call fails with NSS_STATUS_UNAVAIL (errno EHOSTUNREACH);
 *   `members`: group memberships cannot be enumerated (setgrent/getgrent_r/initgroups_dyn
 *              fail) while getgrnam/getgrgid still answer from a "cache";
 *   `notfound`: group calls answer "no such group" (a server that returns nothing);
 *   `all`: passwd calls fail too.
 *
 * Built by the tests with `gcc -shared -fPIC`; test code only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096

enum down { UP, DOWN_GROUPS, DOWN_MEMBERS, DOWN_NOTFOUND, DOWN_ALL };

static enum down down_mode(void)
{
    const char *path = getenv("LOOSE_DOWN");
    char word[32] = "";
    FILE *f;

    if (path == NULL || path[0] == '\0') {
        return UP;
    }
    f = fopen(path, "re");
    if (f == NULL) {
        return UP;
    }
    if (fscanf(f, "%31s", word) != 1) {
        word[0] = '\0';
    }
    fclose(f);
    if (strcmp(word, "members") == 0) {
        return DOWN_MEMBERS;
    }
    if (strcmp(word, "notfound") == 0) {
        return DOWN_NOTFOUND;
    }
    if (strcmp(word, "all") == 0) {
        return DOWN_ALL;
    }
    return DOWN_GROUPS;
}

static enum nss_status unreachable(int *errnop)
{
    *errnop = EHOSTUNREACH;
    return NSS_STATUS_UNAVAIL;
}

static enum nss_status not_found(int *errnop)
{
    *errnop = ENOENT;
    return NSS_STATUS_NOTFOUND;
}

/* `ALICE` and `alice@example.com` both mean `alice`. */
static int loose_match(const char *canonical, const char *given)
{
    const char *at = strchr(given, '@');
    size_t len = at != NULL ? (size_t)(at - given) : strlen(given);

    return strlen(canonical) == len && strncasecmp(canonical, given, len) == 0;
}

/* Splits `line` (newline removed) on ':' into at most `max` fields; returns how many. */
static int split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;

    line[strcspn(line, "\n")] = '\0';
    if (line[0] == '\0' || line[0] == '#') {
        return 0;
    }
    while (n < max) {
        fields[n++] = p;
        p = strchr(p, ':');
        if (p == NULL) {
            break;
        }
        *p++ = '\0';
    }
    return n;
}

/* Copies `s` into the caller's buffer; NULL when it does not fit. */
static char *stash(const char *s, char **buf, size_t *left)
{
    size_t len = strlen(s) + 1;
    char *out = *buf;

    if (len > *left) {
        return NULL;
    }
    memcpy(out, s, len);
    *buf += len;
    *left -= len;
    return out;
}

static enum nss_status fill_passwd(char **f, struct passwd *pw, char *buf, size_t buflen,
                                   int *errnop)
{
    char *p = buf;
    size_t left = buflen;

    pw->pw_name = stash(f[0], &p, &left);
    pw->pw_passwd = stash(f[1], &p, &left);
    pw->pw_uid = (uid_t)strtoul(f[2], NULL, 10);
    pw->pw_gid = (gid_t)strtoul(f[3], NULL, 10);
    pw->pw_gecos = stash(f[4], &p, &left);
    pw->pw_dir = stash(f[5], &p, &left);
    pw->pw_shell = stash(f[6], &p, &left);
    if (pw->pw_name == NULL || pw->pw_passwd == NULL || pw->pw_gecos == NULL ||
        pw->pw_dir == NULL || pw->pw_shell == NULL) {
        *errnop = ERANGE;
        return NSS_STATUS_TRYAGAIN;
    }
    return NSS_STATUS_SUCCESS;
}

static enum nss_status fill_group(char **f, struct group *gr, char *buf, size_t buflen,
                                  int *errnop)
{
    char *p = buf;
    size_t left = buflen;
    size_t count = 0;
    size_t i;
    char *members;
    char *m;
    char *save = NULL;
    uintptr_t align;

    gr->gr_name = stash(f[0], &p, &left);
    gr->gr_passwd = stash(f[1], &p, &left);
    gr->gr_gid = (gid_t)strtoul(f[2], NULL, 10);
    members = stash(f[3], &p, &left);
    if (gr->gr_name == NULL || gr->gr_passwd == NULL || members == NULL) {
        goto range;
    }
    for (m = members; *m != '\0'; m++) {
        count += *m == ',';
    }
    count += members[0] != '\0';
    align = (sizeof(char *) - ((uintptr_t)p % sizeof(char *))) % sizeof(char *);
    if (align + (count + 1) * sizeof(char *) > left) {
        goto range;
    }
    gr->gr_mem = (char **)(void *)(p + align);
    i = 0;
    for (m = strtok_r(members, ",", &save); m != NULL; m = strtok_r(NULL, ",", &save)) {
        gr->gr_mem[i++] = m;
    }
    gr->gr_mem[i] = NULL;
    return NSS_STATUS_SUCCESS;
range:
    *errnop = ERANGE;
    return NSS_STATUS_TRYAGAIN;
}

/* ---- passwd ---- */

static enum nss_status find_passwd(const char *name, int by_uid, uid_t uid, struct passwd *pw,
                                   char *buf, size_t buflen, int *errnop)
{
    const char *path = getenv("LOOSE_PASSWD");
    char line[LINE_MAX_LEN];
    char *f[7];
    FILE *file;
    enum nss_status status = NSS_STATUS_NOTFOUND;

    if (down_mode() == DOWN_ALL) {
        return unreachable(errnop);
    }
    if (path == NULL || (file = fopen(path, "re")) == NULL) {
        return not_found(errnop);
    }
    while (fgets(line, sizeof(line), file) != NULL) {
        if (split(line, f, 7) != 7) {
            continue;
        }
        if (by_uid ? (uid_t)strtoul(f[2], NULL, 10) == uid : loose_match(f[0], name)) {
            status = fill_passwd(f, pw, buf, buflen, errnop);
            break;
        }
    }
    fclose(file);
    if (status == NSS_STATUS_NOTFOUND) {
        *errnop = ENOENT;
    }
    return status;
}

enum nss_status _nss_loose_getpwnam_r(const char *name, struct passwd *pw, char *buf,
                                      size_t buflen, int *errnop)
{
    return find_passwd(name, 0, 0, pw, buf, buflen, errnop);
}

enum nss_status _nss_loose_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t buflen,
                                      int *errnop)
{
    return find_passwd(NULL, 1, uid, pw, buf, buflen, errnop);
}

static FILE *pwent;

enum nss_status _nss_loose_setpwent(void)
{
    const char *path = getenv("LOOSE_PASSWD");

    if (pwent != NULL) {
        fclose(pwent);
    }
    pwent = path != NULL ? fopen(path, "re") : NULL;
    return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_loose_getpwent_r(struct passwd *pw, char *buf, size_t buflen, int *errnop)
{
    char line[LINE_MAX_LEN];
    char *f[7];

    if (down_mode() == DOWN_ALL) {
        return unreachable(errnop);
    }
    if (pwent == NULL) {
        return not_found(errnop);
    }
    for (;;) {
        long at = ftell(pwent);
        enum nss_status status;

        if (fgets(line, sizeof(line), pwent) == NULL) {
            return not_found(errnop);
        }
        if (split(line, f, 7) != 7) {
            continue;
        }
        status = fill_passwd(f, pw, buf, buflen, errnop);
        if (status == NSS_STATUS_TRYAGAIN) {
            fseek(pwent, at, SEEK_SET); /* the caller retries with a larger buffer */
        }
        return status;
    }
}

enum nss_status _nss_loose_endpwent(void)
{
    if (pwent != NULL) {
        fclose(pwent);
        pwent = NULL;
    }
    return NSS_STATUS_SUCCESS;
}

/* ---- group ---- */

static enum nss_status group_down(int enumerating, int *errnop)
{
    switch (down_mode()) {
    case UP:
        return NSS_STATUS_SUCCESS;
    case DOWN_MEMBERS:
        return enumerating ? unreachable(errnop) : NSS_STATUS_SUCCESS;
    case DOWN_NOTFOUND:
        return not_found(errnop);
    case DOWN_GROUPS:
    case DOWN_ALL:
    default:
        return unreachable(errnop);
    }
}

static enum nss_status find_group(const char *name, int by_gid, gid_t gid, struct group *gr,
                                  char *buf, size_t buflen, int *errnop)
{
    const char *path = getenv("LOOSE_GROUP");
    char line[LINE_MAX_LEN];
    char *f[4];
    FILE *file;
    enum nss_status status = group_down(0, errnop);

    if (status != NSS_STATUS_SUCCESS) {
        return status;
    }
    status = NSS_STATUS_NOTFOUND;
    if (path == NULL || (file = fopen(path, "re")) == NULL) {
        return not_found(errnop);
    }
    while (fgets(line, sizeof(line), file) != NULL) {
        if (split(line, f, 4) != 4) {
            continue;
        }
        if (by_gid ? (gid_t)strtoul(f[2], NULL, 10) == gid : loose_match(f[0], name)) {
            status = fill_group(f, gr, buf, buflen, errnop);
            break;
        }
    }
    fclose(file);
    if (status == NSS_STATUS_NOTFOUND) {
        *errnop = ENOENT;
    }
    return status;
}

enum nss_status _nss_loose_getgrnam_r(const char *name, struct group *gr, char *buf,
                                      size_t buflen, int *errnop)
{
    return find_group(name, 0, 0, gr, buf, buflen, errnop);
}

enum nss_status _nss_loose_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t buflen,
                                      int *errnop)
{
    return find_group(NULL, 1, gid, gr, buf, buflen, errnop);
}

static FILE *grent;

enum nss_status _nss_loose_setgrent(void)
{
    const char *path = getenv("LOOSE_GROUP");
    int ignored;

    if (grent != NULL) {
        fclose(grent);
        grent = NULL;
    }
    if (group_down(1, &ignored) != NSS_STATUS_SUCCESS) {
        return NSS_STATUS_UNAVAIL;
    }
    grent = path != NULL ? fopen(path, "re") : NULL;
    return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_loose_getgrent_r(struct group *gr, char *buf, size_t buflen, int *errnop)
{
    char line[LINE_MAX_LEN];
    char *f[4];
    enum nss_status status = group_down(1, errnop);

    if (status != NSS_STATUS_SUCCESS) {
        return status;
    }
    if (grent == NULL) {
        return not_found(errnop);
    }
    for (;;) {
        long at = ftell(grent);

        if (fgets(line, sizeof(line), grent) == NULL) {
            return not_found(errnop);
        }
        if (split(line, f, 4) != 4) {
            continue;
        }
        status = fill_group(f, gr, buf, buflen, errnop);
        if (status == NSS_STATUS_TRYAGAIN) {
            fseek(grent, at, SEEK_SET);
        }
        return status;
    }
}

enum nss_status _nss_loose_endgrent(void)
{
    if (grent != NULL) {
        fclose(grent);
        grent = NULL;
    }
    return NSS_STATUS_SUCCESS;
}

/* glibc's contract: append the supplementary groups of `user` (other than `group`) to
 * *groupsp[*start..], growing it up to `limit` (<= 0: no limit). Members are compared
 * loosely, as the directory would. */
enum nss_status _nss_loose_initgroups_dyn(const char *user, gid_t group, long int *start,
                                          long int *size, gid_t **groupsp, long int limit,
                                          int *errnop)
{
    const char *path = getenv("LOOSE_GROUP");
    char line[LINE_MAX_LEN];
    char *f[4];
    FILE *file;
    enum nss_status status = group_down(1, errnop);

    if (status != NSS_STATUS_SUCCESS) {
        return status;
    }
    if (path == NULL || (file = fopen(path, "re")) == NULL) {
        return not_found(errnop);
    }
    while (fgets(line, sizeof(line), file) != NULL) {
        char *save = NULL;
        char *m;
        gid_t gid;

        if (split(line, f, 4) != 4) {
            continue;
        }
        gid = (gid_t)strtoul(f[2], NULL, 10);
        if (gid == group) {
            continue;
        }
        for (m = strtok_r(f[3], ",", &save); m != NULL; m = strtok_r(NULL, ",", &save)) {
            if (!loose_match(m, user)) {
                continue;
            }
            if (*start == *size) {
                long int grown = *size * 2 + 1;
                gid_t *more;

                if (limit > 0 && grown > limit) {
                    grown = limit;
                }
                if (grown <= *size) {
                    fclose(file);
                    return NSS_STATUS_SUCCESS;
                }
                more = realloc(*groupsp, (size_t)grown * sizeof(gid_t));
                if (more == NULL) {
                    fclose(file);
                    *errnop = ENOMEM;
                    return NSS_STATUS_TRYAGAIN;
                }
                *groupsp = more;
                *size = grown;
            }
            (*groupsp)[(*start)++] = gid;
            break;
        }
    }
    fclose(file);
    return NSS_STATUS_SUCCESS;
}
