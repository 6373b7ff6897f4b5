package mapping

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources"
)

const timedMapping = baseMapping + `event_time: {column: changed_at}
`

// TestEventIDStageTime: with an event_time column, event_id depends on
// the stage-change time, not on where the change sits in the stream, so
// a table scan (backfill) reproduces the stream's ids.
func TestEventIDStageTime(t *testing.T) {
	m := compileYAML(t, timedMapping, Options{})
	t1 := time.Date(2026, 11, 20, 9, 0, 0, 123456000, time.UTC)
	t2 := t1.Add(time.Hour)
	lead := func(status string, changed any) sources.Row {
		return row("id", int64(7), "status", status, "fb_lead_id", "1234567890123456", "changed_at", changed)
	}
	id := func(t *testing.T, ch sources.Change) string {
		t.Helper()
		outs, err := m.Map(context.Background(), ch, nil)
		if err != nil || len(outs) != 1 || outs[0].Event == nil {
			t.Fatalf("map: %v %+v", err, outs)
		}
		return outs[0].Event.EventID
	}
	at := func(ch sources.Change, commit string, ord int) sources.Change {
		ch.Commit, ch.Ordinal = commit, ord
		return ch
	}
	upd := func(before, after sources.Row) sources.Change { return change(sources.OpUpdate, before, after) }
	base := id(t, at(upd(lead("new", t0), lead("qualified", t1)), "0/10", 0))
	current, err := m.MapCurrent(context.Background(), lead("qualified", t1), nil, t0)
	if err != nil || len(current) != 1 || current[0].Event == nil {
		t.Fatalf("MapCurrent: %v %+v", err, current)
	}

	cases := []struct {
		name string
		ch   sources.Change
		same bool
	}{
		{"replay at the same position", at(upd(lead("new", t0), lead("qualified", t1)), "0/10", 0), true},
		{"same stage change seen at another position (backfill, another slot)", at(upd(lead("new", t0), lead("qualified", t1)), "0/99", 3), true},
		{"same stage change as a string in another zone notation", at(upd(lead("new", t0), lead("qualified", "2026-11-20T10:00:00.123456+01:00")), "0/99", 0), true},
		{"a later move to the same stage", at(upd(lead("new", t0), lead("qualified", t2)), "0/30", 0), false},
		{"another stage at the same time", at(upd(lead("new", t0), lead("won", t1)), "0/10", 0), false},
		{"a microsecond apart", at(upd(lead("new", t0), lead("qualified", t1.Add(time.Microsecond))), "0/10", 0), false},
		{"the column not set by the stage change: commit-position scheme", at(upd(lead("new", t1), lead("qualified", t1)), "0/10", 0), false},
		{"NULL stage time: commit-position scheme", at(upd(lead("new", t0), lead("qualified", nil)), "0/10", 0), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := id(t, tc.ch); (got == base) != tc.same {
				t.Fatalf("event_id %s vs %s: same = %v, want %v", got, base, got == base, tc.same)
			}
		})
	}
	if current[0].Event.EventID != base {
		t.Errorf("backfill event_id %s differs from the stream's %s", current[0].Event.EventID, base)
	}

	// new -> qualified -> new -> qualified, the CRM setting the column each
	// time: two distinct qualified events, and a backfill after the second
	// move reproduces the second one.
	first := id(t, at(upd(lead("new", t0), lead("qualified", t1)), "0/10", 0))
	back := id(t, at(upd(lead("qualified", t1), lead("new", t1.Add(time.Minute))), "0/20", 0))
	second := id(t, at(upd(lead("new", t1.Add(time.Minute)), lead("qualified", t2)), "0/30", 0))
	if first == second || back == first || back == second {
		t.Fatalf("moves share event_ids: %s %s %s", first, back, second)
	}
	bf, _ := m.MapCurrent(context.Background(), lead("qualified", t2), nil, t0)
	if bf[0].Event.EventID != second {
		t.Fatalf("backfill after the second move: %s, want %s", bf[0].Event.EventID, second)
	}

	// Without an event_time column the commit position still decides.
	plain := compileYAML(t, baseMapping, Options{})
	a, _ := plain.Map(context.Background(), at(upd(lead("new", t0), lead("qualified", t1)), "0/10", 0), nil)
	b, _ := plain.Map(context.Background(), at(upd(lead("new", t0), lead("qualified", t1)), "0/99", 0), nil)
	if a[0].Event.EventID == b[0].Event.EventID {
		t.Fatal("without event_time, two positions must give two ids")
	}
}

func TestMapCurrent(t *testing.T) {
	t1 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	fill := strings.Replace(timedMapping, "\nuser_data:", "\n  fill_skipped: true\nuser_data:", 1)
	cases := []struct {
		name    string
		mapping string
		row     sources.Row
		events  []string
		skip    string
	}{
		{"current stage", timedMapping, row("id", int64(1), "status", "qualified", "fb_lead_id", "1234567890123456", "changed_at", t1), []string{"marketing_qualified_lead"}, ""},
		{"fill_skipped does not apply", fill, row("id", int64(1), "status", "won", "fb_lead_id", "1234567890123456", "changed_at", t1), []string{"converted"}, ""},
		{"no stage time", timedMapping, row("id", int64(1), "status", "won", "fb_lead_id", "1234567890123456", "changed_at", nil), nil, SkipNoStageTime},
		{"unmapped stage", timedMapping, row("id", int64(1), "status", "junk", "changed_at", t1), nil, SkipUnmappedStage + ` "junk"`},
		{"filtered", timedMapping, row("id", int64(1), "status", "won", "deleted", true, "changed_at", t1), nil, SkipFiltered + ": deleted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := compileYAML(t, tc.mapping, Options{})
			outs, err := m.MapCurrent(context.Background(), tc.row, nil, t0)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, o := range outs {
				if o.Event == nil {
					if o.Skip != tc.skip {
						t.Fatalf("skip %q, want %q", o.Skip, tc.skip)
					}
					continue
				}
				names = append(names, o.Event.EventName)
				if o.Event.EventTime != t1.Unix() {
					t.Errorf("event_time %d, want the column's %d", o.Event.EventTime, t1.Unix())
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.events, ",") {
				t.Fatalf("events %v, want %v", names, tc.events)
			}
		})
	}
	m := compileYAML(t, baseMapping, Options{})
	if _, err := m.MapCurrent(context.Background(), row("id", int64(1), "status", "new"), nil, t0); !errors.Is(err, ErrNoEventTime) {
		t.Fatalf("a mapping without event_time: %v", err)
	}
	if m.EventTimeColumn() != "" || compileYAML(t, timedMapping, Options{}).EventTimeColumn() != "changed_at" {
		t.Fatal("EventTimeColumn")
	}
}
