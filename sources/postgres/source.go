package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadtail/leadtail/sources"
)

// HeartbeatPrefix is the logical message prefix of heartbeats written by
// pg_logical_emit_message on an idle stream.
const HeartbeatPrefix = "leadtail_heartbeat"

// sessionParams pin the text formats decode.go parses, whatever the
// server's or role's defaults. They apply to the walsender too, which runs
// the type output functions for pgoutput.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, MDY",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"application_name":   "leadtail",
}

// Option adjusts a Source.
type Option func(*Source)

// WithRequiredColumns names, per "schema.table", the columns the mapping
// reads. A relation message (sent after ALTER TABLE) that lacks one of
// them stops the stream with an error naming the column, instead of
// handing the mapping rows without it. Rows of these tables carry only
// these columns: the others are not decoded.
func WithRequiredColumns(cols map[string][]string) Option {
	return func(s *Source) {
		for t, cs := range cols {
			s.required[normalizeTable(t)] = append([]string(nil), cs...)
		}
	}
}

// Source streams row changes of the mapped tables from a logical
// replication slot (pgoutput), and answers lookup queries over a regular
// connection pool. Create it with New.
type Source struct {
	cfg      Config
	tables   []string        // "schema.table", sorted as given
	mapped   map[string]bool // same set
	required map[string][]string
	log      hclog.Logger

	pool     *pgxpool.Pool
	replConf *pgconn.Config

	// acked is the highest Ack'ed LSN: the only flush position ever sent
	// to the server.
	acked atomic.Uint64
	// running guards against two concurrent Streams on one Source.
	running atomic.Bool

	// Tuning, changed by tests only.
	backoffMin, backoffMax time.Duration
	queueLen               int
	// onSetupStep, when set, is told each setup step as it runs (tests).
	onSetupStep func(step string)
	// sessions counts replication connections started, statusSent
	// standby status updates (tests).
	sessions, statusSent atomic.Int64
	// noStatusWhileBlocked turns off status updates while emit blocks: the
	// control case of the test that proves they matter.
	noStatusWhileBlocked bool

	closeOnce sync.Once

	// health is what Streaming reports (readiness).
	health sources.Health
	// lastReceived is when the reader last got a message (UnixNano, 0 = never).
	lastReceived atomic.Int64
}

// New checks the configuration and prepares the connection pool; it does
// not connect. tables are the mapped tables as "schema.table" (a bare name
// means "public.name").
func New(cfg Config, tables []string, logger hclog.Logger, opts ...Option) (*Source, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("postgres: invalid config: %w", errors.Join(errs...))
	}
	if len(tables) == 0 {
		return nil, errors.New("postgres: no mapped tables")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Source{
		cfg:        cfg,
		mapped:     map[string]bool{},
		required:   map[string][]string{},
		log:        logger,
		backoffMin: 500 * time.Millisecond,
		backoffMax: 30 * time.Second,
		queueLen:   256,
	}
	for _, t := range tables {
		n := normalizeTable(t)
		if _, _, ok := splitTable(n); !ok {
			return nil, fmt.Errorf("postgres: table %q: want schema.table", t)
		}
		if !s.mapped[n] {
			s.mapped[n] = true
			s.tables = append(s.tables, n)
		}
	}
	for _, opt := range opts {
		opt(s)
	}

	poolConf, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn %s: %w", RedactedDSN(cfg.DSN), err)
	}
	delete(poolConf.ConnConfig.RuntimeParams, "replication")
	for k, v := range sessionParams {
		poolConf.ConnConfig.RuntimeParams[k] = v
	}
	poolConf.MaxConns = 4
	// Idle lookup connections would hold a smart shutdown of the server.
	poolConf.MaxConnIdleTime = time.Minute
	// An idle connection is pinged before reuse; one that went half-open
	// would otherwise hold the acquiring query (and a reconnect) forever.
	poolConf.PingTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), poolConf)
	if err != nil {
		return nil, fmt.Errorf("postgres: pool: %w", err)
	}
	s.pool = pool

	replConf, err := pgconn.ParseConfig(cfg.DSN)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: parse dsn %s: %w", RedactedDSN(cfg.DSN), err)
	}
	for k, v := range sessionParams {
		replConf.RuntimeParams[k] = v
	}
	replConf.RuntimeParams["replication"] = "database"
	s.replConf = replConf
	return s, nil
}

