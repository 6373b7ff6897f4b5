package sink_test

// Integration-style tests of the sink against the strict fake Graph API.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sink/metatest"
)

const (
	itToken     = "EAAG-integration-token-XYZ987"
	itAppSecret = "integration-app-secret"
	itDataset   = "987654321098765"
)

// itNow is the clock of both the fake and the client unless a test skews them.
var itNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// exchange is one HTTP round trip as the client saw it.
type exchange struct {
	start, end time.Time
	status     int
}

// recorder is an http.RoundTripper that records every exchange and may run
// a hook after each.
type recorder struct {
	next    http.RoundTripper
	mu      sync.Mutex
	log     []exchange
	changed chan struct{} // closed and replaced after each exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := r.next.RoundTrip(req)
	ex := exchange{start: start, end: time.Now()}
	if resp != nil {
		ex.status = resp.StatusCode
	}
	r.mu.Lock()
	r.log = append(r.log, ex)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return resp, err
}

// waitExchanges blocks until n exchanges are complete.
func (r *recorder) waitExchanges(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		done, ch := len(r.log) >= n, r.changed
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d requests", n)
		}
	}
}

func (r *recorder) exchanges() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// states records OnState calls and lets a test wait for one.
type states struct {
	mu  sync.Mutex
	all []sink.State
	ch  chan sink.State
}

func (s *states) record(st sink.State) {
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
	select {
	case s.ch <- st:
	default:
	}
}

func (s *states) waitFor(t *testing.T, what string, ok func(sink.State) bool) sink.State {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case st := <-s.ch:
			if ok(st) {
				return st
			}
		case <-deadline.C:
			t.Fatalf("timed out waiting for state %s", what)
		}
	}
}

func (s *states) list() []sink.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

type env struct {
	srv    *metatest.Server
	c      *sink.Client
	dl     *sink.DeadLetterFile
	logs   *lockedBuffer
	rec    *recorder
	states *states
}

type setupOpts struct {
	fake    metatest.Options
	cfg     func(*sink.Config)
	d       func(*sink.DeliveryConfig)
	opts    func(*sink.Options)
	maxWait time.Duration // caps throttling pauses; 0 = 100ms
}

