package connector

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/mapping"
	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sink/metatest"
	"github.com/leadtail/leadtail/sources"
)

// scrape fetches /metrics from h and returns every sample as
// `name{labels}` -> value, plus the raw text.
func scrape(t *testing.T, h http.Handler) (map[string]float64, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	return parseSamples(t, rec.Body.String()), rec.Body.String()
}

func parseSamples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsThroughPipeline runs the pipeline against the real sink and
// the fake Graph API and checks the counters it feeds.
func TestMetricsThroughPipeline(t *testing.T) {
	meta := metatest.Start(t, metatest.Options{})
	dir := t.TempDir()
	dlPath := filepath.Join(dir, DeadLetterFile)
	dlq, err := sink.OpenDeadLetters(dlPath)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(BuildInfo{Version: "v9.9.9", Commit: "abc123"}, nil)
	cfg := sink.DefaultConfig()
	cfg.DatasetID, cfg.AccessToken, cfg.Endpoint = metatest.DefaultDatasetID, metatest.DefaultAccessToken, meta.URL()
	d := sink.DefaultDeliveryConfig()
	d.BatchSize, d.BatchWait, d.MaxInFlight = 1, 10*time.Millisecond, 1
	d.RetryMin, d.RetryMax = time.Millisecond, 10*time.Millisecond
	client, err := sink.New(cfg, d, sink.Options{DeadLetters: dlq, Observer: m.SinkObserver()})
	if err != nil {
		t.Fatal(err)
	}
	m.WatchSink(client.State)
	m.WatchDeadLetters(dlPath)

	// In order, one request each: lead 1 is refused by Meta (100), lead 4
	// meets a transient error first; lead 3's lead_id is invalid and never
	// sent; lead 2's stage is not mapped.
	meta.Inject(metatest.Fault{Kind: metatest.FaultError, Code: 100, Subcode: 2804019})
	meta.Inject(metatest.Fault{Kind: metatest.FaultTransient})
	badLead := leadChange(3, "new", "p3")
	badLead.After["fb_lead_id"] = "12"
	j := newJournal()
	src := &fakeSource{j: j, changes: []sources.Change{
		leadChange(1, "new", "p1"), leadChange(2, "secret-stage-value", "p2"), badLead,
		leadChange(4, "new", "p4"), {Op: sources.OpNone, Pos: "p5"},
	}}
	p := &Pipeline{Source: src, Sink: client, Store: &fakeStore{j: j}, Mappings: testSet(t), Delivery: d, Metrics: m}
	cancel, wait := runPipeline(t, p)
	j.waitFor(t, "ack p5")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}

	got, text := scrape(t, m.Handler())
	refused := "rejected by Meta: Graph error 100/2804019"
	want := map[string]float64{
		`leadtail_build_info{commit="abc123",go_version="` + runtime.Version() + `",version="v9.9.9"}`: 1,
		`leadtail_changes_total`: 4,
		`leadtail_events_sent_total{event_name="initial_lead",mapping="leads"}`:                                   1,
		`leadtail_events_dead_lettered_total{event_name="initial_lead",mapping="leads",reason="` + refused + `"}`: 1,
		`leadtail_events_dead_lettered_total{event_name="initial_lead",mapping="leads",reason="invalid lead_id"}`: 1,
		`leadtail_changes_skipped_total{mapping="leads",reason="` + mapping.SkipUnmappedStage + `"}`:              1,
		`leadtail_meta_requests_total{class="bad_event",code="100",subcode="2804019"}`:                            1,
		`leadtail_meta_requests_total{class="transient",code="2",subcode="0"}`:                                    1,
		`leadtail_meta_requests_total{class="ok",code="0",subcode="0"}`:                                           1,
		`leadtail_meta_retries_total{reason="transient"}`:                                                         1,
		`leadtail_batch_size_events_count`:                                                                        3,
		`leadtail_commit_to_accepted_seconds_count`:                                                               1,
		`leadtail_meta_request_duration_seconds_count`:                                                            3,
		`leadtail_dead_letters`:            2,
		`leadtail_meta_halted`:             0,
		`leadtail_meta_throttled`:          0,
		`leadtail_replication_lag_seconds`: 0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for _, k := range []string{"leadtail_source_last_commit_timestamp_seconds", "leadtail_checkpoint_timestamp_seconds"} {
		if got[k] < float64(time.Now().Add(-time.Minute).Unix()) {
			t.Errorf("%s = %v, want a recent Unix time", k, got[k])
		}
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	// Label values never carry row data or secrets.
	for _, s := range []string{"secret-stage-value", "1234567890123456", metatest.DefaultAccessToken} {
		if strings.Contains(text, s) {
			t.Errorf("/metrics contains %q", s)
		}
	}
}

func TestLagTracker(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		seen      uint64 // 0: a delivered step
		commit    time.Time
		delivered uint64
	}
	cases := []struct {
		name  string
		steps []step
		want  time.Time
	}{
		{"nothing seen", nil, time.Time{}},
		{"one pending", []step{{seen: 1, commit: at(0)}}, at(0)},
		{"all delivered", []step{{seen: 1, commit: at(0)}, {seen: 2, commit: at(1)}, {delivered: 2}}, time.Time{}},
		{"oldest undelivered", []step{{seen: 1, commit: at(0)}, {seen: 2, commit: at(1)}, {seen: 3, commit: at(2)}, {delivered: 1}}, at(1)},
		{"same commit time coalesced", []step{{seen: 1, commit: at(5)}, {seen: 2, commit: at(5)}, {delivered: 1}}, at(5)},
		{"older clock keeps the older age", []step{{seen: 1, commit: at(5)}, {seen: 2, commit: at(3)}, {delivered: 1}}, at(5)},
		{"delivered out of order is ignored", []step{{seen: 1, commit: at(0)}, {seen: 2, commit: at(1)}, {delivered: 2}, {delivered: 1}}, time.Time{}},
		{"markers without commit time", []step{{seen: 1, commit: at(0)}, {seen: 2}, {delivered: 2}}, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var l lagTracker
			for _, s := range tc.steps {
				switch {
				case s.seen != 0 && !s.commit.IsZero():
					l.seen(s.seen, s.commit)
				case s.delivered != 0:
					l.delivered(s.delivered)
				}
			}
			if got := l.oldest(); !got.Equal(tc.want) {
				t.Fatalf("oldest = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSkipLabel(t *testing.T) {
	cases := []struct{ reason, want string }{
		{mapping.SkipStageUnchanged, mapping.SkipStageUnchanged},
		{mapping.SkipFiltered + ": deleted", mapping.SkipFiltered},
		{mapping.SkipUnmappedStage + ` "jane@example.com"`, mapping.SkipUnmappedStage},
		{mapping.SkipNoBefore, mapping.SkipNoBefore},
		{"something new", "other"},
	}
	for _, tc := range cases {
		if got := skipLabel(tc.reason); got != tc.want {
			t.Errorf("skipLabel(%q) = %q, want %q", tc.reason, got, tc.want)
		}
	}
}

// statsSource is a Source that streams and reports stats.
type statsSource struct {
	fakeSource
	mu    sync.Mutex
	up    bool
	stats sources.Stats
	err   error
}

func (s *statsSource) Streaming() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up, "down"
}

func (s *statsSource) Stats(context.Context) (sources.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats, s.err
}

func TestMetricsScrapedGauges(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		up      bool
		stats   sources.Stats
		err     error
		state   sink.State
		want    map[string]float64
		missing []string
	}{
		{
			name:  "postgres streaming",
			up:    true,
			stats: sources.Stats{LagBytes: 1234, RetainedBytes: 5678, FilesBehind: -1, TransactionsBehind: -1, LastReceived: now.Add(-3 * time.Second)},
			want: map[string]float64{"leadtail_source_up": 1, "leadtail_replication_lag_bytes": 1234,
				"leadtail_replication_retained_bytes": 5678, "leadtail_source_heartbeat_age_seconds": 3,
				"leadtail_meta_halted": 0, "leadtail_meta_throttled": 0},
			missing: []string{"leadtail_replication_binlog_files_behind", "leadtail_replication_lag_transactions"},
		},
		{
			name:    "mysql file positions, halted",
			up:      true,
			stats:   sources.Stats{LagBytes: 10, RetainedBytes: -1, FilesBehind: 2, TransactionsBehind: -1},
			state:   sink.State{Halted: true, Reason: "token"},
			want:    map[string]float64{"leadtail_replication_binlog_files_behind": 2, "leadtail_meta_halted": 1},
			missing: []string{"leadtail_replication_retained_bytes", "leadtail_source_heartbeat_age_seconds"},
		},
		{
			name:    "database down",
			stats:   sources.Stats{LagBytes: -1, RetainedBytes: -1, FilesBehind: -1, TransactionsBehind: -1, LastReceived: now.Add(-time.Minute)},
			err:     errors.New("connection refused"),
			state:   sink.State{Throttled: true},
			want:    map[string]float64{"leadtail_source_up": 0, "leadtail_source_heartbeat_age_seconds": 60, "leadtail_meta_throttled": 1},
			missing: []string{"leadtail_replication_lag_bytes"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics(BuildInfo{}, hclog.NewNullLogger())
			m.now = func() time.Time { return now }
			m.WatchSource(&statsSource{up: tc.up, stats: tc.stats, err: tc.err})
			m.WatchSink(func() sink.State { return tc.state })
			got, _ := scrape(t, m.Handler())
			for k, v := range tc.want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
				}
			}
			for _, k := range tc.missing {
				if _, ok := got[k]; ok {
					t.Errorf("%s present, want absent (unknown)", k)
				}
			}
		})
	}
}

func TestMetricsEndpoint(t *testing.T) {
	m := NewMetrics(BuildInfo{Version: "v1"}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveHTTP(ctx, ln, func() (bool, []string) { return true, nil }, m.Handler(), hclog.NewNullLogger())
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveHTTP: %v", err)
		}
	})
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `leadtail_build_info{commit="unknown"`) {
		t.Fatalf("/metrics = %d:\n%s", resp.StatusCode, body)
	}
}

func TestMetricNames(t *testing.T) {
	names := MetricNames()
	if len(names) < 20 || !slices.IsSorted(names) {
		t.Fatalf("MetricNames() = %v", names)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "leadtail_") {
			t.Errorf("%s: not in the leadtail_ namespace", n)
		}
	}
}
