#ifndef CLOAK_CMALLOC_SHIM_H
#define CLOAK_CMALLOC_SHIM_H
// glibc's allocator controls (mallopt), which the Glibc module does not export. Elsewhere
// (macOS, musl) the module is empty and ProcessTuning does nothing.
#if defined(__GLIBC__) || (defined(__linux__) && __has_include(<malloc.h>))
#include <malloc.h>
#endif
#endif
