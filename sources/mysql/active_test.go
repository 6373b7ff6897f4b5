package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

// sharedCheckpoint stands in for a state_dir shared by two instances.
type sharedCheckpoint struct {
	mu  sync.Mutex
	pos sources.Position
}

func (c *sharedCheckpoint) load(context.Context) (sources.Position, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos, nil
}

// lockedStream is one Stream of a Source with the active lock, run like
// the connector does: every position is saved, then acked.
type lockedStream struct {
	src    *Source
	cancel context.CancelFunc
	done   chan error
	once   sync.Once

	mu   sync.Mutex
	rows []string // "id/status" of each row change emitted
}

func startLocked(t *testing.T, env *testEnv, shared *sharedCheckpoint) *lockedStream {
	t.Helper()
	src, err := New(env.cfg, []string{env.Table("leads")}, testLogger(t), WithActiveLock("123456789012345", shared.load))
	if err != nil {
		t.Fatal(err)
	}
	src.backoffMin, src.backoffMax = 50*time.Millisecond, time.Second
	from, _ := shared.load(context.Background()) // as the pipeline loads it, before the lock
	ctx, cancel := context.WithCancel(context.Background())
	ls := &lockedStream{src: src, cancel: cancel, done: make(chan error, 1)}
	go func() {
		ls.done <- src.Stream(ctx, from, func(_ context.Context, ch sources.Change) error {
			if ch.Op != sources.OpNone {
				ls.mu.Lock()
				ls.rows = append(ls.rows, fmt.Sprintf("%v/%v", ch.After["id"], ch.After["status"]))
				ls.mu.Unlock()
			}
			if ch.Pos != "" {
				shared.mu.Lock()
				shared.pos = ch.Pos
				shared.mu.Unlock()
				return src.Ack(ch.Pos)
			}
			return nil
		})
	}()
	t.Cleanup(func() { ls.stop(t) })
	return ls
}

// stop cancels the stream and waits for it; safe to call twice.
func (ls *lockedStream) stop(t *testing.T) {
	t.Helper()
	ls.once.Do(func() {
		ls.cancel()
		select {
		case err := <-ls.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Stream: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Stream did not return after cancel")
		}
		ls.src.Close()
	})
}

func (ls *lockedStream) emitted() []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]string(nil), ls.rows...)
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(sourcetest.Timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, detail)
		}
		time.Sleep(20 * time.Millisecond) // polling the server and the stream, not synchronisation
	}
}

func hasRows(ls *lockedStream, want ...string) func() (bool, string) {
	return func() (bool, string) {
		got := strings.Join(ls.emitted(), ",")
		for _, w := range want {
			if !strings.Contains(","+got+",", ","+w+",") {
				return false, "emitted " + got
			}
		}
		return true, ""
	}
}

// TestActiveLock: of two Sources with the lock on one configuration only
// one streams; the other is a standby until the first stops, then resumes
// from the shared checkpoint; a killed lock connection makes the active
// one stop streaming and take the lock again.
func TestActiveLock(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts MariaDB")
	}
	srv := startServer(t)
	env := newEnv(t, srv, posFile)
	shared := &sharedCheckpoint{}
	lockName := fmt.Sprintf("leadtail:%d:123456789012345", env.cfg.ServerID)

	a := startLocked(t, env, shared)
	waitFor(t, "the first source to stream", func() (bool, string) { ok, why := a.src.Streaming(); return ok, why })
	b := startLocked(t, env, shared)
	waitFor(t, "the second source to be a standby", func() (bool, string) {
		ok, why := b.src.Streaming()
		return !ok && strings.Contains(why, "standby") && strings.Contains(why, lockName), why
	})

	env.Exec(t, `INSERT INTO leads (id, status) VALUES (1, 'new')`)
	waitFor(t, "the active source to emit", hasRows(a, "1/new"))
	if rows := srv.Query(t, "", `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'`); rows[0][0] != "1" {
		t.Fatalf("%s binlog dump threads with one active source", rows[0][0])
	}

	// A clean stop releases the lock: the standby resumes from the shared
	// checkpoint, so it neither repeats row 1 nor misses row 2.
	a.stop(t)
	env.Exec(t, `INSERT INTO leads (id, status) VALUES (2, 'new')`)
	waitFor(t, "the standby to take over", hasRows(b, "2/new"))
	if got := b.emitted(); len(got) != 1 {
		t.Fatalf("the new active source emitted %v, want only 2/new", got)
	}

	// Kill the lock connection: the session stops, the lock is taken again
	// on a new connection and streaming goes on from the acked position.
	holder := srv.Query(t, "", "SELECT IS_USED_LOCK('"+lockName+"')")[0][0]
	srv.Exec(t, "", "KILL "+holder)
	waitFor(t, "the lock to be taken again", func() (bool, string) {
		now := srv.Query(t, "", "SELECT COALESCE(IS_USED_LOCK('"+lockName+"'), 0)")[0][0]
		return now != "0" && now != holder, "holder " + now
	})
	env.Exec(t, `UPDATE leads SET status = 'won' WHERE id = 2`)
	waitFor(t, "streaming after the lock was retaken", hasRows(b, "2/won"))
	if got := b.emitted(); len(got) != 2 {
		t.Fatalf("after retaking the lock: emitted %v, want 2/new, 2/won", got)
	}
}
