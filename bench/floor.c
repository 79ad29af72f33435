/*
 * floor: the raw ptrace floor for stopping a whole process and copying its
 * stacks, the least work any stop-the-world stack dumper must do.
 *
 *   floor PID [STACK_BYTES] [RUNS]
 *
 * Per run: list /proc/PID/task (before the stop, not timed), then
 *   PTRACE_SEIZE + PTRACE_INTERRUPT every thread (in TID order),
 *   waitpid() each one's stop,
 *   PTRACE_GETREGS each,
 *   one batched process_vm_readv of STACK_BYTES (default 16384) above each
 *     thread's SP (plus the 128-byte red zone below it), into buffers
 *     allocated and touched before the stop,
 *   PTRACE_DETACH every thread.
 * The time from the first PTRACE_SEIZE to the last PTRACE_DETACH is printed,
 * one line per run, as JSON: {"threads": N, "pause_us": F, "bytes": B}.
 *
 * Runs under SCHED_FIFO (priority 1) when permitted, as lockdump's capture
 * does (src/capture/priority.rs): on a target with more runnable threads than
 * CPUs, at normal priority the seizes and detaches wait behind them (2000
 * threads waking every 1 ms on 2 CPUs: a 2-50 s "floor"), and the figure
 * would measure the scheduler instead of ptrace.
 *
 * Deliberately minimal: no /proc reads, no signal bookkeeping, no rescans for
 * threads created during the stop (benchmark targets create none). The
 * stack copy is clipped to the thread's stack mapping, found in /proc/PID/maps
 * before the stop. Exits 1 on any failure, after detaching what it seized.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>

#define RED_ZONE 128
#define MAX_IOV 1024

struct map {
    uint64_t start, end;
};

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_map(const void *a, const void *b)
{
    const struct map *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int list_tasks(int pid, int **out)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0, cap = 256;
    int *tids = malloc(sizeof *tids * (size_t)cap);
    struct dirent *e;
    while (tids && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        if (n == cap) {
            cap *= 2;
            tids = realloc(tids, sizeof *tids * (size_t)cap);
            if (!tids)
                break;
        }
        tids[n++] = atoi(e->d_name);
    }
    closedir(d);
    if (!tids)
        return -1;
    qsort(tids, (size_t)n, sizeof *tids, cmp_int);
    *out = tids;
    return n;
}

/* Readable private/anonymous mappings, sorted, to clip stack copies. */
static int read_maps(int pid, struct map **out)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, cap = 1024;
    struct map *m = malloc(sizeof *m * (size_t)cap);
    char line[4096];
    while (m && fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3 || perms[0] != 'r')
            continue;
        if (n == cap) {
            cap *= 2;
            m = realloc(m, sizeof *m * (size_t)cap);
            if (!m)
                break;
        }
        m[n].start = s;
        m[n].end = e;
        n++;
    }
    fclose(f);
    if (!m)
        return -1;
    qsort(m, (size_t)n, sizeof *m, cmp_map);
    *out = m;
    return n;
}

static const struct map *find_map(const struct map *m, int n, uint64_t addr)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (m[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && m[lo].start <= addr ? &m[lo] : NULL;
}

static int run_once(int pid, size_t stack_bytes)
{
    int *tids;
    int n = list_tasks(pid, &tids);
    struct map *maps;
    int nmaps = read_maps(pid, &maps);
    if (n <= 0 || nmaps <= 0) {
        fprintf(stderr, "floor: cannot read /proc/%d\n", pid);
        return -1;
    }
    size_t slot = stack_bytes + RED_ZONE;
    char *buf = malloc(slot * (size_t)n);
    struct iovec *local = calloc((size_t)n, sizeof *local);
    struct iovec *remote = calloc((size_t)n, sizeof *remote);
    char *seized = calloc((size_t)n, 1);
    if (!buf || !local || !remote || !seized) {
        fprintf(stderr, "floor: out of memory\n");
        return -1;
    }
    memset(buf, 0, slot * (size_t)n); /* fault the pages in before the stop */

    int rc = 0;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        if (ptrace(PTRACE_SEIZE, tids[i], 0, 0) != 0) {
            fprintf(stderr, "floor: seize %d: %s\n", tids[i], strerror(errno));
            rc = -1;
            break;
        }
        seized[i] = 1;
        if (ptrace(PTRACE_INTERRUPT, tids[i], 0, 0) != 0) {
            fprintf(stderr, "floor: interrupt %d: %s\n", tids[i], strerror(errno));
            rc = -1;
            break;
        }
    }
    for (int i = 0; i < n && rc == 0; i++) {
        int status;
        if (waitpid(tids[i], &status, __WALL) != tids[i]) {
            fprintf(stderr, "floor: waitpid %d: %s\n", tids[i], strerror(errno));
            rc = -1;
        }
    }
    size_t total = 0;
    int niov = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct user_regs_struct regs;
        if (ptrace(PTRACE_GETREGS, tids[i], 0, &regs) != 0) {
            fprintf(stderr, "floor: getregs %d: %s\n", tids[i], strerror(errno));
            rc = -1;
            break;
        }
        const struct map *m = find_map(maps, nmaps, regs.rsp);
        if (!m)
            continue;
        uint64_t start = regs.rsp - RED_ZONE < m->start ? m->start : regs.rsp - RED_ZONE;
        uint64_t end = regs.rsp + stack_bytes > m->end ? m->end : regs.rsp + stack_bytes;
        local[niov].iov_base = buf + slot * (size_t)i;
        local[niov].iov_len = end - start;
        remote[niov].iov_base = (void *)start;
        remote[niov].iov_len = end - start;
        niov++;
    }
    for (int off = 0; off < niov && rc == 0; off += MAX_IOV) {
        int k = niov - off < MAX_IOV ? niov - off : MAX_IOV;
        ssize_t got = process_vm_readv(pid, local + off, (unsigned long)k, remote + off, (unsigned long)k, 0);
        if (got < 0) {
            fprintf(stderr, "floor: process_vm_readv: %s\n", strerror(errno));
            rc = -1;
        } else {
            total += (size_t)got;
        }
    }
    for (int i = 0; i < n; i++)
        if (seized[i])
            ptrace(PTRACE_DETACH, tids[i], 0, 0);
    double t1 = now_us();
    if (rc == 0)
        printf("{\"threads\": %d, \"pause_us\": %.1f, \"bytes\": %zu}\n", n, t1 - t0, total);
    free(tids);
    free(maps);
    free(buf);
    free(local);
    free(remote);
    free(seized);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: floor PID [STACK_BYTES] [RUNS]\n");
        return 2;
    }
    int pid = atoi(argv[1]);
    size_t stack_bytes = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 16384;
    int runs = argc > 3 ? atoi(argv[3]) : 1;
    struct sched_param fifo = {.sched_priority = 1};
    (void)sched_setscheduler(0, SCHED_FIFO, &fifo); /* best effort, see above */
    for (int r = 0; r < runs; r++)
        if (run_once(pid, stack_bytes) != 0)
            return 1;
    return 0;
}
