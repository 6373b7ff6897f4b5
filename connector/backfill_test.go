package connector

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/mapping"
)

func TestParseWindow(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "72h", want: 72 * time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: "3d", want: 72 * time.Hour},
		{in: "2d12h", want: 60 * time.Hour},
		{in: " 1d ", want: 24 * time.Hour},
		{in: "", bad: true},
		{in: "d", bad: true},
		{in: "3 days", bad: true},
		{in: "-1d", bad: true},
		{in: "xd1h", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseWindow(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseWindow(%q) = %s, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseWindow(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestCheckBackfill(t *testing.T) {
	cfg, err := LoadWith("../config.example.yaml", testEnv(map[string]string{"META_ACCESS_TOKEN": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := MaxBackfillWindow(cfg); got != 7*24*time.Hour-time.Hour {
		t.Fatalf("max window %s, want 7 days minus the 1h default margin", got)
	}
	cases := []struct {
		name string
		opts BackfillOptions
		want []string // substrings of the error; none: no error
	}{
		{"72h", BackfillOptions{Since: 72 * time.Hour}, nil},
		{"exactly the maximum", BackfillOptions{Since: 6*24*time.Hour + 23*time.Hour}, nil},
		{"7 days", BackfillOptions{Since: 7 * 24 * time.Hour}, []string{"--since 7d is too long", "7 days", "expiry_margin (1h)", "longest window is 6d23h"}},
		{"missing", BackfillOptions{}, []string{"--since is required", "at most 6d23h"}},
		{"unknown mapping", BackfillOptions{Since: time.Hour, Mapping: "nope"}, []string{`no mapping named "nope" (have: leads)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBackfill(cfg, tc.opts)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	// A mapping without event_time cannot be backfilled, and says why.
	noTime := *cfg
	noTime.Mappings = append(noTime.Mappings[:0:0], cfg.Mappings...)
	noTime.Mappings[0].EventTime = nil
	m, errs := mapping.Compile(noTime.Mappings[0], mapping.Options{DatasetID: cfg.Meta.DatasetID})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	noTime.Set = mapping.NewSet(m)
	err = CheckBackfill(&noTime, BackfillOptions{Since: time.Hour})
	if err == nil || !strings.Contains(err.Error(), `mapping "leads" cannot be backfilled: it has no event_time.column`) ||
		!strings.Contains(err.Error(), "not when it was reached") {
		t.Fatalf("no event_time: %v", err)
	}
}

func TestBackfillDialect(t *testing.T) {
	pg, my := sqlDialect{}, sqlDialect{mysql: true}
	cases := []struct{ got, want string }{
		{pg.table("public.leads"), `"public"."leads"`},
		{pg.ident(`we"ird`), `"we""ird"`},
		{pg.param(3), "$3"},
		{my.table("crm.leads"), "`crm`.`leads`"},
		{my.ident("we`ird"), "`we``ird`"},
		{my.param(3), "?"},
		{humanDuration(167 * time.Hour), "6d23h"},
		{humanDuration(time.Hour), "1h"},
		{humanDuration(90 * time.Minute), "1h30m"},
		{humanDuration(72 * time.Hour), "3d"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func TestBackfillProgress(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	c := &BackfillCounts{Total: 200, Skipped: map[string]int64{}}
	var plain bytes.Buffer
	p := newProgress(&plain, false, "leads", false, clock)
	p.update(c)
	c.Rows, c.Accepted = 100, 90
	p.update(c) // within progressEvery: no line
	now = now.Add(progressEvery)
	p.update(c)
	c.Rows, c.Accepted = 200, 180
	p.done(c)
	want := "backfill leads: 0/200 (0%) rows, 0 event(s) sent, 0 dead-lettered, 0 skipped\n" +
		"backfill leads: 100/200 (50%) rows, 90 event(s) sent, 0 dead-lettered, 0 skipped\n" +
		"backfill leads: 200/200 (100%) rows, 180 event(s) sent, 0 dead-lettered, 0 skipped, done\n"
	if plain.String() != want {
		t.Errorf("plain progress:\n%s\nwant:\n%s", plain.String(), want)
	}

	var term bytes.Buffer
	p = newProgress(&term, true, "leads", true, clock)
	c.Rows, c.Accepted = 100, 90
	p.update(c)
	p.done(c)
	out := term.String()
	if !strings.HasPrefix(out, "\r\x1b[Kleads [===============               ] 100/200 (50%) rows, 90 event(s) would be sent") || !strings.HasSuffix(out, "\n") ||
		strings.Count(out, "\n") != 1 {
		t.Errorf("terminal progress: %q", out)
	}
}
