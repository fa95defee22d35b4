/* The floor under `twofold list`: for each of N users, what reading its two files costs in
 * system calls alone (openat, fstat, read, close of `u<i>.toml` and `u<i>.state`, relative to
 * the store directory held open), one thread, no parsing. Prints the seconds it took.
 * Usage: list_floor STORE_DIR N */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char buf[8192];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: list_floor STORE_DIR N\n");
        return 2;
    }
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        perror(argv[1]);
        return 1;
    }
    int n = atoi(argv[2]);
    const char *ext[2] = {"toml", "state"};
    double start = now();
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            char name[64];
            snprintf(name, sizeof name, "u%d.%s", i, ext[k]);
            int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            struct stat st;
            if (fd < 0 || fstat(fd, &st) != 0 || pread(fd, buf, sizeof buf, 0) < 0) {
                perror(name);
                return 1;
            }
            close(fd);
        }
    }
    printf("%.6f\n", now() - start);
    return 0;
}
