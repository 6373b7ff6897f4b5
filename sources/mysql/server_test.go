package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

// TestMisconfiguredServer runs against a server set up the way MariaDB
// ships (no row metadata) and worse: statement-based, minimal row images,
// binlogs kept for an hour. Check must say so; streams written with
// session-level ROW format still decode, with column names and types from
// information_schema.
func TestMisconfiguredServer(t *testing.T) {
	t.Parallel()
	srv := startServer(t,
		mysqltest.WithSetting("binlog_format", "STATEMENT"),
		mysqltest.WithSetting("binlog_row_image", "MINIMAL"),
		mysqltest.WithSetting("binlog_row_metadata", "NO_LOG"),
		mysqltest.WithSetting("binlog_expire_logs_seconds", "3600"))
	rowSession := []string{"SET SESSION binlog_format = 'ROW', binlog_row_image = 'FULL'"}

	t.Run("Check", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, srv, posFile)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		probs, err := Check(ctx, env.cfg, map[string][]string{env.Table("leads"): {"status"}})
		if err != nil {
			t.Fatal(err)
		}
		wantProblems(t, probs, "binlog_format is STATEMENT", "binlog_row_image is MINIMAL", "expire after 1h0m0s")
		warned := false
		for _, p := range probs {
			warned = warned || (p.Warning && p.Check == "binlog_row_metadata")
		}
		if !warned || len(probs) != 4 {
			t.Errorf("want 3 problems and the binlog_row_metadata warning, got %+v", probs)
		}
	})
	t.Run("TypesWithoutMetadata", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, srv, posFile)
		env.init = rowSession
		testTypes(t, env)
	})
	t.Run("DDLWithoutColumnNames", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, srv, posFile)
		env.init = rowSession
		testDDLWithoutNames(t, env)
	})
	t.Run("StatementBasedChangeFails", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, srv, posFile) // writes with the global STATEMENT format
		src := env.newSource(t)
		from := endPos(t, src)
		env.Exec(t, leadInsert(1))
		ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
		defer cancel()
		err := src.Stream(ctx, from, func(context.Context, sources.Change) error { return nil })
		if !isFatal(err) || !strings.Contains(err.Error(), env.Table("leads")) || !strings.Contains(err.Error(), "binlog_format=ROW") {
			t.Fatalf("statement-logged insert: %v, want a fatal error naming the table and the fix", err)
		}
	})
	t.Run("MinimalRowImageIsUnknown", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, srv, posFile)
		env.init = rowSession
		src := env.newSource(t)
		s := start(t, src, endPos(t, src))
		env.Exec(t, leadInsert(1))
		rowsOf(t, s, 1)
		env.init = []string{"SET SESSION binlog_format = 'ROW', binlog_row_image = 'MINIMAL'"}
		env.Exec(t, "UPDATE leads SET status = 'won' WHERE id = 1")
		c := rowsOf(t, s, 1)[0]
		// The before image has the key only, the after image the changed
		// column only: the rest is unknown, never NULL.
		if c.Before["id"] != int64(1) || c.After["status"] != "won" {
			t.Fatalf("before %v after %v", c.Before, c.After)
		}
		for _, img := range []sources.Row{c.Before, c.After} {
			if _, ok := img["email"].(sources.Unknown); !ok {
				t.Errorf("email = %T(%v), want sources.Unknown", img["email"], img["email"])
			}
		}
	})
}

