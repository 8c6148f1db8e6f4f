#ifndef CLOAK_CSODIUM_SHIM_H
#define CLOAK_CSODIUM_SHIM_H
#include <sodium.h>
#endif
