/* A C program sharing a `Telemetry` with Rust processes through smobject, the way programs
 * using the original C++ SMObject class did: `ftok(path, id)` for the data segment,
 * `ftok(path, id - 58)` for the counter segment, and the `int` count at offset 0 of the counter
 * segment incremented after attaching and decremented before detaching. It takes no lock and
 * never frees anything. Reads go through the generated header's consistent-read function.
 *
 *   legacy_reader PATH          (telemetry.h, from smobject::c_header::<Telemetry>(), on the
 *                                include path; the id is the header's TELEMETRY_SMOBJECT_ID)
 *
 * Then one command per stdin line, one answer per stdout line:
 *   read      -> "seq=S pos=X,Y,Z status=N version=V"
 *   torn MS   -> reads for MS milliseconds while Rust writes: "torn=T distinct=D reads=R"
 *   detach    -> decrements the count, detaches both segments, prints "detached", exits 0
 * End of input detaches too. */
#define _XOPEN_SOURCE 700 /* ftok, shm*, clock_gettime under -std=c11 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/types.h>
#include <time.h>

#include "telemetry.h"

static void die(const char *what)
{
    printf("error %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *attach(const char *path, int id)
{
    key_t key = ftok(path, id);
    if (key == -1)
        die("ftok");
    int shmid = shmget(key, 0, 0);
    if (shmid == -1)
        die("shmget");
    void *p = shmat(shmid, NULL, 0);
    if (p == (void *)-1)
        die("shmat");
    return p;
}

static void read_or_die(const void *counter, const void *data, struct Telemetry *t)
{
    if (telemetry_smobject_read(counter, data, t) != 0) {
        printf("error read: writes kept overlapping\n");
        fflush(stdout);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s KEYFILE\n", argv[0]);
        return 2;
    }
    void *data = attach(argv[1], TELEMETRY_SMOBJECT_ID);
    void *counter = attach(argv[1], TELEMETRY_SMOBJECT_COUNTER_ID);
    /* The original protocol: count ourselves in (atomically, as smobject does). */
    int *count = (int *)counter;
    int now = __atomic_add_fetch(count, 1, __ATOMIC_SEQ_CST);
    if (telemetry_smobject_check(counter) != 0) {
        printf("error check: not a Telemetry of this build\n");
        fflush(stdout);
        return 1;
    }
    printf("attached count=%d\n", now);
    fflush(stdout);

    char line[128];
    while (fgets(line, sizeof line, stdin)) {
        struct Telemetry t;
        unsigned long n;
        if (strncmp(line, "read", 4) == 0) {
            read_or_die(counter, data, &t);
            printf("seq=%llu pos=%g,%g,%g status=%u version=%llu\n", (unsigned long long)t.seq,
                   t.pos[0], t.pos[1], t.pos[2], t.status,
                   (unsigned long long)telemetry_smobject_version(counter));
        } else if (sscanf(line, "torn %lu", &n) == 1) {
            unsigned long reads = 0, torn = 0, distinct = 0;
            uint64_t last = (uint64_t)-1;
            double end = now_ms() + (double)n;
            while (now_ms() < end) {
                for (int i = 0; i < 1000; i++, reads++) {
                    read_or_die(counter, data, &t);
                    /* every value the Rust writer publishes has seq == pos[0] == pos[1] == pos[2] */
                    if ((double)t.seq != t.pos[0] || t.pos[0] != t.pos[1] || t.pos[1] != t.pos[2])
                        torn++;
                    if (t.seq != last) {
                        distinct++;
                        last = t.seq;
                    }
                }
            }
            printf("torn=%lu distinct=%lu reads=%lu\n", torn, distinct, reads);
        } else if (strncmp(line, "detach", 6) == 0) {
            break;
        } else {
            printf("error usage\n");
        }
        fflush(stdout);
    }
    /* The original protocol: count ourselves out, then detach. No lock, no free. */
    __atomic_sub_fetch(count, 1, __ATOMIC_SEQ_CST);
    if (shmdt(data) != 0 || shmdt(counter) != 0)
        die("shmdt");
    printf("detached\n");
    fflush(stdout);
    return 0;
}
