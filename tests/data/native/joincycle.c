/* Two threads join each other: a deadlock with no mutex at all. main joins t1. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_t th1, th2;
static atomic_int ready, tid1, tid2;

static void *t1(void *arg) {
    (void)arg;
    atomic_store(&tid1, (int)syscall(SYS_gettid));
    while (atomic_load(&ready) < 1) usleep(1000);
    pthread_join(th2, NULL);
    return NULL;
}

static void *t2(void *arg) {
    (void)arg;
    atomic_store(&tid2, (int)syscall(SYS_gettid));
    while (atomic_load(&ready) < 1) usleep(1000);
    pthread_join(th1, NULL);
    return NULL;
}

int main(void) {
    pthread_create(&th1, NULL, t1, NULL);
    pthread_create(&th2, NULL, t2, NULL);
    atomic_store(&ready, 1);
    while (!atomic_load(&tid1) || !atomic_load(&tid2)) usleep(1000);
    printf("READY main=%d t1=%d t2=%d pd1=%p pd2=%p\n", (int)syscall(SYS_gettid), atomic_load(&tid1),
           atomic_load(&tid2), (void *)th1, (void *)th2);
    fflush(stdout);
    pthread_join(th1, NULL);
    return 0;
}
