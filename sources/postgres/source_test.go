package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/postgres/pgtest"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

// TestSource groups the PostgreSQL-specific cases that can share one
// server: each runs in its own database with its own slot.
func TestSource(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *testEnv)
	}{
		{"StreamingAndStats", testStreamingAndStats}, // first: it gives its slot back
		{"SetupOrder", testSetupOrder},
		{"PublicationFollowsMapping", testPublicationFollowsMapping},
		{"SlotMissingWithCheckpoint", testSlotMissingWithCheckpoint},
		{"FlushIsAckedPosition", testFlushIsAckedPosition},
		{"FromAheadOfSlot", testFromAheadOfSlot},
		{"TypesRoundTrip", testTypesRoundTrip},
		{"UnchangedToastWithoutFullIdentity", testUnchangedToastWithoutFullIdentity},
		{"MappedColumnDropped", testMappedColumnDropped},
		{"IdleSlotAdvancesWhileOtherTableBusy", testIdleSlotAdvances},
		{"HeartbeatOnQuietDatabase", testHeartbeat},
		{"Check", testCheck},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newEnv(t, srv)) })
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func testSetupOrder(t *testing.T, e *testEnv) {
	e.Exec(t, "ALTER TABLE leads REPLICA IDENTITY DEFAULT")
	e.cfg.SetReplicaIdentityFull = true
	src := e.newSource(t, nil)
	var steps []string
	src.onSetupStep = func(s string) { steps = append(steps, s) }
	if err := src.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if want := []string{"replica_identity", "publication", "slot"}; !slices.Equal(steps, want) {
		t.Errorf("setup steps %v, want %v", steps, want)
	}
	if got := e.query(t, "SELECT relreplident::text FROM pg_class WHERE oid = 'leads'::regclass"); got != "f" {
		t.Errorf("replica identity %q, want f", got)
	}
	if got := e.query(t, "SELECT plugin FROM pg_replication_slots WHERE slot_name = $1", e.cfg.Slot); got != "pgoutput" {
		t.Errorf("slot plugin %q, want pgoutput", got)
	}
	// Created together, and the publication before the slot: the slot's
	// start may not predate the publication, or decoding fails.
	if got := e.query(t, "SELECT pubtruncate::text FROM pg_publication WHERE pubname = $1", e.cfg.Publication); got != "false" {
		t.Errorf("publication publishes truncate = %s, want false", got)
	}
	// Setup is idempotent.
	steps = nil
	if err := src.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 {
		t.Errorf("second setup steps %v", steps)
	}
}

func testPublicationFollowsMapping(t *testing.T, e *testEnv) {
	pubTables := func() string {
		return e.query(t, "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = $1", e.cfg.Publication)
	}
	for _, tc := range []struct {
		tables []string
		want   string
	}{
		{[]string{"public.leads"}, "public.leads"},
		{[]string{"public.leads", "contacts"}, "public.contacts,public.leads"},
		{[]string{"public.contacts"}, "public.contacts"},
	} {
		if err := e.newSource(t, tc.tables).Setup(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if got := pubTables(); got != tc.want {
			t.Errorf("mapping %v: publication has %q, want %q", tc.tables, got, tc.want)
		}
	}
}

func testSlotMissingWithCheckpoint(t *testing.T, e *testEnv) {
	src := e.newSource(t, nil)
	err := src.Stream(ctxT(t), "0/5000000", func(context.Context, sources.Change) error { return nil })
	var fe *FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("Stream from a checkpoint without a slot: %v, want a fatal error explaining the missing slot", err)
	}
	if got := e.query(t, "SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = $1", e.cfg.Slot); got != "0" {
		t.Error("the slot was created silently")
	}
}

// The flush position reported to the server is the acked one: received
// but unacked changes never move confirmed_flush_lsn.
func testFlushIsAckedPosition(t *testing.T, e *testEnv) {
	src := e.Source(t).(*Source)
	initial := e.slotLSN(t)
	s := sourcetest.Start(t, src, "")
	e.Exec(t, "INSERT INTO leads (id, status) VALUES (1, 'new')")
	e.Exec(t, "INSERT INTO leads (id, status) VALUES (2, 'new')")
	_, p1 := s.Transaction(t)
	_, p2 := s.Transaction(t)
	// Several status intervals pass (sessions prove the connection lives).
	waitFor(t, "status updates", func() bool { return src.statusSent.Load() >= 5 })
	if got := e.slotLSN(t); got != initial {
		t.Fatalf("slot confirmed %s without any Ack (initial %s)", got, initial)
	}
	if err := src.Ack(p1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "slot at first ack", func() bool { return e.slotLSN(t) == string(p1) })
	if err := src.Ack(p2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "slot at second ack", func() bool { return e.slotLSN(t) == string(p2) })
}

