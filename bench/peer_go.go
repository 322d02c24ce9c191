// Bench peer: the echo server a Go programmer would write with the
// standard library's net package: a goroutine per connection running
// io.Copy(conn, conn), on as many OS threads as GOMAXPROCS allows.
// Usage: peer_go PORT (0 picks a free port); prints "port N" on stdout.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

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
		go func(c net.Conn) {
			io.Copy(c, c)
			c.Close()
		}(c)
	}
}
