package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpProxy forwards loopback TCP connections to a database server and
// breaks them on request, the way networks do:
//
//   - Cut closes every current connection in both directions (a server or
//     a middlebox resetting connections); new connections are forwarded.
//   - Freeze stops forwarding on every current connection without closing
//     it (half-open: a firewall or NAT that dropped its state, a stuck
//     middlebox). Neither side learns anything: bytes are swallowed, and a
//     close by one side is not passed on. New connections are forwarded.
//   - SetDown(true) refuses new connections (accepts and closes them at
//     once) until SetDown(false): the database is unreachable.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	down   bool
	closed bool
	accept int // connections accepted and forwarded, for tests
	wg     sync.WaitGroup
}

// proxyConn is one forwarded connection: client side and server side.
type proxyConn struct {
	client, server net.Conn
	frozen         chan struct{} // closed by Freeze
	freezeOnce     sync.Once
	done           chan struct{} // closed when both sockets are closed
	closeOnce      sync.Once
}

func (c *proxyConn) close() {
	c.closeOnce.Do(func() {
		c.client.Close()
		c.server.Close()
		close(c.done)
	})
}

func (c *proxyConn) freeze() { c.freezeOnce.Do(func() { close(c.frozen) }) }

func (c *proxyConn) isFrozen() bool {
	select {
	case <-c.frozen:
		return true
	default:
		return false
	}
}

// startProxy listens on a free loopback port and forwards to target
// (host:port). Cleanup closes the listener and every connection.
func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port, to put into a DSN instead of the server's.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		cl, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		p.mu.Lock()
		refuse := p.down || p.closed
		p.mu.Unlock()
		if refuse {
			cl.Close()
			continue
		}
		srv, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			cl.Close()
			continue
		}
		c := &proxyConn{client: cl, server: srv, frozen: make(chan struct{}), done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.close()
			continue
		}
		p.conns[c] = struct{}{}
		p.accept++
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, cl, srv)
		go p.pipe(c, srv, cl)
	}
}

// pipe copies src to dst until either side fails, then closes both, unless
// the connection is frozen: then it swallows what arrives and keeps both
// sockets open until the connection is cut or the proxy closes.
func (p *tcpProxy) pipe(c *proxyConn, src, dst net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if c.isFrozen() {
			// Swallow: neither the bytes nor a close are passed on.
			<-c.done
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if c.isFrozen() {
		<-c.done
		return
	}
	c.close()
	p.forget(c)
}

func (p *tcpProxy) forget(c *proxyConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// current returns the connections open right now.
func (p *tcpProxy) current() []*proxyConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

// Cut closes every current connection, both directions, and returns how
// many there were (frozen ones included).
func (p *tcpProxy) Cut() int {
	cs := p.current()
	for _, c := range cs {
		c.close()
		p.forget(c)
	}
	return len(cs)
}

// Freeze makes every current connection half-open and returns how many
// there were. They stay open until Cut or the end of the test.
func (p *tcpProxy) Freeze() int {
	cs := p.current()
	for _, c := range cs {
		c.freeze()
	}
	return len(cs)
}

// Frozen counts frozen connections still held open.
func (p *tcpProxy) Frozen() int {
	n := 0
	for _, c := range p.current() {
		if c.isFrozen() {
			n++
		}
	}
	return n
}

// SetDown refuses (down) or accepts again new connections.
func (p *tcpProxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Accepted is how many connections have been forwarded so far.
func (p *tcpProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accept
}

func (p *tcpProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

// TestFaultProxy checks the proxy itself against an echo server: data
// flows, Cut ends both sides, Freeze swallows without closing, SetDown
// refuses new connections.
func TestFaultProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p := startProxy(t, echo.Addr().String())
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	roundTrip := func(c net.Conn, msg string) error {
		if err := c.SetDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
			return err
		}
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			return fmt.Errorf("echo %q, want %q", buf, msg)
		}
		return nil
	}
	// waitConns waits until the proxy has registered n connections: the
	// client's dial returns before the proxy's Accept loop has run.
	waitConns := func(t *testing.T, n int) {
		t.Helper()
		eventually(t, 5*time.Second, fmt.Sprintf("%d proxied connection(s)", n), func() (bool, string) {
			got := len(p.current())
			return got == n, fmt.Sprintf("%d", got)
		})
	}

	for _, tc := range []struct {
		name  string
		fault func() int
		check func(t *testing.T, c net.Conn)
	}{
		{"forward", func() int { return 1 }, func(t *testing.T, c net.Conn) {
			if err := roundTrip(c, "hello"); err != nil {
				t.Fatal(err)
			}
		}},
		{"cut", p.Cut, func(t *testing.T, c net.Conn) {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("read after Cut: %v, want EOF or reset", err)
			}
		}},
		{"freeze", p.Freeze, func(t *testing.T, c net.Conn) {
			err := roundTrip(c, "lost")
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("round trip on a frozen connection: %v, want a timeout", err)
			}
			if p.Frozen() != 1 {
				t.Fatalf("%d frozen connections, want 1", p.Frozen())
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.Cut()
			c := dial(t)
			if err := roundTrip(c, "ping"); err != nil {
				t.Fatalf("before the fault: %v", err)
			}
			waitConns(t, 1)
			if n := tc.fault(); n != 1 {
				t.Fatalf("fault hit %d connections, want 1", n)
			}
			tc.check(t, c)
			// A new connection works whatever happened to the old one.
			if err := roundTrip(dial(t), "again"); err != nil {
				t.Fatalf("new connection after %s: %v", tc.name, err)
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		p.SetDown(true)
		c := dial(t)
		if err := roundTrip(c, "refused"); err == nil {
			t.Fatal("a connection while down was forwarded")
		}
		p.SetDown(false)
		if err := roundTrip(dial(t), "up"); err != nil {
			t.Fatalf("after SetDown(false): %v", err)
		}
	})
}