// A checkpoint ahead of the slot (acks that never reached the server)
// wins: the transaction it covers is not redelivered.
func testFromAheadOfSlot(t *testing.T, e *testEnv) {
	src := e.Source(t)
	s := sourcetest.Start(t, src, "")
	e.Exec(t, "INSERT INTO leads (id, status) VALUES (1, 'new')")
	e.Exec(t, "INSERT INTO leads (id, status) VALUES (2, 'new')")
	_, p1 := s.Transaction(t)
	s.Transaction(t)
	s.Stop(t)
	if e.query(t, "SELECT (confirmed_flush_lsn >= $1::pg_lsn)::text FROM pg_replication_slots WHERE slot_name = $2", string(p1), e.cfg.Slot) != "false" {
		t.Fatalf("slot at %s already covers %s; the test needs it behind", e.slotLSN(t), p1)
	}
	s2 := sourcetest.Start(t, e.Source(t), p1)
	rows, _ := s2.Transaction(t)
	if len(rows) != 1 || rows[0].After["id"] != int64(2) {
		t.Fatalf("from %s got %v, want lead 2 first", p1, rows)
	}
}

func testTypesRoundTrip(t *testing.T, e *testEnv) {
	e.Exec(t, `
		CREATE EXTENSION citext;
		CREATE TYPE stage AS ENUM ('new', 'qualified');
		CREATE DOMAIN score AS integer CHECK (VALUE >= 0);
		CREATE TABLE typed (
			id bigint PRIMARY KEY, i2 smallint, i4 integer, num numeric(30,10), f4 real, f8 double precision,
			b boolean, t text, vc varchar(10), ch char(3), nm name, ci citext,
			ts timestamp, tstz timestamptz, d date, js json, jsb jsonb, u uuid, by bytea,
			en stage, dom score, ia integer[], ta text[], nul text, iv interval);
		ALTER TABLE typed REPLICA IDENTITY FULL;`)
	src := e.newSource(t, []string{"public.typed"})
	if err := src.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s := sourcetest.Start(t, src, "")
	e.Exec(t, `SET TIME ZONE 'America/New_York'; INSERT INTO typed VALUES (
		9007199254740993, -7, 2147483647, 12345678901234567890.0123456789, 1.5, -2.25e-10,
		true, 'tëxt', 'varchar', 'ab', 'nm', 'CiText',
		'2026-03-01 12:34:56.789012', '2026-03-01 12:34:56.5-05', '2026-03-01', '{"a": [1, 2]}', '{"b": {"c": null}}',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\xdeadbeef',
		'qualified', 42, '{1,NULL,3}', '{"a b","c\"d",NULL,""}', NULL, '1 day 02:00:00')`)
	rows, _ := s.Transaction(t)
	if len(rows) != 1 {
		t.Fatalf("got %d rows", len(rows))
	}
	want := sources.Row{
		"id": int64(9007199254740993), "i2": int64(-7), "i4": int64(2147483647),
		"num": "12345678901234567890.0123456789", "f4": 1.5, "f8": -2.25e-10,
		"b": true, "t": "tëxt", "vc": "varchar", "ch": "ab ", "nm": "nm", "ci": "CiText",
		"ts":   time.Date(2026, 3, 1, 12, 34, 56, 789012000, time.UTC),
		"tstz": time.Date(2026, 3, 1, 17, 34, 56, 500000000, time.UTC),
		"d":    time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		"js":   json.RawMessage(`{"a": [1, 2]}`), "jsb": json.RawMessage(`{"b": {"c": null}}`),
		"u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "by": []byte{0xde, 0xad, 0xbe, 0xef},
		"en": "qualified", "dom": int64(42),
		"ia": []any{int64(1), nil, int64(3)}, "ta": []any{"a b", `c"d`, nil, ""},
		"nul": nil, "iv": "1 day 02:00:00",
	}
	compareRows(t, "stream", rows[0].After, want)

	// Lookups decode the same way.
	got, err := src.Query(ctxT(t), "SELECT * FROM typed WHERE id = $1", 1, int64(9007199254740993))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("lookup returned %d rows", len(got))
	}
	compareRows(t, "lookup", got[0], want)
}

