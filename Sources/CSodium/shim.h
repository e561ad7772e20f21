#ifndef QUORUMCOIN_CSODIUM_SHIM_H
#define QUORUMCOIN_CSODIUM_SHIM_H
#include <sodium.h>
#endif
