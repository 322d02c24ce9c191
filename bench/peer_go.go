// Bench peer: the echo server a Go programmer would write with the
// standard library's net package: a goroutine per connection copying what
// it reads back to the client, on as many OS threads as GOMAXPROCS allows.
//
// It copies through a 32 KiB buffer, as io.Copy does when it cannot
// splice.  io.Copy(c, c) itself splices through a pipe held for the
// connection's life: three fds per connection, which stops it near 6,600
// connections under this machine's 20,000-fd limit.
//
// Usage: peer_go PORT (0 picks a free port); prints "port N" on stdout.
package main

import (
	"fmt"
	"net"
	"os"
)

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: peer_go PORT")
		os.Exit(64)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer_go:", err)
		os.Exit(1)
	}
	fmt.Printf("port %d\n", l.Addr().(*net.TCPAddr).Port)
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		go echo(c)
	}
}
