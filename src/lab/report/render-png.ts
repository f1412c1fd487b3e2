/**
 * SVG to PNG with resvg (@resvg/resvg-js: the Rust renderer, prebuilt binary inside the npm
 * package). Text needs a font file: DejaVu Sans from fonts-dejavu-core (installed by
 * scripts/ensure-system-deps.sh) when present, else whatever the system has.
 */
import { existsSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import { FONT_FAMILY } from './svg.js';

const FONT_FILES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans-Bold.ttf',
];

let fontFiles: string[] | undefined;

/** The DejaVu files found on this machine (empty: text falls back to the system's fonts). */
export function reportFontFiles(): string[] {
  fontFiles ??= FONT_FILES.filter((f) => existsSync(f));
  return fontFiles;
}

/** Renders an SVG document to PNG bytes at its own size. */
export function renderPng(svg: string): Buffer {
  const files = reportFontFiles();
  const r = new Resvg(svg, {
    background: '#FFFFFF',
    font: files.length
      ? { loadSystemFonts: false, fontFiles: files, defaultFontFamily: FONT_FAMILY }
      : { loadSystemFonts: true, defaultFontFamily: FONT_FAMILY },
  });
  return r.render().asPng();
}