func compareRows(t *testing.T, name string, got, want sources.Row) {
	t.Helper()
	for k, w := range want {
		g := got[k]
		if tg, ok := g.(time.Time); ok {
			if tw, ok := w.(time.Time); !ok || !tg.Equal(tw) || tg.Location() != time.UTC {
				t.Errorf("%s %s = %v (%s), want %v in UTC", name, k, tg, tg.Location(), w)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s %s = %#v (%T), want %#v (%T)", name, k, g, g, w, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d columns, want %d", name, len(got), len(want))
	}
}

func testUnchangedToastWithoutFullIdentity(t *testing.T, e *testEnv) {
	e.Exec(t, "ALTER TABLE leads REPLICA IDENTITY DEFAULT")
	s := sourcetest.Start(t, e.Source(t), "")
	big := strings.Repeat("0123456789abcdef", 1024) // 16 KB, stored out of line (STORAGE EXTERNAL)
	e.Exec(t, fmt.Sprintf("INSERT INTO leads (id, status, notes) VALUES (1, 'new', '%s')", big))
	s.Transaction(t)
	e.Exec(t, "UPDATE leads SET status = 'won' WHERE id = 1")
	rows, _ := s.Transaction(t)
	if len(rows) != 1 {
		t.Fatalf("got %d rows", len(rows))
	}
	c := rows[0]
	if c.Before != nil {
		t.Errorf("before image %v without REPLICA IDENTITY FULL, want nil", c.Before)
	}
	if v, ok := c.After["notes"]; !ok || v != (sources.Unknown{}) {
		t.Errorf("unchanged TOASTed notes = %#v, want sources.Unknown{} (never nil)", v)
	}
	if c.After["status"] != "won" {
		t.Errorf("status = %v", c.After["status"])
	}
}

func testMappedColumnDropped(t *testing.T, e *testEnv) {
	src := e.newSource(t, nil, WithRequiredColumns(map[string][]string{"public.leads": {"id", "status", "email"}}))
	if err := src.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	changes := make(chan sources.Change, 100)
	go func() {
		errc <- src.Stream(ctxT(t), "", func(ctx context.Context, c sources.Change) error { changes <- c; return nil })
	}()
	e.Exec(t, "INSERT INTO leads (id, status, email) VALUES (1, 'new', 'a@example.com')")
	waitRow(t, changes, errc)
	// A new Relation message after ALTER TABLE replaces the cached one.
	e.Exec(t, "ALTER TABLE leads ADD COLUMN phone text")
	e.Exec(t, "INSERT INTO leads (id, status, email, phone) VALUES (3, 'new', 'b@example.com', '+1555')")
	c := waitRow(t, changes, errc)
	if c.After["email"] != "b@example.com" || c.After["id"] != int64(3) {
		t.Fatalf("after ADD COLUMN got %v", c.After)
	}
	// Rows carry the required columns only.
	if _, ok := c.After["phone"]; ok {
		t.Errorf("unmapped column phone in the row: %v", c.After)
	}
	e.Exec(t, "ALTER TABLE leads DROP COLUMN email")
	e.Exec(t, "INSERT INTO leads (id, status) VALUES (2, 'new')")
	select {
	case err := <-errc:
		var fe *FatalError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "public.leads.email") {
			t.Fatalf("Stream returned %v, want a fatal error naming public.leads.email", err)
		}
	case <-time.After(sourcetest.Timeout):
		t.Fatal("Stream did not stop after a mapped column was dropped")
	}
	for len(changes) > 0 {
		if c := <-changes; c.Op != sources.OpNone && c.After["id"] == int64(2) {
			t.Error("the row without the mapped column was emitted")
		}
	}
}

func waitRow(t *testing.T, changes chan sources.Change, errc chan error) sources.Change {
	t.Helper()
	for {
		select {
		case c := <-changes:
			if c.Op != sources.OpNone {
				return c
			}
		case err := <-errc:
			t.Fatalf("stream ended: %v", err)
		case <-time.After(sourcetest.Timeout):
			t.Fatal("no row change")
		}
	}
}

// autoAck streams src, acking every position as the connector would after
// saving it, and returns the row changes on a channel.
func autoAck(t *testing.T, src *Source, from sources.Position) <-chan sources.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rows := make(chan sources.Change, 10_000)
	done := make(chan error, 1)
	go func() {
		done <- src.Stream(ctx, from, func(ctx context.Context, c sources.Change) error {
			if c.Op != sources.OpNone {
				rows <- c
			}
			if c.Pos != "" {
				return src.Ack(c.Pos)
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Stream: %v", err)
		}
	})
	return rows
}

// lsnAfter reports whether the slot's confirmed_flush_lsn is past lsn.
func (e *testEnv) slotPast(t testing.TB, lsn string) bool {
	return e.query(t, "SELECT (confirmed_flush_lsn > $1::pg_lsn)::text FROM pg_replication_slots WHERE slot_name = $2", lsn, e.cfg.Slot) == "true"
}

func testIdleSlotAdvances(t *testing.T, e *testEnv) {
	e.cfg.HeartbeatInterval = 0 // keepalive WAL ends alone must do it
	src := e.Source(t).(*Source)
	initial := e.slotLSN(t)
	rows := autoAck(t, src, "")
	deadline := time.Now().Add(sourcetest.Timeout)
	for i := 0; !e.slotPast(t, initial); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("slot stuck at %s while another table was busy", initial)
		}
		e.Exec(t, fmt.Sprintf("INSERT INTO other (id, v) VALUES (%d, 'busy')", i))
		time.Sleep(20 * time.Millisecond) // pacing the writer, not synchronisation
	}
	if len(rows) != 0 {
		t.Errorf("%d row changes from an unmapped table", len(rows))
	}
}

