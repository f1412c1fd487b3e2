import { canonicalName, headerKey, isListHeader } from './header-names.js';
import { firstListComma, splitList, trimLws } from './header-values.js';

const HIGH_BYTES = /[\x80-\xff]/;
const NON_ASCII = /[^\x00-\x7f]/;
const FOLD = /[ \t]*\r?\n[ \t]+/g;

/**
 * One header line. A parsed line points into the latin1 text of the received header block
 * (`src`), so its raw bytes can be written back unchanged and its value string is only made
 * when first read. Lines added through the API have no `src` and are rendered `Name: value`.
 */
export class HeaderEntry {
  /** Name as written on the wire (or canonical spelling for added lines). */
  readonly name: string;
  /** Lower-case full name (compact forms expanded); interned for known headers. */
  readonly key: string;
  /** latin1 view of the received header block, undefined for added lines. */
  readonly src: string | undefined;
  /** Raw line [rs, re) including its line terminator and any folded continuation lines. */
  readonly rs: number;
  re: number;
  /** Value [vs, ve) inside src. */
  readonly vs: number;
  ve: number;
  folded: boolean;
  /** The source bytes are all ASCII: no UTF-8 decoding needed. */
  readonly ascii: boolean;
  #value: string | undefined;

  constructor(
    name: string,
    key: string,
    src: string | undefined,
    rs: number,
    re: number,
    vs: number,
    ve: number,
    value?: string,
    ascii = false,
  ) {
    this.name = name;
    this.key = key;
    this.src = src;
    this.rs = rs;
    this.re = re;
    this.vs = vs;
    this.ve = ve;
    this.folded = false;
    this.ascii = ascii;
    this.#value = value;
  }

  static create(name: string, value: string): HeaderEntry {
    return new HeaderEntry(canonicalName(name), headerKey(name), undefined, 0, 0, 0, 0, value.trim());
  }

  /** Header value: folding replaced by one space, UTF-8 decoded. */
  get value(): string {
    let v = this.#value;
    if (v === undefined) {
      v = this.src!.slice(this.vs, this.ve);
      if (this.folded) v = trimLws(v.replace(FOLD, ' '));
      if (!this.ascii && HIGH_BYTES.test(v)) v = Buffer.from(v, 'latin1').toString('utf8');
      this.#value = v;
    }
    return v;
  }

  /** The bytes of this line as a latin1 string (one char per byte), CRLF included. */
  rawLatin1(): string {
    if (this.src !== undefined) return this.src.slice(this.rs, this.re);
    const line = `${this.name}: ${this.value}\r\n`;
    return NON_ASCII.test(line) ? Buffer.from(line, 'utf8').toString('latin1') : line;
  }
}

const INDEX_FROM = 24;
const NONE: readonly HeaderEntry[] = Object.freeze([]);

/** Ordered header lines of a message. Names are matched case-insensitively, compact forms included. */
export class HeaderList {
  entries: HeaderEntry[];
  /** True once any line was added, removed or replaced. */
  modified = false;
  /** Incremented on every mutation (typed caches compare it). */
  modifications = 0;
  /** Mutations per header key (keys never mutated are absent). */
  #keyMods: Map<string, number> | undefined;

  constructor(entries: HeaderEntry[] = []) {
    this.entries = entries;
  }

  get length(): number {
    return this.entries.length;
  }

  /**
   * Mutation count of one header (lower-case full name): changes whenever a line with this key
   * is added, removed or replaced through this list's methods. Typed caches compare it, so a
   * change to one header leaves the parsed values of the others in place.
   */
  keyVersion(key: string): number {
    return this.#keyMods?.get(key) ?? 0;
  }

  #touch(key: string): void {
    this.modified = true;
    this.modifications++;
    const m = (this.#keyMods ??= new Map());
    m.set(key, (m.get(key) ?? 0) + 1);
  }

  first(key: string): HeaderEntry | undefined {
    const e = this.entries;
    if (e.length > INDEX_FROM) return this.#lookup(key)?.[0];
    for (let i = 0; i < e.length; i++) if (e[i]!.key === key) return e[i];
    return undefined;
  }

  /** Lines with this key, in order (do not modify the returned array). */
  all(key: string): readonly HeaderEntry[] {
    const e = this.entries;
    if (e.length > INDEX_FROM) return this.#lookup(key) ?? NONE;
    const out: HeaderEntry[] = [];
    for (let i = 0; i < e.length; i++) if (e[i]!.key === key) out.push(e[i]!);
    return out;
  }

  count(key: string): number {
    return this.all(key).length;
  }

  /** Line values of every line with this key, not split. */
  lines(key: string): string[] {
    return this.all(key).map((e) => e.value);
  }