// Without column names in the binlog, a live stream follows an ALTER TABLE
// (the schema is re-read at the DDL event, in binlog order), and a replay
// of events older than the ALTER stops with an error naming the table,
// never shifting values into the wrong columns.
func testDDLWithoutNames(t *testing.T, env *testEnv) {
	src := env.newSource(t)
	from := endPos(t, src)
	s := start(t, src, from)
	env.Exec(t, leadInsert(1))
	if got := rowsOf(t, s, 1)[0].After; got["email"] != "lead1@example.com" {
		t.Fatalf("before the ALTER: %v", got)
	}
	env.srv.Exec(t, env.db, "ALTER TABLE leads ADD COLUMN score int DEFAULT 7 AFTER status")
	env.Exec(t, "INSERT INTO leads (id, status, score, email) VALUES (2, 'new', 9, 'x@example.com')")
	if got := rowsOf(t, s, 1)[0].After; got["score"] != int64(9) || got["email"] != "x@example.com" {
		t.Fatalf("after the ALTER: %v", got)
	}
	s.Stop(t)

	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	err := env.newSource(t).Stream(ctx, from, func(_ context.Context, c sources.Change) error {
		if c.Op != sources.OpNone {
			return fmt.Errorf("replay emitted %s %v: columns shifted", c.Op, c.After)
		}
		return nil
	})
	if !isFatal(err) || !strings.Contains(err.Error(), env.Table("leads")) || !strings.Contains(err.Error(), "binlog_row_metadata=FULL") {
		t.Fatalf("replay across the ALTER: %v, want a fatal error naming %s and the fix", err, env.Table("leads"))
	}
}

// TestServerLifecycle restarts and purges its own server: its subtests
// run one after another.
func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	srv := startServer(t, mysqltest.WithGTIDStrict())
	filePos := func(t *testing.T) sources.Position {
		rows := srv.Query(t, "", "SHOW MASTER STATUS")
		return sources.Position("file:" + rows[0][0] + ":" + rows[0][1])
	}
	t.Run("RestartGTID", func(t *testing.T) {
		env := newEnv(t, srv, posMariaGTID)
		src := env.newSource(t)
		testRestart(t, env, src, endPos(t, src))
	})
	t.Run("RestartFilePositions", func(t *testing.T) {
		env := newEnv(t, srv, posFile)
		// A file checkpoint on a GTID server: the checkpoint's kind wins.
		testRestart(t, env, env.newSource(t), filePos(t))
	})
	t.Run("PurgedFilePosition", func(t *testing.T) {
		env := newEnv(t, srv, posFile)
		from := filePos(t)
		env.Exec(t, leadInsert(1))
		srv.PurgeBinlogs(t)
		testPurged(t, env, from)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := Lag(ctx, env.cfg, from); !errors.Is(err, ErrPositionLost) {
			t.Errorf("Lag of a purged position: %v", err)
		}
	})
	t.Run("PurgedGTIDPosition", func(t *testing.T) {
		env := newEnv(t, srv, posMariaGTID)
		from := endPos(t, env.newSource(t))
		env.Exec(t, leadInsert(1))
		srv.PurgeBinlogs(t)
		testPurged(t, env, from)
	})
}

// testRestart restarts the server under a running stream: nothing is lost
// and nothing already emitted comes twice.
func testRestart(t *testing.T, env *testEnv, src *Source, from sources.Position) {
	s := start(t, src, from)
	env.Exec(t, leadInsert(1))
	_, p1 := s.Transaction(t)
	if err := src.Ack(p1); err != nil {
		t.Fatal(err)
	}
	if k, _ := parsePosition(p1); k.kind != env.kind {
		t.Fatalf("position %s, want a %s position", p1, env.kind)
	}
	env.Exec(t, leadInsert(2)) // emitted, never acked: the reconnect replays it from p1
	if rows := rowsOf(t, s, 1); rows[0].After["id"] != int64(2) {
		t.Fatalf("got %v", rows[0].After)
	}
	sessions := src.sessions.Load()
	env.srv.Restart(t)
	env.Exec(t, leadInsert(3))
	if rows := rowsOf(t, s, 1); rows[0].After["id"] != int64(3) {
		t.Fatalf("after the restart got lead %v, want lead 3 (lead 2 was emitted already)", rows[0].After["id"])
	}
	if got := src.sessions.Load(); got <= sessions {
		t.Errorf("%d binlog sessions, want a reconnect", got)
	}
}

func testPurged(t *testing.T, env *testEnv, from sources.Position) {
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	err := env.newSource(t).Stream(ctx, from, func(context.Context, sources.Change) error { return nil })
	if !errors.Is(err, ErrPositionLost) || !isFatal(err) {
		t.Fatalf("Stream from a purged position: %v, want ErrPositionLost", err)
	}
	for _, want := range []string{string(from), "state_dir", "backfill"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
