/* One holder thread takes one of every glibc lock kind and then blocks in
 * read(); one waiter thread blocks on each. Not a deadlock: a catalogue of
 * waits whose owners the test checks exactly. Prints READY with every TID and
 * object address. */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { W_REC = 1, W_ERR, W_ADAPT, W_ROBUST, W_PI, W_PSHARED, W_RW_W, W_RW_R, W_RW_READERS,
       W_COND, W_SEM, W_BARRIER, W_TIMED, W_NORMAL, N_WAITERS };

pthread_mutex_t m_normal = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t m_rec, m_err, m_adapt, m_robust, m_pi;
pthread_mutex_t m_cond = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t *m_pshared;
pthread_rwlock_t rw_w = PTHREAD_RWLOCK_INITIALIZER;
pthread_rwlock_t rw_r = PTHREAD_RWLOCK_INITIALIZER;
pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
sem_t sem;
pthread_barrier_t barrier;

static atomic_int holder_ready, started;
static int pipefd[2];
static pid_t tids[N_WAITERS];

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static void init_mutex(pthread_mutex_t *m, int type, int robust, int protocol, int pshared) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, type);
    if (robust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_setprotocol(&a, protocol);
    if (pshared) pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (pthread_mutex_init(m, &a)) abort();
}

static void *holder(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "holder");
    tids[0] = my_tid();
    pthread_mutex_lock(&m_rec);
    pthread_mutex_lock(&m_rec);
    pthread_mutex_lock(&m_err);
    pthread_mutex_lock(&m_adapt);
    pthread_mutex_lock(&m_robust);
    pthread_mutex_lock(&m_pi);
    pthread_mutex_lock(m_pshared);
    pthread_mutex_lock(&m_normal);
    pthread_rwlock_wrlock(&rw_w);
    pthread_rwlock_rdlock(&rw_r);
    atomic_store(&holder_ready, 1);
    char c;
    for (;;) read(pipefd[0], &c, 1);
    return NULL;
}

static void *waiter(void *arg) {
    int k = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "w%d", k);
    pthread_setname_np(pthread_self(), name);
    tids[k] = my_tid();
    while (!atomic_load(&holder_ready)) usleep(1000);
    atomic_fetch_add(&started, 1);
    struct timespec far;
    switch (k) {
    case W_REC: pthread_mutex_lock(&m_rec); break;
    case W_ERR: pthread_mutex_lock(&m_err); break;
    case W_ADAPT: pthread_mutex_lock(&m_adapt); break;
    case W_ROBUST: pthread_mutex_lock(&m_robust); break;
    case W_PI: pthread_mutex_lock(&m_pi); break;
    case W_PSHARED: pthread_mutex_lock(m_pshared); break;
    case W_RW_W: pthread_rwlock_wrlock(&rw_w); break;
    case W_RW_R: pthread_rwlock_rdlock(&rw_w); break;
    case W_RW_READERS: pthread_rwlock_wrlock(&rw_r); break;
    case W_COND:
        pthread_mutex_lock(&m_cond);
        for (;;) pthread_cond_wait(&cond, &m_cond);
    case W_SEM: sem_wait(&sem); break;
    case W_BARRIER: pthread_barrier_wait(&barrier); break;
    case W_TIMED:
        clock_gettime(CLOCK_REALTIME, &far);
        far.tv_sec += 100000;
        pthread_mutex_timedlock(&m_normal, &far);
        break;
    case W_NORMAL: pthread_mutex_lock(&m_normal); break;
    }
    fprintf(stderr, "waiter %d returned unexpectedly\n", k);
    abort();
}

int main(void) {
    if (pipe(pipefd)) abort();
    init_mutex(&m_rec, PTHREAD_MUTEX_RECURSIVE, 0, PTHREAD_PRIO_NONE, 0);
    init_mutex(&m_err, PTHREAD_MUTEX_ERRORCHECK, 0, PTHREAD_PRIO_NONE, 0);
    init_mutex(&m_adapt, PTHREAD_MUTEX_ADAPTIVE_NP, 0, PTHREAD_PRIO_NONE, 0);
    init_mutex(&m_robust, PTHREAD_MUTEX_NORMAL, 1, PTHREAD_PRIO_NONE, 0);
    init_mutex(&m_pi, PTHREAD_MUTEX_NORMAL, 0, PTHREAD_PRIO_INHERIT, 0);
    m_pshared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m_pshared == MAP_FAILED) abort();
    init_mutex(m_pshared, PTHREAD_MUTEX_NORMAL, 0, PTHREAD_PRIO_NONE, 1);
    sem_init(&sem, 0, 0);
    pthread_barrier_init(&barrier, NULL, 2);

    pthread_t h, w[N_WAITERS];
    pthread_create(&h, NULL, holder, NULL);
    for (int k = 1; k < N_WAITERS; k++) pthread_create(&w[k], NULL, waiter, (void *)(intptr_t)k);
    while (atomic_load(&started) < N_WAITERS - 1) usleep(1000);

    printf("READY main=%d holder=%d holder_pd=%p", my_tid(), tids[0], (void *)h);
    for (int k = 1; k < N_WAITERS; k++) printf(" w%d=%d", k, tids[k]);
    printf(" m_normal=%p m_rec=%p m_err=%p m_adapt=%p m_robust=%p m_pi=%p m_pshared=%p m_cond=%p"
           " rw_w=%p rw_r=%p cond=%p sem=%p barrier=%p pipe=%d\n",
           (void *)&m_normal, (void *)&m_rec, (void *)&m_err, (void *)&m_adapt, (void *)&m_robust,
           (void *)&m_pi, (void *)m_pshared, (void *)&m_cond, (void *)&rw_w, (void *)&rw_r,
           (void *)&cond, (void *)&sem, (void *)&barrier, pipefd[0]);
    fflush(stdout);
    pthread_join(h, NULL);
    return 0;
}
