// jsonata-js side of bench/jsonata_bench.lua: compiles each case once, then evaluates it over
// the same document for at least MIN_MS of CPU time after a warm-up; prints one JSON line per case
// { name, evals, seconds, output }.
//   node run.mjs CASES.json DOCUMENT.json JSONATA_MODULE_DIR MIN_MS
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [casesFile, docFile, moduleDir, minMsText] = process.argv.slice(2);
const require = createRequire(moduleDir + '/');
const jsonata = require(moduleDir);
const cases = JSON.parse(readFileSync(casesFile, 'utf8'));
const doc = JSON.parse(readFileSync(docFile, 'utf8'));
const minMs = Number(minMsText);

for (const c of cases) {
  const expr = jsonata(c.expr);
  let output;
  for (let i = 0; i < c.warmup; i++) output = await expr.evaluate(doc);
  // CPU time of the process (all its threads: the JIT and the GC count as the work they are)
  const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
  let evals = 0;
  const start = cpu();
  let elapsed = 0;
  while (elapsed < minMs / 1000) {
    for (let i = 0; i < c.batch; i++) output = await expr.evaluate(doc);
    evals += c.batch;
    elapsed = cpu() - start;
  }
  console.log(JSON.stringify({ name: c.name, evals, seconds: elapsed, output: output === undefined ? null : output }));
}
