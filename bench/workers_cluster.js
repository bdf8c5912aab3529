// workers_cluster.js: Node.js cluster, N workers (default 2) sharing one
// listening socket, for bench/run.sh's workers section.
//   node workers_cluster.js echo [N]         prints "port\t<n>" (port 0)
//   node workers_cluster.js http PORT [N]    13 bytes, keep-alive 60 s
const cluster = require("cluster");
const mode = process.argv[2];
const n = +(mode === "http" ? process.argv[4] : process.argv[3]) || 2;

if (cluster.isPrimary) {
  for (let i = 0; i < n; i++) cluster.fork();
  let printed = false;
  cluster.on("listening", (w, addr) => {
    if (!printed) process.stdout.write(`port\t${addr.port}\n`);
    printed = true;
  });
} else if (mode === "echo") {
  const net = require("net");
  const server = net.createServer((socket) => {
    socket.on("error", () => socket.destroy());
    socket.pipe(socket);
  });
  server.listen(0, "127.0.0.1");
} else {
  const http = require("http");
  const server = http.createServer((req, res) => { res.end("Hello, World!"); });
  server.keepAliveTimeout = 60000;
  server.listen(+process.argv[3] || 8080, "127.0.0.1");
}
