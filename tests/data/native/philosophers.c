/* Five dining philosophers, each takes the left fork then the right one:
 * a 5-thread cycle over an array of mutexes. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define N 5
pthread_mutex_t forks[N];
static atomic_int holding, tids[N];

static void *philosopher(void *arg) {
    int i = (int)(intptr_t)arg;
    atomic_store(&tids[i], (int)syscall(SYS_gettid));
    pthread_mutex_lock(&forks[i]);
    atomic_fetch_add(&holding, 1);
    while (atomic_load(&holding) < N) usleep(1000);
    pthread_mutex_lock(&forks[(i + 1) % N]);
    return NULL;
}

int main(void) {
    pthread_t th[N];
    for (int i = 0; i < N; i++) pthread_mutex_init(&forks[i], NULL);
    for (int i = 0; i < N; i++) pthread_create(&th[i], NULL, philosopher, (void *)(intptr_t)i);
    while (atomic_load(&holding) < N) usleep(1000);
    printf("READY main=%d forks=%p", (int)syscall(SYS_gettid), (void *)forks);
    for (int i = 0; i < N; i++) printf(" p%d=%d", i, atomic_load(&tids[i]));
    printf("\n");
    fflush(stdout);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    return 0;
}
