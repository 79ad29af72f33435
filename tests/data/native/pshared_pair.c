/* Two processes deadlock on two process-shared mutexes in a shared mapping:
 * the parent locks A then B, the child B then A. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

struct shared {
    pthread_mutex_t a, b;
    atomic_int parent_has_a, child_has_b;
    pid_t parent_pid;
};

int main(void) {
    struct shared *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) abort();
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&s->a, &attr);
    pthread_mutex_init(&s->b, &attr);
    s->parent_pid = getpid();
    pid_t child = fork();
    if (child < 0) abort();
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != s->parent_pid) _exit(1);
        pthread_mutex_lock(&s->b);
        atomic_store(&s->child_has_b, 1);
        while (!atomic_load(&s->parent_has_a)) usleep(1000);
        pthread_mutex_lock(&s->a);
        _exit(0);
    }
    pthread_mutex_lock(&s->a);
    atomic_store(&s->parent_has_a, 1);
    while (!atomic_load(&s->child_has_b)) usleep(1000);
    printf("READY parent=%d child=%d a=%p b=%p\n", getpid(), child, (void *)&s->a, (void *)&s->b);
    fflush(stdout);
    pthread_mutex_lock(&s->b);
    kill(child, SIGKILL);
    return 0;
}
