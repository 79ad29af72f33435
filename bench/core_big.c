/*
 * core_big: an AB-BA mutex deadlock in a process holding 1 GiB of written
 * heap (argv[1] MiB, default 1024), for timing `lockdump --core` against
 * gdb on a core of that size (bench/README.md, "Core files").
 * Prints READY when both threads are about to block.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both;

static void *t1(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock_a);
    pthread_barrier_wait(&both);
    pthread_mutex_lock(&lock_b);
    return NULL;
}

static void *t2(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock_b);
    pthread_barrier_wait(&both);
    pthread_mutex_lock(&lock_a);
    return NULL;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    char *heap = malloc(mib << 20);
    if (heap == NULL)
        return 1;
    memset(heap, 0x5a, mib << 20); /* resident, so the core holds it */
    pthread_barrier_init(&both, NULL, 3);
    pthread_t a, b;
    pthread_create(&a, NULL, t1, NULL);
    pthread_create(&b, NULL, t2, NULL);
    pthread_barrier_wait(&both);
    printf("READY %d\n", getpid());
    fflush(stdout);
    pthread_join(a, NULL);
    return heap[0];
}
