#define _GNU_SOURCE
#include "sextant_io.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

struct sx_ring {
    struct io_uring ring;
};

sx_ring *sx_ring_create(unsigned entries, int *error) {
    sx_ring *r = calloc(1, sizeof *r);
    if (!r) {
        if (error) *error = -ENOMEM;
        return NULL;
    }
    int rc = io_uring_queue_init(entries, &r->ring, 0);
    if (rc < 0) {
        free(r);
        if (error) *error = rc;
        return NULL;
    }
    // The WAL needs WRITE and FSYNC; refuse a ring that cannot do both.
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r->ring);
    int ok = probe && io_uring_opcode_supported(probe, IORING_OP_WRITE) &&
             io_uring_opcode_supported(probe, IORING_OP_FSYNC) && io_uring_opcode_supported(probe, IORING_OP_READ);
    if (probe) io_uring_free_probe(probe);
    if (!ok) {
        io_uring_queue_exit(&r->ring);
        free(r);
        if (error) *error = -EOPNOTSUPP;
        return NULL;
    }
    if (error) *error = 0;
    return r;
}

void sx_ring_destroy(sx_ring *r) {
    if (!r) return;
    io_uring_queue_exit(&r->ring);
    free(r);
}

int sx_ring_queue_write_sync(sx_ring *r, int fd, const void *buffer, unsigned length, uint64_t offset, uint64_t tag) {
    if (io_uring_sq_space_left(&r->ring) < 2) return -EBUSY;
    struct io_uring_sqe *write = io_uring_get_sqe(&r->ring);
    struct io_uring_sqe *sync = io_uring_get_sqe(&r->ring);
    if (!write || !sync) return -EBUSY;
    io_uring_prep_write(write, fd, buffer, length, offset);
    write->flags |= IOSQE_IO_LINK;  // the fdatasync runs only after the write succeeded
    io_uring_sqe_set_data64(write, tag);
    io_uring_prep_fsync(sync, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sync, tag | 1u);
    return 0;
}

int sx_ring_queue_read(sx_ring *r, int fd, void *buffer, unsigned length, uint64_t tag) {
    struct io_uring_sqe *read = io_uring_get_sqe(&r->ring);
    if (!read) return -EBUSY;
    io_uring_prep_read(read, fd, buffer, length, 0);
    io_uring_sqe_set_data64(read, tag);
    return 0;
}

int sx_ring_submit(sx_ring *r) { return io_uring_submit(&r->ring); }

int sx_ring_reap(sx_ring *r, uint64_t *tags, int32_t *results, unsigned capacity) {
    struct io_uring_cqe *cqe = NULL;
    int rc;
    do {
        rc = io_uring_wait_cqe(&r->ring, &cqe);
    } while (rc == -EINTR);
    if (rc < 0) return rc;
    unsigned head, count = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        if (count == capacity) break;
        tags[count] = io_uring_cqe_get_data64(cqe);
        results[count] = cqe->res;
        count++;
    }
    io_uring_cq_advance(&r->ring, count);
    return (int)count;
}

#include <unistd.h>

int64_t sx_copy_file_range(int input, int64_t *inputOffset, int output, int64_t *outputOffset, size_t length) {
    loff_t in = (loff_t)*inputOffset, out = (loff_t)*outputOffset;
    ssize_t moved = copy_file_range(input, &in, output, &out, length, 0);
    if (moved < 0) return -errno;
    *inputOffset = (int64_t)in;
    *outputOffset = (int64_t)out;
    return (int64_t)moved;
}
