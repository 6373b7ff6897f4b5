package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/postgres/pgtest"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

// The connector declares Source; it imports this package, so the pin lives
// here against a copy of the interface (and of mapping.Querier).
type connectorSource interface {
	Stream(ctx context.Context, from sources.Position, emit func(context.Context, sources.Change) error) error
	Ack(p sources.Position) error
	Close() error
}

type mappingQuerier interface {
	Query(ctx context.Context, query string, maxRows int, args ...any) ([]sources.Row, error)
}

var (
	_ connectorSource    = (*Source)(nil)
	_ mappingQuerier     = (*Source)(nil)
	_ sourcetest.Source  = (*Source)(nil)
	_ sourcetest.Harness = (*harness)(nil)
)

// testLogger logs to t.Log (see sourcetest.Logger).
func testLogger(t testing.TB) hclog.Logger { return sourcetest.Logger(t, "postgres") }

var dbSeq atomic.Int64

// testEnv is one database on a pgtest server with the conformance tables.
type testEnv struct {
	srv  *pgtest.Server
	db   string
	cfg  Config
	tune func(*Source)
}

// newEnv creates a fresh database with the sourcetest tables: leads with
// REPLICA IDENTITY FULL and out-of-line storage for the large columns.
func newEnv(t testing.TB, srv *pgtest.Server) *testEnv {
	t.Helper()
	db := fmt.Sprintf("db%d", dbSeq.Add(1))
	srv.CreateDB(t, db)
	srv.Exec(t, db, `
		CREATE TABLE leads (id integer PRIMARY KEY, status varchar(32), email varchar(255),
			fb_lead_id varchar(32), notes text, payload jsonb);
		ALTER TABLE leads ALTER COLUMN notes SET STORAGE EXTERNAL, ALTER COLUMN payload SET STORAGE EXTERNAL;
		ALTER TABLE leads REPLICA IDENTITY FULL;
		CREATE TABLE contacts (id integer PRIMARY KEY, lead_id integer, phone varchar(32));
		CREATE TABLE other (id integer PRIMARY KEY, v varchar(64));`)
	cfg := DefaultConfig()
	cfg.DSN = srv.DSN(db)
	cfg.Slot = "slot_" + db // slots are per cluster
	cfg.StatusInterval = 200 * time.Millisecond
	cfg.HeartbeatInterval = time.Second
	return &testEnv{srv: srv, db: db, cfg: cfg}
}

func (e *testEnv) Table(name string) string { return "public." + name }

func (e *testEnv) Placeholder(n int) string { return fmt.Sprintf("$%d", n) }

func (e *testEnv) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
}

// query returns the first column of the first row of sql as text.
func (e *testEnv) query(t testing.TB, sql string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var s *string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	if s == nil {
		return ""
	}
	return *s
}

// newSource builds a Source over the env (leads mapped) without setup.
func (e *testEnv) newSource(t testing.TB, tables []string, opts ...Option) *Source {
	t.Helper()
	if tables == nil {
		tables = []string{"public.leads"}
	}
	src, err := New(e.cfg, tables, testLogger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	src.backoffMin, src.backoffMax = 50*time.Millisecond, time.Second
	if e.tune != nil {
		e.tune(src)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// Source implements sourcetest.Env: a new Source, set up.
func (e *testEnv) Source(t testing.TB) sourcetest.Source {
	t.Helper()
	src := e.newSource(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := src.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	return src
}

type harness struct{ srv *pgtest.Server }

func (h *harness) NewEnv(t *testing.T) sourcetest.Env { return newEnv(t, h.srv) }

// slotLSN returns the slot's confirmed_flush_lsn.
func (e *testEnv) slotLSN(t testing.TB) string {
	return e.query(t, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.cfg.Slot)
}
