// Linux calls Swift's Glibc module does not expose (GNU extensions, syscalls).
#ifndef SEXTANT_SYSTEM_H
#define SEXTANT_SYSTEM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An eventfd (close-on-exec); -errno on failure.
int sx_eventfd(void);
/// Names the calling thread (visible in top -H, perf and crash dumps).
void sx_set_thread_name(const char *name);
/// Sets the calling thread's nice value (Linux schedules threads individually).
int sx_set_thread_niceness(int niceness);
/// Moves the calling thread to SCHED_IDLE: it runs only on a core no other
/// thread wants, and any waking thread preempts it at once. 0 or -errno.
int sx_set_thread_idle_policy(void);
/// The calling thread's scheduling policy (SCHED_OTHER, SCHED_IDLE, ...) and
/// nice value, and their restoration: for work that borrows a shared thread.
int sx_get_thread_scheduling(int *policy, int *niceness);
int sx_set_thread_scheduling(int policy, int niceness);

/// Asks the scheduler for a short time slice (EEVDF's per-task slice, Linux
/// 6.12 and later; 100 µs to 100 ms): a thread that sleeps and wakes often, like
/// an event loop serving queries, then preempts batch work on wake-up instead of
/// waiting out that work's slice. Keeps the thread's nice value. 0 or -errno
/// (EINVAL on older kernels, where the call changes nothing).
int sx_set_thread_slice(uint64_t nanoseconds);

/// Sets the calling thread's timer slack (how late the kernel may end its
/// sleeps to batch wake-ups; 50 µs by default), so that a thread that pauses
/// for tens of microseconds at a time is not held off the CPU twice as long.
/// 0 or -errno.
int sx_set_thread_timer_slack(unsigned long nanoseconds);

#ifdef __cplusplus
}
#endif

#endif
