#!/usr/bin/python3
"""Bench peer: an asyncio echo server on uvloop, written the way uvloop's
own benchmarks write it: a Protocol whose data_received() writes the data
straight back.  Single-threaded.  The fastest of the usual peers, so the
one echoserver has to beat.

Usage: /usr/bin/python3 peer_uvloop.py PORT (0 picks a free port); prints
"port N" on stdout.
"""
import asyncio
import socket
import sys

import uvloop


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        sock = transport.get_extra_info('socket')
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, '127.0.0.1', port, backlog=4096)
    print('port', server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: peer_uvloop.py PORT')
    uvloop.install()
    asyncio.run(main(int(sys.argv[1])))