// Ack records that every change up to and including p is delivered and
// checkpointed; the next standby status update reports it to the server
// as the flush position. It never blocks. Positions only move forward: an
// older p is ignored.
func (s *Source) Ack(p sources.Position) error {
	lsn, err := parsePosition(p)
	if err != nil {
		return err
	}
	for {
		cur := s.acked.Load()
		if uint64(lsn) <= cur || s.acked.CompareAndSwap(cur, uint64(lsn)) {
			return nil
		}
	}
}

// Close releases the connection pool. Stream must have returned.
func (s *Source) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// Query runs a lookup query ($1 placeholders) over the regular connection
// pool and returns at most maxRows rows, decoded like streamed rows. No row
// is not an error.
func (s *Source) Query(ctx context.Context, query string, maxRows int, args ...any) ([]sources.Row, error) {
	if maxRows < 1 {
		return nil, fmt.Errorf("postgres: lookup: maxRows must be at least 1, got %d", maxRows)
	}
	// Text results, so that lookups decode exactly like pgoutput values.
	qargs := append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)
	rows, err := s.pool.Query(ctx, query, qargs...)
	if err != nil {
		return nil, fmt.Errorf("postgres: lookup: %w", err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	var out []sources.Row
	for len(out) < maxRows && rows.Next() {
		raw := rows.RawValues()
		row := make(sources.Row, len(fields))
		for i, f := range fields {
			if raw[i] == nil {
				row[f.Name] = nil
				continue
			}
			v, err := decodeText(f.DataTypeOID, raw[i])
			if err != nil {
				return nil, fmt.Errorf("postgres: lookup: column %s: %w", f.Name, err)
			}
			row[f.Name] = v
		}
		out = append(out, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: lookup: %w", err)
	}
	return out, nil
}

// Setup creates or updates what streaming needs, in this order: REPLICA
// IDENTITY FULL (only with set_replica_identity_full), the publication for
// exactly the mapped tables, then the slot when it is missing. Stream runs
// it too; calling it first guarantees that every change committed after it
// returns will be streamed.
func (s *Source) Setup(ctx context.Context) error {
	_, err := s.setup(ctx, 0)
	return err
}

// parsePosition decodes a Position: the text form of an LSN ("0/16B3748").
// The empty Position is LSN 0, "none".
func parsePosition(p sources.Position) (pglogrepl.LSN, error) {
	if p == "" {
		return 0, nil
	}
	lsn, err := pglogrepl.ParseLSN(string(p))
	if err != nil {
		return 0, fmt.Errorf("postgres: position %q is not an LSN: %w", string(p), err)
	}
	return lsn, nil
}

func position(lsn pglogrepl.LSN) sources.Position { return sources.Position(lsnText(lsn)) }

// lsnText is lsn.String() ("16/B374D848") without fmt, which showed in
// profiles at one call per change.
func lsnText(lsn pglogrepl.LSN) string {
	const digits = "0123456789ABCDEF"
	var b [17]byte
	n := len(b)
	put := func(v uint32) {
		for {
			n--
			b[n] = digits[v&0xF]
			if v >>= 4; v == 0 {
				return
			}
		}
	}
	put(uint32(lsn))
	n--
	b[n] = '/'
	put(uint32(lsn >> 32))
	return string(b[n:])
}

func normalizeTable(t string) string {
	t = strings.TrimSpace(t)
	if !strings.Contains(t, ".") {
		return "public." + t
	}
	return t
}

func splitTable(t string) (schema, table string, ok bool) {
	schema, table, ok = strings.Cut(t, ".")
	return schema, table, ok && schema != "" && table != "" && !strings.Contains(table, ".")
}

// quoteTable quotes "schema.table" for SQL.
func quoteTable(t string) string {
	schema, table, _ := splitTable(t)
	return pgx.Identifier{schema, table}.Sanitize()
}
