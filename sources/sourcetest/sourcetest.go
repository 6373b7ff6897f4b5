// Package sourcetest is the conformance suite every database source
// (PostgreSQL, MySQL) runs: the behaviour the connector and the mapping
// rely on, checked against a real server.
//
// A source's test implements Harness and calls Run:
//
//	func TestConformance(t *testing.T) { sourcetest.Run(t, myHarness{...}) }
//
// Each case gets a fresh Env: an isolated database holding these tables
// (types in the source's dialect):
//
//	leads    (id integer primary key, status varchar(32), email varchar(255),
//	          fb_lead_id varchar(32), notes text, payload json)
//	contacts (id integer primary key, lead_id integer, phone varchar(32))
//	other    (id integer primary key, v varchar(64))
//
// Only leads is mapped (streamed); contacts serves lookups, other is an
// unmapped table whose transactions must still advance the position. The
// leads table must be set up so that updates carry a full before image
// (PostgreSQL: REPLICA IDENTITY FULL; MySQL: binlog_row_image=FULL), and
// notes/payload must be stored out of line when large (PostgreSQL:
// STORAGE EXTERNAL is a good idea; the suite writes incompressible data).
//
// Statements the suite runs are plain SQL both dialects accept, with
// literals inline and unqualified table names.
package sourcetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources"
)

// Source is what the suite exercises: the connector's Source interface
// plus the mapping's Querier (copied here; sources/* may not import them).
type Source interface {
	Stream(ctx context.Context, from sources.Position, emit func(context.Context, sources.Change) error) error
	Ack(p sources.Position) error
	Close() error
	Query(ctx context.Context, query string, maxRows int, args ...any) ([]sources.Row, error)
}

// Harness adapts one source kind to the suite.
type Harness interface {
	// NewEnv creates an isolated database with the tables above and
	// registers its cleanup with t.
	NewEnv(t *testing.T) Env
}

// Env is one case's database.
type Env interface {
	// Table returns the source's name for a table, as Change.Table
	// carries it: "public.leads" (PostgreSQL), "crm.leads" (MySQL).
	Table(name string) string
	// Exec runs the statements in one transaction.
	Exec(t testing.TB, stmts ...string)
	// Source returns a new Source (as a restarted process would build
	// it) over the env's durable replication state, with leads mapped.
	// Every change committed after Source returns must be streamed by a
	// Stream from the empty Position, unless a Position at or after it
	// was acked meanwhile. Source registers Close with t.Cleanup.
	Source(t testing.TB) Source
	// Placeholder returns the n-th (1-based) query parameter marker:
	// "$1" (PostgreSQL) or "?" (MySQL).
	Placeholder(n int) string
}

// Timeout bounds every wait of the suite.
var Timeout = 30 * time.Second

// Run runs every case as a subtest.
func Run(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(*testing.T, Env)
	}{
		{"Insert", testInsert},
		{"StageUpdate", testStageUpdate},
		{"NonStageUpdate", testNonStageUpdate},
		{"Delete", testDelete},
		{"Lookup", testLookup},
		{"LargeColumnUnchanged", testLargeColumnUnchanged},
		{"ManyRowsOneTransaction", testManyRows},
		{"UnmappedTablesAdvancePosition", testUnmappedProgress},
		{"ResumeAfterAck", testResumeAfterAck},
		{"CrashBeforeAckRedelivers", testCrashBeforeAck},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, h.NewEnv(t))
		})
	}
}

const leadCols = "INSERT INTO leads (id, status, email, fb_lead_id) VALUES "

func testInsert(t *testing.T, env Env) {
	s := Start(t, env.Source(t), "")
	before := time.Now()
	env.Exec(t, leadCols+"(1, 'new', 'jane@example.com', '1234567890123456')")
	rows, _ := s.Transaction(t)
	if len(rows) != 1 {
		t.Fatalf("got %d row changes, want 1", len(rows))
	}
	c := rows[0]
	if c.Table != env.Table("leads") || c.Op != sources.OpInsert {
		t.Errorf("got %s on %q, want insert on %q", c.Op, c.Table, env.Table("leads"))
	}
	if c.Before != nil {
		t.Errorf("insert has a before image: %v", c.Before)
	}
	want := map[string]any{"id": int64(1), "status": "new", "email": "jane@example.com", "fb_lead_id": "1234567890123456", "notes": nil, "payload": nil}
	checkRow(t, "after", c.After, want)
	if c.CommitTime.Location() != time.UTC || c.CommitTime.Before(before.Add(-time.Minute)) || c.CommitTime.After(time.Now().Add(time.Minute)) {
		t.Errorf("commit time %v is not a UTC time near now", c.CommitTime)
	}
	if c.Commit == "" || c.Ordinal != 0 {
		t.Errorf("commit %q ordinal %d, want a commit and ordinal 0", c.Commit, c.Ordinal)
	}
}

