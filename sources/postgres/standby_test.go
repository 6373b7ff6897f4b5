package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/postgres/pgtest"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

// pgStream is one Stream of a Source, run like the connector does: every
// position is acked as soon as it is emitted.
type pgStream struct {
	src    *Source
	cancel context.CancelFunc
	done   chan error
	once   sync.Once

	mu   sync.Mutex
	rows []string // "id/status" of each row change emitted
}

func startPGStream(t *testing.T, env *testEnv) *pgStream {
	t.Helper()
	src := env.newSource(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ps := &pgStream{src: src, cancel: cancel, done: make(chan error, 1)}
	go func() {
		ps.done <- src.Stream(ctx, "", func(_ context.Context, ch sources.Change) error {
			if ch.Op != sources.OpNone {
				ps.mu.Lock()
				ps.rows = append(ps.rows, fmt.Sprintf("%v/%v", ch.After["id"], ch.After["status"]))
				ps.mu.Unlock()
			}
			if ch.Pos != "" {
				return src.Ack(ch.Pos)
			}
			return nil
		})
	}()
	t.Cleanup(func() { ps.stop(t) })
	return ps
}

// stop cancels the stream and waits for it; safe to call twice.
func (ps *pgStream) stop(t *testing.T) {
	t.Helper()
	ps.once.Do(func() {
		ps.cancel()
		select {
		case err := <-ps.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Stream: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Stream did not return after cancel")
		}
	})
}

func (ps *pgStream) emitted() string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return strings.Join(ps.rows, ",")
}

func pollUntil(t *testing.T, what string, cond func() (bool, string)) {
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

// TestStandby: a second Source on a slot another one streams from is a
// standby, not a failure; it takes over from the slot's position when
// the first one stops, without repeating what the first one acked.
func TestStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts PostgreSQL")
	}
	env := newEnv(t, pgtest.Start(t))
	a := startPGStream(t, env)
	pollUntil(t, "the first source to stream", func() (bool, string) { return a.src.Streaming() })
	b := startPGStream(t, env)
	pollUntil(t, "the second source to be a standby", func() (bool, string) {
		ok, why := b.src.Streaming()
		return !ok && strings.HasPrefix(why, "standby: replication slot "+env.cfg.Slot+" is in use"), why
	})

	before := a.src.acked.Load()
	env.Exec(t, `INSERT INTO leads (id, status) VALUES (1, 'new')`)
	pollUntil(t, "the active source to emit", func() (bool, string) { return a.emitted() == "1/new", a.emitted() })
	// Let the acked position reach the slot before the first one stops.
	pollUntil(t, "the ack to reach the slot", func() (bool, string) {
		acked := a.src.acked.Load()
		slot, err := pglogrepl.ParseLSN(env.slotLSN(t))
		return err == nil && acked > before && uint64(slot) >= acked, fmt.Sprintf("slot %s, acked %s", slot, pglogrepl.LSN(acked))
	})
	a.stop(t)
	env.Exec(t, `INSERT INTO leads (id, status) VALUES (2, 'new')`)
	pollUntil(t, "the standby to take over", func() (bool, string) { return strings.Contains(b.emitted(), "2/new"), b.emitted() })
	if got := b.emitted(); got != "2/new" {
		t.Fatalf("the new active source emitted %q, want only 2/new (1/new was acked by the first)", got)
	}
	if ok, why := b.src.Streaming(); !ok {
		t.Fatalf("after taking over: not streaming: %s", why)
	}
}
