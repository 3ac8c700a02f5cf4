/* Checks smobject_load_prefix, from the header that smobject::c_header generates, against the
 * granule rule of docs/FORMAT.md: for every object length len < 40 and every prefix n <= len,
 * each atomic load it makes must be one of the object's granules (an 8-byte word at a multiple
 * of 8 below len & ~7, or the 4-, 2- and 1-byte pieces of the last len % 8 bytes, in that
 * order), so that no load overlaps a writer's store of another size; the loads must cover
 * bytes 0 .. n, and the copy must be those bytes with nothing written past them.
 * Prints "ok P" (P pairs checked) or the first violation, and exits 1 on one. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const unsigned char *base;
static size_t load_at[64], load_size[64];
static int loads;

static void record(const void *p, size_t size)
{
    if (loads < 64) {
        load_at[loads] = (size_t)((const unsigned char *)p - base);
        load_size[loads] = size;
    }
    loads++;
}

/* Every atomic load the header makes goes through record() (this test is single-threaded). */
#define __atomic_load_n(p, order) (record((p), sizeof *(p)), *(p))
#include "telemetry.h"

static int is_granule(size_t len, size_t at, size_t size)
{
    size_t words = len & ~(size_t)7, rest = len - words, o = words;
    if (size == 8)
        return at % 8 == 0 && at + 8 <= words;
    if (rest >= 4) {
        if (at == o && size == 4)
            return 1;
        o += 4;
        rest -= 4;
    }
    if (rest >= 2) {
        if (at == o && size == 2)
            return 1;
        o += 2;
        rest -= 2;
    }
    return rest == 1 && at == o && size == 1;
}

int main(void)
{
    uint64_t object[6];
    unsigned char copy[48];
    int pairs = 0;
    base = (const unsigned char *)object;
    for (size_t len = 0; len < 40; len++) {
        for (size_t n = 0; n <= len; n++) {
            unsigned char covered[48] = {0};
            for (size_t i = 0; i < sizeof object; i++)
                ((unsigned char *)object)[i] = (unsigned char)(i + 1);
            memset(copy, 0xEE, sizeof copy);
            loads = 0;
            smobject_load_prefix(copy, object, n, len);
            if (loads > 64) {
                printf("len=%zu n=%zu: %d loads\n", len, n, loads);
                return 1;
            }
            for (int k = 0; k < loads; k++) {
                if (!is_granule(len, load_at[k], load_size[k])) {
                    printf("len=%zu n=%zu: a %zu-byte load at offset %zu is not a granule\n", len,
                           n, load_size[k], load_at[k]);
                    return 1;
                }
                memset(covered + load_at[k], 1, load_size[k]);
            }
            for (size_t i = 0; i < n; i++) {
                if (!covered[i]) {
                    printf("len=%zu n=%zu: byte %zu was not loaded\n", len, n, i);
                    return 1;
                }
            }
            if (memcmp(copy, object, n) != 0) {
                printf("len=%zu n=%zu: the copy differs from the object\n", len, n);
                return 1;
            }
            for (size_t i = n; i < sizeof copy; i++) {
                if (copy[i] != 0xEE) {
                    printf("len=%zu n=%zu: byte %zu past the prefix was written\n", len, n, i);
                    return 1;
                }
            }
            pairs++;
        }
    }
    printf("ok %d\n", pairs);
    return 0;
}
