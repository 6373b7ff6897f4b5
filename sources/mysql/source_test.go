package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

// Each Test* below owns one server; its subtests run in parallel on
// separate databases, except where they restart or purge the server.

// TestFilePositions runs against a default server: gtid_strict_mode is
// off, so positions are binlog files and offsets.
func TestFilePositions(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	t.Run("Conformance", func(t *testing.T) {
		t.Parallel()
		sourcetest.Run(t, &harness{srv: srv, kind: posFile})
	})
	t.Run("FirstStartEmitsPosition", func(t *testing.T) { t.Parallel(); testFirstStart(t, newEnv(t, srv, posFile)) })
	t.Run("DDLMidStream", func(t *testing.T) { t.Parallel(); testDDLMidStream(t, newEnv(t, srv, posFile)) })
	t.Run("TypesRoundTrip", func(t *testing.T) { t.Parallel(); testTypes(t, newEnv(t, srv, posFile)) })
	t.Run("UnmappedCoalesced", func(t *testing.T) { t.Parallel(); testUnmappedCoalesced(t, newEnv(t, srv, posFile)) })
	t.Run("EmitErrorEndsStream", func(t *testing.T) { t.Parallel(); testEmitError(t, newEnv(t, srv, posFile)) })
	t.Run("Lag", func(t *testing.T) { t.Parallel(); testLag(t, newEnv(t, srv, posFile)) })
	t.Run("StreamingAndStats", func(t *testing.T) { t.Parallel(); testStreamingAndStats(t, newEnv(t, srv, posFile)) })
	t.Run("CheckReady", func(t *testing.T) { t.Parallel(); testCheckReady(t, newEnv(t, srv, posFile)) })
	t.Run("CheckTablesAndPrivileges", func(t *testing.T) { t.Parallel(); testCheckTables(t, newEnv(t, srv, posFile)) })
	t.Run("ServerIDCollision", func(t *testing.T) { t.Parallel(); testServerIDCollision(t, newEnv(t, srv, posFile)) })
}

// TestGTIDStrict runs against a server with gtid_strict_mode=ON:
// positions are MariaDB GTID positions.
func TestGTIDStrict(t *testing.T) {
	t.Parallel()
	srv := startServer(t, mysqltest.WithGTIDStrict())
	t.Run("Conformance", func(t *testing.T) {
		t.Parallel()
		sourcetest.Run(t, &harness{srv: srv, kind: posMariaGTID})
	})
	t.Run("FirstStartEmitsPosition", func(t *testing.T) { t.Parallel(); testFirstStart(t, newEnv(t, srv, posMariaGTID)) })
	t.Run("DDLMidStream", func(t *testing.T) { t.Parallel(); testDDLMidStream(t, newEnv(t, srv, posMariaGTID)) })
	t.Run("TypesRoundTrip", func(t *testing.T) { t.Parallel(); testTypes(t, newEnv(t, srv, posMariaGTID)) })
	t.Run("Lag", func(t *testing.T) { t.Parallel(); testLag(t, newEnv(t, srv, posMariaGTID)) })
	t.Run("StreamingAndStats", func(t *testing.T) { t.Parallel(); testStreamingAndStats(t, newEnv(t, srv, posMariaGTID)) })
}

// start runs Stream from from in the background (sourcetest's runner).
func start(t testing.TB, src sourcetest.Source, from sources.Position) *sourcetest.Stream {
	t.Helper()
	return sourcetest.Start(t, src, from)
}

func endPos(t testing.TB, src *Source) sources.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := src.EndPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rowsOf returns the next transaction's rows, failing unless they are n.
func rowsOf(t testing.TB, s *sourcetest.Stream, n int) []sources.Change {
	t.Helper()
	rows, _ := s.Transaction(t)
	if len(rows) != n {
		t.Fatalf("got %d row changes, want %d", len(rows), n)
	}
	return rows
}

