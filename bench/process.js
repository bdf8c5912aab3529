// Subprocesses under Node.js child_process: spawn `true` N times (1,000),
// 50 at a time, waiting for every exit; then MIB MiB (100) through `cat`,
// written and read at once over its pipes.
// Usage: node bench/process.js [N [MIB]]. Prints spawn1000_s and
// cat100m_mb_per_s (MB = 10^6 bytes).
'use strict';
const { spawn } = require('child_process');
const n = Number(process.argv[2] || 1000);
const mib = Number(process.argv[3] || 100);

function run(cmd, opts) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, [], opts);
    p.on('error', reject);
    p.on('exit', (code) => resolve(code));
  });
}

async function spawner(first) {
  for (let i = first; i <= n; i += 50) {
    if ((await run('true', { stdio: 'inherit' })) !== 0) throw new Error('true failed');
  }
}

async function main() {
  let t0 = process.hrtime.bigint();
  const jobs = [];
  for (let i = 1; i <= 50; i++) jobs.push(spawner(i));
  await Promise.all(jobs);
  console.log(`spawn1000_s\t${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3)}`);

  const chunk = Buffer.alloc(64 * 1024, 'x');
  const total = mib * 1024 * 1024;
  t0 = process.hrtime.bigint();
  const p = spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] });
  let got = 0;
  p.stdout.on('data', (d) => { got += d.length; });
  const ended = new Promise((resolve) => p.stdout.on('end', resolve));
  const exited = new Promise((resolve) => p.on('exit', resolve));
  for (let i = 0; i < total / chunk.length; i++) {
    if (!p.stdin.write(chunk)) await new Promise((resolve) => p.stdin.once('drain', resolve));
  }
  p.stdin.end();
  await ended;
  if ((await exited) !== 0 || got !== total) throw new Error('cat failed');
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`cat100m_mb_per_s\t${(total / 1e6 / s).toFixed(1)}`);
}

main();
