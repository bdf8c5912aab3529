// Echo server under Node.js: net.createServer, each socket piped into
// itself (stream backpressure included).
// Usage: node echo_server.js; prints "port\t<n>" once listening.
const net = require("net");

const server = net.createServer((socket) => {
  socket.on("error", () => socket.destroy());
  socket.pipe(socket);
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`port\t${server.address().port}\n`);
});
