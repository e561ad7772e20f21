#include "cheap.h"
#include <malloc.h>

size_t quorumcoin_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}

void quorumcoin_keep_freed_memory(void) {
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
    mallopt(M_TOP_PAD, 64 << 20);
}
