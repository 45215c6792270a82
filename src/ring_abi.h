/*
 * ring_abi.h - the kernel's io_uring ABI, vendored for ring.c (from
 * include/uapi/linux/io_uring.h): syscall numbers, setup, feature and
 * enter flags, mmap offsets, opcodes, and the shared structures (SQE, CQE,
 * ring offsets, params, getevents argument, probe), each checked by size.
 *
 * <linux/io_uring.h> is not included: build images carry old kernel
 * headers.  Macros keep the kernel's names behind #ifndef; what the kernel
 * declares as enum constants or structs gets a zm_ name instead.
 *
 * Layering: declarations only (no function, no state); includes the system
 * headers it checks against.  Included by ring.c only: nothing else in the
 * C core may speak io_uring.
 */
#ifndef ZMTP_RING_ABI_H
#define ZMTP_RING_ABI_H

#include <stdint.h>
#include <sys/syscall.h>

#ifndef __NR_io_uring_setup
#if defined(__alpha__)
#define __NR_io_uring_setup 535
#define __NR_io_uring_enter 536
#define __NR_io_uring_register 537
#elif defined(__mips__)
#define __NR_io_uring_setup (__NR_Linux + 425)
#define __NR_io_uring_enter (__NR_Linux + 426)
#define __NR_io_uring_register (__NR_Linux + 427)
#else
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif
#endif

#ifndef IORING_SETUP_CQSIZE
#define IORING_SETUP_CQSIZE (1U << 3) /* 5.5 */
#endif
#ifndef IORING_SETUP_CLAMP
#define IORING_SETUP_CLAMP (1U << 4) /* 5.6 */
#endif
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7) /* 5.18 */
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9) /* 5.19 */
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12) /* 6.0 */
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13) /* 6.1 */
#endif
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16) /* 6.6 */
#endif

#ifndef IORING_FEAT_SINGLE_MMAP
#define IORING_FEAT_SINGLE_MMAP (1U << 0)
#endif
#ifndef IORING_FEAT_NODROP
#define IORING_FEAT_NODROP (1U << 1)
#endif
#ifndef IORING_FEAT_FAST_POLL
#define IORING_FEAT_FAST_POLL (1U << 5)
#endif
#ifndef IORING_FEAT_EXT_ARG
#define IORING_FEAT_EXT_ARG (1U << 8)
#endif

#ifndef IORING_ENTER_GETEVENTS
#define IORING_ENTER_GETEVENTS (1U << 0)
#endif
#ifndef IORING_ENTER_EXT_ARG
#define IORING_ENTER_EXT_ARG (1U << 3)
#endif

#ifndef IORING_SQ_CQ_OVERFLOW
#define IORING_SQ_CQ_OVERFLOW (1U << 1)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif

#ifndef IORING_OFF_SQ_RING
#define IORING_OFF_SQ_RING 0ULL
#endif
#ifndef IORING_OFF_CQ_RING
#define IORING_OFF_CQ_RING 0x8000000ULL
#endif
#ifndef IORING_OFF_SQES
#define IORING_OFF_SQES 0x10000000ULL
#endif

#ifndef IO_URING_OP_SUPPORTED
#define IO_URING_OP_SUPPORTED (1U << 0)
#endif
#ifndef IORING_ASYNC_CANCEL_ALL
#define IORING_ASYNC_CANCEL_ALL (1U << 0) /* 5.19 */
#endif
#ifndef IORING_ASYNC_CANCEL_FD
#define IORING_ASYNC_CANCEL_FD (1U << 1) /* 5.19 */
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2) /* 5.19 */
#endif
#ifndef IORING_RECVSEND_POLL_FIRST
#define IORING_RECVSEND_POLL_FIRST (1U << 0) /* 5.19 */
#endif

/* enum io_uring_op and enum io_uring_register_op values */
enum {
    ZM_IORING_OP_NOP = 0,
    ZM_IORING_OP_POLL_ADD = 6,
    ZM_IORING_OP_ACCEPT = 13,
    ZM_IORING_OP_ASYNC_CANCEL = 14,
    ZM_IORING_OP_CONNECT = 16,
    ZM_IORING_OP_SEND = 26,
    ZM_IORING_OP_RECV = 27,
    ZM_IORING_REGISTER_PROBE = 8,
};

/* struct io_uring_sqe, with the unions reduced to the members used here */
struct zm_uring_sqe {
    uint8_t opcode;
    uint8_t flags;
    uint16_t ioprio;      /* RECV: IORING_RECVSEND_* */
    int32_t fd;
    uint64_t off;
    uint64_t addr;        /* RECV: buffer; ASYNC_CANCEL: user_data to match */
    uint32_t len;
    uint32_t op_flags;    /* poll32_events, msg_flags, cancel_flags, ... */
    uint64_t user_data;
    uint16_t buf_index;
    uint16_t personality;
    int32_t file_index;
    uint64_t addr3;
    uint64_t pad2;
};

struct zm_uring_cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};

struct zm_sqring_offsets {
    uint32_t head, tail, ring_mask, ring_entries, flags, dropped, array, resv1;
    uint64_t user_addr;
};

struct zm_cqring_offsets {
    uint32_t head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1;
    uint64_t user_addr;
};

struct zm_uring_params {
    uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle;
    uint32_t features, wq_fd, resv[3];
    struct zm_sqring_offsets sq_off;
    struct zm_cqring_offsets cq_off;
};

struct zm_uring_getevents_arg {
    uint64_t sigmask;
    uint32_t sigmask_sz;
    uint32_t min_wait_usec; /* "pad" before FEAT_MIN_TIMEOUT */
    uint64_t ts;            /* struct zm_kernel_timespec * */
};

struct zm_kernel_timespec {
    int64_t tv_sec;
    long long tv_nsec;
};

struct zm_uring_probe_op {
    uint8_t op;
    uint8_t resv;
    uint16_t flags; /* IO_URING_OP_SUPPORTED */
    uint32_t resv2;
};

#define ZM_PROBE_OPS 256
struct zm_uring_probe {
    uint8_t last_op;
    uint8_t ops_len;
    uint16_t resv;
    uint32_t resv2[3];
    struct zm_uring_probe_op ops[ZM_PROBE_OPS]; /* ops[] sized for the call */
};

_Static_assert(sizeof(struct zm_uring_sqe) == 64, "io_uring_sqe is 64 bytes");
_Static_assert(sizeof(struct zm_uring_cqe) == 16, "io_uring_cqe is 16 bytes");
_Static_assert(sizeof(struct zm_uring_params) == 120, "io_uring_params");
_Static_assert(sizeof(struct zm_uring_getevents_arg) == 24, "getevents_arg");
_Static_assert(sizeof(struct zm_kernel_timespec) == 16, "__kernel_timespec");
_Static_assert(sizeof(struct zm_uring_probe_op) == 8, "io_uring_probe_op");

#endif /* ZMTP_RING_ABI_H */
