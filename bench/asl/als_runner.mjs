// Runs one ASL definition with aws-local-stepfunctions and prints timing as JSON:
//   node --expose-gc bench/asl/als_runner.mjs DEFINITION.json INPUT.json RUNS [WARMUP]
//   --> {"ok":true,"runs":[ms,...],"construct_ms":n,"output":<the last run's output>}
//
// Timed like the Lua side of bench/asl_bench.lua: in-process, per run, from run() until its
// result resolves. Node's start, the module load and the StateMachine constructor (which
// validates the definition, as emrflow's asl.load does) are outside the timing. WARMUP
// untimed runs come first (default 1) so the JIT has compiled the interpreter; a full GC
// (--expose-gc) runs before every run, as the Lua side does collectgarbage("collect").
// The execution's events stay queued in its EventLogger (nobody drains them), so history
// is kept on this side too.
import { readFileSync } from 'node:fs';
import { StateMachine } from 'aws-local-stepfunctions';

const [defPath, inputPath, runsArg, warmupArg] = process.argv.slice(2);
const definition = JSON.parse(readFileSync(defPath, 'utf8'));
const input = JSON.parse(readFileSync(inputPath, 'utf8'));
const runs = Number(runsArg || 3);
const warmup = Number(warmupArg === undefined ? 1 : warmupArg);

const t0 = performance.now();
const machine = new StateMachine(definition, { validationOptions: { checkPaths: false, checkArn: false } });
const constructMs = performance.now() - t0;
const context = {
  Execution: { Id: 'arn:aws:states:us-east-1:123456789012:execution:bench:run', Input: input,
    Name: 'run', RoleArn: 'arn:aws:iam::123456789012:role/bench', StartTime: new Date().toISOString() },
  StateMachine: { Id: 'arn:aws:states:us-east-1:123456789012:stateMachine:bench', Name: 'bench' },
};
const times = [];
let output;
let keep; // the last execution stays reachable while timing, with its queued events
for (let i = 0; i < warmup + runs; i++) {
  keep = undefined;
  if (globalThis.gc) globalThis.gc();
  const fresh = structuredClone(input); // outside the timing, in case run() mutates it
  const t = performance.now();
  const execution = machine.run(fresh, { context });
  output = await execution.result;
  const ms = performance.now() - t;
  keep = execution;
  if (i >= warmup) times.push(ms);
}
process.stdout.write(JSON.stringify({ ok: true, runs: times, construct_ms: constructMs,
  gc: Boolean(globalThis.gc), kept: keep !== undefined, output }) + '\n');
