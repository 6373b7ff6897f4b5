// Package sources holds the change model shared by every database source:
// what a row change looks like once it has left the database adapter.
// It does no I/O.
package sources

import (
	"fmt"
	"time"
)

// Op is the kind of row change.
type Op int

const (
	// OpNone marks a position-only change: a keepalive, a heartbeat or a
	// transaction that touched no mapped table. It carries a Pos and nothing else.
	OpNone Op = iota
	OpInsert
	OpUpdate
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	default:
		return "none"
	}
}

// ParseOp is the inverse of Op.String for the three row operations.
func ParseOp(s string) (Op, error) {
	switch s {
	case "insert":
		return OpInsert, nil
	case "update":
		return OpUpdate, nil
	case "delete":
		return OpDelete, nil
	}
	return OpNone, fmt.Errorf("unknown op %q (want insert, update or delete)", s)
}

// Row maps column names to decoded values. Sources decode to these Go types
// only, so that the mapping layer has a closed set to handle:
//
//	nil                       SQL NULL
//	string                    text, varchar, enum labels, numeric/decimal (exact), uuid
//	int64, uint64             integer types
//	float64                   real/double
//	bool                      boolean
//	time.Time                 timestamps (UTC when the column has a zone), dates
//	[]byte                    binary/blob
//	json.RawMessage           json/jsonb (decoded lazily by the mapping)
//	json.Number               numbers read from JSON input (preview)
//	[]any, map[string]any     arrays and already-decoded JSON
//	Unknown                   a value the source could not see (unchanged TOAST without a before image)
type Row map[string]any

// Unknown stands for a column value the change does not carry, e.g. an
// unchanged TOASTed column in PostgreSQL when the before image has no copy.
// It is never NULL: the value exists, we just do not know it.
type Unknown struct{}

func (Unknown) String() string { return "<unknown>" }

// Position is an opaque, source-specific resume point, encoded as text so the
// checkpoint store can persist it. The empty Position means "no checkpoint":
// the source decides where to start (slot position, end of binlog).
type Position string

// Change is one committed row change, or a position-only marker.
type Change struct {
	// Table is "schema.table" (PostgreSQL) or "database.table" (MySQL).
	Table string
	Op    Op
	// CommitTime is the commit timestamp of the transaction, UTC.
	CommitTime time.Time
	// Commit identifies the transaction in the stream (PostgreSQL commit LSN,
	// MySQL GTID or binlog file:pos of the transaction end). With Ordinal it
	// names the change uniquely and stably: a replay yields the same pair.
	Commit string
	// Ordinal is the 0-based index of the change within its transaction.
	Ordinal int
	// Before is the old row image of an update or delete; nil when the source
	// has none (e.g. PostgreSQL without REPLICA IDENTITY FULL).
	Before Row
	// After is the new row image of an insert or update.
	After Row
	// Pos is set on the last change of a transaction and on position-only
	// changes: once every change up to and including this one is delivered,
	// the source may resume after Pos.
	Pos Position
}

// Problem is one finding of a preflight check: what is wrong and the
// one-line fix. Sources return them from their Check functions.
type Problem struct {
	// Check names what was looked at, e.g. "wal_level".
	Check string
	// Problem says what is wrong, without secrets.
	Problem string
	// Fix is one line telling the user what to do.
	Fix string
	// Warning marks findings that do not block running.
	Warning bool
}
