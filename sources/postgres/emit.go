package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/leadtail/leadtail/sources"
)

// relation is a table as announced by a pgoutput Relation message.
type relation struct {
	table string // "schema.table"
	cols  []relColumn
}

type relColumn struct {
	name string
	oid  uint32
	// skip: no mapping reads the column, so it is left out of rows
	// undecoded (a timestamp or JSON column costs more than the mapping).
	skip bool
}

// txnState is the emitter's view of the open transaction.
type txnState struct {
	commit     pglogrepl.LSN
	commitText string // commit as text, once per transaction
	commitTime time.Time
	ordinal    int  // next ordinal among mapped rows
	skipAll    bool // already emitted in full earlier in this Stream
	skipBelow  int  // ordinals already emitted before a reconnect
}

// emitLoop is the emitter goroutine: it decodes what the reader hands
// over and calls emit in order. The relation cache belongs to the
// connection, so it lives and dies with this session.
func (s *Source) emitLoop(ctx context.Context, st *streamState, items <-chan item, emit func(context.Context, sources.Change) error) error {
	rels := map[uint32]*relation{}
	var txn txnState
	send := func(c sources.Change) error {
		if err := emit(ctx, c); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // the session is ending; the change comes again
			}
			return &emitError{err}
		}
		st.emitted++
		return nil
	}
	for {
		var it item
		select {
		case <-ctx.Done():
			return ctx.Err()
		case it = <-items:
		}
		if it.msg == nil {
			if err := s.emitPosition(st, it.pos, send); err != nil {
				return err
			}
			continue
		}
		switch m := it.msg.(type) {
		case *pglogrepl.RelationMessage:
			rel, err := s.relation(ctx, st, m)
			if err != nil {
				return err
			}
			rels[m.RelationID] = rel
		case *pglogrepl.BeginMessage:
			txn = txnState{commit: m.FinalLSN, commitText: lsnText(m.FinalLSN), commitTime: m.CommitTime.UTC()}
			// FinalLSN is where the commit record starts; an earlier
			// transaction's end we already emitted lies after it.
			txn.skipAll = m.FinalLSN < st.lastPos
			if st.partialCommit == m.FinalLSN {
				txn.skipBelow = st.partialNext
			}
		case *pglogrepl.InsertMessage:
			if err := s.emitRow(st, &txn, rels, m.RelationID, sources.OpInsert, 0, nil, m.Tuple, send); err != nil {
				return err
			}
		case *pglogrepl.UpdateMessage:
			if err := s.emitRow(st, &txn, rels, m.RelationID, sources.OpUpdate, m.OldTupleType, m.OldTuple, m.NewTuple, send); err != nil {
				return err
			}
		case *pglogrepl.DeleteMessage:
			if err := s.emitRow(st, &txn, rels, m.RelationID, sources.OpDelete, m.OldTupleType, m.OldTuple, nil, send); err != nil {
				return err
			}
		case *pglogrepl.CommitMessage:
			end := m.TransactionEndLSN
			if txn.skipAll || end <= st.lastPos {
				continue
			}
			c := sources.Change{Op: sources.OpNone, CommitTime: txn.commitTime, Commit: txn.commitText, Ordinal: txn.ordinal, Pos: position(end)}
			if err := send(c); err != nil {
				return err
			}
			st.lastPos = end
			st.partialCommit, st.partialNext = 0, 0
			s.log.Trace("transaction emitted", "position", c.Pos, "changes", txn.ordinal)
		case *pglogrepl.LogicalDecodingMessage:
			// Transactional messages belong to their transaction and carry
			// no position of their own.
			if !m.Transactional {
				if err := s.emitPosition(st, m.LSN, send); err != nil {
					return err
				}
			}
		case *pglogrepl.TruncateMessage:
			// The publication does not publish truncates; one set up by
			// hand might. There is no row to hand the mapping.
			s.log.Warn("truncate not streamed", "relations", len(m.RelationIDs))
		}
	}
}

func (s *Source) emitPosition(st *streamState, lsn pglogrepl.LSN, send func(sources.Change) error) error {
	if lsn <= st.lastPos {
		return nil
	}
	if err := send(sources.Change{Op: sources.OpNone, Pos: position(lsn)}); err != nil {
		return err
	}
	st.lastPos = lsn
	return nil
}

