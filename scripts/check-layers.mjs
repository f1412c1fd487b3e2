#!/usr/bin/env node
// Lint rule for ../STYLE.md's dependency direction: a lower layer never imports an upper one,
// and signalling and media never import each other (they talk over ng).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname, relative, resolve } from 'node:path';

const rank = { util: 0, sip: 1, sdp: 1, rtp: 1, ng: 1, state: 2, cluster: 2, signalling: 3, media: 3, admin: 4, loadgen: 4, lab: 5, cli: 6 };
const sipRank = { uri: 0, message: 1, transport: 2, transaction: 3, auth: 3, ua: 4 };
const src = resolve('src');
const problems = [];

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts')) check(p);
  }
}
function layerOf(file) {
  const parts = relative(src, file).split('/');
  return { top: parts[0], sub: parts[0] === 'sip' ? parts[1] : undefined };
}
function check(file) {
  const text = readFileSync(file, 'utf8');
  const from = layerOf(file);
  for (const m of text.matchAll(/(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
    const spec = m[1] ?? m[2];
    const target = resolve(dirname(file), spec);
    if (!target.startsWith(src)) continue;
    const to = layerOf(target);
    if (from.top === to.top) {
      if (from.top === 'sip' && from.sub in sipRank && to.sub in sipRank && sipRank[to.sub] > sipRank[from.sub]) {
        problems.push(`${relative('.', file)}: sip/${from.sub} must not import sip/${to.sub}`);
      }
      continue;
    }
    if ((from.top === 'signalling' && to.top === 'media') || (from.top === 'media' && to.top === 'signalling')) {
      problems.push(`${relative('.', file)}: ${from.top} must not import ${to.top} (use ng)`);
    } else if ((rank[to.top] ?? 0) > (rank[from.top] ?? 0)) {
      problems.push(`${relative('.', file)}: ${from.top} must not import upper layer ${to.top}`);
    }
  }
}
walk(src);
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('layers ok');