func testHeartbeat(t *testing.T, e *testEnv) {
	e.cfg.HeartbeatInterval = 200 * time.Millisecond
	src := e.Source(t).(*Source)
	initial := e.slotLSN(t)
	autoAck(t, src, "")
	waitFor(t, "slot to advance on a quiet database", func() bool { return e.slotPast(t, initial) })
	if n := src.sessions.Load(); n != 1 {
		t.Errorf("%d replication sessions, want 1", n)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(sourcetest.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStatusWhileEmitBlocked blocks emit for three times
// wal_sender_timeout: status updates sent while reads are paused keep the
// same connection alive. Without them (the control) the server drops the
// walsender and the stream reconnects; either way nothing is lost or
// duplicated.
func TestStatusWhileEmitBlocked(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.WithSetting("wal_sender_timeout", "2s"))
	for _, tc := range []struct {
		name           string
		noStatus       bool
		wantReconnects bool
	}{
		{"StatusKeepsConnection", false, false},
		{"ControlWithoutStatusReconnects", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, srv)
			e.cfg.StatusInterval = 250 * time.Millisecond
			e.cfg.HeartbeatInterval = 0
			e.tune = func(s *Source) { s.queueLen = 2; s.noStatusWhileBlocked = tc.noStatus }
			src := e.Source(t).(*Source)

			const n = 40
			unblock := make(chan struct{})
			got := make(chan sources.Change, 10*n)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- src.Stream(ctx, "", func(ctx context.Context, c sources.Change) error {
					if c.Op != sources.OpNone {
						select {
						case <-unblock:
						case <-ctx.Done():
							return ctx.Err()
						}
						got <- c
					}
					if c.Pos != "" {
						return src.Ack(c.Pos)
					}
					return nil
				})
			}()
			defer func() {
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("Stream: %v", err)
				}
			}()
			for i := 1; i <= n; i++ {
				e.Exec(t, fmt.Sprintf("INSERT INTO leads (id, status) VALUES (%d, 'new')", i))
			}
			time.Sleep(6 * time.Second) // the sink "retries" for 3 × wal_sender_timeout
			close(unblock)
			for i := 1; i <= n; i++ {
				select {
				case c := <-got:
					if c.After["id"] != int64(i) {
						t.Fatalf("change %d is lead %v", i, c.After["id"])
					}
				case <-time.After(sourcetest.Timeout):
					t.Fatalf("only %d of %d changes", i-1, n)
				}
			}
			select {
			case c := <-got:
				t.Fatalf("duplicate or extra change: lead %v", c.After["id"])
			case <-time.After(500 * time.Millisecond):
			}
			if reconnected := src.sessions.Load() > 1; reconnected != tc.wantReconnects {
				t.Errorf("sessions = %d, want reconnects: %v", src.sessions.Load(), tc.wantReconnects)
			}
		})
	}
}

// TestServerRestart restarts the server mid-stream: the stream reconnects
// and every change arrives exactly once, in order.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	e := newEnv(t, srv)
	src := e.Source(t).(*Source)
	rows := autoAck(t, src, "")
	const n = 40
	for i := 1; i <= n; i++ {
		if i == n/2 {
			srv.Restart(t)
		}
		e.Exec(t, fmt.Sprintf("INSERT INTO leads (id, status) VALUES (%d, 'new')", i))
	}
	for i := 1; i <= n; i++ {
		select {
		case c := <-rows:
			if c.After["id"] != int64(i) {
				t.Fatalf("change %d is lead %v", i, c.After["id"])
			}
		case <-time.After(sourcetest.Timeout):
			t.Fatalf("only %d of %d changes after restart", i-1, n)
		}
	}
	select {
	case c := <-rows:
		t.Fatalf("extra change: lead %v", c.After["id"])
	case <-time.After(500 * time.Millisecond):
	}
	if src.sessions.Load() < 2 {
		t.Errorf("sessions = %d, want a reconnect", src.sessions.Load())
	}
}

