// http_server.js: Node.js's http answering 13 bytes, for wrk.
//   node bench/http_server.js PORT
const http = require('http');
http.createServer((req, res) => { res.end('Hello, World!'); })
  .listen(+process.argv[2] || 8080, '127.0.0.1');
