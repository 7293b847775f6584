/* testclock.h - TEST HOOK, private: a virtual clock for deterministic
 * timeouts in tests/model (one worker only). Not part of the API. */
#ifndef SL_TESTCLOCK_H
#define SL_TESTCLOCK_H

#include <stdbool.h>

/* on: sl_now_ms() and every deadline read a virtual time (it starts at
 * 1 s) that moves only when the worker has nothing to run: instead of
 * sleeping in epoll until the next deadline, it jumps to that deadline.
 * off: the monotonic clock again. Call it with no runtime running. */
void sl__test_virtual_clock(bool on);

#endif /* SL_TESTCLOCK_H */
