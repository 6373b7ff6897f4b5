package mapping

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources"
)

// Skip reasons. They are stable strings: metrics and preview output use them.
const (
	SkipNoMapping      = "no mapping for table"
	SkipDelete         = "delete: deletes never emit"
	SkipFiltered       = "filtered out"
	SkipNullStage      = "stage is NULL"
	SkipUnknownStage   = "stage value unknown (column not in the change)"
	SkipUnmappedStage  = "unmapped stage value"
	SkipNoBefore       = "no before image: cannot tell whether the stage changed (set REPLICA IDENTITY FULL / binlog_row_image=FULL)"
	SkipStageUnchanged = "stage unchanged"
	SkipBackward       = "backward stage move (transitions: forward)"
)

// Dead-letter reasons found by the mapping itself.
const (
	RejectInvalidLeadID = "invalid lead_id"
)

// Outcome is what one mapping made of one change: an event (possibly one
// to dead-letter, see Event.Reject) or a skip with its reason.
type Outcome struct {
	Mapping string
	Event   *sink.Event
	Skip    string
	// Dropped lists values left out of the event because they failed
	// normalisation: key and reason, never the value.
	Dropped []Drop
}

// Drop is one value that failed normalisation.
type Drop struct {
	Key    string
	Reason string
}

// Set is the compiled mappings of a configuration, indexed by table.
type Set struct {
	mappers []*Mapper
	byTable map[string][]*Mapper
	byName  map[string]*Mapper
}

// NewSet indexes compiled mappers. Names must be unique (the config
// loader checks that with line numbers).
func NewSet(ms ...*Mapper) *Set {
	s := &Set{byTable: map[string][]*Mapper{}, byName: map[string]*Mapper{}}
	for _, m := range ms {
		s.mappers = append(s.mappers, m)
		s.byTable[m.table] = append(s.byTable[m.table], m)
		s.byName[m.name] = m
	}
	return s
}

// Mappers returns the mappers in configuration order.
func (s *Set) Mappers() []*Mapper { return s.mappers }

// Get returns the mapper called name, or nil.
func (s *Set) Get(name string) *Mapper { return s.byName[name] }