func testStageUpdate(t *testing.T, env Env) {
	s := Start(t, env.Source(t), "")
	env.Exec(t, leadCols+"(1, 'new', 'jane@example.com', '1234567890123456')")
	s.Transaction(t)
	env.Exec(t, "UPDATE leads SET status = 'qualified' WHERE id = 1")
	rows, _ := s.Transaction(t)
	if len(rows) != 1 || rows[0].Op != sources.OpUpdate {
		t.Fatalf("got %v, want one update", ops(rows))
	}
	c := rows[0]
	checkRow(t, "before", c.Before, map[string]any{"id": int64(1), "status": "new", "email": "jane@example.com"})
	checkRow(t, "after", c.After, map[string]any{"id": int64(1), "status": "qualified", "email": "jane@example.com", "fb_lead_id": "1234567890123456"})
}

func testNonStageUpdate(t *testing.T, env Env) {
	s := Start(t, env.Source(t), "")
	env.Exec(t, leadCols+"(1, 'new', 'jane@example.com', NULL)")
	s.Transaction(t)
	env.Exec(t, "UPDATE leads SET email = 'j.doe@example.com' WHERE id = 1")
	rows, _ := s.Transaction(t)
	if len(rows) != 1 || rows[0].Op != sources.OpUpdate {
		t.Fatalf("got %v, want one update", ops(rows))
	}
	checkRow(t, "before", rows[0].Before, map[string]any{"status": "new", "email": "jane@example.com", "fb_lead_id": nil})
	checkRow(t, "after", rows[0].After, map[string]any{"status": "new", "email": "j.doe@example.com", "fb_lead_id": nil})
}

func testDelete(t *testing.T, env Env) {
	s := Start(t, env.Source(t), "")
	env.Exec(t, leadCols+"(1, 'won', 'jane@example.com', NULL)")
	s.Transaction(t)
	env.Exec(t, "DELETE FROM leads WHERE id = 1")
	rows, _ := s.Transaction(t)
	if len(rows) != 1 || rows[0].Op != sources.OpDelete {
		t.Fatalf("got %v, want one delete", ops(rows))
	}
	checkRow(t, "before", rows[0].Before, map[string]any{"id": int64(1), "status": "won", "email": "jane@example.com"})
	if rows[0].After != nil {
		t.Errorf("delete has an after image: %v", rows[0].After)
	}
}

func testLookup(t *testing.T, env Env) {
	src := env.Source(t)
	env.Exec(t, "INSERT INTO contacts (id, lead_id, phone) VALUES (1, 7, '+15550001'), (2, 7, '+15550002'), (3, 8, '+15550003')")
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	q := "SELECT id, phone FROM contacts WHERE lead_id = " + env.Placeholder(1) + " ORDER BY id"
	rows, err := src.Query(ctx, q, 10, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(rows))
	}
	checkRow(t, "row 0", rows[0], map[string]any{"id": int64(1), "phone": "+15550001"})
	checkRow(t, "row 1", rows[1], map[string]any{"id": int64(2), "phone": "+15550002"})
	if rows, err = src.Query(ctx, q, 1, 7); err != nil || len(rows) != 1 {
		t.Errorf("maxRows 1: got %d rows, err %v; want 1 row", len(rows), err)
	}
	if rows, err = src.Query(ctx, q, 10, 99); err != nil || len(rows) != 0 {
		t.Errorf("no match: got %d rows, err %v; want none and no error", len(rows), err)
	}
}

func testLargeColumnUnchanged(t *testing.T, env Env) {
	s := Start(t, env.Source(t), "")
	notes := randomHex(t, 10_000)                                       // 20 KB, incompressible
	payload := `{"source":"form","blob":"` + randomHex(t, 6_000) + `"}` // 12 KB
	env.Exec(t, fmt.Sprintf("INSERT INTO leads (id, status, email, notes, payload) VALUES (1, 'new', 'jane@example.com', '%s', '%s')", notes, payload))
	s.Transaction(t)
	env.Exec(t, "UPDATE leads SET status = 'qualified' WHERE id = 1")
	rows, _ := s.Transaction(t)
	if len(rows) != 1 {
		t.Fatalf("got %v, want one update", ops(rows))
	}
	for _, img := range []struct {
		name string
		row  sources.Row
	}{{"before", rows[0].Before}, {"after", rows[0].After}} {
		if got, ok := img.row["notes"].(string); !ok || got != notes {
			t.Errorf("%s notes: got %s, want the 20 KB text", img.name, describe(img.row["notes"]))
		}
		checkJSON(t, img.name+" payload", img.row["payload"], payload)
	}
	checkRow(t, "after", rows[0].After, map[string]any{"status": "qualified"})
}

