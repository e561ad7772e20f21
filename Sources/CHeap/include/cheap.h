#ifndef QUORUMCOIN_CHEAP_H
#define QUORUMCOIN_CHEAP_H
#include <stddef.h>

/// Bytes the process has allocated with malloc and not freed (glibc's mallinfo2().uordblks,
/// summed over arenas). Used by `quorumsim run --memory-breakdown` and `quorumsim bench`.
size_t quorumcoin_heap_in_use(void);

#endif
