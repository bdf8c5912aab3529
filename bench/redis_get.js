// Redis GETs through the redis client from npm (node-redis): C clients,
// each its own connection, share N GETs, each client's one after the other
// (await before the next: no pipelining).
// Usage: NODE_PATH=.../node_modules node redis_get.js PORT [N [C]].
const { createClient } = require("redis");
const port = Number(process.argv[2]);
const N = Number(process.argv[3] || 100000);
const C = Number(process.argv[4] || 50);

async function main() {
  const clients = [];
  for (let i = 0; i < C; i++) {
    const c = createClient({ socket: { host: "127.0.0.1", port } });
    await c.connect();
    clients.push(c);
  }
  await clients[0].set("key", "xxx");
  const t0 = process.hrtime.bigint();
  await Promise.all(clients.map(async (c, i) => {
    const n = Math.floor(N / C) + (i < N % C ? 1 : 0);
    for (let k = 0; k < n; k++) {
      if ((await c.get("key")) !== "xxx") throw new Error("bad reply");
    }
  }));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const c of clients) await c.quit();
  console.log(`redis_get_per_s\t${Math.round(N / s)}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
