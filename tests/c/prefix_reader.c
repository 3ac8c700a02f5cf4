/* Attaches to a `Sensor` (tests::structs::evo) the original way and prints whether the
 * generated header's check accepts the object, then, if so, a consistent read:
 *
 *   prefix_reader PATH   (sensor.h from smobject::c_header::<v1::Sensor or v2::Sensor>())
 *   -> "check=0 seq=S pos=X,Y,Z" or "check=-1"
 *
 * Both builds of Sensor start with `seq` and `pos`. It leaves the way it came (decrement,
 * detach). */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

#include "sensor.h"

static void *attach(const char *path, int id)
{
    key_t key = ftok(path, id);
    int shmid = key == -1 ? -1 : shmget(key, 0, 0);
    void *p = shmid == -1 ? (void *)-1 : shmat(shmid, NULL, 0);
    if (p == (void *)-1) {
        printf("error attach: %s\n", strerror(errno));
        return NULL;
    }
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    void *data = attach(argv[1], SENSOR_SMOBJECT_ID);
    void *counter = attach(argv[1], SENSOR_SMOBJECT_COUNTER_ID);
    if (!data || !counter)
        return 1;
    int *count = (int *)counter;
    __atomic_add_fetch(count, 1, __ATOMIC_SEQ_CST);
    int check = sensor_smobject_check(counter);
    if (check == 0) {
        struct Sensor s;
        if (sensor_smobject_read(counter, data, &s) != 0) {
            printf("error read\n");
            return 1;
        }
        printf("check=0 seq=%llu pos=%g,%g,%g\n", (unsigned long long)s.seq, s.pos[0], s.pos[1],
               s.pos[2]);
    } else {
        printf("check=%d\n", check);
    }
    __atomic_sub_fetch(count, 1, __ATOMIC_SEQ_CST);
    shmdt(data);
    shmdt(counter);
    return 0;
}
