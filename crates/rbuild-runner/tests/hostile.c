/* A hostile "python" for rbuild-runner's tests: argv[1] picks the attack. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "write")) {
        /* argv[2..]: paths to create; report each result. */
        for (int i = 2; i < argc; i++) {
            int fd = open(argv[i], O_WRONLY | O_CREAT | O_TRUNC, 0644);
            printf("%s %s\n", argv[i], fd >= 0 ? "created" : "denied");
            if (fd >= 0) close(fd);
        }
        return 0;
    }
    if (!strcmp(mode, "garbage")) {
        static char buf[65536];
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 7 + 1);
        for (int i = 0; i < 800; i++) fwrite(buf, 1, sizeof buf, stdout); /* ~50 MB */
        return 0;
    }
    if (!strcmp(mode, "sleep")) {
        for (;;) pause();
    }
    if (!strcmp(mode, "fork")) {
        pid_t pid = fork();
        if (pid == 0) {
            int escaped = setsid() >= 0;
            printf("child %d escaped=%d\n", getpid(), escaped);
            fflush(stdout);
            close(1);
            close(2);
            for (;;) pause();
        }
        sleep(1);
        return 0;
    }
    return 2;
}
