package postgres

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources/postgres/pgtest"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

// freezeProxy forwards TCP connections until freeze, after which it
// swallows everything on the connections open at that moment and closes
// none of them: a half-open connection, as left by a middlebox that lost
// its state. Connections opened later are forwarded.
type freezeProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	frozen map[net.Conn]bool
}

func startFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, frozen: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
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

func (p *freezeProxy) isFrozen(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen[c]
}

func (p *freezeProxy) pipe(src, dst net.Conn) {
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

// cut closes every connection (frozen or not).
func (p *freezeProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// freeze makes every open connection half-open and returns how many.
func (p *freezeProxy) freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		p.frozen[c] = true
	}
	return len(p.conns) / 2
}

// TestHalfOpenConnectionReconnects: the replication connection (and the
// pooled ones) go half-open. The server drops its walsender after
// wal_sender_timeout, but nothing reaches the client; the reader must
// notice the silence itself (it asks for a reply, gets none), reconnect
// and stream what was committed meanwhile. Before the liveness check the
// stream hung for good (found by the fault-injection suite).
func TestHalfOpenConnectionReconnects(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.WithSetting("wal_sender_timeout", "2s"))
	e := newEnv(t, srv)
	proxy := startFreezeProxy(t, fmt.Sprintf("%s:%d", srv.Host, srv.Port))
	e.cfg.DSN = strings.Replace(e.cfg.DSN, fmt.Sprintf("%s:%d", srv.Host, srv.Port), proxy.ln.Addr().String(), 1)
	src := e.Source(t).(*Source)
	rows := autoAck(t, src, "")
	// Before the source closes its pool: pgx gives a dead connection 15 s
	// to say goodbye.
	t.Cleanup(proxy.cut)

	srv.Exec(t, e.db, `INSERT INTO leads (id, status) VALUES (1, 'new')`)
	select {
	case c := <-rows:
		if c.After["id"] != int64(1) {
			t.Fatalf("first change is lead %v", c.After["id"])
		}
	case <-time.After(sourcetest.Timeout):
		t.Fatal("no change before the freeze")
	}
	if n := proxy.freeze(); n == 0 {
		t.Fatal("nothing to freeze")
	}
	froze := time.Now()
	srv.Exec(t, e.db, `INSERT INTO leads (id, status) VALUES (2, 'new')`)
	select {
	case c := <-rows:
		if c.After["id"] != int64(2) {
			t.Fatalf("change after the freeze is lead %v", c.After["id"])
		}
		t.Logf("streaming again %s after the freeze", time.Since(froze).Round(time.Millisecond))
	case <-time.After(sourcetest.Timeout):
		t.Fatalf("no change %s after the connection went half-open", sourcetest.Timeout)
	}
	if src.sessions.Load() < 2 {
		t.Errorf("sessions = %d, want a reconnect", src.sessions.Load())
	}
}
