package mapping

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/leadtail/leadtail/sources"
)

const baseMapping = `
name: leads
table: public.leads
lead_event_source: Acme CRM
filter:
  - {column: deleted, not_equals: true}
stage:
  column: status
  events: {new: initial_lead, contacted: contacted, qualified: marketing_qualified_lead, won: converted}
user_data:
  lead_id: fb_lead_id
  em: email
`

func compileYAML(t testing.TB, src string, opts Options) *Mapper {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode mapping: %v", err)
	}
	if opts.DatasetID == "" {
		opts.DatasetID = "123456789012345"
	}
	m, errs := Compile(c, opts)
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errors.Join(errs...))
	}
	return m
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func row(kv ...any) sources.Row {
	r := sources.Row{}
	for i := 0; i+1 < len(kv); i += 2 {
		r[kv[i].(string)] = kv[i+1]
	}
	return r
}

func change(op sources.Op, before, after sources.Row) sources.Change {
	return sources.Change{Table: "public.leads", Op: op, CommitTime: t0, Commit: "0/16B3748", Ordinal: 0, Before: before, After: after}
}

func TestTransitions(t *testing.T) {
	lead := func(status any) sources.Row {
		return row("id", int64(7), "status", status, "email", " Jane@Example.com", "fb_lead_id", "1234567890123456", "deleted", false)
	}
	cases := []struct {
		name    string
		extra   string // appended under stage:
		ch      sources.Change
		events  []string
		skip    string
		skipPre bool // skip is a prefix
	}{
		{name: "insert mapped", ch: change(sources.OpInsert, nil, lead("new")), events: []string{"initial_lead"}},
		{name: "insert unmapped", ch: change(sources.OpInsert, nil, lead("junk")), skip: SkipUnmappedStage, skipPre: true},
		{name: "insert null stage", ch: change(sources.OpInsert, nil, lead(nil)), skip: SkipNullStage},
		{name: "insert unknown stage", ch: change(sources.OpInsert, nil, lead(sources.Unknown{})), skip: SkipUnknownStage},
		{name: "update stage changed", ch: change(sources.OpUpdate, lead("new"), lead("qualified")), events: []string{"marketing_qualified_lead"}},
		{name: "update stage unchanged", ch: change(sources.OpUpdate, lead("new"), lead("new")), skip: SkipStageUnchanged},
		{name: "update without before image", ch: change(sources.OpUpdate, nil, lead("won")), skip: SkipNoBefore},
		{name: "update before lacks stage", ch: change(sources.OpUpdate, row("id", int64(7)), lead("won")), skip: SkipNoBefore},
		{name: "update before stage unknown", ch: change(sources.OpUpdate, lead(sources.Unknown{}), lead("won")), skip: SkipNoBefore},
		{name: "update from unlisted", ch: change(sources.OpUpdate, lead("junk"), lead("won")), events: []string{"converted"}},
		{name: "update from null", ch: change(sources.OpUpdate, lead(nil), lead("contacted")), events: []string{"contacted"}},
		{name: "update to unlisted", ch: change(sources.OpUpdate, lead("new"), lead("junk")), skip: SkipUnmappedStage, skipPre: true},
		{name: "backward move emits by default", ch: change(sources.OpUpdate, lead("won"), lead("new")), events: []string{"initial_lead"}},
		{name: "backward move skipped when forward", extra: "  transitions: forward\n", ch: change(sources.OpUpdate, lead("won"), lead("new")), skip: SkipBackward},
		{name: "forward move when forward", extra: "  transitions: forward\n", ch: change(sources.OpUpdate, lead("new"), lead("contacted")), events: []string{"contacted"}},
		{name: "fill skipped on update", extra: "  fill_skipped: true\n", ch: change(sources.OpUpdate, lead("new"), lead("won")),
			events: []string{"contacted", "marketing_qualified_lead", "converted"}},
		{name: "fill skipped on insert", extra: "  fill_skipped: true\n", ch: change(sources.OpInsert, nil, lead("qualified")),
			events: []string{"initial_lead", "contacted", "marketing_qualified_lead"}},
		{name: "fill skipped backward emits one", extra: "  fill_skipped: true\n", ch: change(sources.OpUpdate, lead("won"), lead("contacted")), events: []string{"contacted"}},
		{name: "delete never emits", ch: change(sources.OpDelete, lead("won"), nil), skip: SkipDelete},
		{name: "filtered", ch: change(sources.OpInsert, nil, row("id", int64(7), "status", "new", "deleted", true)), skip: SkipFiltered, skipPre: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(baseMapping, "user_data:", strings.TrimSuffix("  "+strings.TrimSpace(tc.extra), "  ")+"\nuser_data:", 1)
			if tc.extra == "" {
				src = baseMapping
			} else {
				src = strings.Replace(baseMapping, "\nuser_data:", "\n"+strings.TrimRight(tc.extra, "\n")+"\nuser_data:", 1)
			}
			m := compileYAML(t, src, Options{})
			outs, err := m.Map(context.Background(), tc.ch, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.skip != "" {
				if len(outs) != 1 || outs[0].Event != nil {
					t.Fatalf("want one skip, got %+v", outs)
				}
				got := outs[0].Skip
				if (tc.skipPre && !strings.HasPrefix(got, tc.skip)) || (!tc.skipPre && got != tc.skip) {
					t.Fatalf("skip = %q, want %q", got, tc.skip)
				}
				return
			}
			var names []string
			ids := map[string]bool{}
			for _, o := range outs {
				if o.Event == nil {
					t.Fatalf("unexpected skip %q", o.Skip)
				}
				names = append(names, o.Event.EventName)
				ids[o.Event.EventID] = true
			}
			if strings.Join(names, ",") != strings.Join(tc.events, ",") {
				t.Fatalf("events = %v, want %v", names, tc.events)
			}
			if len(ids) != len(outs) {
				t.Fatalf("filled-in events must have distinct event_ids: %v", ids)
			}
		})
	}
}

