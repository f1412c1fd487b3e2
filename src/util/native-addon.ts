/**
 * Builds and loads the project's small N-API addons (the relay's forwarder, the SIP transport's
 * UDP path): compiled on first use with the system C++ compiler against Node's own headers and
 * cached under node_modules/.cache/tandem-native/ keyed by source hash, Node ABI, architecture
 * and flags (TANDEM_NATIVE_CACHE_DIR overrides the place; CXX the compiler, default g++). Never
 * throws: without a compiler or headers the caller gets a failure and uses its JavaScript path.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fail, ok, type Result } from './result.js';

const BUILD_TIMEOUT_MS = 120_000;

/** Node's C headers: the first directory that has node_api.h. */
function nodeIncludeDir(): string | undefined {
  const vars = (process.config as { variables?: Record<string, unknown> }).variables ?? {};
  const candidates: string[] = [];
  if (typeof vars['nodedir'] === 'string') candidates.push(join(vars['nodedir'], 'include/node'));
  if (process.env['npm_config_nodedir']) candidates.push(join(process.env['npm_config_nodedir'], 'include/node'));
  candidates.push(join(dirname(process.execPath), '../include/node'));
  if (typeof vars['node_prefix'] === 'string') candidates.push(join(vars['node_prefix'], 'include/node'));
  const home = process.env['HOME'];
  if (home) {
    const v = process.versions.node;
    candidates.push(join(home, '.cache/node-gyp', v, 'include/node'), join(home, '.node-gyp', v, 'include/node'));
  }
  candidates.push('/usr/include/node', '/usr/local/include/node');
  return candidates.find((d) => existsSync(join(d, 'node_api.h')));
}

/** Where built addons are kept: TANDEM_NATIVE_CACHE_DIR, else node_modules/.cache/tandem-native of the package. */
function cacheRoot(from: string): string {
  const override = process.env['TANDEM_NATIVE_CACHE_DIR'];
  if (override) return override;
  let dir = from;
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'node_modules'))) return join(dir, 'node_modules/.cache/tandem-native');
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(tmpdir(), 'tandem-native');
}

export interface AddonSpec {
  /** Module and file name stem, e.g. `forwarder`. */
  name: string;
  /** Candidate paths of the source, the first that exists is built (compiled output runs from dist/, the source sits in src/). */
  sources: string[];
  /** Directory the cache is looked up from (the caller's own). */
  from: string;
  /** Extra compiler flags (-pthread, ...). */
  flags?: string[];
  /** Exports the caller needs, checked after loading. */
  exports: string[];
}

/** Compiles (cached on disk) and loads an addon. */
export async function buildAddon<T>(spec: AddonSpec): Promise<Result<T>> {
  if (process.platform !== 'linux') return fail('NATIVE_ERR_PLATFORM', `native ${spec.name} needs Linux, not ${process.platform}`);
  const source = spec.sources.find((p) => existsSync(p));
  if (!source) return fail('NATIVE_ERR_SOURCE', `${spec.name}.cc not found`);
  const include = nodeIncludeDir();
  if (!include) return fail('NATIVE_ERR_HEADERS', "Node's C headers (node_api.h) not found");
  const cxx = process.env['CXX'] || 'g++';
  const flags = ['-O2', '-std=c++17', '-shared', '-fPIC', ...(spec.flags ?? []), `-DNODE_GYP_MODULE_NAME=tandem_${spec.name.replace(/\W/g, '_')}`, '-DNAPI_VERSION=8', `-I${include}`];
  const code = readFileSync(source);
  const key = createHash('sha256')
    .update(code)
    .update(JSON.stringify([process.versions.node, process.versions.modules, process.arch, cxx, flags]))
    .digest('hex')
    .slice(0, 16);
  const dir = cacheRoot(spec.from);
  const out = join(dir, `${spec.name}-${key}.node`);
  if (!existsSync(out)) {
    mkdirSync(dir, { recursive: true });
    // Parallel processes may build at once: each writes its own file, the rename is atomic.
    const tmp = `${out}.${process.pid}.tmp`;
    const res = await new Promise<Result<true>>((resolve) => {
      execFile(cxx, [...flags, source, '-o', tmp], { timeout: BUILD_TIMEOUT_MS }, (err, _stdout, stderr) => {
        if (err) resolve(fail('NATIVE_ERR_BUILD', `${cxx} failed: ${String(stderr || err.message).slice(0, 500)}`));
        else resolve(ok(true));
      });
    });
    if (!res.ok) {
      rmSync(tmp, { force: true });
      return res;
    }
    renameSync(tmp, out);
  }
  try {
    const mod = createRequire(import.meta.url)(out) as Record<string, unknown>;
    const missing = spec.exports.filter((e) => mod[e] === undefined);
    if (missing.length > 0) return fail('NATIVE_ERR_LOAD', `native ${spec.name} lacks ${missing.join(', ')}`);
    return ok(mod as T);
  } catch (err) {
    return fail('NATIVE_ERR_LOAD', (err as Error).message);
  }
}