// relation caches a Relation message, checking that the mapping's columns
// are still there: pgoutput sends one before the first change of a table
// on each connection and again after ALTER TABLE.
func (s *Source) relation(ctx context.Context, st *streamState, m *pglogrepl.RelationMessage) (*relation, error) {
	rel := &relation{table: m.Namespace + "." + m.RelationName}
	names := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		oid, err := s.baseType(ctx, st, c.DataType)
		if err != nil {
			return nil, err
		}
		rel.cols = append(rel.cols, relColumn{name: c.Name, oid: oid})
		names[i] = c.Name
	}
	if !s.mapped[rel.table] {
		return rel, nil
	}
	if req := s.required[rel.table]; len(req) > 0 {
		for i := range rel.cols {
			rel.cols[i].skip = !slices.Contains(req, rel.cols[i].name)
		}
	}
	for _, c := range s.required[rel.table] {
		if !slices.Contains(names, c) {
			return nil, fatalf("postgres: mapped column %s.%s no longer exists (the table was altered): "+
				"restore the column or remove it from the mapping", rel.table, c)
		}
	}
	for _, c := range st.columns[rel.table] {
		if !slices.Contains(names, c) {
			s.log.Warn("column dropped from mapped table", "table", rel.table, "column", c)
		}
	}
	st.columns[rel.table] = names
	return rel, nil
}

func (s *Source) emitRow(st *streamState, txn *txnState, rels map[uint32]*relation, relID uint32,
	op sources.Op, oldType uint8, oldTuple, newTuple *pglogrepl.TupleData, send func(sources.Change) error) error {
	rel, ok := rels[relID]
	if !ok {
		// pgoutput always announces a relation before its first change.
		return fmt.Errorf("postgres: change for relation %d before its Relation message", relID)
	}
	if !s.mapped[rel.table] {
		return nil
	}
	ord := txn.ordinal
	txn.ordinal++
	if txn.skipAll || ord < txn.skipBelow {
		return nil
	}
	c := sources.Change{Table: rel.table, Op: op, CommitTime: txn.commitTime, Commit: txn.commitText, Ordinal: ord}
	var err error
	// Only a full old image ('O', REPLICA IDENTITY FULL) is a before image:
	// a key-only one ('K') lacks the stage column, and the mapping treats a
	// nil Before as "no before image" explicitly.
	if oldType == pglogrepl.UpdateMessageTupleTypeOld {
		if c.Before, err = rel.row(oldTuple, nil); err != nil {
			return err
		}
	}
	if newTuple != nil {
		if c.After, err = rel.row(newTuple, c.Before); err != nil {
			return err
		}
	}
	if err := send(c); err != nil {
		return err
	}
	st.partialCommit, st.partialNext = txn.commit, ord+1
	return nil
}

// row decodes a tuple. An unchanged TOASTed value ('u') is taken from
// before when that has it (REPLICA IDENTITY FULL logs the whole old row),
// else it is sources.Unknown{}: it is never read as NULL.
func (r *relation) row(t *pglogrepl.TupleData, before sources.Row) (sources.Row, error) {
	if t == nil {
		return nil, errors.New("postgres: missing tuple")
	}
	if len(t.Columns) != len(r.cols) {
		return nil, fmt.Errorf("postgres: %s: tuple has %d columns, relation %d", r.table, len(t.Columns), len(r.cols))
	}
	row := make(sources.Row, len(r.cols))
	for i, c := range t.Columns {
		col := r.cols[i]
		if col.skip {
			continue
		}
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			row[col.name] = nil
		case pglogrepl.TupleDataTypeToast:
			v, ok := before[col.name]
			if _, unknown := v.(sources.Unknown); !ok || unknown {
				v = sources.Unknown{}
			}
			row[col.name] = v
		case pglogrepl.TupleDataTypeText:
			v, err := decodeText(col.oid, c.Data)
			if err != nil {
				return nil, columnError(r.table, col.name, col.oid, err)
			}
			row[col.name] = v
		default:
			return nil, fmt.Errorf("postgres: %s.%s: unexpected tuple data kind %q", r.table, col.name, c.DataType)
		}
	}
	return row, nil
}

// firstNormalOID is where user-defined OIDs start; below it are built-in
// types, which need no lookup.
const firstNormalOID = 16384

// baseType maps a domain to the type under it (through domains over
// domains), so that a domain column decodes like its base type, as lookup
// results do (the server describes those with the base type). Other types
// map to themselves; unknown ones are decoded as text.
func (s *Source) baseType(ctx context.Context, st *streamState, oid uint32) (uint32, error) {
	if oid < firstNormalOID {
		return oid, nil
	}
	if b, ok := st.baseTypes[oid]; ok {
		return b, nil
	}
	var base uint32
	err := s.pool.QueryRow(ctx, `WITH RECURSIVE d(oid, base, typtype) AS (
			SELECT oid, typbasetype, typtype FROM pg_type WHERE oid = $1
			UNION ALL
			SELECT t.oid, t.typbasetype, t.typtype FROM pg_type t JOIN d ON t.oid = d.base WHERE d.typtype = 'd')
		SELECT oid FROM d WHERE typtype <> 'd'`, oid).Scan(&base)
	if errors.Is(err, pgx.ErrNoRows) {
		base = oid // dropped meanwhile: decode as text
	} else if err != nil {
		return 0, fmt.Errorf("postgres: resolve type %d: %w", oid, err)
	}
	st.baseTypes[oid] = base
	return base, nil
}