// setup starts the fake and a client for it with millisecond backoffs; at
// cleanup it fails the test if the fake saw anything leadtail must not send.
func setup(t *testing.T, so setupOpts) *env {
	t.Helper()
	fo := so.fake
	fo.DatasetID = itDataset
	fo.AccessToken = itToken
	if fo.Now == nil {
		fo.Now = func() time.Time { return itNow }
	}
	srv := metatest.Start(t, fo)
	t.Cleanup(func() {
		if v := srv.Violations(); len(v) > 0 {
			t.Errorf("the fake saw violations:\n%s", strings.Join(v, "\n"))
		}
	})
	dl, err := sink.OpenDeadLetters(filepath.Join(t.TempDir(), "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, dl: dl, logs: &lockedBuffer{}, states: &states{ch: make(chan sink.State, 4096)}}
	e.rec = &recorder{next: srv.Client().Transport, changed: make(chan struct{})}
	cfg := sink.DefaultConfig()
	cfg.DatasetID = itDataset
	cfg.AccessToken = itToken
	cfg.Endpoint = srv.URL()
	if fo.AppSecret != "" {
		cfg.AppSecret = sink.Secret(fo.AppSecret)
	}
	if so.cfg != nil {
		so.cfg(&cfg)
	}
	d := sink.DefaultDeliveryConfig()
	d.RetryMin, d.RetryMax, d.HaltRetry = time.Millisecond, 20*time.Millisecond, 10*time.Millisecond
	d.RequestTimeout = 5 * time.Second
	if so.d != nil {
		so.d(&d)
	}
	opts := sink.Options{
		HTTPClient:  &http.Client{Transport: e.rec},
		Logger:      hclog.New(&hclog.LoggerOptions{Name: "sink", Output: e.logs, Level: hclog.Trace}),
		Now:         func() time.Time { return itNow },
		DeadLetters: dl,
		OnState:     e.states.record,
	}
	if so.opts != nil {
		so.opts(&opts)
	}
	e.c, err = sink.New(cfg, d, opts)
	if err != nil {
		t.Fatal(err)
	}
	maxWait := so.maxWait
	if maxWait == 0 {
		maxWait = 100 * time.Millisecond
	}
	sink.SetMaxPause(e.c, maxWait)
	return e
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// event is a valid CRM event number i, an hour old by itNow.
func event(i int) sink.Event {
	return sink.Event{
		EventName:    "marketing_qualified_lead",
		EventTime:    itNow.Add(-time.Hour).Unix(),
		ActionSource: sink.ActionSystemGenerated,
		EventID:      fmt.Sprintf("it-%05d", i),
		UserData: sink.UserData{
			LeadID: 12345678901230000 + int64(i), // 17 digits, beyond float64
			Em:     []string{hash(fmt.Sprintf("lead%d@example.com", i))},
			Ph:     []string{hash(fmt.Sprintf("4179123%04d", i))},
			Fbc:    "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrSt",
		},
		CustomData: map[string]any{"event_source": "crm", "lead_event_source": "Acme CRM"},
		Mapping:    "leads",
		Table:      "public.leads",
	}
}

func events(n int) []sink.Event {
	evs := make([]sink.Event, n)
	for i := range evs {
		evs[i] = event(i)
	}
	return evs
}

func timeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// deliverAll delivers evs and requires a clean, complete result.
func (e *env) deliverAll(t *testing.T, evs []sink.Event) sink.Result {
	t.Helper()
	res, err := e.c.Deliver(timeout(t, 30*time.Second), evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != len(evs) || res.DeadLettered != 0 {
		t.Fatalf("result = %+v, want %d accepted", res, len(evs))
	}
	e.assertAccepted(t, evs)
	e.assertNoDeadLetters(t)
	return res
}

// assertAccepted checks that the fake holds exactly evs (by event_id), with
// their wire fields intact.
func (e *env) assertAccepted(t *testing.T, evs []sink.Event) {
	t.Helper()
	got := map[string]sink.Event{}
	for _, r := range e.srv.Accepted() {
		if _, dup := got[r.Event.EventID]; dup {
			t.Errorf("event %s accepted twice", r.Event.EventID)
		}
		got[r.Event.EventID] = r.Event
	}
	if len(got) != len(evs) {
		t.Errorf("fake accepted %d events, want %d", len(got), len(evs))
	}
	for _, want := range evs {
		g, ok := got[want.EventID]
		if !ok {
			t.Errorf("event %s not accepted", want.EventID)
			continue
		}
		if g.UserData.LeadID != want.UserData.LeadID || g.EventTime != want.EventTime ||
			g.EventName != want.EventName || !slices.Equal(g.UserData.Em, want.UserData.Em) {
			t.Errorf("event %s arrived as %+v", want.EventID, g)
		}
	}
}

func (e *env) assertNoDeadLetters(t *testing.T) {
	t.Helper()
	if n, err := e.dl.Count(); err != nil || n != 0 {
		t.Errorf("dead letters: %d, %v; want none", n, err)
	}
}

func TestMetaGoldenRequest(t *testing.T) {
	e := setup(t, setupOpts{
		fake: metatest.Options{AppSecret: itAppSecret},
		cfg:  func(c *sink.Config) { c.TestEventCode = "TEST4711" },
	})
	ev := event(7)
	res := e.deliverAll(t, []sink.Event{ev})
	if res.Requests != 1 || res.Warnings != 0 {
		t.Errorf("result = %+v", res)
	}
	acc := e.srv.Accepted()
	want := `{"event_name":"marketing_qualified_lead","event_time":1795172400,"action_source":"system_generated",` +
		`"event_id":"it-00007","user_data":{"lead_id":12345678901230007,"em":["` + hash("lead7@example.com") + `"],` +
		`"ph":["` + hash("41791230007") + `"],"fbc":"fb.1.1554763741205.AbCdEfGhIjKlMnOpQrSt"},` +
		`"custom_data":{"event_source":"crm","lead_event_source":"Acme CRM"}}`
	if string(acc[0].Raw) != want {
		t.Errorf("event on the wire:\n got %s\nwant %s", acc[0].Raw, want)
	}
	if acc[0].TestEventCode != "TEST4711" {
		t.Errorf("test_event_code = %q", acc[0].TestEventCode)
	}
}

// TestMetaWrongAppSecret: a wrong proof is a configuration error: halt.
func TestMetaWrongAppSecret(t *testing.T) {
	e := setup(t, setupOpts{
		fake: metatest.Options{AppSecret: itAppSecret},
		cfg:  func(c *sink.Config) { c.AppSecret = "wrong-secret" },
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := e.c.Deliver(ctx, events(2)); done <- err }()
	st := e.states.waitFor(t, "halted", func(s sink.State) bool { return s.Halted })
	if !strings.Contains(st.Reason, "meta.app_secret") {
		t.Errorf("reason = %q", st.Reason)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	e.assertNoDeadLetters(t)
}

func TestMetaTransientFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault metatest.Fault
		tries int // requests expected
	}{
		{"5xx code 1", metatest.Fault{Kind: metatest.FaultHTTP5xx, Times: 3}, 4},
		{"bad gateway HTML", metatest.Fault{Kind: metatest.FaultBadGateway, Times: 2}, 3},
		{"transient code 2", metatest.Fault{Kind: metatest.FaultTransient, Times: 2}, 3},
		{"dataset not ready 21009", metatest.Fault{Kind: metatest.FaultError, Code: 21009, Times: 2}, 3},
		{"timeout", metatest.Fault{Kind: metatest.FaultTimeout, Times: 2}, 3},
		{"slow answer within the timeout", metatest.Fault{Kind: metatest.FaultSlow, Delay: 150 * time.Millisecond}, 1},
		{"slow answer beyond the timeout", metatest.Fault{Kind: metatest.FaultSlow, Delay: 2 * time.Second}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, setupOpts{d: func(d *sink.DeliveryConfig) { d.RequestTimeout = 500 * time.Millisecond }})
			e.srv.Inject(tt.fault)
			res := e.deliverAll(t, events(20))
			if res.Requests != tt.tries {
				t.Errorf("requests = %d, want %d", res.Requests, tt.tries)
			}
			if s := e.c.State(); s.Halted || s.Throttled {
				t.Errorf("state = %+v", s)
			}
			if tt.tries > 1 && !strings.Contains(e.logs.String(), "Meta unavailable, retrying") {
				t.Error("retry not logged")
			}
		})
	}
}

func TestMetaThrottling(t *testing.T) {
	const capped = 150 * time.Millisecond
	codes := []int{4, 17, 32, 613, 341, 80000, 80004, 80014}
	hints := []struct {
		name    string
		fault   func(metatest.Fault) metatest.Fault
		minWait time.Duration
	}{
		{"no hint", func(f metatest.Fault) metatest.Fault { return f }, time.Millisecond},
		{"retry-after", func(f metatest.Fault) metatest.Fault { f.RetryAfter = time.Second; return f }, capped},
		{"usage header", func(f metatest.Fault) metatest.Fault { f.UsageRegainMinutes = 3; return f }, capped},
	}
	for _, code := range codes {
		for _, h := range hints {
			t.Run(fmt.Sprintf("%d %s", code, h.name), func(t *testing.T) {
				t.Parallel()
				e := setup(t, setupOpts{maxWait: capped})
				e.srv.Inject(h.fault(metatest.Fault{Kind: metatest.FaultThrottle, Code: code}))
				e.deliverAll(t, events(5))
				st := e.states.waitFor(t, "throttled", func(s sink.State) bool { return s.Throttled })
				if st.Until.IsZero() || st.Halted {
					t.Errorf("throttled state = %+v", st)
				}
				ex := e.rec.exchanges()
				if len(ex) != 2 {
					t.Fatalf("%d requests, want 2", len(ex))
				}
				if gap := ex[1].start.Sub(ex[0].end); gap < h.minWait {
					t.Errorf("resent after %v, want ≥ %v", gap, h.minWait)
				}
				if s := e.c.State(); s.Throttled {
					t.Errorf("still throttled after delivery: %+v", s)
				}
			})
		}
	}
}

// TestMetaRetryAfterHonoured: an uncapped Retry-After of one second holds
// every Deliver call, including one that starts during the pause.
func TestMetaRetryAfterHonoured(t *testing.T) {
	e := setup(t, setupOpts{maxWait: time.Hour})
	e.srv.Inject(metatest.Fault{Kind: metatest.FaultThrottle, Code: 80004, RetryAfter: time.Second})
	ctx := timeout(t, 30*time.Second)
	errs := make(chan error, 2)
	go func() { _, err := e.c.Deliver(ctx, events(3)); errs <- err }()
	e.states.waitFor(t, "throttled", func(s sink.State) bool { return s.Throttled })
	more := []sink.Event{event(100), event(101)}
	go func() { _, err := e.c.Deliver(ctx, more); errs <- err }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	e.assertAccepted(t, append(events(3), more...))
	ex := e.rec.exchanges()
	if len(ex) != 3 {
		t.Fatalf("%d requests, want 3", len(ex))
	}
	for _, x := range ex[1:] {
		if gap := x.start.Sub(ex[0].end); gap < time.Second {
			t.Errorf("request sent %v after the throttle, want ≥ 1s", gap)
		}
	}
}

func TestMetaTokenExpired(t *testing.T) {
	e := setup(t, setupOpts{})
	e.srv.ExpireToken()
	ctx := timeout(t, 30*time.Second)
	evs := events(10)
	done := make(chan error, 1)
	var res sink.Result
	go func() {
		var err error
		res, err = e.c.Deliver(ctx, evs)
		done <- err
	}()
	st := e.states.waitFor(t, "halted", func(s sink.State) bool { return s.Halted })
	if !strings.Contains(st.Reason, "meta.access_token") || strings.Contains(st.Reason, itToken) || strings.Contains(st.Reason, "\n") {
		t.Errorf("reason = %q", st.Reason)
	}
	if !e.c.State().Halted {
		t.Error("State() not halted")
	}
	// Keep it halted for a few retries, then fix the token.
	e.rec.waitExchanges(t, 4)
	for _, r := range e.srv.Requests() {
		if r.Code != 190 && r.Status != 0 {
			t.Errorf("request %+v while halted", r)
		}
	}
	e.assertNoDeadLetters(t)
	if len(e.srv.Accepted()) != 0 {
		t.Error("events accepted with an expired token")
	}
	e.srv.RestoreToken()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 10 || res.DeadLettered != 0 {
		t.Errorf("result = %+v", res)
	}
	e.assertAccepted(t, evs)
	e.states.waitFor(t, "resumed", func(s sink.State) bool { return !s.Halted })
	if s := e.c.State(); s.Halted || s.Reason != "" {
		t.Errorf("state after restore = %+v", s)
	}
	if got := strings.Count(e.logs.String(), "delivery halted"); got != 1 {
		t.Errorf("halt logged %d times, want once", got)
	}
}

func TestMetaHaltCodes(t *testing.T) {
	tests := []struct {
		name      string
		code, sub int
		reason    string
	}{
		{"permission 10", 10, 0, "permission"},
		{"permission 200", 200, 0, "permission"},
		{"permission 294", 294, 0, "permission"},
		{"policy 368", 368, 0, "policy"},
		{"dataset 100/33", 100, 33, "meta.dataset_id"},
		{"token 190", 190, 0, "meta.access_token"},
		{"session 102", 102, 0, "meta.access_token"},
		{"capability 3", 3, 0, "capability"},
		{"deprecated version", 2635, 0, "meta.api_version"},
		{"unknown code", 9876, 0, "does not know"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, setupOpts{})
			e.srv.Inject(metatest.Fault{Kind: metatest.FaultError, Code: tt.code, Subcode: tt.sub, Times: 3})
			res := e.deliverAll(t, events(8))
			if res.Requests != 4 {
				t.Errorf("requests = %d, want 4", res.Requests)
			}
			var halted *sink.State
			for _, s := range e.states.list() {
				if s.Halted {
					halted = &s
					break
				}
			}
			if halted == nil {
				t.Fatal("never halted")
			}
			if !strings.Contains(halted.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", halted.Reason, tt.reason)
			}
			if s := e.c.State(); s.Halted {
				t.Errorf("still halted: %+v", s)
			}
		})
	}
}

