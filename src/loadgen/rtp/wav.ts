import { readFileSync } from 'node:fs';
import { fail, ok, type Result } from '../../util/result.js';
import { linearToUlaw } from './g711.js';

/** Audio ready to packetize: 8 kHz G.711 bytes and the RTP payload type (0 PCMU, 8 PCMA). */
export interface G711Audio {
  payloadType: 0 | 8;
  data: Buffer;
}

/**
 * Reads a RIFF/WAVE file: mu-law (format 7) or A-law (format 6) at 8 kHz mono is used as is;
 * 16-bit PCM (format 1) of any rate and channel count is mixed to mono, resampled to 8 kHz
 * (nearest sample) and encoded to mu-law.
 *
 *   "RIFF" size "WAVE" { chunk-id(4) chunk-size(4, LE) data }*
 *   fmt : format(2) channels(2) rate(4) byterate(4) align(2) bits(2)
 */
export function parseWav(buf: Buffer): Result<G711Audio> {
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WAVE') {
    return fail('LOAD_ERR_WAV', 'not a RIFF/WAVE file');
  }
  let off = 12;
  let fmt: { format: number; channels: number; rate: number; bits: number } | undefined;
  let data: Buffer | undefined;
  while (off + 8 <= buf.length) {
    const id = buf.toString('latin1', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    const body = buf.subarray(off + 8, Math.min(buf.length, off + 8 + size));
    if (id === 'fmt ' && body.length >= 16) {
      fmt = { format: body.readUInt16LE(0), channels: body.readUInt16LE(2), rate: body.readUInt32LE(4), bits: body.readUInt16LE(14) };
    } else if (id === 'data') data = body;
    off += 8 + size + (size & 1);
  }
  if (!fmt || !data) return fail('LOAD_ERR_WAV', 'WAV file lacks a fmt or data chunk');
  if (fmt.channels < 1) return fail('LOAD_ERR_WAV', 'WAV file has no channels');
  if ((fmt.format === 7 || fmt.format === 6) && fmt.rate === 8000 && fmt.channels === 1) {
    if (data.length < 160) return fail('LOAD_ERR_WAV', 'WAV file shorter than one 20 ms frame');
    return ok({ payloadType: fmt.format === 7 ? 0 : 8, data: Buffer.from(data) });
  }
  if (fmt.format !== 1 || fmt.bits !== 16) {
    return fail('LOAD_ERR_WAV', `unsupported WAV format ${fmt.format}/${fmt.bits} bit (use 16-bit PCM, or 8 kHz mono G.711)`);
  }
  const frameBytes = 2 * fmt.channels;
  const inFrames = Math.floor(data.length / frameBytes);
  const outLen = Math.floor((inFrames * 8000) / fmt.rate);
  if (outLen < 160) return fail('LOAD_ERR_WAV', 'WAV file shorter than one 20 ms frame');
  const out = Buffer.alloc(outLen);
  for (let i = 0; i < outLen; i++) {
    const src = Math.min(inFrames - 1, Math.floor((i * fmt.rate) / 8000));
    let sum = 0;
    for (let c = 0; c < fmt.channels; c++) sum += data.readInt16LE(src * frameBytes + c * 2);
    out[i] = linearToUlaw(sum / fmt.channels);
  }
  return ok({ payloadType: 0, data: out });
}

export function readWavFile(path: string): Result<G711Audio> {
  try {
    return parseWav(readFileSync(path));
  } catch (err) {
    return fail('LOAD_ERR_WAV', `cannot read ${path}: ${(err as Error).message}`);
  }
}
