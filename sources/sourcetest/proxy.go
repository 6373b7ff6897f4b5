package sourcetest

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards loopback TCP connections to a database server and
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
type Proxy struct {
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

// StartProxy listens on a free loopback port and forwards to target
// (host:port). Cleanup closes the listener and every connection.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port, to put into a DSN instead of the server's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) serve() {
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
func (p *Proxy) pipe(c *proxyConn, src, dst net.Conn) {
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

func (p *Proxy) forget(c *proxyConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// current returns the connections open right now.
func (p *Proxy) current() []*proxyConn {
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
func (p *Proxy) Cut() int {
	cs := p.current()
	for _, c := range cs {
		c.close()
		p.forget(c)
	}
	return len(cs)
}

// Freeze makes every current connection half-open and returns how many
// there were. They stay open until Cut or the end of the test.
func (p *Proxy) Freeze() int {
	cs := p.current()
	for _, c := range cs {
		c.freeze()
	}
	return len(cs)
}

// Frozen counts frozen connections still held open.
func (p *Proxy) Frozen() int {
	n := 0
	for _, c := range p.current() {
		if c.isFrozen() {
			n++
		}
	}
	return n
}

// SetDown refuses (down) or accepts again new connections.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Accepted is how many connections have been forwarded so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accept
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
