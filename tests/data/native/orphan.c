/* A thread exits while holding a mutex: its waiters hang forever without any
 * cycle. main joins the waiter, so it is blocked behind the orphaned lock. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int dead_tid, waiter_tid;

static void *dies(void *arg) {
    (void)arg;
    atomic_store(&dead_tid, (int)syscall(SYS_gettid));
    pthread_mutex_lock(&orphan_lock);
    return NULL; /* exits holding orphan_lock */
}

static void *waits(void *arg) {
    (void)arg;
    atomic_store(&waiter_tid, (int)syscall(SYS_gettid));
    pthread_mutex_lock(&orphan_lock);
    return NULL;
}

int main(void) {
    pthread_t d, w;
    pthread_create(&d, NULL, dies, NULL);
    pthread_join(d, NULL);
    pthread_create(&w, NULL, waits, NULL);
    while (!atomic_load(&waiter_tid)) usleep(1000);
    printf("READY main=%d dead=%d waiter=%d orphan_lock=%p\n", (int)syscall(SYS_gettid), atomic_load(&dead_tid),
           atomic_load(&waiter_tid), (void *)&orphan_lock);
    fflush(stdout);
    pthread_join(w, NULL);
    return 0;
}
