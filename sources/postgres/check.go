package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/leadtail/leadtail/sources"
)

// Check is the preflight of `leadtail check`: it connects with cfg and
// reports everything that would stop or endanger streaming, each with a
// one-line fix. tables maps each mapped "schema.table" to the columns the
// mapping reads. The error is for failures of the check itself (ctx
// cancelled); an unreachable server is a Problem.
func Check(ctx context.Context, cfg Config, tables map[string][]string) ([]sources.Problem, error) {
	var probs []sources.Problem
	add := func(warning bool, check, problem, fix string) {
		probs = append(probs, sources.Problem{Check: check, Problem: problem, Fix: fix, Warning: warning})
	}

	cc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		add(false, "dsn", fmt.Sprintf("source.postgres.dsn does not parse: %v", err), "fix source.postgres.dsn (libpq key=value or postgres:// URL)")
		return probs, nil
	}
	delete(cc.RuntimeParams, "replication")
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		add(false, "connection", fmt.Sprintf("cannot connect to %s: %v", RedactedDSN(cfg.DSN), err),
			"check source.postgres.dsn (host, port, user, password, database) and that the server accepts connections from here")
		return probs, nil
	}
	defer conn.Close(context.WithoutCancel(ctx))
	c := &checker{conn: conn, cfg: cfg, add: add}
	if err := c.run(ctx, tables); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return probs, fmt.Errorf("postgres: check: %w", err)
	}
	return probs, nil
}

type checker struct {
	conn *pgx.Conn
	cfg  Config
	add  func(warning bool, check, problem, fix string)
}

