package postgres

import (
	"context"
	"fmt"
	"time"
)

// Liveness of the replication connection.
//
// A connection that went half-open (a firewall, NAT or proxy between us
// and the server dropped it without telling either side) delivers nothing
// and fails nothing: reads just wait. The server notices our silence after
// wal_sender_timeout and ends its walsender, but nothing tells us, so the
// stream would hang for good (TCP keepalives do not help when a middlebox
// still answers them). The reader therefore does what PostgreSQL's own
// walreceiver does with wal_receiver_timeout: after half the server's
// wal_sender_timeout without a message it asks for a reply (a standby
// status update with the reply flag, which a live walsender answers at
// once with a keepalive), and after the whole timeout it drops the
// connection; Stream then reconnects from the last Ack. Time spent not
// reading (backpressure) does not count as silence.

// defaultSenderTimeout is PostgreSQL's default wal_sender_timeout, used
// when the setting cannot be read.
const defaultSenderTimeout = 60 * time.Second

// senderTimeout returns the server's wal_sender_timeout (0: disabled).
func (s *Source) senderTimeout(ctx context.Context) time.Duration {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var ms int64
	err := s.pool.QueryRow(qctx, `SELECT setting::bigint FROM pg_settings WHERE name = 'wal_sender_timeout'`).Scan(&ms)
	if err != nil || ms < 0 {
		return defaultSenderTimeout
	}
	return time.Duration(ms) * time.Millisecond
}

// heard records that the server just sent something (or that reading
// resumes after backpressure).
func (r *reader) heard() {
	r.lastMsg = time.Now()
	r.pinged = false
}

// checkAlive asks for a reply after half the timeout of silence and
// returns an error, which ends the session, after the whole timeout.
func (r *reader) checkAlive() error {
	if r.timeout <= 0 {
		return nil
	}
	silent := time.Since(r.lastMsg)
	switch {
	case silent > r.timeout:
		return fmt.Errorf("postgres: no message from the server for %s although one was asked for (wal_sender_timeout %s): "+
			"the connection is presumed dead (half-open), reconnecting", silent.Round(time.Millisecond), r.timeout)
	case silent > r.timeout/2 && !r.pinged:
		r.pinged = true
		return r.status(true)
	}
	return nil
}
