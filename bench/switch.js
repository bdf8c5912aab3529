// Switch cost under Node.js: two async functions take turns for ROUNDS
// rounds (two switches each), yielding either through the microtask queue
// (`await null`) or through the event loop (a promise resolved by
// setImmediate). Usage: node switch.js ROUNDS await|immediate
const rounds = Number(process.argv[2]);
const how = process.argv[3];
if (!Number.isInteger(rounds) || !["await", "immediate"].includes(how))
  throw new Error("usage: switch.js ROUNDS await|immediate");

const immediate = () => new Promise((resolve) => setImmediate(resolve));

async function playerAwait() {
  for (let i = 0; i < rounds; i++) await null;
}
async function playerImmediate() {
  for (let i = 0; i < rounds; i++) await immediate();
}

async function main() {
  const player = how === "await" ? playerAwait : playerImmediate;
  const t0 = process.hrtime.bigint();
  await Promise.all([player(), player()]);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`switch_per_s\t${Math.round((2 * rounds) / s)}`);
}
main();
