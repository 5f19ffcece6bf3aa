/* Stand-in for Windows' bcryptprimitives.dll, for the Wine smoke test only
 * (scripts/wine-smoke builds it with mingw-w64 next to a copy of cordon.exe).
 *
 * Rust's standard library (1.78+) imports ProcessPrng from bcryptprimitives.dll, which
 * every supported Windows (10 and later) has but Wine 8.0 (Debian 12's wine64) does not:
 * without it the loader refuses cordon.exe before main. This forwards to RtlGenRandom
 * (advapi32's SystemFunction036), which Wine implements with the host's random source.
 * It is never shipped: the Windows zip holds cordon.exe alone. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