func testManyRows(t *testing.T, env Env) {
	const n = 5000
	s := Start(t, env.Source(t), "")
	var stmts []string
	for start := 0; start < n; start += 500 {
		var vals []string
		for i := start; i < start+500; i++ {
			vals = append(vals, fmt.Sprintf("(%d, 'new', 'lead%d@example.com', NULL)", i+1, i+1))
		}
		stmts = append(stmts, leadCols+strings.Join(vals, ", "))
	}
	env.Exec(t, stmts...)
	rows, pos := s.Transaction(t)
	if len(rows) != n {
		t.Fatalf("got %d rows, want %d", len(rows), n)
	}
	for i, c := range rows {
		if id := asInt(c.After["id"]); id != int64(i+1) || c.Ordinal != i || c.Commit != rows[0].Commit {
			t.Fatalf("row %d: id %d ordinal %d commit %q; want id %d ordinal %d commit %q", i, id, c.Ordinal, c.Commit, i+1, i, rows[0].Commit)
		}
		if c.Pos != "" && i != n-1 {
			t.Fatalf("row %d of %d carries Pos %q: positions only at the transaction end", i, n, c.Pos)
		}
	}
	if pos == "" {
		t.Fatal("transaction has no position")
	}
}

func testUnmappedProgress(t *testing.T, env Env) {
	src := env.Source(t)
	s := Start(t, src, "")
	env.Exec(t, leadCols+"(1, 'new', NULL, NULL)")
	_, first := s.Transaction(t)
	if err := src.Ack(first); err != nil {
		t.Fatal(err)
	}
	// Only unmapped tables change now: the source must still offer a
	// newer position (a filtered transaction, keepalive or heartbeat).
	deadline := time.Now().Add(Timeout)
	var later sources.Position
	for i := 0; later == "" && time.Now().Before(deadline); i++ {
		env.Exec(t, fmt.Sprintf("INSERT INTO other (id, v) VALUES (%d, 'x')", i))
		for later == "" {
			c, ok := s.NextWithin(t, 200*time.Millisecond)
			if !ok {
				break
			}
			if c.Op != sources.OpNone {
				t.Fatalf("unexpected %s on %s while only unmapped tables changed", c.Op, c.Table)
			}
			if c.Pos != "" && c.Pos != first {
				later = c.Pos
			}
		}
	}
	if later == "" {
		t.Fatal("no position after unmapped-table transactions")
	}
	if err := src.Ack(later); err != nil {
		t.Fatal(err)
	}
	s.Stop(t)

	// Resuming there redelivers nothing old, and new changes still come.
	s2 := Start(t, env.Source(t), later)
	env.Exec(t, leadCols+"(2, 'new', NULL, NULL)")
	rows, _ := s2.Transaction(t)
	if len(rows) != 1 || asInt(rows[0].After["id"]) != 2 {
		t.Fatalf("after resume got %v, want the insert of lead 2", ops(rows))
	}
}

func testResumeAfterAck(t *testing.T, env Env) {
	src := env.Source(t)
	s := Start(t, src, "")
	env.Exec(t, leadCols+"(1, 'new', NULL, NULL)")
	env.Exec(t, leadCols+"(2, 'new', NULL, NULL)", leadCols+"(3, 'new', NULL, NULL)")
	_, p1 := s.Transaction(t)
	rows2, _ := s.Transaction(t)
	if err := src.Ack(p1); err != nil {
		t.Fatal(err)
	}
	s.Stop(t)
	src.Close()

	s2 := Start(t, env.Source(t), p1)
	env.Exec(t, leadCols+"(4, 'new', NULL, NULL)")
	again, _ := s2.Transaction(t)
	if !sameChanges(again, rows2) {
		t.Fatalf("after resume got %v, want the unacked transaction again with the same commit and ordinals %v", ids(again), ids(rows2))
	}
	next, _ := s2.Transaction(t)
	if len(next) != 1 || asInt(next[0].After["id"]) != 4 {
		t.Fatalf("then got %v, want lead 4", ids(next))
	}
}

func testCrashBeforeAck(t *testing.T, env Env) {
	src := env.Source(t)
	s := Start(t, src, "")
	env.Exec(t, leadCols+"(1, 'new', NULL, NULL)", "UPDATE leads SET status = 'qualified' WHERE id = 1")
	first, _ := s.Transaction(t)
	// Give status updates time to reach the server: none may confirm
	// what was never acked.
	time.Sleep(time.Second)
	s.Stop(t)
	src.Close()

	s2 := Start(t, env.Source(t), "")
	again, _ := s2.Transaction(t)
	if len(first) != 2 || !sameChanges(again, first) {
		t.Fatalf("after a crash before Ack got %v, want %v again with the same commit and ordinals", ids(again), ids(first))
	}
}

// Stream is a running Stream whose changes a test reads with deadlines.
type Stream struct {
	cancel context.CancelFunc
	done   chan error
	ch     chan sources.Change
	ended  bool
}

