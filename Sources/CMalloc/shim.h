#ifndef CLOAK_CMALLOC_SHIM_H
#define CLOAK_CMALLOC_SHIM_H
// glibc's allocator controls (mallopt), which the Glibc module does not export.
#include <malloc.h>
#endif
