/* bcryptprimitives.dll for Wine 8, which does not ship one.
 *
 * Rust's standard library (1.78 and later) imports ProcessPrng from this DLL to seed its
 * hash maps; without it every Rust program under Wine 8 exits with code 53 before main.
 * Windows 10 and later have the real DLL: this file is built and installed only into the
 * Wine prefix that scripts/test_windows.sh uses, never shipped.
 */
#include <windows.h>
#include <bcrypt.h>

/* Fills `data` with `len` random bytes from the system's preferred generator. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
