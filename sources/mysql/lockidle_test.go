package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources/sourcetest"
)

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
	proxy := sourcetest.StartProxy(t, srv.Addr())
	env.cfg.DSN = strings.Replace(env.cfg.DSN, srv.Addr(), proxy.Addr(), 1)
	shared := &sharedCheckpoint{}
	a := startLocked(t, env, shared)
	t.Cleanup(func() { proxy.Cut() }) // before the Source closes
	waitFor(t, "the source to stream", func() (bool, string) { ok, why := a.src.Streaming(); return ok, why })
	srv.Exec(t, env.db, `INSERT INTO leads (id, status) VALUES (1, 'new')`)
	waitFor(t, "the first row", hasRows(a, "1/new"))

	if n := proxy.Freeze(); n < 2 {
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
