package mapping

import (
	"context"
	"errors"
	"time"

	"github.com/leadtail/leadtail/sources"
)

// SkipNoStageTime is the skip reason of a backfilled row whose event_time
// column is NULL or unreadable: when its stage changed is unknown.
const SkipNoStageTime = "event_time column is NULL or unreadable: the time of the stage change is unknown"

// ErrNoEventTime means a mapping has no event_time column, so it cannot be
// backfilled: a table scan sees each lead's current stage but not when it
// was reached (the commit time exists only in the change stream), and an
// event_id built from the stream's commit position cannot be reproduced.
var ErrNoEventTime = errors.New("the mapping has no event_time.column")

// Key returns the key columns (event_id input), in order.
func (m *Mapper) Key() []string { return append([]string(nil), m.key...) }

// EventTimeColumn returns the event_time column, "" when the mapping has
// none (events are dated by the commit time).
func (m *Mapper) EventTimeColumn() string {
	if m.eventTime == nil {
		return ""
	}
	return m.eventTime.column
}

// EventTimeUnit returns the unit of a numeric event_time column: "s" or "ms".
func (m *Mapper) EventTimeUnit() string {
	if m.eventTime != nil && m.eventTime.ms {
		return "ms"
	}
	return "s"
}

// StageTime reads the row's event_time column: when the current stage was
// reached. ok is false without an event_time column or when the value is
// NULL or unreadable.
func (m *Mapper) StageTime(row sources.Row) (t time.Time, ok bool) {
	if m.eventTime == nil {
		return time.Time{}, false
	}
	t, err := parseTime(row[m.eventTime.column], m.eventTime)
	return t, err == nil
}

// MapCurrent maps a row as it is now (backfill): the event of its current
// stage, as if the row had just been inserted, dated and identified by its
// event_time column, so that its event_id is the one the stream gave (or
// will give) that stage change. Unlike Map on an insert it never fills in
// skipped stages: a table scan does not know when the earlier stages were
// reached, and dating them all at the current stage's time would send
// events that match no streamed event_id. now stands in for the commit
// time (it dates nothing: rows without a readable event_time are skipped).
// It returns ErrNoEventTime when the mapping has no event_time column.
func (m *Mapper) MapCurrent(ctx context.Context, row sources.Row, q Querier, now time.Time) ([]Outcome, error) {
	if m.eventTime == nil {
		return nil, ErrNoEventTime
	}
	if _, ok := m.StageTime(row); !ok {
		return []Outcome{{Mapping: m.name, Skip: SkipNoStageTime}}, nil
	}
	ch := sources.Change{Table: m.table, Op: sources.OpInsert, CommitTime: now.UTC(), Commit: "backfill", After: row}
	return m.mapChange(ctx, ch, q, false)
}
