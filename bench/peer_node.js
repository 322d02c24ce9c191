// Bench peer: the echo server a Node.js programmer would write with the
// net module: every socket piped into itself, which also gives it
// backpressure.  Single-threaded, on libuv.
// Usage: node peer_node.js PORT (0 picks a free port); prints "port N".
'use strict';
const net = require('net');

if (process.argv.length !== 3) {
	console.error('usage: node peer_node.js PORT');
	process.exit(64);
}
const server = net.createServer({ noDelay: true }, (socket) => {
	socket.on('error', () => socket.destroy());
	socket.pipe(socket);
});
server.listen({ host: '127.0.0.1', port: Number(process.argv[2]),
	backlog: 4096 }, () => {
	console.log(`port ${server.address().port}`);
});