func testFirstStart(t *testing.T, env *testEnv) {
	src := env.newSource(t)
	s := start(t, src, "")
	c := s.Next(t)
	if c.Op != sources.OpNone || c.Pos == "" {
		t.Fatalf("first change %+v, want a position-only change with the start position", c)
	}
	if p, err := parsePosition(c.Pos); err != nil || p.kind != env.kind {
		t.Fatalf("start position %q: want a %s position (%v)", c.Pos, env.kind, err)
	}
	// Everything after the start position comes, and nothing before it.
	env.Exec(t, leadInsert(1))
	rows := rowsOf(t, s, 1)
	if rows[0].After["id"] != int64(1) {
		t.Errorf("got %v", rows[0].After)
	}
}

func leadInsert(id int) string {
	return fmt.Sprintf("INSERT INTO leads (id, status, email) VALUES (%d, 'new', 'lead%d@example.com')", id, id)
}

// An ALTER TABLE between two inserts: read after the fact, the older
// event still has the old columns (the binlog carries the names).
func testDDLMidStream(t *testing.T, env *testEnv) {
	src := env.newSource(t)
	from := endPos(t, src)
	env.Exec(t, leadInsert(1))
	env.srv.Exec(t, env.db, "ALTER TABLE leads ADD COLUMN score int DEFAULT 7 AFTER status")
	env.Exec(t, "INSERT INTO leads (id, status, score, email) VALUES (2, 'new', 9, 'x@example.com')")
	s := start(t, src, from)
	first := rowsOf(t, s, 1)[0].After
	if _, has := first["score"]; has || first["email"] != "lead1@example.com" || first["status"] != "new" {
		t.Errorf("row written before the ALTER: %v, want the old columns with their values", first)
	}
	second := rowsOf(t, s, 1)[0].After
	if second["score"] != int64(9) || second["email"] != "x@example.com" {
		t.Errorf("row written after the ALTER: %v, want score 9", second)
	}
}

// typesTable covers every type family the decoder handles.
const typesTable = `CREATE TABLE types (
	id int PRIMARY KEY,
	ti tinyint, tu tinyint unsigned, si smallint, su smallint unsigned, mi mediumint, mu mediumint unsigned,
	i int, iu int unsigned, bi bigint, bu bigint unsigned, b1 tinyint(1),
	f float, d double, dc decimal(12,4),
	dt datetime(3), ts timestamp(6) NULL, da date, tm time, yr year,
	uid char(36), vc varchar(20), tx text, bl blob, vb varbinary(8),
	e enum('new','won','lost'), st set('a','b','c'), js json, bt bit(8),
	zdt datetime NULL, zda date NULL)`

const typesInsert = `INSERT INTO types VALUES (1,
	-128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615, 1,
	0.1, 1.5e300, -12345678.1234,
	'2024-03-01 12:34:56.789', '2024-03-01 12:00:00.123456', '2024-02-29', '-12:30:00', 2024,
	'6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'Zoë 🚀', 'long text ✓', X'00FF10', X'DEADBEEF',
	'won', 'a,c', '{"k": [1, 2]}', b'10100101',
	'0000-00-00 00:00:00', '0000-00-00')`

// typesWant is the decoded row, with datetime_zone Europe/Berlin (UTC+1 in
// March).
func typesWant() sources.Row {
	return sources.Row{
		"id": int64(1), "ti": int64(-128), "tu": int64(255), "si": int64(-32768), "su": int64(65535),
		"mi": int64(-8388608), "mu": int64(16777215), "i": int64(-2147483648), "iu": int64(4294967295),
		"bi": int64(-9223372036854775808), "bu": uint64(18446744073709551615), "b1": int64(1),
		"f": 0.1, "d": 1.5e300, "dc": "-12345678.1234",
		"dt": time.Date(2024, 3, 1, 11, 34, 56, 789e6, time.UTC), "ts": time.Date(2024, 3, 1, 12, 0, 0, 123456e3, time.UTC),
		"da": time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "tm": "-12:30:00", "yr": int64(2024),
		"uid": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "vc": "Zoë 🚀", "tx": "long text ✓",
		"bl": []byte{0, 0xff, 0x10}, "vb": []byte{0xde, 0xad, 0xbe, 0xef},
		"e": "won", "st": "a,c", "js": json.RawMessage(`{"k": [1, 2]}`), "bt": int64(165),
		"zdt": nil, "zda": nil,
	}
}