// Tables returns the mapped tables, sorted.
func (s *Set) Tables() []string {
	out := make([]string, 0, len(s.byTable))
	for t := range s.byTable {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Columns returns, per mapped table, the columns the mappings read.
func (s *Set) Columns() map[string][]string {
	out := map[string][]string{}
	for _, m := range s.mappers {
		seen := map[string]bool{}
		for _, c := range out[m.table] {
			seen[c] = true
		}
		for _, c := range m.Columns() {
			if !seen[c] {
				out[m.table] = append(out[m.table], c)
				seen[c] = true
			}
		}
	}
	return out
}

// Map runs every mapping of the change's table. A position-only change
// yields nothing. The error is a lookup failure: retry the change later.
func (s *Set) Map(ctx context.Context, ch sources.Change, q Querier) ([]Outcome, error) {
	if ch.Op == sources.OpNone {
		return nil, nil
	}
	ms := s.byTable[ch.Table]
	if len(ms) == 0 {
		return []Outcome{{Skip: SkipNoMapping}}, nil
	}
	var out []Outcome
	for _, m := range ms {
		o, err := m.Map(ctx, ch, q)
		if err != nil {
			return nil, err
		}
		out = append(out, o...)
	}
	return out, nil
}

// Map turns one change into outcomes: one per emitted event (several when
// skipped stages are filled in) or one skip.
func (m *Mapper) Map(ctx context.Context, ch sources.Change, q Querier) ([]Outcome, error) {
	return m.mapChange(ctx, ch, q, m.fill)
}

func (m *Mapper) mapChange(ctx context.Context, ch sources.Change, q Querier, fill bool) ([]Outcome, error) {
	skip := func(reason string) ([]Outcome, error) {
		return []Outcome{{Mapping: m.name, Skip: reason}}, nil
	}
	switch ch.Op {
	case sources.OpNone:
		return nil, nil
	case sources.OpDelete:
		return skip(SkipDelete)
	}
	row := ch.After
	for _, c := range m.filter {
		if !c.match(row[c.column]) {
			return skip(SkipFiltered + ": " + c.column)
		}
	}
	newVal, present := row[m.stageColumn]
	if !present {
		return skip(SkipUnknownStage)
	}
	if _, unk := newVal.(sources.Unknown); unk {
		return skip(SkipUnknownStage)
	}
	newStr, ok := canon(newVal)
	if !ok {
		return skip(SkipNullStage)
	}
	idx, mapped := m.stageIndex[newStr]
	if !mapped {
		return skip(fmt.Sprintf("%s %q", SkipUnmappedStage, newStr))
	}

	var emit []int
	switch ch.Op {
	case sources.OpInsert:
		if fill {
			emit = seq(0, idx)
		} else {
			emit = []int{idx}
		}
	case sources.OpUpdate:
		if ch.Before == nil {
			return skip(SkipNoBefore)
		}
		oldVal, ok := ch.Before[m.stageColumn]
		if !ok {
			return skip(SkipNoBefore)
		}
		if _, unk := oldVal.(sources.Unknown); unk {
			return skip(SkipNoBefore)
		}
		oldStr, oldOK := canon(oldVal)
		if oldOK && oldStr == newStr {
			return skip(SkipStageUnchanged)
		}
		oldIdx, oldMapped := m.stageIndex[oldStr]
		switch {
		case !oldOK || !oldMapped:
			// From NULL or an unlisted stage into the funnel.
			emit = []int{idx}
		case m.forward && idx <= oldIdx:
			return skip(SkipBackward)
		case fill && idx > oldIdx:
			emit = seq(oldIdx+1, idx)
		default:
			emit = []int{idx}
		}
	default:
		return skip("unknown operation")
	}

	lk := &lookupRun{m: m, q: q, row: row}
	ud, drops, reject, err := m.userData(ctx, row, lk)
	if err != nil {
		return nil, err
	}
	cd, err := m.customData(ctx, row, lk)
	if err != nil {
		return nil, err
	}
	evTime := ch.CommitTime
	stageTime := ""
	if m.eventTime != nil {
		// A NULL or unreadable stage-time column falls back to the commit
		// time, which is when the stage change became visible.
		if t, err := parseTime(row[m.eventTime.column], m.eventTime); err == nil {
			evTime = t
			stageTime = m.stageTimeID(ch, t)
		}
	}
	var leadCreated int64
	if m.leadCreated != nil {
		if t, err := parseTime(row[m.leadCreated.column], m.leadCreated); err == nil {
			leadCreated = t.Unix()
		}
	}
	pk := m.primaryKey(row)

	out := make([]Outcome, 0, len(emit))
	for i, si := range emit {
		st := m.stages[si]
		custom := make(map[string]any, len(cd)+2)
		for k, v := range cd {
			custom[k] = v
		}
		custom["event_source"] = "crm"
		custom["lead_event_source"] = m.leadEventSource
		user := ud
		if i > 0 {
			user = cloneUserData(ud)
		}
		ev := &sink.Event{
			EventName:    st.event,
			EventTime:    evTime.Unix(),
			ActionSource: sink.ActionSystemGenerated,
			EventID:      m.eventID(ch, pk, st.value, stageTime),
			UserData:     user,
			CustomData:   custom,
			Mapping:      m.name,
			Table:        m.table,
			LeadCreated:  leadCreated,
			CommitTime:   ch.CommitTime,
			Reject:       reject,
		}
		out = append(out, Outcome{Mapping: m.name, Event: ev, Dropped: drops})
	}
	return out, nil
}

func seq(from, to int) []int {
	out := make([]int, 0, to-from+1)
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func cloneUserData(u sink.UserData) sink.UserData {
	c := u
	for _, k := range hashedKeyList {
		if p := c.Hashed(k); *p != nil {
			*p = append([]string(nil), *p...)
		}
	}
	return c
}

// eventID is a pure function of the change: the same change replayed gives
// the same id, distinct changes (even to the same stage) distinct ids.
//
// Two schemes:
//
//   - stageTime set (the mapping has an event_time column and the change
//     set it): a hash of (dataset, mapping, table, primary key, stage,
//     stage-change time at full precision). A table scan sees the same
//     values, so backfill and the stream give one stage change the same
//     id, and Meta drops whichever arrives second. Distinct moves to one
//     stage differ in their time (the CRM sets the column on every stage
//     change).
//   - otherwise: a hash of (dataset, mapping, table, primary key, stage,
//     commit position, ordinal in the transaction), which only the stream
//     can reproduce.
func (m *Mapper) eventID(ch sources.Change, pk, stage, stageTime string) string {
	parts := []string{"leadtail/v1", m.dataset, m.name, m.table, pk, stage, ch.Commit, strconv.Itoa(ch.Ordinal)}
	if stageTime != "" {
		parts = []string{"leadtail/v2", m.dataset, m.name, m.table, pk, stage, stageTime}
	}
	h := sha256.New()
	for _, part := range parts {
		h.Write([]byte(part))
		h.Write([]byte{0x1f})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// stageTimeID returns the event_time value t as event_id input, or "" when
// it cannot identify this stage change: an update whose before image holds
// the same value did not set the column (the CRM breaks the rule that it
// changes on every stage change), so two moves to one stage could share
// it; such a change keeps the commit-position scheme.
func (m *Mapper) stageTimeID(ch sources.Change, t time.Time) string {
	if ch.Op == sources.OpUpdate && ch.Before != nil {
		if bt, err := parseTime(ch.Before[m.eventTime.column], m.eventTime); err == nil && bt.Equal(t) {
			return ""
		}
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (m *Mapper) primaryKey(row sources.Row) string {
	parts := make([]string, len(m.key))
	for i, k := range m.key {
		parts[i], _ = canon(row[k])
	}
	return strings.Join(parts, "\x1e")
}

func (c cond) match(v any) bool {
	if _, unk := v.(sources.Unknown); unk {
		return false
	}
	s, ok := canon(v)
	switch c.op {
	case "is_null":
		return !ok == c.isNull
	case "in":
		if !ok {
			return false
		}
		for _, x := range c.values {
			if x == s {
				return true
			}
		}
		return false
	case "not_in":
		if !ok {
			return true
		}
		for _, x := range c.values {
			if x == s {
				return false
			}
		}
		return true
	}
	return false
}

// lookupRun resolves each lookup at most once per change.
type lookupRun struct {
	m    *Mapper
	q    Querier
	row  sources.Row
	done map[string][]sources.Row
}

// ErrNoQuerier is returned when a mapping needs a lookup but no database
// connection was given.
var ErrNoQuerier = errors.New("lookup needs a database connection")

func (l *lookupRun) rows(ctx context.Context, name string) ([]sources.Row, error) {
	if r, ok := l.done[name]; ok {
		return r, nil
	}
	d := l.m.lookups[name]
	args := make([]any, len(d.args))
	keyParts := make([]string, len(d.args))
	for i, a := range d.args {
		v := l.row[a]
		if _, unk := v.(sources.Unknown); unk || v == nil {
			// A NULL key matches nothing; an unknown one cannot be asked.
			return nil, nil
		}
		args[i] = v
		keyParts[i], _ = canon(v)
	}
	key := name + "\x00" + strings.Join(keyParts, "\x1e")
	now := l.m.now()
	if d.cache != nil {
		if r, ok := d.cache.get(key, now); ok {
			l.remember(name, r)
			return r, nil
		}
	}
	if l.q == nil {
		return nil, fmt.Errorf("lookup %q: %w", name, ErrNoQuerier)
	}
	r, err := l.q.Query(ctx, d.query, d.maxRows, args...)
	if err != nil {
		return nil, fmt.Errorf("lookup %q: %w", name, err)
	}
	if d.cache != nil {
		d.cache.put(key, r, now)
	}
	l.remember(name, r)
	return r, nil
}

func (l *lookupRun) remember(name string, r []sources.Row) {
	if l.done == nil {
		l.done = map[string][]sources.Row{}
	}
	l.done[name] = r
}

// values resolves a field's sources into scalar values, in order.
func (m *Mapper) values(ctx context.Context, f field, row sources.Row, lk *lookupRun) ([]any, error) {
	var out []any
	for _, s := range f.sources {
		switch s.kind {
		case srcLiteral:
			out = append(out, s.literal)
		case srcColumn:
			out = flatten(row[s.column], out)
		case srcJSON:
			v := row[s.column]
			if _, unk := v.(sources.Unknown); unk {
				out = append(out, v)
				continue
			}
			found, ok := pathValues(v, s.path)
			if !ok {
				continue
			}
			for _, x := range found {
				out = flatten(x, out)
			}
		case srcLookup:
			rows, err := lk.rows(ctx, s.lookup)
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				out = flatten(r[s.column], out)
			}
		}
	}
	return out, nil
}

// userData builds user_data: hashed keys normalised and hashed (several
// values, deduplicated), lead_id validated, plain keys as given.
func (m *Mapper) userData(ctx context.Context, row sources.Row, lk *lookupRun) (sink.UserData, []Drop, string, error) {
	var ud sink.UserData
	var drops []Drop
	reject := ""
	for _, f := range m.user {
		vals, err := m.values(ctx, f, row, lk)
		if err != nil {
			return ud, nil, "", err
		}
		switch {
		case f.key == "lead_id":
			for _, v := range vals {
				if _, unk := v.(sources.Unknown); unk {
					drops = append(drops, Drop{f.key, "value unknown"})
					continue
				}
				s, ok := canon(v)
				if !ok || strings.TrimSpace(s) == "" {
					continue
				}
				id, err := ParseLeadID(s)
				if err != nil {
					reject = RejectInvalidLeadID
					drops = append(drops, Drop{f.key, RejectInvalidLeadID})
					continue
				}
				ud.LeadID, reject = id, ""
				break
			}
		case isHashedKey(f.key):
			dst := ud.Hashed(f.key)
			for _, v := range vals {
				if _, unk := v.(sources.Unknown); unk {
					drops = append(drops, Drop{f.key, "value unknown"})
					continue
				}
				s, ok := hashInput(f.key, v)
				if !ok {
					continue
				}
				h, err := HashField(f.key, s)
				if err != nil {
					drops = append(drops, Drop{f.key, dropReason(err)})
					continue
				}
				if !contains(*dst, h) {
					*dst = append(*dst, h)
				}
			}
		default:
			dst := ud.Plain(f.key)
			for _, v := range vals {
				s, ok := canon(v)
				s = strings.TrimSpace(s)
				if !ok || s == "" {
					continue
				}
				if f.key == "fbc" {
					if err := CheckFbc(s); err != nil {
						drops = append(drops, Drop{f.key, dropReason(err)})
						continue
					}
				}
				*dst = s
				break
			}
		}
	}
	return ud, drops, reject, nil
}

// hashInput renders a value for normalisation; dates become YYYY-MM-DD so
// the date-of-birth normaliser reads them year first.
func hashInput(key string, v any) (string, bool) {
	if t, ok := v.(interface{ Format(string) string }); ok && key == "db" {
		return t.Format("2006-01-02"), true
	}
	s, ok := canon(v)
	if !ok || strings.TrimSpace(s) == "" {
		return "", false
	}
	return s, true
}

func dropReason(err error) string {
	var de *DropError
	if errors.As(err, &de) {
		return de.Reason
	}
	return "invalid value"
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// customData builds the extra custom_data fields: one value as it is,
// several as a list.
func (m *Mapper) customData(ctx context.Context, row sources.Row, lk *lookupRun) (map[string]any, error) {
	if len(m.custom) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(m.custom))
	for _, f := range m.custom {
		vals, err := m.values(ctx, f, row, lk)
		if err != nil {
			return nil, err
		}
		var clean []any
		for _, v := range vals {
			if cv, ok := customValue(v); ok {
				clean = append(clean, cv)
			}
		}
		switch len(clean) {
		case 0:
		case 1:
			out[f.key] = clean[0]
		default:
			out[f.key] = clean
		}
	}
	return out, nil
}

func customValue(v any) (any, bool) {
	switch x := v.(type) {
	case nil, sources.Unknown:
		return nil, false
	case int64, int, uint64, float64, bool, string, json.Number, json.RawMessage:
		return x, true
	case interface{ Unix() int64 }:
		s, _ := canon(v)
		return s, true
	}
	s, ok := canon(v)
	return s, ok
}
