/*
 * pam_bench: authenticates users PREFIX<first> .. PREFIX<first+count-1> through the real
 * libpam (pam_start + pam_authenticate + pam_end each time), answering every hidden prompt
 * with CODE. Prints one line per login, "<microseconds> <0|1 accepted>", then
 * "maxrss_kb <n>": the peak resident set of this program image (VmHWM), not of the shell
 * that exec'd it (getrusage's maxrss keeps the larger of the two across execve), and
 * "anon_kb <n>": anonymous memory during the last login, module loaded. Used by
 * scripts/bench.sh; not part of twofold.
 *
 *   pam_bench SERVICE PREFIX FIRST COUNT CODE
 */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static const char *answer;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)data;
    struct pam_response *r = calloc((size_t)n, sizeof(*r));
    if (r == NULL) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
            r[i].resp = strdup(answer);
    }
    *resp = r;
    return PAM_SUCCESS;
}

/* PAM's failure delay is left to the application: none here, so what is timed is the
 * module's own work (twofold asks for 2 s after a failure, as pam_unix does). */
static void no_delay(int status, unsigned int usec, void *data) {
    (void)status;
    (void)usec;
    (void)data;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* One "NAME: <n> kB" line of a /proc file, or -1. */
static long proc_kb(const char *path, const char *format) {
    FILE *f = fopen(path, "r");
    char line[256];
    long kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, format, &kb) == 1) break;
    }
    if (f != NULL) fclose(f);
    return kb;
}

/* VmHWM from /proc/self/status; getrusage's figure if that cannot be read. */
static long peak_rss_kb(void) {
    long kb = proc_kb("/proc/self/status", "VmHWM: %ld kB");
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return kb;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: pam_bench SERVICE PREFIX FIRST COUNT CODE\n");
        return 2;
    }
    const char *service = argv[1], *prefix = argv[2];
    long first = atol(argv[3]), count = atol(argv[4]);
    answer = argv[5];
    struct pam_conv pc = {conv, NULL};
    char user[256];
    long anon_kb = -1;
    for (long i = 0; i < count; i++) {
        snprintf(user, sizeof(user), "%s%ld", prefix, first + i);
        pam_handle_t *h = NULL;
        double t0 = now_us();
        int rc = pam_start(service, user, &pc, &h);
        if (rc == PAM_SUCCESS) rc = pam_set_item(h, PAM_FAIL_DELAY, (const void *)no_delay);
        if (rc == PAM_SUCCESS) rc = pam_authenticate(h, PAM_SILENT);
        /* Private memory while the module is still loaded (its mapped code is shared
         * page cache, the same for every process that loads it). */
        if (i == count - 1) anon_kb = proc_kb("/proc/self/smaps_rollup", "Anonymous: %ld kB");
        pam_end(h, rc);
        printf("%.1f %d\n", now_us() - t0, rc == PAM_SUCCESS);
    }
    printf("maxrss_kb %ld\n", peak_rss_kb());
    printf("anon_kb %ld\n", anon_kb);
    return 0;
}
