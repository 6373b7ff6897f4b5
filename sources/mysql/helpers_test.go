package mysql

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
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
func testLogger(t testing.TB) hclog.Logger { return sourcetest.Logger(t, "mysql") }

// Credentials of the replication user every test server gets.
const (
	replUser = "leadtail"
	replPass = "s3cret-pw"
)

// replPrivileges is what the source needs, plus REPLICATION MASTER ADMIN
// so that SHOW SLAVE HOSTS (the server_id check) works on MariaDB >= 10.5.
var replPrivileges = []string{"REPLICATION SLAVE", "BINLOG MONITOR", "REPLICATION MASTER ADMIN", "SELECT"}

// startServer starts a server with the replication user.
func startServer(t testing.TB, opts ...mysqltest.Option) *mysqltest.Server {
	t.Helper()
	srv := mysqltest.Start(t, opts...)
	srv.CreateUser(t, replUser, replPass, replPrivileges...)
	return srv
}

var (
	dbSeq       atomic.Int64
	serverIDSeq atomic.Uint32
)

func init() { serverIDSeq.Store(uint32(os.Getpid()%1000)*100 + 500000) }

// testEnv is one database on a test server with the conformance tables.
type testEnv struct {
	srv  *mysqltest.Server
	db   string
	cfg  Config
	kind posKind // the position kind Source must produce

	// checkpoint stands in for the connector's checkpoint file: MySQL
	// keeps no replication state on the server, so the "durable state" a
	// restarted process resumes from is what was acked, or the binlog end
	// when the first Source was built.
	mu         sync.Mutex
	checkpoint sources.Position

	// init runs on each writer connection before its transaction (e.g.
	// SET SESSION binlog_format on a server whose global one is wrong).
	init []string
}

// newEnv creates a fresh database with the sourcetest tables.
func newEnv(t testing.TB, srv *mysqltest.Server, kind posKind) *testEnv {
	t.Helper()
	db := fmt.Sprintf("db%d", dbSeq.Add(1))
	srv.CreateDB(t, db)
	for _, ddl := range []string{
		`CREATE TABLE leads (id int PRIMARY KEY, status varchar(32), email varchar(255),
			fb_lead_id varchar(32), notes text, payload json)`,
		`CREATE TABLE contacts (id int PRIMARY KEY, lead_id int, phone varchar(32))`,
		`CREATE TABLE other (id int PRIMARY KEY, v varchar(64))`,
	} {
		srv.Exec(t, db, ddl)
	}
	cfg := DefaultConfig()
	cfg.DSN = srv.UserDSN(replUser, replPass, db)
	cfg.ServerID = serverIDSeq.Add(1)
	cfg.HeartbeatPeriod = time.Second
	return &testEnv{srv: srv, db: db, cfg: cfg, kind: kind}
}

func (e *testEnv) Table(name string) string { return e.db + "." + name }

func (e *testEnv) Placeholder(int) string { return "?" }

// Exec runs the statements in one transaction.
func (e *testEnv) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	if len(e.init) == 0 {
		e.srv.ExecTx(t, e.db, stmts...)
		return
	}
	conn := e.srv.Conn(t, e.db)
	for _, s := range append(append(append([]string(nil), e.init...), "BEGIN"), append(stmts, "COMMIT")...) {
		if _, err := conn.Execute(s); err != nil {
			t.Fatalf("exec %.100q: %v", s, err)
		}
	}
}

// newSource builds a Source over the env (leads mapped).
func (e *testEnv) newSource(t testing.TB, tables ...string) *Source {
	t.Helper()
	if tables == nil {
		tables = []string{e.Table("leads")}
	}
	src, err := New(e.cfg, tables, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	src.backoffMin, src.backoffMax = 50*time.Millisecond, time.Second
	t.Cleanup(func() { src.Close() })
	return src
}

// Source implements sourcetest.Env: a new Source resuming from the
// emulated checkpoint.
func (e *testEnv) Source(t testing.TB) sourcetest.Source {
	t.Helper()
	src := e.newSource(t)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.checkpoint == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := src.EndPosition(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e.checkpoint = p
	}
	if pos, err := parsePosition(e.checkpoint); err != nil || pos.kind != e.kind {
		t.Fatalf("checkpoint %q: want a %s position (err %v)", e.checkpoint, e.kind, err)
	}
	return &checkpointed{Source: src, env: e}
}

// checkpointed is a Source with the connector's part of the protocol:
// Stream from "" resumes from the checkpoint, Ack saves it.
type checkpointed struct {
	*Source
	env *testEnv
}

func (c *checkpointed) Stream(ctx context.Context, from sources.Position, emit func(context.Context, sources.Change) error) error {
	if from == "" {
		c.env.mu.Lock()
		from = c.env.checkpoint
		c.env.mu.Unlock()
	}
	return c.Source.Stream(ctx, from, emit)
}

func (c *checkpointed) Ack(p sources.Position) error {
	if err := c.Source.Ack(p); err != nil {
		return err
	}
	c.env.mu.Lock()
	c.env.checkpoint = p
	c.env.mu.Unlock()
	return nil
}

type harness struct {
	srv  *mysqltest.Server
	kind posKind
}

func (h *harness) NewEnv(t *testing.T) sourcetest.Env { return newEnv(t, h.srv, h.kind) }

// fakeReplica registers a replica with serverID on srv, as another
// replica of the server would, and returns its stop function.
func fakeReplica(t testing.TB, srv *mysqltest.Server, serverID uint32) func() {
	t.Helper()
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: serverID, Flavor: gomysql.MariaDBFlavor, Host: srv.Host, Port: uint16(srv.Port),
		User: "root", Localhost: "replica-b", DisableRetrySync: true, RawModeEnabled: true,
		Logger: newSlog(testLogger(t)),
	})
	rows := srv.Query(t, "", "SHOW MASTER STATUS")
	off, _ := strconv.ParseUint(rows[0][1], 10, 32)
	if _, err := syncer.StartSync(gomysql.Position{Name: rows[0][0], Pos: uint32(off)}); err != nil {
		syncer.Close()
		t.Fatal(err)
	}
	return syncer.Close
}
