/* The floor under `twofold list`, in system calls alone, nothing parsed. Prints seconds.
 *
 *   list_floor STORE_DIR N            this layout: openat, fstat, pread and close of both
 *                                     files of each user (`u<i>.toml`, `u<i>.state`), relative
 *                                     to the store directory held open, one thread
 *   list_floor STORE_DIR N --one T    any layout with one file per user, at its cheapest:
 *                                     openat, one 1 KiB read and close of `u<i>.toml` alone,
 *                                     no check, on T threads
 *
 * The second is what no per-user-file layout can go under on this machine, however its
 * records were laid out (docs/benchmarks.md, issue 21). */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct job {
    int dir, users, files, check, threads, first;
    size_t read;
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *read_users(void *arg) {
    const struct job *job = arg;
    static const char *ext[2] = {"toml", "state"};
    char buf[8192];
    for (int i = job->first; i < job->users; i += job->threads) {
        for (int k = 0; k < job->files; k++) {
            char name[64];
            snprintf(name, sizeof name, "u%d.%s", i, ext[k]);
            int fd = openat(job->dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            struct stat st;
            if (fd < 0 || (job->check && fstat(fd, &st) != 0) || pread(fd, buf, job->read, 0) < 0) {
                perror(name);
                exit(1);
            }
            close(fd);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    int one = argc == 5 && strcmp(argv[3], "--one") == 0;
    if (argc != 3 && !one) {
        fprintf(stderr, "usage: list_floor STORE_DIR N [--one THREADS]\n");
        return 2;
    }
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        perror(argv[1]);
        return 1;
    }
    int threads = one ? atoi(argv[4]) : 1;
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "list_floor: THREADS must be 1 to 64\n");
        return 2;
    }
    struct job jobs[64];
    pthread_t ids[64];
    double start = now();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){dir, atoi(argv[2]), one ? 1 : 2, !one, threads, t, one ? 1024 : 8192};
        if (pthread_create(&ids[t], NULL, read_users, &jobs[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int t = 0; t < threads; t++)
        pthread_join(ids[t], NULL);
    printf("%.6f\n", now() - start);
    return 0;
}