func TestEventShape(t *testing.T) {
	m := compileYAML(t, baseMapping, Options{})
	ch := change(sources.OpUpdate,
		row("id", int64(7), "status", "new", "deleted", false),
		row("id", int64(7), "status", "qualified", "email", " Jane@Example.com", "fb_lead_id", "12345678901234567", "deleted", false))
	outs, err := m.Map(context.Background(), ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := outs[0].Event
	got, _ := json.Marshal(ev)
	want := `{"event_name":"marketing_qualified_lead","event_time":` + strconv.FormatInt(t0.Unix(), 10) + `,"action_source":"system_generated","event_id":"` + ev.EventID +
		`","user_data":{"lead_id":12345678901234567,"em":["` + sha("jane@example.com") + `"]},"custom_data":{"event_source":"crm","lead_event_source":"Acme CRM"}}`
	if string(got) != want {
		t.Fatalf("event JSON\n got %s\nwant %s", got, want)
	}
	if len(ev.EventID) != 32 {
		t.Fatalf("event_id %q: want 32 hex characters", ev.EventID)
	}
}

func TestEventIDs(t *testing.T) {
	m := compileYAML(t, baseMapping, Options{})
	lead := func(s string) sources.Row { return row("id", int64(7), "status", s, "fb_lead_id", "1234567890123456") }
	id := func(before, after string, commit string, ord int) string {
		ch := change(sources.OpUpdate, lead(before), lead(after))
		ch.Commit, ch.Ordinal = commit, ord
		outs, err := m.Map(context.Background(), ch, nil)
		if err != nil || outs[0].Event == nil {
			t.Fatalf("map: %v %+v", err, outs)
		}
		return outs[0].Event.EventID
	}
	first := id("new", "qualified", "0/10", 0)
	if again := id("new", "qualified", "0/10", 0); again != first {
		t.Fatalf("replay gave a different event_id: %s vs %s", again, first)
	}
	// new -> qualified -> new -> qualified: two distinct qualified events.
	if second := id("new", "qualified", "0/30", 0); second == first {
		t.Fatal("a second move to the same stage reused the event_id")
	}
	if other := id("new", "qualified", "0/10", 1); other == first {
		t.Fatal("two rows of one transaction share an event_id")
	}
	m2 := compileYAML(t, baseMapping, Options{DatasetID: "999999999999999"})
	ch := change(sources.OpUpdate, lead("new"), lead("qualified"))
	ch.Commit = "0/10"
	outs, _ := m2.Map(context.Background(), ch, nil)
	if outs[0].Event.EventID == first {
		t.Fatal("event_id must differ between datasets")
	}
}

func TestUserDataSources(t *testing.T) {
	src := `
name: leads
table: public.leads
lead_event_source: Acme CRM
stage: {column: stage_id, events: {1: initial_lead, 2: converted}}
user_data:
  lead_id: fb_lead_id
  em: [email, {json: profile, path: "contact.emails[*]"}, {lookup: contact, column: email}]
  ph: {json: profile, path: contact.phone}
  fn: {json: profile, path: name.first}
  country: {literal: US}
  external_id: id
  fbc: click
lookups:
  contact:
    query: SELECT email FROM contacts WHERE lead_id = $1
    args: [id]
custom_data:
  value: amount
  currency: {literal: EUR}
`
	q := &fakeQuerier{rows: []sources.Row{{"email": "Other@Example.org"}, {"email": "jane@example.com"}}}
	m := compileYAML(t, src, Options{})
	after := row("id", int64(7), "stage_id", int64(2), "email", "jane@example.com", "fb_lead_id", json.Number("123456789012345"),
		"profile", json.RawMessage(`{"contact":{"emails":["J@x.io","bad address"],"phone":"+1 (555) 123-4567"},"name":{"first":"Valéry"}}`),
		"amount", "12.50", "click", "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890")
	outs, err := m.Map(context.Background(), change(sources.OpInsert, nil, after), q)
	if err != nil {
		t.Fatal(err)
	}
	ev := outs[0].Event
	if ev == nil || ev.EventName != "converted" {
		t.Fatalf("integer stage key did not match: %+v", outs)
	}
	u := ev.UserData
	if u.LeadID != 123456789012345 {
		t.Errorf("lead_id = %d", u.LeadID)
	}
	wantEm := []string{sha("jane@example.com"), sha("j@x.io"), sha("other@example.org")}
	if strings.Join(u.Em, ",") != strings.Join(wantEm, ",") {
		t.Errorf("em = %v, want %v (deduplicated, column first)", u.Em, wantEm)
	}
	if len(u.Ph) != 1 || u.Ph[0] != sha("15551234567") {
		t.Errorf("ph = %v", u.Ph)
	}
	if len(u.Fn) != 1 || u.Fn[0] != sha("valéry") {
		t.Errorf("fn = %v", u.Fn)
	}
	if len(u.Country) != 1 || u.Country[0] != sha("us") {
		t.Errorf("country = %v", u.Country)
	}
	if len(u.ExternalID) != 1 || u.ExternalID[0] != sha("7") {
		t.Errorf("external_id = %v", u.ExternalID)
	}
	if u.Fbc != "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890" {
		t.Errorf("fbc = %q (must pass unchanged, case kept)", u.Fbc)
	}
	if len(outs[0].Dropped) != 1 || outs[0].Dropped[0].Key != "em" {
		t.Errorf("dropped = %+v, want the malformed email", outs[0].Dropped)
	}
	for _, d := range outs[0].Dropped {
		if strings.Contains(d.Reason, "bad address") {
			t.Errorf("drop reason leaks the value: %q", d.Reason)
		}
	}
	if ev.CustomData["value"] != "12.50" || ev.CustomData["currency"] != "EUR" || ev.CustomData["event_source"] != "crm" {
		t.Errorf("custom_data = %v", ev.CustomData)
	}
	if q.calls != 1 || q.args[0] != int64(7) {
		t.Errorf("lookup calls = %d args %v", q.calls, q.args)
	}
}

func TestLeadID(t *testing.T) {
	m := compileYAML(t, baseMapping, Options{})
	cases := []struct {
		in     any
		want   int64
		reject string
	}{
		{"1234567890123456", 1234567890123456, ""},
		{int64(123456789012345), 123456789012345, ""},
		{json.Number("12345678901234567"), 12345678901234567, ""},
		{"12345", 0, RejectInvalidLeadID},
		{"l:1234567890123456", 0, RejectInvalidLeadID},
		{nil, 0, ""},
	}
	for _, tc := range cases {
		after := row("id", int64(1), "status", "new", "fb_lead_id", tc.in, "email", "a@b.co")
		outs, err := m.Map(context.Background(), change(sources.OpInsert, nil, after), nil)
		if err != nil {
			t.Fatal(err)
		}
		ev := outs[0].Event
		if ev.UserData.LeadID != tc.want || ev.Reject != tc.reject {
			t.Errorf("lead_id %v: got %d reject %q, want %d %q", tc.in, ev.UserData.LeadID, ev.Reject, tc.want, tc.reject)
		}
	}
}

func TestEventTime(t *testing.T) {
	src := baseMapping + `
event_time: {column: changed_at, timezone: Europe/Berlin}
lead_created_time: {column: created_at}
`
	m := compileYAML(t, src, Options{})
	cases := []struct {
		name    string
		changed any
		want    int64
	}{
		{"zone-less string in Berlin", "2026-11-20 11:00:00", t0.Unix()},
		{"string with offset", "2026-11-20T10:00:00Z", t0.Unix()},
		{"wall clock time.Time reinterpreted", time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC), t0.Unix()},
		{"unix seconds", int64(t0.Unix()), t0.Unix()},
		{"NULL falls back to commit time", nil, t0.Unix()},
		{"garbage falls back to commit time", "soon", t0.Unix()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := row("id", int64(1), "status", "new", "fb_lead_id", "1234567890123456", "changed_at", tc.changed, "created_at", "2026-11-19T08:00:00Z")
			ch := change(sources.OpInsert, nil, after)
			ch.CommitTime = t0
			outs, err := m.Map(context.Background(), ch, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := outs[0].Event.EventTime; got != tc.want {
				t.Fatalf("event_time = %d, want %d", got, tc.want)
			}
			if got := outs[0].Event.LeadCreated; got != time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC).Unix() {
				t.Fatalf("lead created = %d", got)
			}
		})
	}
}