// TestSlotLost makes the server drop WAL the slot needs: Stream and Check
// must say so instead of recreating the slot.
func TestSlotLost(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.WithInitdbArgs("--wal-segsize=1"),
		pgtest.WithSetting("max_slot_wal_keep_size", "1MB"), pgtest.WithSetting("min_wal_size", "2MB"), pgtest.WithSetting("max_wal_size", "4MB"))
	e := newEnv(t, srv)
	if err := e.newSource(t, nil).Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "wal_status = lost", func() bool {
		e.Exec(t, "INSERT INTO other SELECT g, repeat('x', 60) FROM generate_series(1, 5000) g ON CONFLICT (id) DO UPDATE SET v = excluded.v")
		srv.Exec(t, e.db, "SELECT pg_switch_wal()")
		srv.Exec(t, e.db, "CHECKPOINT")
		return e.query(t, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1", e.cfg.Slot) == "lost"
	})

	err := e.newSource(t, nil).Stream(ctxT(t), "", func(context.Context, sources.Change) error { return nil })
	var fe *FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "wal_status = lost") || !strings.Contains(err.Error(), "pg_drop_replication_slot") {
		t.Fatalf("Stream on a lost slot: %v, want a fatal error saying what to do", err)
	}
	probs, err := Check(ctxT(t), e.cfg, map[string][]string{"public.leads": {"status"}})
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(probs, "replication slot", "lost", false) {
		t.Errorf("Check did not report the lost slot: %+v", probs)
	}
}

func hasProblem(probs []sources.Problem, check, contains string, warning bool) bool {
	for _, p := range probs {
		if p.Check == check && strings.Contains(p.Problem, contains) && p.Warning == warning && p.Fix != "" {
			return true
		}
	}
	return false
}

// TestServerStopWhileEmitBlocked stops PostgreSQL (fast shutdown) while
// emit is stuck, with the reader still reading and with its queue full.
// A stopping walsender waits for the client's flush position, which only
// Ack moves; the source must notice the shutdown and let go instead of
// holding the server up for as long as the sink is stuck. After the
// restart every change arrives, once.
func TestServerStopWhileEmitBlocked(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	for _, tc := range []struct {
		name     string
		queueLen int
		rows     int
	}{
		{"ReaderReading", 256, 1},
		{"ReaderPaused", 2, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, srv)
			e.cfg.HeartbeatInterval = 0
			e.tune = func(s *Source) { s.queueLen = tc.queueLen }
			src := e.Source(t).(*Source)
			unblock, blocked := make(chan struct{}), make(chan struct{}, 1)
			got := make(chan sources.Change, 100)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- src.Stream(ctx, "", func(ctx context.Context, c sources.Change) error {
					if c.Op != sources.OpNone {
						select {
						case blocked <- struct{}{}:
						default:
						}
						select {
						case <-unblock:
						case <-ctx.Done():
							return ctx.Err()
						}
						got <- c
					}
					if c.Pos != "" {
						return src.Ack(c.Pos)
					}
					return nil
				})
			}()
			defer func() {
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("Stream: %v", err)
				}
			}()
			for i := 1; i <= tc.rows; i++ {
				e.Exec(t, fmt.Sprintf("INSERT INTO leads (id, status) VALUES (%d, 'new')", i))
			}
			select {
			case <-blocked:
			case <-time.After(sourcetest.Timeout):
				t.Fatal("emit never called")
			}
			began := time.Now()
			srv.Stop(t)
			if took := time.Since(began); took > 10*time.Second {
				t.Errorf("fast shutdown took %s with emit blocked", took)
			}
			srv.Restart(t)
			close(unblock)
			e.Exec(t, fmt.Sprintf("INSERT INTO leads (id, status) VALUES (%d, 'new')", tc.rows+1))
			for i := 1; i <= tc.rows+1; i++ {
				select {
				case c := <-got:
					if c.After["id"] != int64(i) {
						t.Fatalf("change %d is lead %v", i, c.After["id"])
					}
				case <-time.After(sourcetest.Timeout):
					t.Fatalf("only %d of %d changes after the restart", i-1, tc.rows+1)
				}
			}
			select {
			case c := <-got:
				t.Fatalf("duplicate or extra change: lead %v", c.After["id"])
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}
