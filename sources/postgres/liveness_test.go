package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources/postgres/pgtest"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

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
	proxy := sourcetest.StartProxy(t, fmt.Sprintf("%s:%d", srv.Host, srv.Port))
	e.cfg.DSN = strings.Replace(e.cfg.DSN, fmt.Sprintf("%s:%d", srv.Host, srv.Port), proxy.Addr(), 1)
	src := e.Source(t).(*Source)
	rows := autoAck(t, src, "")
	// Before the source closes its pool: pgx gives a dead connection 15 s
	// to say goodbye.
	t.Cleanup(func() { proxy.Cut() })

	srv.Exec(t, e.db, `INSERT INTO leads (id, status) VALUES (1, 'new')`)
	select {
	case c := <-rows:
		if c.After["id"] != int64(1) {
			t.Fatalf("first change is lead %v", c.After["id"])
		}
	case <-time.After(sourcetest.Timeout):
		t.Fatal("no change before the freeze")
	}
	if n := proxy.Freeze(); n == 0 {
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
