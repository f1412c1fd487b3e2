/**
 * Writes `text` as UTF-8 into `bytes` from `at` and returns where it ends; `bytes` must have room
 * for 3 bytes per UTF-16 unit of `text`. ASCII, the usual SIP text, is copied a character at a
 * time (no native call); from the first other character on the runtime encodes the rest, lone
 * surrogates as U+FFFD, as node:crypto encodes string inputs. For the hashes in util/md5.ts and
 * util/hmac-sha256.ts.
 */
export function writeUtf8(text: string, bytes: Uint8Array, at: number): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return at + Buffer.from(text.slice(i), 'utf8').copy(bytes, at);
    bytes[at++] = c;
  }
  return at;
}
