/**
 * A minimal PNG reader for the report tests: checks the signature and IHDR, inflates IDAT and
 * undoes the row filters (RFC 2083 §6) of 8-bit RGB/RGBA images, so a test can tell a plot from a
 * blank image.
 */
import { inflateSync } from 'node:zlib';

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colourType: number;
}

/*
 * The file starts with the signature and the IHDR chunk (offsets in bytes):
 *
 *   0          8        12       16      20       24          25            26
 *   +----------+--------+--------+-------+--------+-----------+-------------+--
 *   | 89 PNG.. | length | "IHDR" | width | height | bit depth | colour type | ...
 *   +----------+--------+--------+-------+--------+-----------+-------------+--
 */
export function readPngHeader(buf: Buffer): PngHeader | null {
  if (buf.length < 33 || !buf.subarray(0, 8).equals(PNG_SIGNATURE)) return null;
  if (buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20), bitDepth: buf[24], colourType: buf[25] };
}

/** Decodes an 8-bit RGB (2) or RGBA (6) PNG to its raw pixels, `channels` bytes per pixel. */
export function decodePng(buf: Buffer): { header: PngHeader; channels: number; pixels: Buffer } {
  const header = readPngHeader(buf);
  if (!header) throw new Error('not a PNG');
  if (header.bitDepth !== 8 || (header.colourType !== 2 && header.colourType !== 6)) throw new Error(`unsupported PNG ${header.bitDepth}/${header.colourType}`);
  const channels = header.colourType === 6 ? 4 : 3;
  const idat: Buffer[] = [];
  for (let off = 8; off + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    if (type === 'IDAT') idat.push(buf.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = header.width * channels;
  const pixels = Buffer.alloc(stride * header.height);
  for (let y = 0; y < header.height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[y * stride + x - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] : 0;
      let pred = 0;
      if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      pixels[y * stride + x] = (line[x] + pred) & 0xff;
    }
  }
  return { header, channels, pixels };
}

/** Share of pixels that are not (near) white, and the variance of their grey level. */
export function inkStats(png: Buffer): { inkShare: number; greyVariance: number; colours: number } {
  const { header, channels, pixels } = decodePng(png);
  const n = header.width * header.height;
  let ink = 0;
  let sum = 0;
  let sumSq = 0;
  const colours = new Set<number>();
  for (let i = 0; i < n; i++) {
    const r = pixels[i * channels];
    const g = pixels[i * channels + 1];
    const b = pixels[i * channels + 2];
    const grey = (r + g + b) / 3;
    if (grey < 240) ink++;
    sum += grey;
    sumSq += grey * grey;
    if (colours.size < 5000) colours.add((r << 16) | (g << 8) | b);
  }
  const mean = sum / n;
  return { inkShare: ink / n, greyVariance: sumSq / n - mean * mean, colours: colours.size };
}