// Start runs src.Stream from from in the background; Stop (also run by
// t.Cleanup) ends it.
func Start(t testing.TB, src Source, from sources.Position) *Stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stream{cancel: cancel, done: make(chan error, 1), ch: make(chan sources.Change, 10_000)}
	go func() {
		s.done <- src.Stream(ctx, from, func(ctx context.Context, c sources.Change) error {
			select {
			case s.ch <- c:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Next returns the next change, failing the test after Timeout or when
// the stream ends.
func (s *Stream) Next(t testing.TB) sources.Change {
	t.Helper()
	c, ok := s.NextWithin(t, Timeout)
	if !ok {
		t.Fatalf("no change within %s", Timeout)
	}
	return c
}

// NextWithin returns the next change, or false when none came within d.
// It fails the test when the stream ended.
func (s *Stream) NextWithin(t testing.TB, d time.Duration) (sources.Change, bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case c := <-s.ch:
		return c, true
	case err := <-s.done:
		s.ended = true
		t.Fatalf("stream ended: %v", err)
	case <-timer.C:
	}
	return sources.Change{}, false
}

// Transaction returns the row changes of the next transaction with mapped
// rows and its position, skipping position-only changes before it. It
// checks the transaction's shape: one Commit, ordinals 0..n-1, Pos only on
// its last change (which may be a position-only marker right after the
// last row, with the same Commit).
func (s *Stream) Transaction(t testing.TB) ([]sources.Change, sources.Position) {
	t.Helper()
	var rows []sources.Change
	for {
		c := s.Next(t)
		if c.Op == sources.OpNone {
			if len(rows) == 0 {
				continue // heartbeat, keepalive or a transaction without mapped rows
			}
			if c.Pos == "" {
				t.Fatalf("position-only change without a position after %d rows", len(rows))
			}
			if c.Commit != "" && c.Commit != rows[0].Commit {
				t.Fatalf("transaction end has commit %q, rows have %q", c.Commit, rows[0].Commit)
			}
			return rows, c.Pos
		}
		if len(rows) > 0 && c.Commit != rows[0].Commit {
			t.Fatalf("row %d has commit %q, the transaction's rows %q, and no position in between", len(rows), c.Commit, rows[0].Commit)
		}
		if c.Ordinal != len(rows) {
			t.Fatalf("row %d has ordinal %d", len(rows), c.Ordinal)
		}
		rows = append(rows, c)
		if c.Pos != "" {
			return rows, c.Pos
		}
	}
}

// Stop cancels the stream and waits for Stream to return ctx's error.
func (s *Stream) Stop(t testing.TB) {
	t.Helper()
	s.cancel()
	if s.ended {
		return
	}
	s.ended = true
	select {
	case err := <-s.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Stream returned %v after cancel, want context.Canceled", err)
		}
	case <-time.After(Timeout):
		t.Errorf("Stream did not return within %s of cancel", Timeout)
	}
}

func checkRow(t testing.TB, name string, row sources.Row, want map[string]any) {
	t.Helper()
	if row == nil {
		t.Errorf("%s image missing", name)
		return
	}
	for k, w := range want {
		got, ok := row[k]
		if !ok {
			t.Errorf("%s: column %s missing", name, k)
			continue
		}
		if wi, isInt := w.(int64); isInt {
			if asInt(got) != wi {
				t.Errorf("%s.%s = %s, want %d", name, k, describe(got), wi)
			}
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s.%s = %s, want %s", name, k, describe(got), describe(w))
		}
	}
}

func checkJSON(t testing.TB, name string, got any, want string) {
	t.Helper()
	raw, ok := got.(json.RawMessage)
	if !ok {
		t.Errorf("%s: got %s, want json.RawMessage", name, describe(got))
		return
	}
	var g, w any
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	_ = json.Unmarshal([]byte(want), &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: JSON differs from what was written", name)
	}
}

// describe prints a value's type and, for short values, the value.
func describe(v any) string {
	s := fmt.Sprintf("%v", v)
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return fmt.Sprintf("%T(%s)", v, s)
}

func asInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case uint64:
		return int64(n)
	case int:
		return int64(n)
	case int32:
		return int64(n)
	}
	return -1 << 63
}

func sameChanges(a, b []sources.Change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Commit != b[i].Commit || a[i].Ordinal != b[i].Ordinal || a[i].Op != b[i].Op || asInt(a[i].After["id"]) != asInt(b[i].After["id"]) {
			return false
		}
	}
	return true
}

func ops(cs []sources.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Op.String()+" "+c.Table)
	}
	return out
}

func ids(cs []sources.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s id=%d commit=%s#%d", c.Op, asInt(c.After["id"]), c.Commit, c.Ordinal))
	}
	return out
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