  // Messages with many lines get a key -> lines index so that lookups stay O(1) and a peer
  // sending thousands of header lines cannot make each lookup a scan. Rebuilt after changes.
  #index: Map<string, HeaderEntry[]> | undefined;
  #indexOf: HeaderEntry[] | undefined;
  #indexLen = -1;
  #indexVersion = -1;

  #lookup(key: string): HeaderEntry[] | undefined {
    const e = this.entries;
    if (this.#index === undefined || this.#indexOf !== e || this.#indexLen !== e.length || this.#indexVersion !== this.modifications) {
      const index = new Map<string, HeaderEntry[]>();
      for (let i = 0; i < e.length; i++) {
        const entry = e[i]!;
        const list = index.get(entry.key);
        if (list === undefined) index.set(entry.key, [entry]);
        else list.push(entry);
      }
      this.#index = index;
      this.#indexOf = e;
      this.#indexLen = e.length;
      this.#indexVersion = this.modifications;
    }
    return this.#index.get(key);
  }

  /** Replaces one line by another (same position). */
  replace(old: HeaderEntry, entry: HeaderEntry): void {
    const i = this.entries.indexOf(old);
    if (i === -1) this.entries.push(entry);
    else this.entries[i] = entry;
    this.#touch(old.key);
    if (entry.key !== old.key) this.#touch(entry.key);
  }

  /** Adds a prepared line at the end. */
  push(entry: HeaderEntry): void {
    this.entries.push(entry);
    this.#touch(entry.key);
  }

  get(name: string): string | undefined {
    const key = headerKey(name);
    const e = this.first(key);
    if (e === undefined) return undefined;
    const v = e.value;
    if (isListHeader(key) && v.indexOf(',') !== -1) return splitList(v)[0];
    return v;
  }

  getAll(name: string): string[] {
    const key = headerKey(name);
    const list = isListHeader(key);
    const out: string[] = [];
    for (const e of this.all(key)) {
      if (list) {
        for (const v of splitList(e.value)) out.push(v);
      } else out.push(e.value);
    }
    return out;
  }

  has(name: string): boolean {
    return this.first(headerKey(name)) !== undefined;
  }

  /** Replaces every line of `name` by one line, placed where the first one was. */
  set(name: string, value: string): void {
    const key = headerKey(name);
    const entry = HeaderEntry.create(name, value);
    const out: HeaderEntry[] = [];
    let placed = false;
    for (const e of this.entries) {
      if (e.key !== key) out.push(e);
      else if (!placed) {
        out.push(entry);
        placed = true;
      }
    }
    if (!placed) out.push(entry);
    this.entries = out;
    this.#touch(key);
  }

  append(name: string, value: string): void {
    const entry = HeaderEntry.create(name, value);
    this.entries.push(entry);
    this.#touch(entry.key);
  }

  /** Adds a line above the first line of the same header (or at the top when there is none). */
  prepend(name: string, value: string): void {
    const key = headerKey(name);
    const idx = this.entries.findIndex((e) => e.key === key);
    this.entries.splice(idx === -1 ? 0 : idx, 0, HeaderEntry.create(name, value));
    this.#touch(key);
  }

  remove(name: string): void {
    const key = headerKey(name);
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => e.key !== key);
    if (this.entries.length !== before) this.#touch(key);
    else this.modifications++;
  }

  /** Removes and returns the first value (for list headers the first element of the first line). */
  removeFirst(name: string): string | undefined {
    const key = headerKey(name);
    const idx = this.entries.findIndex((e) => e.key === key);
    if (idx === -1) return undefined;
    const e = this.entries[idx]!;
    this.#touch(key);
    const v = e.value;
    if (isListHeader(key) && v.indexOf(',') !== -1) {
      // Common case: a well-formed list whose first element is cut off, the rest kept as written.
      const cut = firstListComma(v);
      if (cut !== -1) {
        const first = trimLws(v.slice(0, cut));
        const rest = trimLws(v.slice(cut + 1));
        if (first.length > 0 && rest.length > 0 && rest.charCodeAt(0) !== 44 && !/,\s*,|,\s*$/.test(rest)) {
          this.entries[idx] = new HeaderEntry(e.name, e.key, undefined, 0, 0, 0, 0, rest);
          return first;
        }
      }
      const parts = splitList(v);
      if (parts.length > 1) {
        this.entries[idx] = new HeaderEntry(e.name, e.key, undefined, 0, 0, 0, 0, parts.slice(1).join(', '));
        return parts[0];
      }
    }
    this.entries.splice(idx, 1);
    return v.trim();
  }

  clone(): HeaderList {
    const c = new HeaderList(this.entries.slice());
    c.modified = this.modified;
    return c;
  }
}
