package mysql

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/sources"
)

// Source streams row changes of the mapped tables from the binlog of a
// MySQL or MariaDB server, acting as a replica with its own server_id, and
// answers lookup queries over regular connections. Create it with New.
//
// The binlog keeps no state for us: where to resume is the connector's
// checkpoint, handed to Stream as from. Ack only records how far the
// caller has delivered, which is where a reconnect inside Stream resumes.
type Source struct {
	cfg    Config
	dsn    *dsn
	loc    *time.Location
	mapped map[string]bool // "database.table"
	// columns the mappings read, per table (WithColumns); none: all.
	columns map[string][]string
	log     hclog.Logger
	pool    *connPool
	// host is what this replica registers as (SHOW SLAVE HOSTS): it tells
	// a running leadtail apart from another replica with the same id.
	host string

	ackMu sync.Mutex
	acked position

	running atomic.Bool

	// Tuning, changed by tests only.
	backoffMin, backoffMax time.Duration
	coalesce               time.Duration
	eventCache             int
	// sessions counts binlog connections started (tests).
	sessions atomic.Int64
	// lock is the active/standby lock (WithActiveLock); nil: none.
	lock *activeLock

	// health is what Streaming reports (readiness).
	health sources.Health
	// lastReceived is when the last binlog event arrived (UnixNano, 0 = never).
	lastReceived atomic.Int64
	// lastRowCommit is the commit time of the last row change handed out
	// (UnixNano): lookups for fresh changes may race the commit's visibility.
	lastRowCommit atomic.Int64
}

// replicaHostPrefix starts the host name every leadtail registers with.
const replicaHostPrefix = "leadtail-"

// New checks the configuration and prepares the source; it does not
// connect. tables are the mapped tables as "database.table".
func New(cfg Config, tables []string, logger hclog.Logger, opts ...Option) (*Source, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("mysql: invalid config: %w", errors.Join(errs...))
	}
	if len(tables) == 0 {
		return nil, errors.New("mysql: no mapped tables")
	}
	d, err := parseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql: dsn %s: %w", RedactedDSN(cfg.DSN), err)
	}
	loc, err := time.LoadLocation(cfg.DatetimeZone)
	if err != nil {
		return nil, fmt.Errorf("mysql: datetime_zone: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Source{
		cfg:        cfg,
		dsn:        d,
		loc:        loc,
		mapped:     map[string]bool{},
		log:        logger,
		pool:       newConnPool(d, 2),
		backoffMin: 500 * time.Millisecond,
		backoffMax: 30 * time.Second,
		coalesce:   100 * time.Millisecond,
		eventCache: 16,
	}
	for _, t := range tables {
		if _, _, ok := splitTable(t); !ok {
			return nil, fmt.Errorf("mysql: table %q: want database.table", t)
		}
		s.mapped[strings.TrimSpace(t)] = true
	}
	hostname, _ := os.Hostname()
	s.host = replicaHostPrefix + hostname + "-" + strconv.Itoa(os.Getpid())
	if len(s.host) > 60 {
		s.host = s.host[:60]
	}
	for _, opt := range opts {
		opt(s)
	}
	return s, nil
}

// Ack records that every change up to and including p is delivered and
// checkpointed: a reconnect inside Stream resumes there. It never blocks
// and never talks to the server (the binlog has no replica state to
// confirm). An older p than one already acked is ignored.
func (s *Source) Ack(p sources.Position) error {
	pos, err := parsePosition(p)
	if err != nil {
		return err
	}
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	if !s.acked.isZero() && s.acked.notAfter(pos) {
		return nil
	}
	s.acked = pos
	return nil
}

func (s *Source) ackedPos() position {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return s.acked
}

// Close releases the lookup connections. Stream must have returned.
func (s *Source) Close() error {
	s.pool.close()
	return nil
}

