/* A thread locks a normal mutex it already holds: a cycle of one. It first
 * re-locks a recursive mutex, which must not count. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

pthread_mutex_t self_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t rec_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static atomic_int tid;

static void *t(void *arg) {
    (void)arg;
    atomic_store(&tid, (int)syscall(SYS_gettid));
    pthread_mutex_lock(&rec_lock);
    pthread_mutex_lock(&rec_lock);
    pthread_mutex_lock(&self_lock);
    pthread_mutex_lock(&self_lock);
    return NULL;
}

int main(void) {
    pthread_t th;
    pthread_create(&th, NULL, t, NULL);
    while (!atomic_load(&tid)) usleep(1000);
    printf("READY main=%d t=%d self_lock=%p rec_lock=%p\n", (int)syscall(SYS_gettid), atomic_load(&tid),
           (void *)&self_lock, (void *)&rec_lock);
    fflush(stdout);
    pthread_join(th, NULL);
    return 0;
}