func (c *checker) run(ctx context.Context, tables map[string][]string) error {
	q := func(dst any, sql string, args ...any) error {
		return c.conn.QueryRow(ctx, sql, args...).Scan(dst)
	}

	var walLevel string
	if err := q(&walLevel, "SHOW wal_level"); err != nil {
		return err
	}
	if walLevel != "logical" {
		c.add(false, "wal_level", fmt.Sprintf("wal_level is %s, logical decoding needs logical", walLevel),
			"ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
	}

	var user, db string
	var super, repl, canCreate bool
	if err := c.conn.QueryRow(ctx, `SELECT current_user, current_database(), rolsuper, rolreplication,
			has_database_privilege(current_database(), 'CREATE')
		FROM pg_roles WHERE rolname = current_user`).Scan(&user, &db, &super, &repl, &canCreate); err != nil {
		return err
	}
	quser := pgx.Identifier{user}.Sanitize()
	if !super && !repl {
		c.add(false, "replication privilege", fmt.Sprintf("role %s has neither REPLICATION nor SUPERUSER", user),
			fmt.Sprintf("ALTER ROLE %s WITH REPLICATION; (on RDS/Aurora: GRANT rds_replication TO %s;)", quser, quser))
	} else if walLevel == "logical" {
		// What Stream does first; fails e.g. when all WAL senders are busy
		// or a connection pooler (PgBouncer) sits in between.
		if err := c.replicationConnect(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.add(false, "replication connection", fmt.Sprintf("a logical replication connection (replication=database) fails: %v", err),
				"connect source.postgres.dsn to PostgreSQL directly (not through a pooler) and check max_wal_senders")
		}
	}

	// Slot and senders.
	slot, err := readSlot(ctx, c.conn, c.cfg.Slot)
	if err != nil {
		return err
	}
	var maxSlots, usedSlots, maxSenders, usedSenders int
	if err := c.conn.QueryRow(ctx, `SELECT current_setting('max_replication_slots')::int,
			(SELECT count(*) FROM pg_replication_slots)::int,
			current_setting('max_wal_senders')::int,
			(SELECT count(*) FROM pg_stat_replication)::int`).Scan(&maxSlots, &usedSlots, &maxSenders, &usedSenders); err != nil {
		return err
	}
	switch {
	case !slot.exists:
		if usedSlots >= maxSlots {
			c.add(false, "replication slots", fmt.Sprintf("all %d replication slots are in use, the slot %q cannot be created", maxSlots, c.cfg.Slot),
				"raise max_replication_slots in postgresql.conf and restart, or drop an unused slot: SELECT pg_drop_replication_slot('<name>');")
		} else {
			c.add(true, "replication slot", fmt.Sprintf("slot %q does not exist yet; it will be created at start", c.cfg.Slot),
				"none needed (if a checkpoint file exists, the slot was lost: delete the checkpoint to start from now)")
		}
	case slot.walStatus == "lost":
		c.add(false, "replication slot", fmt.Sprintf("slot %q has lost WAL it needed (wal_status = lost): changes since the checkpoint are gone", c.cfg.Slot),
			fmt.Sprintf("SELECT pg_drop_replication_slot('%s'); then delete the checkpoint file and raise max_slot_wal_keep_size", c.cfg.Slot))
	case slot.slotType != "logical" || slot.plugin != "pgoutput":
		c.add(false, "replication slot", fmt.Sprintf("slot %q is a %s slot with plugin %q, not logical pgoutput", c.cfg.Slot, slot.slotType, slot.plugin),
			"set source.postgres.slot to an unused name")
	case slot.database != db:
		c.add(false, "replication slot", fmt.Sprintf("slot %q belongs to database %q, not %q", c.cfg.Slot, slot.database, db),
			"set source.postgres.slot to an unused name")
	case slot.walStatus == "unreserved":
		c.add(true, "replication slot", fmt.Sprintf("slot %q is about to lose WAL (wal_status = unreserved)", c.cfg.Slot),
			"start leadtail now, or raise max_slot_wal_keep_size")
	}
	if usedSenders >= maxSenders {
		c.add(false, "wal senders", fmt.Sprintf("all %d WAL senders are in use", maxSenders),
			"raise max_wal_senders in postgresql.conf and restart, or stop an unused replication client")
	}

	// Tables, columns, privileges, replica identity.
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, normalizeTable(t))
	}
	sort.Strings(names)
	owned := map[string]bool{}
	existing := []string{}
	for t, cols := range tables {
		t = normalizeTable(t)
		if _, _, ok := splitTable(t); !ok {
			c.add(false, "table", fmt.Sprintf("mapped table %q is not schema.table", t), "write mappings[].table as schema.table, e.g. public.leads")
			continue
		}
		var oid uint32
		var ident string
		var canSelect, owner bool
		err := c.conn.QueryRow(ctx, `SELECT c.oid, c.relreplident::text,
				has_table_privilege(c.oid, 'SELECT'), pg_has_role(c.relowner, 'USAGE')
			FROM pg_class c WHERE c.oid = to_regclass($1)`, quoteTable(t)).Scan(&oid, &ident, &canSelect, &owner)
		if errors.Is(err, pgx.ErrNoRows) {
			c.add(false, "table", fmt.Sprintf("mapped table %s does not exist", t), "create the table or fix mappings[].table")
			continue
		}
		if err != nil {
			return err
		}
		existing = append(existing, t)
		owned[t] = owner || super
		if !canSelect {
			c.add(false, "table privilege", fmt.Sprintf("role %s cannot SELECT from %s", user, t),
				fmt.Sprintf("GRANT SELECT ON %s TO %s;", quoteTable(t), quser))
		}
		if ident != "f" {
			if c.cfg.SetReplicaIdentityFull && owned[t] {
				c.add(true, "replica identity", fmt.Sprintf("%s has REPLICA IDENTITY %s; it will be set to FULL at start (set_replica_identity_full)", t, strings.ToUpper(replicaIdentityName(ident))),
					"none needed")
			} else {
				c.add(false, "replica identity", fmt.Sprintf("%s has REPLICA IDENTITY %s: updates carry no old stage and unchanged large values are unknown", t, strings.ToUpper(replicaIdentityName(ident))),
					fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL; (or set source.postgres.set_replica_identity_full: true)", quoteTable(t)))
			}
		}
		rows, err := c.conn.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`, oid)
		if err != nil {
			return err
		}
		have, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, col := range cols {
			if !slices.Contains(have, col) {
				c.add(false, "column", fmt.Sprintf("mapped column %s.%s does not exist", t, col),
					fmt.Sprintf("fix the mapping, or ALTER TABLE %s ADD COLUMN %s ...;", quoteTable(t), pgx.Identifier{col}.Sanitize()))
			}
		}
	}
	sort.Strings(existing)

	// Publication.
	var allTables bool
	err = q(&allTables, `SELECT puballtables FROM pg_publication WHERE pubname = $1`, c.cfg.Publication)
	qpub := pgx.Identifier{c.cfg.Publication}.Sanitize()
	quotedAll := make([]string, len(names))
	for i, t := range names {
		quotedAll[i] = quoteTable(t)
	}
	allOwned := canCreate
	for _, t := range existing {
		allOwned = allOwned && owned[t]
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if allOwned {
			c.add(true, "publication", fmt.Sprintf("publication %q does not exist yet; it will be created at start", c.cfg.Publication), "none needed")
		} else {
			c.add(false, "publication", fmt.Sprintf("publication %q does not exist and role %s may not create it (needs CREATE on the database and ownership of the tables)", c.cfg.Publication, user),
				fmt.Sprintf("as the table owner: CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert, update, delete');", qpub, strings.Join(quotedAll, ", ")))
		}
	case err != nil:
		return err
	case !allTables:
		have, err := publicationTables(ctx, c.conn, c.cfg.Publication)
		if err != nil {
			return err
		}
		var missing []string
		for _, t := range existing {
			if !slices.Contains(have, t) {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			quoted := make([]string, len(missing))
			for i, t := range missing {
				quoted[i] = quoteTable(t)
			}
			if allOwned {
				c.add(true, "publication", fmt.Sprintf("publication %q lacks %s; it will be updated at start", c.cfg.Publication, strings.Join(missing, ", ")), "none needed")
			} else {
				c.add(false, "publication", fmt.Sprintf("publication %q lacks %s", c.cfg.Publication, strings.Join(missing, ", ")),
					fmt.Sprintf("as the table owner: ALTER PUBLICATION %s ADD TABLE %s;", qpub, strings.Join(quoted, ", ")))
			}
		}
	}

	// Heartbeats need pg_logical_emit_message.
	if c.cfg.HeartbeatInterval > 0 {
		var canEmit bool
		if err := q(&canEmit, `SELECT has_function_privilege('pg_logical_emit_message(boolean,text,text)', 'EXECUTE')`); err != nil {
			return err
		}
		if !canEmit {
			c.add(true, "heartbeat", fmt.Sprintf("role %s may not call pg_logical_emit_message: a quiet database will not advance the slot", user),
				fmt.Sprintf("GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO %s; (or heartbeat_interval: 0)", quser))
		}
	}
	return nil
}

// replicationConnect opens a logical replication connection and runs
// IDENTIFY_SYSTEM, as Stream would.
func (c *checker) replicationConnect(ctx context.Context) error {
	rc, err := pgconn.ParseConfig(c.cfg.DSN)
	if err != nil {
		return err
	}
	rc.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, rc)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = pglogrepl.IdentifySystem(ctx, conn)
	return err
}
