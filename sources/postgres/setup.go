package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// FatalError is an error that reconnecting cannot fix: the slot is lost or
// missing, a mapped column is gone, a permission is missing. Stream returns
// it instead of retrying; the message says what to do.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

func fatalf(format string, a ...any) error { return &FatalError{fmt.Errorf(format, a...)} }

// slotState is what setup found (or made) of the replication slot.
type slotState struct {
	confirmed pglogrepl.LSN
	created   bool
}

func (s *Source) step(name string) {
	if s.onSetupStep != nil {
		s.onSetupStep(name)
	}
}

// setup runs, in order: replica identity (when configured), publication,
// slot. The publication must exist before the slot: pgoutput reads it with
// the historic catalog snapshot of each change, so WAL from before the
// publication's creation cannot be decoded ("publication does not exist").
// from is the connector's checkpoint (0 = none).
func (s *Source) setup(ctx context.Context, from pglogrepl.LSN) (slotState, error) {
	if s.cfg.SetReplicaIdentityFull {
		s.step("replica_identity")
		if err := applyReplicaIdentityFull(ctx, s.pool, s.tables, s.log); err != nil {
			return slotState{}, err
		}
	}
	s.step("publication")
	if err := s.ensurePublication(ctx); err != nil {
		return slotState{}, err
	}
	s.step("slot")
	return s.ensureSlot(ctx, from)
}

func (s *Source) ensurePublication(ctx context.Context) error {
	pub := s.cfg.Publication
	var allTables, ins, upd, del bool
	err := s.pool.QueryRow(ctx,
		`SELECT puballtables, pubinsert, pubupdate, pubdelete FROM pg_publication WHERE pubname = $1`, pub,
	).Scan(&allTables, &ins, &upd, &del)
	if errors.Is(err, pgx.ErrNoRows) {
		quoted := make([]string, len(s.tables))
		for i, t := range s.tables {
			quoted[i] = quoteTable(t)
		}
		// Truncates are not row changes the mapping could use.
		sql := fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert, update, delete')",
			pgx.Identifier{pub}.Sanitize(), strings.Join(quoted, ", "))
		if _, err := s.pool.Exec(ctx, sql); err != nil {
			return classify(fmt.Errorf("postgres: create publication %s (needs CREATE on the database and ownership of the tables): %w", pub, err))
		}
		s.log.Info("publication created", "publication", pub, "tables", strings.Join(s.tables, ","))
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("postgres: read publication %s: %w", pub, err))
	}
	if !ins || !upd || !del {
		sql := fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert, update, delete')", pgx.Identifier{pub}.Sanitize())
		if _, err := s.pool.Exec(ctx, sql); err != nil {
			return classify(fmt.Errorf("postgres: publication %s does not publish insert, update and delete: %w", pub, err))
		}
		s.log.Info("publication operations updated", "publication", pub)
	}
	if allTables {
		// FOR ALL TABLES covers the mapping; unmapped tables are filtered here.
		s.log.Debug("publication covers all tables", "publication", pub)
		return nil
	}
	have, err := publicationTables(ctx, s.pool, pub)
	if err != nil {
		return classify(err)
	}
	want := slices.Clone(s.tables)
	slices.Sort(want)
	if slices.Equal(have, want) {
		return nil
	}
	quoted := make([]string, len(s.tables))
	for i, t := range s.tables {
		quoted[i] = quoteTable(t)
	}
	sql := fmt.Sprintf("ALTER PUBLICATION %s SET TABLE %s", pgx.Identifier{pub}.Sanitize(), strings.Join(quoted, ", "))
	if _, err := s.pool.Exec(ctx, sql); err != nil {
		return classify(fmt.Errorf("postgres: update publication %s to the mapped tables: %w", pub, err))
	}
	s.log.Info("publication updated", "publication", pub, "tables", strings.Join(s.tables, ","), "previous", strings.Join(have, ","))
	return nil
}