// testTypes writes every type and reads it back from the binlog and
// through lookups (text and binary protocol).
func testTypes(t *testing.T, env *testEnv) {
	env.srv.Exec(t, env.db, typesTable)
	env.cfg.DatetimeZone = "Europe/Berlin"
	src := env.newSource(t, env.Table("types"))
	from := endPos(t, src)
	env.Exec(t, "SET time_zone = '+00:00'", "SET sql_mode = ''", typesInsert)
	s := start(t, src, from)
	got := rowsOf(t, s, 1)[0].After
	want := typesWant()
	compareRows(t, "streamed", got, want)

	// MariaDB lookups see JSON as the LONGTEXT it is.
	want["js"] = `{"k": [1, 2]}`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range []struct {
		name  string
		query string
		args  []any
	}{{"text protocol", "SELECT * FROM types WHERE id = 1", nil}, {"binary protocol", "SELECT * FROM types WHERE id = ?", []any{1}}} {
		rows, err := src.Query(ctx, q.query, 5, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		if len(rows) != 1 {
			t.Fatalf("%s: %d rows", q.name, len(rows))
		}
		compareRows(t, "lookup ("+q.name+")", rows[0], want)
	}
}

func compareRows(t testing.TB, what string, got, want sources.Row) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: column %s missing", what, k)
			continue
		}
		if wt, isTime := w.(time.Time); isTime {
			if gt, ok := g.(time.Time); !ok || !gt.Equal(wt) || gt.Location() != time.UTC {
				t.Errorf("%s: %s = %T(%v), want %v UTC", what, k, g, g, wt)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %s = %T(%v), want %T(%v)", what, k, g, g, w, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d columns, want %d", what, len(got), len(want))
	}
}

// A burst of transactions on an unmapped table yields few position-only
// changes, the last of them the burst's end.
func testUnmappedCoalesced(t *testing.T, env *testEnv) {
	src := env.newSource(t)
	s := start(t, src, endPos(t, src))
	const n = 60
	for i := 0; i < n; i++ {
		env.Exec(t, fmt.Sprintf("INSERT INTO other (id, v) VALUES (%d, 'x')", i))
	}
	end, err := parsePosition(endPos(t, src))
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	deadline := time.Now().Add(sourcetest.Timeout)
	for time.Now().Before(deadline) {
		c := s.Next(t)
		if c.Op != sources.OpNone {
			t.Fatalf("unexpected %s on %s", c.Op, c.Table)
		}
		count++
		p, err := parsePosition(c.Pos)
		if err != nil {
			t.Fatal(err)
		}
		// Other tests write to this server too: reaching the end seen
		// after the burst is enough.
		if seen, _ := end.seen(p); !seen {
			break
		}
	}
	if count >= n {
		t.Errorf("%d position-only changes for %d transactions: not coalesced", count, n)
	}
	t.Logf("%d transactions, %d position-only changes", n, count)
}

