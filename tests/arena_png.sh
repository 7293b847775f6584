#!/usr/bin/env bash
# arena_png.sh ARENA ARGS... - the arena's PNG snapshot shows the same
# pixels as its PPM one: runs the (deterministic, one-worker) world twice
# with the same ARGS, once with --snapshot w.ppm and once with w.png, then
# decodes the PNG independently (Python's zlib and struct: the chunk CRCs,
# IHDR, the zlib stream with its Adler-32, filter bytes) and compares its
# pixels with the PPM's byte for byte. Exit 77 (skipped) without python3.
set -euo pipefail
arena=$1
shift
command -v python3 >/dev/null || { echo "arena_png: no python3 to decode the PNG; skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$arena" --quiet "$@" --snapshot "$tmp/w.ppm" >/dev/null
"$arena" --quiet "$@" --snapshot "$tmp/w.png" >/dev/null
python3 - "$tmp/w.ppm" "$tmp/w.png" <<'PY'
import struct, sys, zlib
ppm = open(sys.argv[1], 'rb').read()
png = open(sys.argv[2], 'rb').read()
magic, w, h, maxv, pixels = ppm.split(maxsplit=4)
assert magic == b'P6' and maxv == b'255', 'bad PPM header'
w, h = int(w), int(h)
assert len(pixels) == w * h * 3, 'PPM size'
assert png[:8] == b'\x89PNG\r\n\x1a\n', 'PNG signature'
pos, chunks = 8, []
while pos < len(png):
    n, = struct.unpack('>I', png[pos:pos + 4])
    kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]
    crc, = struct.unpack('>I', png[pos + 8 + n:pos + 12 + n])
    assert zlib.crc32(kind + data) == crc, 'CRC of chunk %r' % kind
    chunks.append((kind, data))
    pos += 12 + n
kinds = [k for k, _ in chunks]
assert kinds[0] == b'IHDR' and kinds[-1] == b'IEND', kinds
pw, ph, depth, ctype, comp, filt, lace = struct.unpack('>IIBBBBB', chunks[0][1])
assert (pw, ph, depth, ctype, comp, filt, lace) == (w, h, 8, 2, 0, 0, 0), 'IHDR'
raw = zlib.decompress(b''.join(d for k, d in chunks if k == b'IDAT'))
stride = w * 3
assert len(raw) == h * (stride + 1), 'inflated size'
rows = []
for y in range(h):
    line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
    assert line[0] == 0, 'filter type of row %d' % y
    rows.append(line[1:])
assert b''.join(rows) == pixels, 'PNG pixels differ from the PPM'
lit = sum(1 for i in range(0, len(pixels), 3) if pixels[i:i + 3] != b'\0\0\0')
assert lit > 0, 'the picture is black'
print('arena_png: %dx%d PNG of %d bytes (PPM %d) decodes to the PPM\'s pixels; %d actors lit'
      % (w, h, len(png), len(ppm), lit))
PY
