/* Classic AB-BA deadlock: t1 locks lock_a then lock_b, t2 locks lock_b then
 * lock_a. main joins t1, so it is blocked behind the cycle. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static atomic_int have_a, have_b;
static atomic_int tid1, tid2;

static void *t1(void *arg) {
    (void)arg;
    atomic_store(&tid1, (int)syscall(SYS_gettid));
    pthread_mutex_lock(&lock_a);
    atomic_store(&have_a, 1);
    while (!atomic_load(&have_b)) usleep(1000);
    pthread_mutex_lock(&lock_b);
    return NULL;
}

static void *t2(void *arg) {
    (void)arg;
    atomic_store(&tid2, (int)syscall(SYS_gettid));
    pthread_mutex_lock(&lock_b);
    atomic_store(&have_b, 1);
    while (!atomic_load(&have_a)) usleep(1000);
    pthread_mutex_lock(&lock_a);
    return NULL;
}

int main(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, t1, NULL);
    pthread_create(&b, NULL, t2, NULL);
    pthread_setname_np(a, "worker-1");
    pthread_setname_np(b, "worker-2");
    while (!atomic_load(&have_a) || !atomic_load(&have_b)) usleep(1000);
    printf("READY main=%d t1=%d t2=%d lock_a=%p lock_b=%p\n", (int)syscall(SYS_gettid), atomic_load(&tid1),
           atomic_load(&tid2), (void *)&lock_a, (void *)&lock_b);
    fflush(stdout);
    pthread_join(a, NULL);
    return 0;
}