// TestMetaUnknownDataset: a dataset the token cannot see halts for good;
// cancelling returns ctx's error and dead-letters nothing.
func TestMetaUnknownDataset(t *testing.T) {
	e := setup(t, setupOpts{cfg: func(c *sink.Config) { c.DatasetID = "111111111111111" }})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := e.c.Deliver(ctx, events(3)); done <- err }()
	st := e.states.waitFor(t, "halted", func(s sink.State) bool { return s.Halted })
	if !strings.Contains(st.Reason, "111111111111111") {
		t.Errorf("reason = %q", st.Reason)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Deliver did not return after cancel")
	}
	e.assertNoDeadLetters(t)
}

// TestMetaStale: Meta's clock is 2 hours ahead, so an event our clock finds
// fresh is too old for Meta; bisection finds it.
func TestMetaStale(t *testing.T) {
	e := setup(t, setupOpts{fake: metatest.Options{Now: func() time.Time { return itNow.Add(2 * time.Hour) }}})
	evs := events(40)
	evs[13].EventTime = itNow.Add(-sink.MaxEventAge + 90*time.Minute).Unix() // 7 d 30 min old for Meta
	res, err := e.c.Deliver(timeout(t, 30*time.Second), evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 39 || res.DeadLettered != 1 {
		t.Fatalf("result = %+v", res)
	}
	e.assertAccepted(t, slices.Delete(slices.Clone(evs), 13, 14))
	dls, err := e.dl.Read()
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters = %+v, %v", dls, err)
	}
	d := dls[0]
	if d.Event.EventID != "it-00013" || d.Code != 100 || d.Subcode != metatest.SubcodeEventTooOld || d.FbtraceID == "" ||
		d.Mapping != "leads" || d.Table != "public.leads" {
		t.Errorf("dead letter = %+v", d)
	}
}

