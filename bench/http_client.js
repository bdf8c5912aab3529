// http_client.js URL N CONC agent|fetch: N GETs of URL by CONC async
// workers at once, each one's requests one after the other; prints
// requests/s. agent: http.get with an http.Agent keeping CONC sockets
// alive; fetch: the global fetch (undici).
const http = require('http');
const [url, n = 20000, conc = 50, mode = 'agent'] = process.argv.slice(2);
const N = Number(n), C = Number(conc);
const agent = new http.Agent({ keepAlive: true, maxSockets: C });

function getAgent() {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      let bytes = 0;
      res.on('data', (d) => { bytes += d.length; });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error('status ' + res.statusCode));
        else resolve(bytes);
      });
      res.on('error', reject);
    }).on('error', reject);
  });
}

async function getFetch() {
  const res = await fetch(url);
  const body = await res.arrayBuffer();
  if (res.status !== 200) throw new Error('status ' + res.status);
  return body.byteLength;
}

const get = mode === 'fetch' ? getFetch : getAgent;

async function worker(count) {
  for (let i = 0; i < count; i++) await get();
}

(async () => {
  await get();
  const start = process.hrtime.bigint();
  const ws = [];
  for (let i = 0; i < C; i++) {
    ws.push(worker(Math.floor(N / C) + (i < N % C ? 1 : 0)));
  }
  await Promise.all(ws);
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`http_client_per_s\t${Math.round(N / s)}`);
  console.log(`http_client_wall_s\t${s.toFixed(3)}`);
  agent.destroy();
})();
