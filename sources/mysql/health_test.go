package mysql

import (
	"context"
	"strings"
	"testing"
	"time"
)

// testStreamingAndStats: Streaming is false before the first binlog
// event and true while events arrive; Stats measures from the last Ack.
func testStreamingAndStats(t *testing.T, env *testEnv) {
	src := env.newSource(t)
	if up, why := src.Streaming(); up || !strings.Contains(why, "not started") {
		t.Fatalf("before Stream: Streaming() = %v %q", up, why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, err := src.Stats(ctx); err != nil || st.LagBytes != -1 || !st.LastReceived.IsZero() {
		t.Fatalf("before Stream: Stats() = %+v, %v; want unknown", st, err)
	}
	from := endPos(t, src)
	s := start(t, src, from)
	waitStreaming(t, src)
	env.Exec(t, leadInsert(1))
	env.Exec(t, leadInsert(2))
	s.Transaction(t)
	s.Transaction(t)
	st, err := src.Stats(ctx) // nothing acked yet: both transactions are behind
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(st.LastReceived); st.LastReceived.IsZero() || age > time.Minute {
		t.Errorf("LastReceived %v: want a recent time", st.LastReceived)
	}
	switch env.kind {
	case posFile:
		if st.LagBytes <= 0 || st.FilesBehind < 0 || st.TransactionsBehind != -1 {
			t.Errorf("file positions: Stats() = %+v, want bytes and files behind", st)
		}
	default:
		if st.TransactionsBehind < 2 || st.LagBytes != -1 || st.FilesBehind != -1 {
			t.Errorf("GTID positions: Stats() = %+v, want 2+ transactions behind", st)
		}
	}
	if err := src.Ack(endPos(t, src)); err != nil {
		t.Fatal(err)
	}
	st, err = src.Stats(ctx)
	if err != nil || (st.LagBytes > 0 || st.TransactionsBehind > 0) {
		t.Errorf("after acking the end: Stats() = %+v, %v; want nothing behind", st, err)
	}
	s.Stop(t)
	if up, why := src.Streaming(); up || why == "" {
		t.Errorf("after Stream returned: Streaming() = %v %q", up, why)
	}
	t.Logf("%+v", st)
}

// waitStreaming polls Streaming until it is true or the deadline passes.
func waitStreaming(t *testing.T, src *Source) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		up, why := src.Streaming()
		if up {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("Streaming() still false: %q", why)
		case <-tick.C:
		}
	}
}