type fakeQuerier struct {
	rows  []sources.Row
	err   error
	calls int
	args  []any
}

func (f *fakeQuerier) Query(_ context.Context, _ string, maxRows int, args ...any) ([]sources.Row, error) {
	f.calls++
	f.args = args
	if f.err != nil {
		return nil, f.err
	}
	if len(f.rows) > maxRows {
		return f.rows[:maxRows], nil
	}
	return f.rows, nil
}

func TestLookupCache(t *testing.T) {
	src := baseMapping + `
lookups:
  contact: {query: "SELECT email FROM contacts WHERE lead_id = ?", args: [id], cache_size: 2, cache_ttl: 1m}
`
	src = strings.Replace(src, "  em: email", "  em: {lookup: contact, column: email}", 1)
	now := t0
	m := compileYAML(t, src, Options{Now: func() time.Time { return now }})
	q := &fakeQuerier{rows: []sources.Row{{"email": "a@b.co"}}}
	mapID := func(id int64) {
		t.Helper()
		after := row("id", id, "status", "new", "fb_lead_id", "1234567890123456")
		if _, err := m.Map(context.Background(), change(sources.OpInsert, nil, after), q); err != nil {
			t.Fatal(err)
		}
	}
	mapID(1)
	mapID(1)
	if q.calls != 1 {
		t.Fatalf("cached lookup ran %d times, want 1", q.calls)
	}
	mapID(2)
	mapID(3) // evicts 1 (size 2)
	mapID(1)
	if q.calls != 4 {
		t.Fatalf("after eviction: %d calls, want 4", q.calls)
	}
	now = now.Add(2 * time.Minute)
	mapID(1)
	if q.calls != 5 {
		t.Fatalf("after TTL: %d calls, want 5", q.calls)
	}
	q.err = errors.New("connection refused")
	after := row("id", int64(9), "status", "new")
	if _, err := m.Map(context.Background(), change(sources.OpInsert, nil, after), q); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("lookup error must reach the caller (to retry), got %v", err)
	}
	// A skipped change never runs a lookup.
	calls := q.calls
	skipped := row("id", int64(9), "status", "junk")
	if _, err := m.Map(context.Background(), change(sources.OpInsert, nil, skipped), q); err != nil {
		t.Fatal(err)
	}
	if q.calls != calls {
		t.Fatal("a skipped change ran a lookup")
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"missing basics", `stage: {}`, []string{"name: required", "table: must be schema.table", "lead_event_source: required", "stage.column: required", "stage.events: required", "user_data: required"}},
		{"bad stage events", `
name: x
table: a.b
lead_event_source: X
stage: {column: s, events: [a, b]}
user_data: {em: email}`, []string{"stage.events: must be a mapping"}},
		{"unknown user key and bad source", `
name: x
table: a.b
lead_event_source: X
stage: {column: s, events: {a: b}}
user_data:
  email: email
  ph: {column: p, path: x}
  fn: {lookup: nope, column: c}
  ln: {json: p}
  zp: {colum: z}`, []string{"user_data.email: unknown Meta customer-information key", "user_data.ph: path belongs with json",
			"user_data.fn.lookup: no lookup named \"nope\"", "user_data.ln: json needs path", "user_data.zp.colum: unknown key"}},
		{"filters, times, lookups", `
name: x
table: a.b
lead_event_source: X
stage: {column: s, events: {a: b}, transitions: sideways}
filter: [{column: d}, {equals: 1, in: [1]}]
event_time: {timezone: Mars/Base, unit: ns}
lookups:
  c: {query: "SELECT 1 WHERE a = $1 AND b = $2", args: [x]}
user_data: {em: email}
custom_data: {event_source: x}`, []string{"stage.transitions: must be any or forward", "filter[0]: needs exactly one of", "filter[1].column: required", "filter[1]: needs exactly one of",
			"event_time.column: required", "event_time.timezone: unknown time zone", "event_time.unit: must be s or ms",
			"lookups.c.args: the query has 2 placeholder(s) but 1 arg(s)", "custom_data.event_source: is set by leadtail"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			if err := yaml.Unmarshal([]byte(tc.src), &c); err != nil {
				t.Fatal(err)
			}
			_, errs := Compile(c, Options{})
			joined := errors.Join(errs...).Error()
			for _, w := range tc.want {
				if !strings.Contains(joined, w) {
					t.Errorf("missing %q in:\n%s", w, joined)
				}
			}
			if len(errs) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(errs), len(tc.want), joined)
			}
		})
	}
}

