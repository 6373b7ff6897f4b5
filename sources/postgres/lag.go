package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadtail/leadtail/sources"
)

// Lag describes how far the slot's confirmed position is behind the
// server's current WAL position, and how much WAL the slot retains, for
// `leadtail status`.
func Lag(ctx context.Context, cfg Config) (string, error) {
	conn, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", RedactedDSN(cfg.DSN), err)
	}
	defer conn.Close(ctx)
	var (
		confirmed, status *string
		behind, retained  *int64
		active            bool
	)
	err = conn.QueryRow(ctx, `
		SELECT confirmed_flush_lsn::text, wal_status, active,
		       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
		       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot).Scan(&confirmed, &status, &active, &behind, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("slot %q does not exist (leadtail run creates it)", cfg.Slot)
	}
	if err != nil {
		return "", fmt.Errorf("read slot %q: %w", cfg.Slot, err)
	}
	deref := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	str := func(p *string) string {
		if p == nil {
			return "unknown"
		}
		return *p
	}
	consumer := "no consumer attached"
	if active {
		consumer = "a consumer is attached"
	}
	return fmt.Sprintf("slot %s confirmed at %s, %d bytes behind the current WAL; retains %d bytes of WAL (wal_status %s; %s)",
		cfg.Slot, str(confirmed), deref(behind), deref(retained), str(status), consumer), nil
}

// Stats reports how far the slot is behind the server's current WAL
// position and how much WAL it retains (metrics), over the lookup pool.
// On error the server-side counts are -1; LastReceived is always set.
func (s *Source) Stats(ctx context.Context) (sources.Stats, error) {
	st := sources.UnknownStats()
	if ns := s.lastReceived.Load(); ns != 0 {
		st.LastReceived = time.Unix(0, ns)
	}
	var behind, retained *int64
	err := s.pool.QueryRow(ctx, `
		SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
		       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&behind, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("postgres: slot %q does not exist", s.cfg.Slot)
	}
	if err != nil {
		return st, fmt.Errorf("postgres: read slot %q: %w", s.cfg.Slot, err)
	}
	if behind != nil {
		st.LagBytes = max(*behind, 0)
	}
	if retained != nil {
		st.RetainedBytes = max(*retained, 0)
	}
	return st, nil
}
