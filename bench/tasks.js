// Tasks under Node.js: N promises, each resolved by a 100 ms setTimeout,
// then Promise.all over them. Usage: node tasks.js N
const N = Number(process.argv[2]);
if (!Number.isInteger(N)) throw new Error("usage: tasks.js N");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const t0 = process.hrtime.bigint();
  const tasks = new Array(N);
  for (let i = 0; i < N; i++) tasks[i] = sleep(100);
  await Promise.all(tasks);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`tasks_wall_s\t${s.toFixed(4)}`);
}
main();
