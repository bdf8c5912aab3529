// http_server.js: Node.js's http answering 13 bytes, for wrk
// (bench/run.sh's http_server section); idle connections kept 60 s.
//   node bench/http_server.js PORT
const http = require('http');
const server = http.createServer((req, res) => { res.end('Hello, World!'); });
server.keepAliveTimeout = 60000;
server.listen(+process.argv[2] || 8080, '127.0.0.1');
