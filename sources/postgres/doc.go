// Package postgres tails a PostgreSQL database through logical replication
// (pgoutput) and turns row changes into sources.Change values.
//
// New builds a Source for the mapped tables; Stream runs the replication
// loop (see stream.go for the design), Ack reports delivered positions to
// the server, Query serves the mapping's lookups, Setup prepares the
// publication and slot, Check is the preflight of `leadtail check`.
//
// What a Change carries:
//
//   - Table is "schema.table"; Commit is the commit LSN of the transaction
//     and Ordinal the index of the row among its mapped rows, so a replay
//     yields the same (Commit, Ordinal).
//   - Pos is the text form of an LSN ("0/16B3748"). Every transaction ends
//     with an OpNone change whose Pos is the transaction's end LSN (rows are
//     streamed before the COMMIT that says which row was last): the
//     Pos-carrying change of a transaction may be that marker, and for a
//     transaction without mapped rows it is the only change. Heartbeats and,
//     when every emitted position has been acked, the server's WAL end are
//     also passed on as OpNone changes, so that an idle or filtered slot
//     keeps advancing.
//   - Before is the full old row only when the server sends one (REPLICA
//     IDENTITY FULL); with the default identity the key-only old tuple is
//     not a before image and Before is nil, which the mapping treats as "no
//     before image". Deletes without REPLICA IDENTITY FULL therefore carry
//     neither image.
//   - An unchanged TOASTed value is taken from Before when there is one,
//     else it is sources.Unknown{}; never nil.
//   - Values are decoded from text by type OID: integer types to int64,
//     numeric to its exact string, float4/8 to float64, bool, text-like types
//     and uuid to string, timestamp to a UTC time.Time as written,
//     timestamptz to UTC, date to UTC midnight, json/jsonb to
//     json.RawMessage, bytea to []byte, arrays of built-in types to []any of
//     the element type. Domains decode as their base type (lookups see the
//     base type too); enums and other types as their text. "infinity"
//     dates stay strings.
package postgres