func TestSetRouting(t *testing.T) {
	a := compileYAML(t, baseMapping, Options{})
	b := compileYAML(t, strings.Replace(baseMapping, "name: leads", "name: leads2", 1), Options{})
	s := NewSet(a, b)
	ch := change(sources.OpInsert, nil, row("id", int64(1), "status", "new", "fb_lead_id", "1234567890123456"))
	outs, err := s.Map(context.Background(), ch, nil)
	if err != nil || len(outs) != 2 || outs[0].Mapping != "leads" || outs[1].Mapping != "leads2" {
		t.Fatalf("two mappings on one table: %+v %v", outs, err)
	}
	ch.Table = "public.other"
	outs, _ = s.Map(context.Background(), ch, nil)
	if len(outs) != 1 || outs[0].Skip != SkipNoMapping {
		t.Fatalf("unmapped table: %+v", outs)
	}
	if outs, _ := s.Map(context.Background(), sources.Change{Op: sources.OpNone, Pos: "0/1"}, nil); outs != nil {
		t.Fatalf("position-only change mapped: %+v", outs)
	}
	cols := s.Columns()["public.leads"]
	if strings.Join(cols, ",") != "id,status,deleted,fb_lead_id,email" {
		t.Fatalf("columns = %v", cols)
	}
}