// TestMetaStaleByOurClock: two events age past the window while the
// request is under way (the shared clock jumps 2 hours after Prepare); Meta
// refuses the request as too old, our clock agrees, so exactly those two
// are dead-lettered and the rest resent, without bisection.
func TestMetaStaleByOurClock(t *testing.T) {
	var clock atomic.Int64
	clock.Store(itNow.Unix())
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	e := setup(t, setupOpts{
		fake: metatest.Options{Now: now},
		opts: func(o *sink.Options) { o.Now = now },
	})
	e.rec.next = hookTransport{next: e.rec.next, before: func() { clock.Store(itNow.Add(2 * time.Hour).Unix()) }}
	evs := events(20)
	evs[5].EventTime = itNow.Add(-sink.MaxEventAge + 90*time.Minute).Unix()
	evs[6].EventTime = evs[5].EventTime
	res, err := e.c.Deliver(timeout(t, 30*time.Second), evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 18 || res.DeadLettered != 2 || res.Requests != 2 {
		t.Fatalf("result = %+v, want 18 accepted, 2 dead-lettered in 2 requests", res)
	}
	dls, _ := e.dl.Read()
	for _, d := range dls {
		if d.Reason != "expired: event_time older than 7 days" || d.Subcode != metatest.SubcodeEventTooOld || d.FbtraceID == "" {
			t.Errorf("dead letter = %+v", d)
		}
	}
}

// hookTransport runs before ahead of each request.
type hookTransport struct {
	next   http.RoundTripper
	before func()
}

func (h hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h.before()
	return h.next.RoundTrip(r)
}

// TestMetaBisection: bad events that Prepare would have caught are forced
// through the lower-level path; Meta refuses the whole request and the sink
// isolates exactly them.
func TestMetaBisection(t *testing.T) {
	tests := []struct {
		name string
		n    int
		bad  map[int]func(*sink.Event)
		sub  map[int]int
	}{
		{
			name: "one unhashed em in 1000",
			n:    1000,
			bad:  map[int]func(*sink.Event){417: func(e *sink.Event) { e.UserData.Em = []string{"jane@example.com"} }},
			sub:  map[int]int{417: metatest.SubcodeUnhashed},
		},
		{
			name: "two bad in 500",
			n:    500,
			bad: map[int]func(*sink.Event){
				3:   func(e *sink.Event) { e.UserData.LeadID = 4711 },
				321: func(e *sink.Event) { e.UserData.Ph = []string{"+41 79 123 45 67"} },
			},
			sub: map[int]int{3: metatest.SubcodeInvalidLeadID, 321: metatest.SubcodeUnhashed},
		},
		{
			name: "weak identifiers only",
			n:    37,
			bad:  map[int]func(*sink.Event){36: func(e *sink.Event) { e.UserData = sink.UserData{Ct: []string{hash("berlin")}} }},
			sub:  map[int]int{36: metatest.SubcodeNotEnoughUserData},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, setupOpts{d: func(d *sink.DeliveryConfig) { d.BatchSize = 1000 }})
			evs := events(tt.n)
			var good []sink.Event
			for i := range evs {
				if f, ok := tt.bad[i]; ok {
					f(&evs[i])
				} else {
					good = append(good, evs[i])
				}
			}
			res, err := sink.DeliverUnchecked(timeout(t, 60*time.Second), e.c, evs)
			if err != nil {
				t.Fatal(err)
			}
			if res.Accepted != len(good) || res.DeadLettered != len(tt.bad) {
				t.Fatalf("result = %+v", res)
			}
			e.assertAccepted(t, good)
			// Bisection costs at most 2 requests per level per bad event.
			levels := 0
			for n := tt.n; n > 1; n = (n + 1) / 2 {
				levels++
			}
			if max := 1 + 2*levels*len(tt.bad); res.Requests > max {
				t.Errorf("%d requests, want ≤ %d", res.Requests, max)
			}
			dls, err := e.dl.Read()
			if err != nil || len(dls) != len(tt.bad) {
				t.Fatalf("dead letters = %d, %v", len(dls), err)
			}
			for _, d := range dls {
				var idx int
				if _, err := fmt.Sscanf(d.Event.EventID, "it-%05d", &idx); err != nil {
					t.Fatal(err)
				}
				if want, ok := tt.sub[idx]; !ok || d.Code != 100 || d.Subcode != want || d.FbtraceID == "" || d.Message == "" {
					t.Errorf("dead letter = %+v", d)
				}
				if !strings.HasPrefix(d.Reason, "rejected by Meta") {
					t.Errorf("reason = %q", d.Reason)
				}
			}
		})
	}
}

