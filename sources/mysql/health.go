package mysql

import (
	"context"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/leadtail/leadtail/sources"
)

// Streaming reports whether a binlog connection is up and delivering
// events, and why not (for /readyz). Before the first connection it says so.
func (s *Source) Streaming() (bool, string) { return s.health.Get("binlog streaming not started yet") }

func (s *Source) setStreaming(up bool, reason string) { s.health.Set(up, reason) }

func streamDownReason(err error) string {
	if err == nil {
		return "binlog streaming stopped"
	}
	return fmt.Sprintf("binlog connection lost, reconnecting: %v", err)
}

// Stats reports how far the last acknowledged position is behind the
// server's binlog (metrics): files and bytes with file positions,
// transactions with GTID positions. On error the server-side counts are
// -1; LastReceived is always set.
func (s *Source) Stats(ctx context.Context) (sources.Stats, error) {
	st := sources.UnknownStats()
	if ns := s.lastReceived.Load(); ns != 0 {
		st.LastReceived = time.Unix(0, ns)
	}
	p := s.ackedPos()
	if p.isZero() {
		return st, nil // not streaming yet: no position to measure from
	}
	var l binlogLag
	err := s.pool.do(ctx, func(conn *client.Conn) error {
		var err error
		l, err = lagOf(conn, p)
		return err
	})
	if err != nil {
		return st, err
	}
	st.LagBytes, st.FilesBehind, st.TransactionsBehind = l.bytes, l.files, l.transactions
	return st, nil
}
