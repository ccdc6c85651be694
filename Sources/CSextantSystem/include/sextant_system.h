// Linux calls Swift's Glibc module does not expose (GNU extensions, syscalls).
#ifndef SEXTANT_SYSTEM_H
#define SEXTANT_SYSTEM_H

#ifdef __cplusplus
extern "C" {
#endif

/// An eventfd (close-on-exec); -errno on failure.
int sx_eventfd(void);
/// Names the calling thread (visible in top -H, perf and crash dumps).
void sx_set_thread_name(const char *name);
/// Sets the calling thread's nice value (Linux schedules threads individually).
int sx_set_thread_niceness(int niceness);

#ifdef __cplusplus
}
#endif

#endif
