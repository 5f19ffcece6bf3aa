/* Stand-in for the macOS SDK's assert.h; see TargetConditionals.h. */
#ifndef CORDON_ASSERT_STUB
#define CORDON_ASSERT_STUB
#define assert(x) ((void)0)
#endif
