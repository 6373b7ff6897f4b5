package sources

import "time"

// Stats says how far a running source is behind its server (metrics). A
// count is -1 when the source cannot tell: the server did not answer, or
// the kind of position has no such measure.
type Stats struct {
	// LagBytes is the WAL or binlog volume between the position the
	// server has as acknowledged (PostgreSQL: the slot's
	// confirmed_flush_lsn; MySQL: the last Ack) and the server's current end.
	LagBytes int64
	// RetainedBytes is the WAL the server keeps for this consumer
	// (PostgreSQL: from the slot's restart_lsn).
	RetainedBytes int64
	// FilesBehind is the number of binlog files after the one holding the
	// acknowledged position (MySQL file positions).
	FilesBehind int64
	// TransactionsBehind is the number of transactions the server has
	// committed past the acknowledged position (MySQL/MariaDB GTID positions).
	TransactionsBehind int64
	// LastReceived is when the last message (data, keepalive or heartbeat)
	// arrived on the replication connection; zero before the first.
	LastReceived time.Time
}

// UnknownStats is Stats with every count unknown.
func UnknownStats() Stats {
	return Stats{LagBytes: -1, RetainedBytes: -1, FilesBehind: -1, TransactionsBehind: -1}
}
