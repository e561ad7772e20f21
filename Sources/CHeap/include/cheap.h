#ifndef QUORUMCOIN_CHEAP_H
#define QUORUMCOIN_CHEAP_H
#include <stddef.h>

/// Bytes the process has allocated with malloc and not freed (glibc's mallinfo2().uordblks,
/// summed over arenas). Used by `quorumsim run --memory-breakdown` and `quorumsim bench`.
size_t quorumcoin_heap_in_use(void);

/// Keeps memory glibc's malloc frees mapped: no trimming of a heap's free top back to the kernel,
/// and 64 MiB of padding on every heap growth (a partitioned run's threads allocate from arenas
/// of their own, whose churn otherwise faults and zeroes the same pages again and again).
void quorumcoin_keep_freed_memory(void);

/// Asks the CPU to start loading the cache line at `address` (a hint: no fault, no effect on
/// results). The simulator issues it for the next event's node while the current one runs.
static inline void quorumcoin_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }

#endif
