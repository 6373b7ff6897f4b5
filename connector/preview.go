package connector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/leadtail/leadtail/mapping"
	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources"
)

// PreviewRecord is one input line of `leadtail preview`: a change as a
// source would deliver it.
type PreviewRecord struct {
	Table      string         `json:"table"`
	Op         string         `json:"op"`
	CommitTime string         `json:"commit_time"`
	Before     map[string]any `json:"before"`
	After      map[string]any `json:"after"`
	// Position is the transaction's commit position (e.g. a PostgreSQL LSN
	// or a MySQL GTID) and Ordinal the change's index in it; both feed the
	// event_id. Without them the commit time and the line number stand in.
	Position string `json:"position,omitempty"`
	Ordinal  *int   `json:"ordinal,omitempty"`
	// Lookups gives each lookup's result rows, since preview has no database.
	Lookups map[string][]map[string]any `json:"lookups,omitempty"`
}

// PreviewLine is one output line.
type PreviewLine struct {
	Event      *sink.Event `json:"event,omitempty"`
	Skip       string      `json:"skip,omitempty"`
	DeadLetter string      `json:"dead_letter,omitempty"`
}

// MarshalJSON puts dead_letter before event, as contract.md shows it.
func (l PreviewLine) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	switch {
	case l.Skip != "":
		s, _ := json.Marshal(l.Skip)
		b.WriteString(`{"skip":`)
		b.Write(s)
	case l.DeadLetter != "":
		s, _ := json.Marshal(l.DeadLetter)
		e, err := json.Marshal(l.Event)
		if err != nil {
			return nil, err
		}
		b.WriteString(`{"dead_letter":`)
		b.Write(s)
		b.WriteString(`,"event":`)
		b.Write(e)
	default:
		e, err := json.Marshal(l.Event)
		if err != nil {
			return nil, err
		}
		b.WriteString(`{"event":`)
		b.Write(e)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// InputError is a bad preview input line.
type InputError struct {
	Line int
	Err  error
}

func (e *InputError) Error() string { return fmt.Sprintf("stdin:%d: %v", e.Line, e.Err) }
func (e *InputError) Unwrap() error { return e.Err }

// Preview reads change records (JSON lines) from in and writes, for each,
// one line per outcome: exactly the event run would send, a skip with its
// reason, or a dead letter with its reason. only limits it to one mapping.
// No database and no network are used: lookups come from the records.
func Preview(ctx context.Context, cfg *Config, only string, now time.Time, in io.Reader, out io.Writer) error {
	set := cfg.Set
	var mappers []*mapping.Mapper
	for _, m := range set.Mappers() {
		if only != "" && m.Name() != only {
			continue
		}
		// Recompile without the lookup cache: each record brings its own rows.
		mc := findMappingConfig(cfg, m.Name())
		pm, errs := mapping.Compile(mc, mapping.Options{DatasetID: cfg.Meta.DatasetID, DisableCache: true, Now: func() time.Time { return now }})
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		mappers = append(mappers, pm)
	}
	if only != "" && len(mappers) == 0 {
		return fmt.Errorf("no mapping named %q (have: %s)", only, strings.Join(mappingNames(set), ", "))
	}
	pset := mapping.NewSet(mappers...)

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 64<<20) // rows with large text columns
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		ch, lookups, err := parseRecord(text, line)
		if err != nil {
			return &InputError{Line: line, Err: err}
		}
		outs, err := pset.Map(ctx, ch, staticQuerier{queries: pset, rows: lookups})
		if err != nil {
			return &InputError{Line: line, Err: err}
		}
		if len(outs) == 0 {
			outs = []mapping.Outcome{{Skip: mapping.SkipNoMapping}}
		}
		for _, o := range outs {
			pl := PreviewLine{Skip: o.Skip}
			if o.Event != nil {
				pl.Event = o.Event
				pl.DeadLetter = sink.Prepare(o.Event, now, cfg.Delivery.ExpiryMargin)
			}
			if err := enc.Encode(pl); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return &InputError{Line: line + 1, Err: err}
	}
	return w.Flush()
}

func mappingNames(s *mapping.Set) []string {
	var out []string
	for _, m := range s.Mappers() {
		out = append(out, m.Name())
	}
	return out
}

func findMappingConfig(cfg *Config, name string) mapping.Config {
	for _, mc := range cfg.Mappings {
		if mc.Name == name {
			return mc
		}
	}
	return mapping.Config{}
}

func parseRecord(text []byte, line int) (sources.Change, map[string][]sources.Row, error) {
	var r PreviewRecord
	d := json.NewDecoder(bytes.NewReader(text))
	d.UseNumber() // 17-digit lead ids must not pass through float64
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return sources.Change{}, nil, fmt.Errorf("not a change record: %w", err)
	}
	if d.More() {
		return sources.Change{}, nil, errors.New("one JSON object per line")
	}
	op, err := sources.ParseOp(r.Op)
	if err != nil {
		return sources.Change{}, nil, err
	}
	if r.Table == "" {
		return sources.Change{}, nil, errors.New("table is required")
	}
	if r.CommitTime == "" {
		return sources.Change{}, nil, errors.New("commit_time is required (RFC 3339, e.g. 2026-11-20T10:00:00Z)")
	}
	ct, err := time.Parse(time.RFC3339Nano, r.CommitTime)
	if err != nil {
		return sources.Change{}, nil, fmt.Errorf("commit_time: %w", err)
	}
	if op != sources.OpDelete && r.After == nil {
		return sources.Change{}, nil, fmt.Errorf("%s needs after", r.Op)
	}
	ch := sources.Change{Table: r.Table, Op: op, CommitTime: ct.UTC(), Commit: r.Position, Ordinal: line - 1}
	if ch.Commit == "" {
		ch.Commit = "preview@" + ct.UTC().Format(time.RFC3339Nano)
	}
	if r.Ordinal != nil {
		ch.Ordinal = *r.Ordinal
	}
	if r.Before != nil {
		ch.Before = sources.Row(r.Before)
	}
	if r.After != nil {
		ch.After = sources.Row(r.After)
	}
	var lookups map[string][]sources.Row
	if len(r.Lookups) > 0 {
		lookups = map[string][]sources.Row{}
		for name, rows := range r.Lookups {
			for _, row := range rows {
				lookups[name] = append(lookups[name], sources.Row(row))
			}
		}
	}
	return ch, lookups, nil
}

// staticQuerier answers lookups from a preview record: it finds the lookup
// by its query text and returns the rows the record gave for it.
type staticQuerier struct {
	queries *mapping.Set
	rows    map[string][]sources.Row
}

func (q staticQuerier) Query(_ context.Context, query string, maxRows int, _ ...any) ([]sources.Row, error) {
	for _, m := range q.queries.Mappers() {
		for name, text := range m.LookupQueries() {
			if text == query {
				r := q.rows[name]
				if len(r) > maxRows {
					r = r[:maxRows]
				}
				return r, nil
			}
		}
	}
	return nil, nil
}
