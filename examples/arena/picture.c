/* picture.c - writes an RGB picture as a binary PPM (P6) or a PNG, with no
 * library: the PNG's pixels are deflated by a small fixed-Huffman encoder
 * whose only matches repeat the previous pixel (distance 3), which is what
 * an arena picture is made of (long runs of black, runs of one colour).
 *
 * PNG layout (RFC 2083 / ISO 15948): the signature, IHDR (8-bit RGB, no
 * interlace), one IDAT holding a zlib stream (RFC 1950) of the scanlines,
 * each preceded by filter byte 0, compressed as one final fixed-Huffman
 * block (RFC 1951, 3.2.6), and IEND. Every chunk ends with the CRC-32 of
 * its type and data; the zlib stream ends with the Adler-32 of the raw
 * bytes. */
#include "picture.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- checksums ---------------------------------------------------------- */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

/* ---- a growing byte buffer with a bit writer (LSB first, as deflate) ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    uint32_t bits; /* pending bits, low first */
    int nbits;
    int failed;
} buf;

static void put_byte(buf *b, uint8_t v)
{
    if (b->len == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    b->p[b->len++] = v;
}

static void put_be32(buf *b, uint32_t v)
{
    for (int s = 24; s >= 0; s -= 8)
        put_byte(b, (uint8_t)(v >> s));
}

/* n plain bits of v, low bit first (deflate's extra bits and headers). */
static void put_bits(buf *b, uint32_t v, int n)
{
    b->bits |= v << b->nbits;
    b->nbits += n;
    while (b->nbits >= 8) {
        put_byte(b, (uint8_t)b->bits);
        b->bits >>= 8;
        b->nbits -= 8;
    }
}

/* A Huffman code of n bits: deflate sends codes high bit first. */
static void put_code(buf *b, uint32_t code, int n)
{
    uint32_t r = 0;
    for (int i = 0; i < n; i++)
        r |= ((code >> i) & 1) << (n - 1 - i);
    put_bits(b, r, n);
}

static void flush_bits(buf *b)
{
    if (b->nbits > 0)
        put_bits(b, 0, 8 - b->nbits);
}

/* ---- deflate, fixed Huffman codes (RFC 1951, 3.2.6) ---------------------- */

static void put_literal(buf *b, unsigned v) /* 0..287 */
{
    if (v < 144)
        put_code(b, 0x30 + v, 8);
    else if (v < 256)
        put_code(b, 0x190 + (v - 144), 9);
    else if (v < 280)
        put_code(b, v - 256, 7);
    else
        put_code(b, 0xc0 + (v - 280), 8);
}

/* A match of len (3..258) bytes, distance 3. */
static void put_match(buf *b, unsigned len)
{
    static const uint16_t base[29] = {3,  4,  5,  6,  7,  8,  9,  10,  11,  13,
                                      15, 17, 19, 23, 27, 31, 35, 43,  51,  59,
                                      67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const uint8_t extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    int c = 28;
    while (base[c] > len)
        c--;
    put_literal(b, 257 + (unsigned)c);
    put_bits(b, len - base[c], extra[c]);
    put_code(b, 2, 5); /* distance code 2: distance 3, no extra bits */
}

static void deflate_fixed(buf *b, const uint8_t *raw, size_t n)
{
    put_bits(b, 1, 1); /* BFINAL */
    put_bits(b, 1, 2); /* BTYPE 01: fixed codes */
    size_t i = 0;
    while (i < n) {
        size_t run = 0;
        if (i >= 3)
            while (run < 258 && i + run < n && raw[i + run] == raw[i + run - 3])
                run++;
        if (run >= 3) {
            put_match(b, (unsigned)run);
            i += run;
        } else {
            put_literal(b, raw[i]);
            i++;
        }
    }
    put_literal(b, 256); /* end of block */
    flush_bits(b);
}

/* ---- PNG ------------------------------------------------------------------- */

static void put_chunk(buf *out, const char type[4], const uint8_t *data, size_t n)
{
    put_be32(out, (uint32_t)n);
    uint32_t crc = crc_update(0xffffffffu, (const uint8_t *)type, 4);
    for (int i = 0; i < 4; i++)
        put_byte(out, (uint8_t)type[i]);
    for (size_t i = 0; i < n; i++)
        put_byte(out, data[i]);
    put_be32(out, crc_update(crc, data, n) ^ 0xffffffffu);
}

static int encode_png(buf *out, const uint8_t *rgb, size_t w, size_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (w == 0 || h == 0 || w > 0x7fffffff / 3 || h > 0x7fffffff)
        return -1;
    crc_init();
    for (int i = 0; i < 8; i++)
        put_byte(out, sig[i]);

    uint8_t ihdr[13] = {0};
    for (int i = 0; i < 4; i++) {
        ihdr[i] = (uint8_t)(w >> (24 - 8 * i));
        ihdr[4 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    ihdr[8] = 8; /* bit depth */
    ihdr[9] = 2; /* colour type: RGB */
    put_chunk(out, "IHDR", ihdr, sizeof ihdr);

    /* The scanlines as the filter sees them: a 0 (no filter) before each. */
    size_t stride = w * 3, rawlen = h * (stride + 1);
    uint8_t *raw = malloc(rawlen);
    if (!raw)
        return -1;
    for (size_t y = 0; y < h; y++) {
        raw[y * (stride + 1)] = 0;
        memcpy(raw + y * (stride + 1) + 1, rgb + y * stride, stride);
    }
    buf z = {0};
    put_byte(&z, 0x78); /* deflate, 32 KiB window */
    put_byte(&z, 0x01); /* no dictionary, fastest; 0x7801 % 31 == 0 */
    deflate_fixed(&z, raw, rawlen);
    uint32_t s1 = 1, s2 = 0; /* Adler-32 of the raw bytes */
    for (size_t i = 0; i < rawlen; i++) {
        s1 = (s1 + raw[i]) % 65521;
        s2 = (s2 + s1) % 65521;
    }
    put_be32(&z, (s2 << 16) | s1);
    free(raw);
    if (!z.failed)
        put_chunk(out, "IDAT", z.p, z.len);
    int failed = z.failed;
    free(z.p);
    put_chunk(out, "IEND", NULL, 0);
    return failed || out->failed ? -1 : 0;
}

/* ---- the public part ------------------------------------------------------- */

int picture_is_png(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && strcasecmp(path + n - 4, ".png") == 0;
}

int picture_write(FILE *f, int png, const uint8_t *rgb, size_t w, size_t h)
{
    if (!png) {
        size_t bytes = w * h * 3;
        if (fprintf(f, "P6\n%zu %zu\n255\n", w, h) < 0 || fwrite(rgb, 1, bytes, f) != bytes)
            return -1;
        return 0;
    }
    buf out = {0};
    int rc = encode_png(&out, rgb, w, h);
    if (rc == 0 && fwrite(out.p, 1, out.len, f) != out.len)
        rc = -1;
    free(out.p);
    return rc;
}
