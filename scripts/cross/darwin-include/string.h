/* Stand-in for the macOS SDK's string.h (the few functions ring's C uses); see
 * TargetConditionals.h. */
#ifndef CORDON_STRING_STUB
#define CORDON_STRING_STUB
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
#endif
