// A narrow io_uring API for the write-ahead log: queue "write these bytes at
// this offset, then fdatasync" as one linked pair, submit many at once, reap
// completions in batches. liburing's structs and macros stay on the C side.
#ifndef SEXTANT_IO_H
#define SEXTANT_IO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sx_ring sx_ring;

/// Creates a ring with `entries` submission slots; NULL with *error = -errno
/// when io_uring is unavailable (old kernel, seccomp, io_uring_disabled).
sx_ring *sx_ring_create(unsigned entries, int *error);
void sx_ring_destroy(sx_ring *ring);

/// Queues write(fd, buffer, length, offset) linked to fdatasync(fd). The write's
/// completion carries `tag`, the fdatasync's `tag | 1` (tags must be even).
/// Returns 0, or -EBUSY when the submission queue is full.
int sx_ring_queue_write_sync(sx_ring *ring, int fd, const void *buffer, unsigned length, uint64_t offset,
                             uint64_t tag);
/// Queues a read (used on an eventfd so that other threads can wake the reaper).
int sx_ring_queue_read(sx_ring *ring, int fd, void *buffer, unsigned length, uint64_t tag);
/// Submits everything queued; returns the number submitted or -errno.
int sx_ring_submit(sx_ring *ring);
/// Waits for at least one completion, then reaps up to `capacity` of them.
/// Returns how many were reaped, or -errno.
int sx_ring_reap(sx_ring *ring, uint64_t *tags, int32_t *results, unsigned capacity);

#ifdef __cplusplus
}
#endif

/// copy_file_range(2), which Glibc's Swift module does not expose: copies in
/// the kernel (page cache to page cache), advancing both offsets. Returns the
/// bytes moved, 0 at the input's end, or a negative errno.
int64_t sx_copy_file_range(int input, int64_t *inputOffset, int output, int64_t *outputOffset, size_t length);

#endif