func testEmitError(t *testing.T, env *testEnv) {
	src := env.newSource(t)
	from := endPos(t, src)
	env.Exec(t, leadInsert(1))
	boom := errors.New("boom")
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	err := src.Stream(ctx, from, func(_ context.Context, c sources.Change) error {
		if c.Op == sources.OpInsert {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Stream returned %v, want emit's error", err)
	}
}

func testLag(t *testing.T, env *testEnv) {
	src := env.newSource(t)
	p := endPos(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env.Exec(t, leadInsert(1))
	env.Exec(t, leadInsert(2))
	lag, err := Lag(ctx, env.cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	switch env.kind {
	case posFile:
		var files int
		if _, err := fmt.Sscanf(lag, "%d binlog files / %d bytes behind", &files, &n); err != nil || n == 0 {
			t.Errorf("lag %q: want bytes behind", lag)
		}
	default:
		if _, err := fmt.Sscanf(lag, "%d transactions behind", &n); err != nil || n < 2 {
			t.Errorf("lag %q: want at least 2 transactions behind", lag)
		}
	}
	if lag, err := Lag(ctx, env.cfg, ""); err != nil || !strings.Contains(lag, "no checkpoint") {
		t.Errorf("no checkpoint: %q %v", lag, err)
	}
	t.Log(lag)
}

func testCheckReady(t *testing.T, env *testEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	probs, err := Check(ctx, env.cfg, map[string][]string{env.Table("leads"): {"status", "email", "fb_lead_id"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 0 {
		t.Errorf("a well set up server has problems: %+v", probs)
	}
}

func testCheckTables(t *testing.T, env *testEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	probs, err := Check(ctx, env.cfg, map[string][]string{
		env.Table("leads"):   {"status", "stage_typo"},
		env.Table("missing"): {"x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, probs, "stage_typo", env.Table("missing")+" does not exist")

	// A user with SELECT only on the database: no replication privileges.
	user := "weak_" + env.db
	env.srv.CreateUser(t, user, "pw")
	env.srv.Exec(t, "", fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'%%'", env.db, user))
	cfg := env.cfg
	cfg.DSN = env.srv.UserDSN(user, "pw", env.db)
	probs, err = Check(ctx, cfg, map[string][]string{env.Table("leads"): {"status"}})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, probs, "REPLICATION SLAVE", "BINLOG MONITOR")
	for _, p := range probs {
		if strings.Contains(p.Problem, "cannot list replicas") && !p.Warning {
			t.Errorf("unverifiable server_id is not a warning: %+v", p)
		}
		if strings.Contains(p.Problem+p.Fix, "pw@") {
			t.Errorf("problem shows the password: %+v", p)
		}
	}

	// Wrong password: a problem, not an error.
	cfg.DSN = env.srv.UserDSN(user, "wrong", env.db)
	probs, err = Check(ctx, cfg, nil)
	if err != nil || len(probs) != 1 || probs[0].Check != "connection" || strings.Contains(probs[0].Problem, "wrong") {
		t.Errorf("wrong password: %+v %v", probs, err)
	}
}

// wantProblems fails unless every substring appears in a blocking problem.
func wantProblems(t testing.TB, probs []sources.Problem, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		found := false
		for _, p := range probs {
			if !p.Warning && strings.Contains(p.Problem+" "+p.Fix, sub) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem mentions %q in %+v", sub, probs)
		}
	}
	for _, p := range probs {
		if p.Fix == "" || strings.Contains(p.Fix, "\n") {
			t.Errorf("problem without a one-line fix: %+v", p)
		}
	}
}

// Another replica registered with our server_id: Check reports it, and
// Stream refuses to start instead of cutting that replica off.
func testServerIDCollision(t *testing.T, env *testEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	other := fakeReplica(t, env.srv, env.cfg.ServerID)
	defer other()
	probs, err := Check(ctx, env.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, probs, "in use by replica")

	src := env.newSource(t)
	err = src.Stream(ctx, endPos(t, src), func(context.Context, sources.Change) error { return nil })
	if !errors.Is(err, ErrServerIDInUse) || !isFatal(err) {
		t.Fatalf("Stream with a taken server_id: %v", err)
	}

	// The server's own id is taken too.
	cfg := env.cfg
	cfg.ServerID = env.srv.ServerID
	probs, err = Check(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, probs, "own @@server_id")
}