// Query runs a lookup query (? placeholders) over a regular connection
// and returns at most maxRows rows, decoded like streamed rows. No row is
// not an error.
func (s *Source) Query(ctx context.Context, query string, maxRows int, args ...any) ([]sources.Row, error) {
	rows, err := s.query(ctx, query, maxRows, args...)
	if err != nil || len(rows) > 0 {
		return rows, err
	}
	// The binlog dump sends a transaction once it is in the binlog, which
	// is a moment before InnoDB makes it visible to other sessions (two-phase
	// commit). A lookup for a change that committed just now may therefore
	// miss rows written by the same transaction: ask again shortly, but only
	// for fresh changes, so a backlog with genuinely empty lookups stays fast.
	if since := time.Since(time.Unix(0, s.lastRowCommit.Load())); since > freshCommit {
		return rows, nil
	}
	for _, wait := range []time.Duration{20 * time.Millisecond, 100 * time.Millisecond} {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		if rows, err = s.query(ctx, query, maxRows, args...); err != nil || len(rows) > 0 {
			return rows, err
		}
	}
	return rows, nil
}

// freshCommit is how recent a change must be for an empty lookup to be
// asked again (binlog timestamps have one-second resolution).
const freshCommit = 2 * time.Second

func (s *Source) query(ctx context.Context, query string, maxRows int, args ...any) ([]sources.Row, error) {
	if maxRows < 1 {
		return nil, fmt.Errorf("mysql: lookup: maxRows must be at least 1, got %d", maxRows)
	}
	var out []sources.Row
	err := s.pool.do(ctx, func(conn *client.Conn) error {
		out = nil
		var fields []*gomysql.Field
		var decodeErr error
		onResult := func(r *gomysql.Result) error {
			fields = r.Fields
			return nil
		}
		onRow := func(vals []gomysql.FieldValue) error {
			// Returning an error here would leave unread rows on the
			// connection: skip the surplus instead.
			if len(out) >= maxRows || decodeErr != nil {
				return nil
			}
			row := make(sources.Row, len(vals))
			for i := range vals {
				v, err := decodeField(fields[i], &vals[i], s.loc)
				if err != nil {
					decodeErr = fmt.Errorf("column %s: %w", fields[i].Name, err)
					return nil
				}
				row[string(fields[i].Name)] = v
			}
			out = append(out, row)
			return nil
		}
		var res gomysql.Result
		if len(args) == 0 {
			if err := conn.ExecuteSelectStreaming(query, &res, onRow, onResult); err != nil {
				return err
			}
		} else {
			stmt, err := conn.Prepare(query)
			if err != nil {
				return err
			}
			err = stmt.ExecuteSelectStreaming(&res, onRow, onResult, args...)
			if cerr := stmt.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
		return decodeErr
	})
	if err != nil {
		return nil, fmt.Errorf("mysql: lookup: %w", err)
	}
	return out, nil
}

// serverInfo is what Stream needs to know about the server.
type serverInfo struct {
	flavor   string // gomysql.MySQLFlavor or gomysql.MariaDBFlavor
	version  string
	serverID uint32
	// gtid: start positions are GTID positions (MariaDB with
	// gtid_strict_mode=ON, MySQL with gtid_mode=ON), else file positions.
	gtid bool
	// Global binlog settings, for warnings.
	binlogFormat, rowImage string
}

// versionAtLeast reports whether a VERSION() string ("10.11.19-MariaDB-
// 0+deb12u1-log", "8.0.36") is at least major.minor.
func versionAtLeast(version string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(version, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

func (s *Source) serverInfo(ctx context.Context) (serverInfo, error) {
	var info serverInfo
	err := s.pool.do(ctx, func(conn *client.Conn) error {
		rows, err := queryStrings(conn, "SELECT VERSION() AS v, @@GLOBAL.server_id AS id")
		if err != nil {
			return err
		}
		if len(rows) != 1 {
			return errors.New("SELECT VERSION() returned no row")
		}
		info.version = str(rows[0], "v")
		id, _ := strconv.ParseUint(str(rows[0], "id"), 10, 32)
		info.serverID = uint32(id)
		info.flavor = gomysql.MySQLFlavor
		if strings.Contains(strings.ToLower(info.version), "mariadb") {
			info.flavor = gomysql.MariaDBFlavor
		}
		if s.cfg.Flavor != "" && s.cfg.Flavor != info.flavor {
			s.log.Warn("configured flavor differs from the server's, using the configured one",
				"flavor", s.cfg.Flavor, "server_version", info.version)
			info.flavor = s.cfg.Flavor
		}
		vars, err := variables(conn, "gtid_strict_mode", "gtid_mode", "binlog_format", "binlog_row_image")
		if err != nil {
			return err
		}
		info.binlogFormat, info.rowImage = vars["binlog_format"], vars["binlog_row_image"]
		if info.flavor == gomysql.MariaDBFlavor {
			info.gtid = isOn(vars["gtid_strict_mode"])
		} else {
			info.gtid = strings.EqualFold(vars["gtid_mode"], "ON")
		}
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("mysql: server info: %w", classify(err))
	}
	return info, nil
}

func isOn(v string) bool { return strings.EqualFold(v, "ON") || v == "1" }

// EndPosition returns the current end of the binlog in the kind of
// position Stream would start from without a checkpoint: every transaction
// committed after EndPosition returns lies after it.
func (s *Source) EndPosition(ctx context.Context) (sources.Position, error) {
	info, err := s.serverInfo(ctx)
	if err != nil {
		return "", err
	}
	p, err := s.endPosition(ctx, info)
	if err != nil {
		return "", err
	}
	return p.pos(), nil
}

func (s *Source) endPosition(ctx context.Context, info serverInfo) (position, error) {
	var p position
	err := s.pool.do(ctx, func(conn *client.Conn) error {
		var err error
		p, err = endPosition(conn, info)
		return err
	})
	if err != nil {
		return position{}, fmt.Errorf("mysql: current binlog position: %w", classify(err))
	}
	return p, nil
}

func endPosition(conn *client.Conn, info serverInfo) (position, error) {
	switch {
	case info.gtid && info.flavor == gomysql.MariaDBFlavor:
		rows, err := queryStrings(conn, "SELECT @@GLOBAL.gtid_binlog_pos AS p")
		if err != nil {
			return position{}, err
		}
		g, err := parseMariaPos(str(rows[0], "p"))
		if err != nil {
			return position{}, fmt.Errorf("gtid_binlog_pos: %w", err)
		}
		return position{kind: posMariaGTID, maria: g}, nil
	case info.gtid:
		rows, err := queryStrings(conn, "SELECT @@GLOBAL.gtid_executed AS p")
		if err != nil {
			return position{}, err
		}
		set, err := parseMySQLSet(str(rows[0], "p"))
		if err != nil {
			return position{}, fmt.Errorf("gtid_executed: %w", err)
		}
		return position{kind: posMySQLGTID, mysqlSet: set}, nil
	}
	rows, err := masterStatus(conn)
	if err != nil {
		return position{}, err
	}
	if len(rows) == 0 || str(rows[0], "File") == "" {
		return position{}, fatalf("the server has no binary log (log_bin=OFF): start it with log_bin and binlog_format=ROW")
	}
	off, err := strconv.ParseUint(str(rows[0], "Position"), 10, 32)
	if err != nil {
		return position{}, fmt.Errorf("SHOW MASTER STATUS position: %w", err)
	}
	return position{kind: posFile, file: str(rows[0], "File"), offset: uint32(off)}, nil
}

// masterStatus runs SHOW MASTER STATUS, or its MySQL 8.2+ name.
func masterStatus(conn *client.Conn) ([]map[string]*string, error) {
	rows, err := queryStrings(conn, "SHOW MASTER STATUS")
	if serverCode(err) == erParseError {
		rows, err = queryStrings(conn, "SHOW BINARY LOG STATUS")
	}
	return rows, err
}
