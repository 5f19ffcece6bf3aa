/* Minimal stand-in for the macOS SDK header, only so that ring's C sources compile for
 * `cargo check --target x86_64-apple-darwin` on Linux (no Apple SDK can be installed
 * here). Nothing built with it is ever linked or run. */
#ifndef CORDON_TARGET_CONDITIONALS_STUB
#define CORDON_TARGET_CONDITIONALS_STUB
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_TV 0
#define TARGET_OS_SIMULATOR 0
#endif
