/** Outcome of parsing or validating peer input: parsers return this instead of throwing. */
export type Result<T, E = string> = { ok: true; value: T } | { ok: false; reason: E; code: string };

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function fail(code: string, reason: string): { ok: false; reason: string; code: string } {
  return { ok: false, reason, code };
}
