package mysql

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// halfOpenProxy forwards TCP connections until freeze, after which it
// swallows everything on the connections open at that moment and closes
// none of them: half-open connections, as left by a middlebox that lost
// its state. Connections opened later are forwarded.
type halfOpenProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	frozen map[net.Conn]bool
}

func startHalfOpenProxy(t *testing.T, target string) *halfOpenProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &halfOpenProxy{ln: ln, frozen: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			cl, err := ln.Accept()
			if err != nil {
				return
			}
			srv, err := net.Dial("tcp", target)
			if err != nil {
				cl.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, cl, srv)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); p.pipe(cl, srv) }()
			go func() { defer wg.Done(); p.pipe(srv, cl) }()
		}
	}()
	return p
}

func (p *halfOpenProxy) isFrozen(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen[c]
}

func (p *halfOpenProxy) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.isFrozen(src) {
			// Swallow until the test ends; pass on neither data nor close.
			_, _ = io.Copy(io.Discard, src)
			return
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	src.Close()
	dst.Close()
}

func (p *halfOpenProxy) freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		p.frozen[c] = true
	}
	return len(p.conns) / 2
}

func (p *halfOpenProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestLockReleasedAfterHalfOpen: every connection of a streaming Source
// with the active lock goes half-open. The Source notices (the lock ping
// times out), but the server still sees the old lock connection alive and
// idle: only the lock connection's short wait_timeout makes it give the
// lock up, so that the Source takes it again and streams what was
// committed meanwhile. Without it the Source stayed a standby of its own
// dead connection for the server's default wait_timeout, 8 hours (found by
// the fault-injection suite).
func TestLockReleasedAfterHalfOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts MariaDB")
	}
	t.Parallel()
	srv := startServer(t)
	env := newEnv(t, srv, posFile)
	proxy := startHalfOpenProxy(t, srv.Addr())
	env.cfg.DSN = strings.Replace(env.cfg.DSN, srv.Addr(), proxy.ln.Addr().String(), 1)
	shared := &sharedCheckpoint{}
	a := startLocked(t, env, shared)
	t.Cleanup(proxy.cut) // before the Source closes
	waitFor(t, "the source to stream", func() (bool, string) { ok, why := a.src.Streaming(); return ok, why })
	srv.Exec(t, env.db, `INSERT INTO leads (id, status) VALUES (1, 'new')`)
	waitFor(t, "the first row", hasRows(a, "1/new"))

	if n := proxy.freeze(); n < 2 {
		t.Fatalf("%d connections frozen, want the lock's and the binlog's", n)
	}
	froze := time.Now()
	srv.Exec(t, env.db, `INSERT INTO leads (id, status) VALUES (2, 'new')`)
	deadline := froze.Add(lockIdleTimeout + 40*time.Second)
	for {
		ok, detail := hasRows(a, "2/new")()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no row %s after the connections went half-open: %s", time.Since(froze).Round(time.Second), detail)
		}
		time.Sleep(50 * time.Millisecond) // polling the stream, not synchronisation
	}
	t.Logf("streaming again %s after the freeze (lock wait_timeout %s)", time.Since(froze).Round(time.Millisecond), lockIdleTimeout)
}
