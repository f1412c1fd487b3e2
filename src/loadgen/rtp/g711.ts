/** G.711 encoders (ITU-T G.711) and the generated test tone. */

const BIAS = 0x84;
const CLIP = 32635;

/** 16-bit linear PCM sample -> mu-law byte. */
export function linearToUlaw(sample: number): number {
  let s = Math.max(-32768, Math.min(32767, Math.round(sample)));
  const sign = s < 0 ? 0x80 : 0;
  if (s < 0) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/** 16-bit linear PCM sample -> A-law byte. */
export function linearToAlaw(sample: number): number {
  let s = Math.max(-32768, Math.min(32767, Math.round(sample))) >> 3;
  let mask: number;
  if (s >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    s = -s - 1;
  }
  const segEnds = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
  let seg = 0;
  while (seg < 8 && s > segEnds[seg]!) seg++;
  if (seg >= 8) return 0x7f ^ mask;
  let aval = seg << 4;
  aval |= seg < 2 ? (s >> 1) & 0x0f : (s >> seg) & 0x0f;
  return aval ^ mask;
}

/** Samples per 20 ms G.711 frame at 8 kHz. */
export const FRAME_SAMPLES = 160;

/**
 * One second (8000 samples, 50 frames) of a 440 Hz sine in mu-law: 440 whole periods per second,
 * so the frames loop without a click.
 */
export function generateTone(freqHz = 440, amplitude = 8000): Buffer {
  const out = Buffer.alloc(8000);
  for (let i = 0; i < 8000; i++) out[i] = linearToUlaw(amplitude * Math.sin((2 * Math.PI * freqHz * i) / 8000));
  return out;
}
