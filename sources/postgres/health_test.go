package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadtail/leadtail/sources/sourcetest"
)

// testStreamingAndStats: Streaming is true only while a replication
// connection is up; Stats measures the slot against the current WAL.
func testStreamingAndStats(t *testing.T, e *testEnv) {
	src := e.newSource(t, nil)
	if up, why := src.Streaming(); up || !strings.Contains(why, "not started") {
		t.Fatalf("before Stream: Streaming() = %v %q", up, why)
	}
	// TestSource's cases share a server with few slots: give ours back
	// even on failure (registered first, so it runs after the stream stops).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, e.cfg.DSN); err == nil {
			_, _ = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, e.cfg.Slot)
			conn.Close(ctx)
		}
	})
	s := sourcetest.Start(t, src, "")
	waitFor(t, "Streaming() to be true", func() bool { up, _ := src.Streaming(); return up })
	e.Exec(t, "INSERT INTO leads (id, status) VALUES (1, 'new')")
	e.Exec(t, "INSERT INTO leads (id, status) VALUES (2, 'new')")
	s.Transaction(t)
	s.Transaction(t)
	// Nothing acked: the slot stays where the stream started.
	st, err := src.Stats(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.LagBytes <= 0 || st.RetainedBytes < st.LagBytes || st.FilesBehind != -1 || st.TransactionsBehind != -1 {
		t.Errorf("Stats() = %+v: want WAL bytes behind and retained", st)
	}
	if age := time.Since(st.LastReceived); st.LastReceived.IsZero() || age > time.Minute {
		t.Errorf("LastReceived %v: want a recent time", st.LastReceived)
	}
	s.Stop(t)
	if up, why := src.Streaming(); up || why == "" {
		t.Errorf("after Stream returned: Streaming() = %v %q", up, why)
	}
	e.Exec(t, "SELECT pg_drop_replication_slot('"+e.cfg.Slot+"')")
	if _, err := src.Stats(ctxT(t)); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Stats() without a slot: %v, want an error naming it", err)
	}
}
