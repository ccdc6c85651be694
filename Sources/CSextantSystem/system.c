#define _GNU_SOURCE
#include "sextant_system.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int sx_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

void sx_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

int sx_set_thread_niceness(int niceness) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), niceness) == 0 ? 0 : -errno;
}

int sx_get_thread_scheduling(int *policy, int *niceness) {
    pid_t thread = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int current = sched_getscheduler(thread);
    if (current < 0) return -errno;
    int value = getpriority(PRIO_PROCESS, (id_t)thread);
    if (errno != 0) return -errno;
    *policy = current;
    *niceness = value;
    return 0;
}

int sx_set_thread_scheduling(int policy, int niceness) {
    pid_t thread = (pid_t)syscall(SYS_gettid);
    struct sched_param parameters = {0};
    if (sched_setscheduler(thread, policy, &parameters) != 0) return -errno;
    return setpriority(PRIO_PROCESS, (id_t)thread, niceness) == 0 ? 0 : -errno;
}

int sx_set_thread_idle_policy(void) {
    struct sched_param parameters = {0};
    return sched_setscheduler((pid_t)syscall(SYS_gettid), SCHED_IDLE, &parameters) == 0 ? 0 : -errno;
}


// sched_setattr has no glibc wrapper. Layout: include/uapi/linux/sched/types.h.
struct sx_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int sx_set_thread_slice(uint64_t nanoseconds) {
#ifdef SYS_sched_setattr
    errno = 0;
    int niceness = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (errno != 0) return -errno;
    struct sx_sched_attr attributes = {0};
    attributes.size = sizeof attributes;
    attributes.sched_policy = 0;  // SCHED_OTHER, keeping the thread's nice value
    attributes.sched_nice = niceness;
    attributes.sched_runtime = nanoseconds;
    return syscall(SYS_sched_setattr, 0, &attributes, 0) == 0 ? 0 : -errno;
#else
    (void)nanoseconds;
    return -ENOSYS;
#endif
}

int sx_set_thread_timer_slack(unsigned long nanoseconds) {
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0) == 0 ? 0 : -errno;
}
