/* picture.h - the arena's picture writer: RGB pixels to a PPM or a PNG. */
#ifndef ARENA_PICTURE_H
#define ARENA_PICTURE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Whether path names a PNG (it ends in ".png", any case); else a PPM. */
int picture_is_png(const char *path);

/* Writes w x h pixels of rgb (3 bytes a pixel, rows top to bottom) to f as
 * a PNG (png != 0; 8-bit RGB, deflated with fixed Huffman codes) or a
 * binary PPM (P6). Returns 0, or -1 when out of memory or a write failed.
 * f is not closed. */
int picture_write(FILE *f, int png, const uint8_t *rgb, size_t w, size_t h);

#endif
