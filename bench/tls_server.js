// TLS echo server under Node.js: tls.createServer, each socket piped into
// itself (stream backpressure included).
// Usage: node tls_server.js CERT KEY; prints "port\t<n>" once listening.
const fs = require("fs");
const tls = require("tls");

const server = tls.createServer({
  cert: fs.readFileSync(process.argv[2]),
  key: fs.readFileSync(process.argv[3]),
}, (socket) => {
  socket.on("error", () => socket.destroy());
  socket.pipe(socket);
});
server.on("tlsClientError", () => {});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`port\t${server.address().port}\n`);
});