// publicationTables returns the sorted "schema.table" names in pub.
func publicationTables(ctx context.Context, q querier, pub string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, pub)
	if err != nil {
		return nil, fmt.Errorf("postgres: read publication tables: %w", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: read publication tables: %w", err)
	}
	return have, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type slotRow struct {
	exists    bool
	slotType  string
	plugin    string
	database  string
	walStatus string
	confirmed pglogrepl.LSN
}

func readSlot(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, slot string) (slotRow, error) {
	var r slotRow
	var plugin, database, walStatus, confirmed *string
	err := q.QueryRow(ctx,
		`SELECT slot_type, plugin, database, wal_status, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot,
	).Scan(&r.slotType, &plugin, &database, &walStatus, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("postgres: read replication slot %s: %w", slot, err)
	}
	r.exists = true
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	r.plugin, r.database, r.walStatus = deref(plugin), deref(database), deref(walStatus)
	if confirmed != nil {
		if r.confirmed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return r, fmt.Errorf("postgres: slot %s confirmed_flush_lsn: %w", slot, err)
		}
	}
	return r, nil
}

// ensureSlot checks the slot and creates it when it is missing and there
// is no checkpoint. A slot missing while a checkpoint exists, or one that
// lost WAL, means changes are gone: that is reported, never papered over
// by creating a fresh slot (which would start at "now" and skip them).
func (s *Source) ensureSlot(ctx context.Context, from pglogrepl.LSN) (slotState, error) {
	slot := s.cfg.Slot
	r, err := readSlot(ctx, s.pool, slot)
	if err != nil {
		return slotState{}, classify(err)
	}
	var db string
	if err := s.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		return slotState{}, classify(fmt.Errorf("postgres: current database: %w", err))
	}
	if !r.exists {
		if from != 0 {
			return slotState{}, fatalf("postgres: replication slot %q does not exist but the checkpoint is at %s: "+
				"the slot was dropped or lost in a failover, so changes after the checkpoint may be gone. "+
				"To accept the gap and start from now, delete the checkpoint file (the slot is then created at start); "+
				"to keep the checkpoint, restore a slot at or before %s", slot, from, from)
		}
		return s.createSlot(ctx)
	}
	switch {
	case r.slotType != "logical" || r.plugin != "pgoutput":
		return slotState{}, fatalf("postgres: replication slot %q is a %s slot with plugin %q, not a logical pgoutput slot: "+
			"choose another source.postgres.slot name, or drop it with SELECT pg_drop_replication_slot('%s') if it is unused", slot, r.slotType, r.plugin, slot)
	case r.database != db:
		return slotState{}, fatalf("postgres: replication slot %q belongs to database %q, not %q: "+
			"choose another source.postgres.slot name", slot, r.database, db)
	case r.walStatus == "lost":
		return slotState{}, fatalf("postgres: replication slot %q has lost WAL it still needed (wal_status = lost, max_slot_wal_keep_size exceeded): "+
			"changes since the checkpoint are gone. To restart from now: SELECT pg_drop_replication_slot('%s'); delete the checkpoint file; "+
			"consider raising max_slot_wal_keep_size", slot, slot)
	}
	return slotState{confirmed: r.confirmed}, nil
}

func (s *Source) createSlot(ctx context.Context) (slotState, error) {
	conn, err := pgconn.ConnectConfig(ctx, s.replConf)
	if err != nil {
		return slotState{}, classify(fmt.Errorf("postgres: replication connection: %w", err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// No snapshot: leadtail streams changes from now on, it does not copy
	// existing rows.
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created concurrently
			r, rerr := readSlot(ctx, s.pool, s.cfg.Slot)
			if rerr == nil && r.exists {
				return slotState{confirmed: r.confirmed}, nil
			}
		}
		return slotState{}, classify(fmt.Errorf("postgres: create replication slot %s: %w", s.cfg.Slot, err))
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return slotState{}, fmt.Errorf("postgres: create replication slot %s: consistent point: %w", s.cfg.Slot, err)
	}
	s.log.Info("replication slot created", "slot", s.cfg.Slot, "position", lsn.String())
	return slotState{confirmed: lsn, created: true}, nil
}

// ApplyReplicaIdentityFull runs ALTER TABLE ... REPLICA IDENTITY FULL on
// each of tables ("schema.table") that does not have it yet, logging each
// table it alters. It needs ownership of the tables. Source.Setup calls it
// when set_replica_identity_full is true; leadtail never changes a table
// otherwise.
func ApplyReplicaIdentityFull(ctx context.Context, cfg Config, tables []string, logger hclog.Logger) error {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return fmt.Errorf("postgres: parse dsn %s: %w", RedactedDSN(cfg.DSN), err)
	}
	delete(pc.ConnConfig.RuntimeParams, "replication")
	pc.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer pool.Close()
	norm := make([]string, len(tables))
	for i, t := range tables {
		norm[i] = normalizeTable(t)
	}
	return applyReplicaIdentityFull(ctx, pool, norm, logger)
}

func applyReplicaIdentityFull(ctx context.Context, pool *pgxpool.Pool, tables []string, logger hclog.Logger) error {
	for _, t := range tables {
		var ident string
		err := pool.QueryRow(ctx, `SELECT relreplident::text FROM pg_class WHERE oid = to_regclass($1)`, quoteTable(t)).Scan(&ident)
		if errors.Is(err, pgx.ErrNoRows) {
			return fatalf("postgres: mapped table %s does not exist: create it or fix mappings[].table", t)
		}
		if err != nil {
			return classify(fmt.Errorf("postgres: replica identity of %s: %w", t, err))
		}
		if ident == "f" {
			continue
		}
		if _, err := pool.Exec(ctx, "ALTER TABLE "+quoteTable(t)+" REPLICA IDENTITY FULL"); err != nil {
			return classify(fmt.Errorf("postgres: ALTER TABLE %s REPLICA IDENTITY FULL (needs table ownership): %w", t, err))
		}
		logger.Info("replica identity set to full", "table", t, "previous", replicaIdentityName(ident))
	}
	return nil
}

func replicaIdentityName(c string) string {
	switch c {
	case "d":
		return "default"
	case "n":
		return "nothing"
	case "i":
		return "index"
	case "f":
		return "full"
	}
	return c
}
