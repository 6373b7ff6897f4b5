package postgres

// Active/standby
//
// A logical replication slot admits one consumer: START_REPLICATION on a
// slot another connection streams from fails with SQLSTATE 55006
// (object_in_use, "replication slot ... is active for PID ..."). Two
// leadtail instances on one configuration therefore never both stream: the
// second is a standby. It does not treat the refusal as an error but
// polls pg_replication_slots over the regular pool until the slot is free
// (the active instance stopped, or died and the server noticed its
// connection closing), then starts replication from the slot's
// confirmed_flush_lsn. The slot is the durable position, so each instance
// may keep its own state_dir: a standby's older checkpoint is only a floor
// (Stream starts at the later of the two). While waiting, Streaming (and
// so /readyz) says "standby".
//
// The same refusal follows a reconnect while the server has not yet
// noticed that our own previous connection is gone; waiting for the slot
// to be released is right then too.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// standbyPoll is how often a standby looks whether the slot is free.
const standbyPoll = time.Second

// slotInUseError: START_REPLICATION was refused because the slot is in
// use by another connection.
type slotInUseError struct{ err error }

func (e *slotInUseError) Error() string { return e.err.Error() }
func (e *slotInUseError) Unwrap() error { return e.err }

func isSlotInUse(err error) bool {
	var e *slotInUseError
	return errors.As(err, &e)
}

// slotInUse reports whether err is the server's "replication slot ... is
// active for PID ...": SQLSTATE 55006 (object_in_use).
func slotInUse(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55006"
}

// standby waits until the slot is free (or ctx ends). The first call of a
// standby period logs it and sets readiness; the caller then reconnects.
func (s *Source) standby(ctx context.Context, st *streamState, cause error) error {
	pid, active, err := s.slotConsumer(ctx)
	if st.standbySince.IsZero() {
		st.standbySince = time.Now()
		s.log.Info("standby: the replication slot is in use by another consumer (another leadtail instance?); "+
			"waiting to take over when it is released", "slot", s.cfg.Slot, "active_pid", pid, "error", cause)
	}
	s.setStreaming(false, fmt.Sprintf("standby: replication slot %s is in use by another consumer (PID %d); taking over when it is released", s.cfg.Slot, pid))
	t := time.NewTicker(standbyPoll)
	defer t.Stop()
	for {
		if err == nil && !active {
			return nil // free: start replication now
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err != nil {
			// The server cannot tell (a poll later): try to start; a
			// session error is handled by the usual reconnect backoff.
			s.log.Debug("standby: cannot read the slot", "error", err)
			return nil
		}
		_, active, err = s.slotConsumer(ctx)
	}
}

// leaveStandby logs the takeover once replication started after a standby period.
func (s *Source) leaveStandby(st *streamState) {
	if st.standbySince.IsZero() {
		return
	}
	s.log.Info("active: took over the replication slot", "slot", s.cfg.Slot, "standby_for", time.Since(st.standbySince).Round(time.Millisecond))
	st.standbySince = time.Time{}
}

// slotConsumer returns the PID of the walsender streaming from the slot.
func (s *Source) slotConsumer(ctx context.Context) (pid int32, active bool, err error) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var p *int32
	err = s.pool.QueryRow(qctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("postgres: read slot %s: %w", s.cfg.Slot, err)
	}
	if p == nil {
		return 0, false, nil
	}
	return *p, true, nil
}
