// Runs one ASL definition with aws-local-stepfunctions and prints timing as JSON:
//   node bench/asl/als_runner.mjs DEFINITION.json INPUT.json RUNS
//   --> {"runs":[ms,...],"construct_ms":n,"ok":true}
// Timing covers run() until the result resolves (the machine is constructed, and its
// definition validated, once beforehand, as emrflow's load is timed apart).
import { readFileSync } from 'node:fs';
import { StateMachine } from 'aws-local-stepfunctions';

const [defPath, inputPath, runsArg] = process.argv.slice(2);
const definition = JSON.parse(readFileSync(defPath, 'utf8'));
const input = JSON.parse(readFileSync(inputPath, 'utf8'));
const runs = Number(runsArg || 3);

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
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  const execution = machine.run(input, { context });
  output = await execution.result;
  times.push(performance.now() - t);
}
process.stdout.write(JSON.stringify({ ok: true, runs: times, construct_ms: constructMs,
  output_bytes: JSON.stringify(output).length }) + '\n');
