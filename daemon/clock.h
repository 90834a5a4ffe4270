/* clock: the daemon's one clock. Monotonic milliseconds for every timer,
 * deadline and duration; wall-clock milliseconds only where a value must
 * grow across restarts (the incarnation). The overlay cores never read it:
 * they get the time from their environment. */
#ifndef PARTISAN_CLOCK_H
#define PARTISAN_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline uint64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