// TestMetaPrepareRefusals: events Prepare refuses never reach the fake.
func TestMetaPrepareRefusals(t *testing.T) {
	e := setup(t, setupOpts{})
	evs := events(6)
	evs[0].UserData.LeadID = 99                                 // invalid lead_id
	evs[1].EventTime = itNow.Add(-8 * 24 * time.Hour).Unix()    // expired
	evs[2].UserData = sink.UserData{Fn: []string{hash("jane")}} // no usable identifier
	evs[3].UserData.Em = []string{"Jane@Example.com"}           // unhashed
	evs[4].LeadCreated = evs[4].EventTime + 60                  // before lead creation
	res, err := e.c.Deliver(timeout(t, 30*time.Second), evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || res.DeadLettered != 5 || res.Requests != 1 {
		t.Fatalf("result = %+v", res)
	}
	e.assertAccepted(t, evs[5:])
	dls, _ := e.dl.Read()
	want := []string{"invalid lead_id", "expired: event_time older than 7 days", "no usable identifier",
		"unhashed contact field", "event before lead creation"}
	for i, d := range dls {
		if d.Reason != want[i] || d.Code != 0 {
			t.Errorf("dead letter %d = %q (code %d), want %q", i, d.Reason, d.Code, want[i])
		}
	}
}

func TestMetaCancelDuringOutage(t *testing.T) {
	tests := []struct {
		name  string
		fault metatest.Fault
	}{
		{"5xx", metatest.Fault{Kind: metatest.FaultHTTP5xx, Times: 1 << 20}},
		{"bad gateway", metatest.Fault{Kind: metatest.FaultBadGateway, Times: 1 << 20}},
		{"hung", metatest.Fault{Kind: metatest.FaultTimeout, Times: 1 << 20}},
		{"throttled", metatest.Fault{Kind: metatest.FaultThrottle, Code: 80000, UsageRegainMinutes: 30, Times: 1 << 20}},
		{"expired token", metatest.Fault{Kind: metatest.FaultError, Code: 190, Subcode: 463, Times: 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, setupOpts{maxWait: time.Hour, d: func(d *sink.DeliveryConfig) {
				d.RequestTimeout = time.Minute
				d.RetryMin, d.RetryMax, d.HaltRetry = 50*time.Millisecond, time.Minute, time.Minute
			}})
			e.srv.Inject(tt.fault)
			evs := events(10)
			evs[0].UserData.LeadID = 5 // would be dead-lettered, but the call does not complete
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := e.c.Deliver(ctx, evs)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("returned %v after the deadline", took)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v", err)
			}
			if res.Accepted != 0 || res.DeadLettered != 0 {
				t.Errorf("result = %+v", res)
			}
			e.assertNoDeadLetters(t)
		})
	}
}

