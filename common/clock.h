/* common/clock.h - monotonic and wall time in convenient units. Thread-safe. */
#ifndef EM_CLOCK_H
#define EM_CLOCK_H
#include <stdint.h>
int64_t em_now_ms(void);     /* CLOCK_MONOTONIC, milliseconds */
double em_now_s(void);       /* CLOCK_MONOTONIC, seconds */
int64_t em_wall_ms(void);    /* CLOCK_REALTIME, ms since the epoch */
void em_sleep_ms(int64_t ms);
#endif
