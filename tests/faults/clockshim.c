/*
 * clockshim: shifts one process's wall clock by an offset that another process can change while it
 * runs. The fault suite starts every redis-server with it, to jump one node's clock by tens of
 * seconds without touching the machine's clock or the other nodes.
 *
 *   LD_PRELOAD=clockshim.so CLOCKSHIM_FILE=/path/to/offset redis-server ...
 *
 * The file holds a signed offset in milliseconds ("-30000"); a missing or empty file means 0. It is
 * re-read at most every millisecond of CLOCK_MONOTONIC, so a rewrite (write a new file, rename it
 * over the old one) takes effect within a millisecond. Only the wall clock moves: CLOCK_REALTIME
 * (and its coarse variant), gettimeofday() and time(). Redis expires keys by gettimeofday(), so a
 * jump moves every lease on the node; its monotonic clock, used for timeouts, is left alone.
 *
 * Why not libfaketime: it hangs Debian's jemalloc-built redis-server at start-up. So this shim
 * allocates nothing, resolves no symbols (no dlsym) and reads time and the file with raw system
 * calls, which are safe before the C library or the allocator have finished starting.
 *
 * Build: cc -O2 -shared -fPIC -o clockshim.so clockshim.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The offset in nanoseconds, and when (CLOCK_MONOTONIC, ns) it is next re-read. Relaxed atomics:
 * threads may race to re-read the file, and any of them may win. */
static long long offset_ns;
static long long next_read_ns;

static long long raw_ns(clockid_t clock)
{
    struct timespec ts;
    if (syscall(SYS_clock_gettime, clock, &ts) != 0)
        return 0;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Parses "[-]digits" from the offset file; 0 if the file is missing or empty. */
static long long read_offset_ns(void)
{
    const char *path = getenv("CLOCKSHIM_FILE");
    if (path == NULL)
        return 0;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[32];
    long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    if (n <= 0)
        return 0;
    long long ms = 0;
    int negative = buf[0] == '-';
    for (long i = negative; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        ms = ms * 10 + (buf[i] - '0');
    return (negative ? -ms : ms) * 1000000LL;
}

static long long current_offset_ns(void)
{
    long long now = raw_ns(CLOCK_MONOTONIC);
    if (now >= __atomic_load_n(&next_read_ns, __ATOMIC_RELAXED)) {
        __atomic_store_n(&offset_ns, read_offset_ns(), __ATOMIC_RELAXED);
        __atomic_store_n(&next_read_ns, now + 1000000LL, __ATOMIC_RELAXED);
    }
    return __atomic_load_n(&offset_ns, __ATOMIC_RELAXED);
}

static long long shifted_realtime_ns(void)
{
    return raw_ns(CLOCK_REALTIME) + current_offset_ns();
}

int clock_gettime(clockid_t clock, struct timespec *ts)
{
    if (clock != CLOCK_REALTIME && clock != CLOCK_REALTIME_COARSE)
        return (int)syscall(SYS_clock_gettime, clock, ts);
    long long ns = shifted_realtime_ns();
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
    return 0;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz; /* glibc declares tv non-null; the time zone argument is obsolete */
    long long ns = shifted_realtime_ns();
    tv->tv_sec = ns / 1000000000LL;
    tv->tv_usec = ns % 1000000000LL / 1000;
    return 0;
}

time_t time(time_t *out)
{
    time_t now = shifted_realtime_ns() / 1000000000LL;
    if (out != NULL)
        *out = now;
    return now;
}