func TestMetaReplay(t *testing.T) {
	e := setup(t, setupOpts{})
	evs := events(5)
	evs[1].UserData.Em = []string{"plain@example.com"} // still invalid
	evs[2].EventTime = itNow.Add(-8 * 24 * time.Hour).Unix()
	var dls []sink.DeadLetter
	for _, ev := range evs {
		dls = append(dls, sink.DeadLetter{Time: itNow, Reason: "rejected by Meta: Graph error 2/0", Code: 2,
			Mapping: ev.Mapping, Table: ev.Table, Event: ev})
	}
	if err := e.dl.Append(dls); err != nil {
		t.Fatal(err)
	}
	sent, left, err := e.c.Replay(timeout(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if sent != 3 || left != 2 {
		t.Errorf("sent %d left %d, want 3 and 2", sent, left)
	}
	e.assertAccepted(t, []sink.Event{evs[0], evs[3], evs[4]})
	rest, err := e.dl.Read()
	if err != nil || len(rest) != 2 || rest[0].Event.EventID != "it-00001" || rest[1].Event.EventID != "it-00002" {
		t.Errorf("left in file: %+v, %v", rest, err)
	}
}

func TestMetaDryRun(t *testing.T) {
	e := setup(t, setupOpts{cfg: func(c *sink.Config) { c.DryRun = true }})
	res, err := e.c.Deliver(timeout(t, 10*time.Second), events(4))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 4 || res.Requests != 0 {
		t.Errorf("result = %+v", res)
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("dry run sent %d requests", n)
	}
	if !strings.Contains(e.logs.String(), "event_id=it-00003") {
		t.Errorf("event not logged:\n%s", e.logs)
	}
}

// TestMetaSecretsNeverLeak drives the client through every error class the
// fake can produce and searches logs, errors and states for the token, the
// app secret and the proof.
func TestMetaSecretsNeverLeak(t *testing.T) {
	e := setup(t, setupOpts{
		fake: metatest.Options{AppSecret: itAppSecret},
		d:    func(d *sink.DeliveryConfig) { d.RequestTimeout = 100 * time.Millisecond },
	})
	for _, f := range []metatest.Fault{
		{Kind: metatest.FaultHTTP5xx}, {Kind: metatest.FaultBadGateway}, {Kind: metatest.FaultTransient},
		{Kind: metatest.FaultTimeout}, {Kind: metatest.FaultSlow, Delay: 300 * time.Millisecond},
		{Kind: metatest.FaultThrottle, Code: 4, RetryAfter: time.Second},
		{Kind: metatest.FaultThrottle, Code: 80000, UsageRegainMinutes: 1},
		{Kind: metatest.FaultError, Code: 190, Subcode: 463}, {Kind: metatest.FaultError, Code: 190},
		{Kind: metatest.FaultError, Code: 102}, {Kind: metatest.FaultError, Code: 10},
		{Kind: metatest.FaultError, Code: 200}, {Kind: metatest.FaultError, Code: 3},
		{Kind: metatest.FaultError, Code: 368}, {Kind: metatest.FaultError, Code: 100, Subcode: 33},
		{Kind: metatest.FaultError, Code: 21009}, {Kind: metatest.FaultError, Code: 9999},
		{Kind: metatest.FaultError, Code: 100, Subcode: 2804003},
	} {
		e.srv.Inject(f)
	}
	evs := events(8)
	evs[2].UserData.Em = []string{"jane@example.com"}
	var errs []string
	res, err := sink.DeliverUnchecked(timeout(t, 60*time.Second), e.c, evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 7 || res.DeadLettered != 1 {
		t.Errorf("result = %+v", res)
	}
	// Token expired, then cancelled: the error path.
	for len(e.states.ch) > 0 {
		<-e.states.ch
	}
	e.srv.ExpireToken()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := e.c.Deliver(ctx, events(1)); done <- err }()
	e.states.waitFor(t, "halted", func(s sink.State) bool { return s.Halted })
	cancel()
	if err := <-done; err == nil {
		t.Error("no error after cancel")
	} else {
		errs = append(errs, err.Error())
	}
	valid := event(50)
	if err := e.dl.Append([]sink.DeadLetter{{Time: itNow, Reason: "x", Event: valid}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.Replay(timeout(t, 10*time.Second)); err == nil {
		t.Error("replay with an expired token succeeded")
	} else {
		errs = append(errs, err.Error())
	}
	var reasons []string
	for _, s := range e.states.list() {
		reasons = append(reasons, s.Reason)
	}
	dlData, err := e.dl.Read()
	if err != nil {
		t.Fatal(err)
	}
	var dlText []string
	for _, d := range dlData {
		dlText = append(dlText, d.Message, d.Reason)
	}
	proof := sink.AppSecretProof(itAppSecret, itToken)
	for what, text := range map[string]string{
		"logs": e.logs.String(), "errors": strings.Join(errs, "\n"),
		"reasons": strings.Join(reasons, "\n"), "dead letters": strings.Join(dlText, "\n"),
	} {
		for _, secret := range []string{itToken, itAppSecret, proof} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain a secret:\n%s", what, text)
			}
		}
	}
	if strings.Contains(e.logs.String(), "jane@example.com") {
		t.Error("contact data in the logs")
	}
}
