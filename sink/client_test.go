package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAppSecretProofVector(t *testing.T) {
	const want = "d52ddf968d622d8af8677906b7fbae09ac1f89f7cd5c1584b27544624cc23e5a"
	if got := AppSecretProof("app_secret", "access_token"); got != want {
		t.Fatalf("AppSecretProof = %s, want %s", got, want)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := DefaultConfig()
	d := DefaultDeliveryConfig()
	d.BatchSize = 0
	_, err := New(cfg, d, Options{})
	if err == nil {
		t.Fatal("New accepted an empty dataset id and batch_size 0")
	}
	for _, want := range []string{"meta.dataset_id", "meta.access_token", "delivery.batch_size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestRequestGolden pins the exact request: method, path, headers and body.
func TestRequestGolden(t *testing.T) {
	tests := []struct {
		name      string
		appSecret Secret
		testCode  string
		wantTail  string
	}{
		{
			name:     "plain",
			wantTail: `"access_token":"` + testToken + `"}`,
		},
		{
			name:      "appsecret_proof and test_event_code",
			appSecret: testAppSecret,
			testCode:  "TEST123",
			wantTail: `"access_token":"` + testToken + `",` +
				`"appsecret_proof":"a400e5fab8235d8624313238483d2577066aa7a9382cde30dfe00550f8e72464",` +
				`"test_event_code":"TEST123"}`,
		},
	}
	const wantData = `{"data":[{"event_name":"marketing_qualified_lead","event_time":1763632800,` +
		`"action_source":"system_generated","event_id":"2f1c0a8e","user_data":{"lead_id":12345678901234567,` +
		`"em":["8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d"],` +
		`"ph":["d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a"]},` +
		`"custom_data":{"event_source":"crm","lead_event_source":"Acme CRM"}}],`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type seen struct {
				method, path, query, ctype string
				body                       []byte
			}
			got := make(chan seen, 1)
			g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
				got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), body}
				writeJSON(w, 200, okBody(1))
			})
			c := newTestClient(t, g.URL, func(cfg *Config, _ *DeliveryConfig, o *Options) {
				cfg.AppSecret = tt.appSecret
				cfg.TestEventCode = tt.testCode
				o.Now = func() time.Time { return time.Unix(1763632800+3600, 0) }
			})
			ev := Event{
				EventName: "marketing_qualified_lead", EventTime: 1763632800, ActionSource: ActionSystemGenerated,
				EventID: "2f1c0a8e",
				UserData: UserData{LeadID: 12345678901234567, Em: []string{sha("jane@example.com")},
					Ph: []string{sha("15551234567")}},
				CustomData: map[string]any{"lead_event_source": "Acme CRM", "event_source": "crm"},
				Mapping:    "leads", Table: "public.leads", LeadCreated: 1763600000, CommitTime: testNow,
			}
			res, err := c.Deliver(ctxTimeout(t, 10*time.Second), []Event{ev})
			if err != nil {
				t.Fatal(err)
			}
			if res != (Result{Accepted: 1, Requests: 1}) {
				t.Errorf("result = %+v", res)
			}
			s := <-got
			if s.method != http.MethodPost || s.path != "/v26.0/"+testDataset+"/events" || s.query != "" {
				t.Errorf("request = %s %s?%s", s.method, s.path, s.query)
			}
			if s.ctype != "application/json" {
				t.Errorf("Content-Type = %q", s.ctype)
			}
			if want := wantData + tt.wantTail; string(s.body) != want {
				t.Errorf("body:\n got %s\nwant %s", s.body, want)
			}
		})
	}
}

func TestDeliverSplitsIntoBatches(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		var req struct{ Data []json.RawMessage }
		if err := json.Unmarshal(body, &req); err != nil {
			t.Error(err)
		}
		mu.Lock()
		sizes = append(sizes, len(req.Data))
		mu.Unlock()
		writeJSON(w, 200, okBody(len(req.Data)))
	})
	c := newTestClient(t, g.URL, func(_ *Config, d *DeliveryConfig, _ *Options) { d.BatchSize = 500 })
	res, err := c.Deliver(ctxTimeout(t, 10*time.Second), goodEvents(1200))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1200 || res.Requests != 3 || res.DeadLettered != 0 {
		t.Errorf("result = %+v", res)
	}
	total := 0
	for _, s := range sizes {
		if s > 500 {
			t.Errorf("request of %d events", s)
		}
		total += s
	}
	if total != 1200 || len(sizes) != 3 {
		t.Errorf("sizes = %v", sizes)
	}
}

func TestDeliverDoesNotModifyInput(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) { writeJSON(w, 200, okBody(1)) })
	c := newTestClient(t, g.URL, nil)
	evs := goodEvents(1)
	future := testNow.Add(time.Hour).Unix()
	evs[0].EventTime = future
	if _, err := c.Deliver(ctxTimeout(t, 10*time.Second), evs); err != nil {
		t.Fatal(err)
	}
	if evs[0].EventTime != future {
		t.Errorf("caller's event_time changed to %d", evs[0].EventTime)
	}
}

func TestMaxInFlight(t *testing.T) {
	const limit = 2
	var inflight, peak atomic.Int64
	full := make(chan struct{}, 1)
	release := make(chan struct{})
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		if cur == limit {
			select {
			case full <- struct{}{}:
			default:
			}
		}
		<-release
		writeJSON(w, 200, okBody(10))
	})
	c := newTestClient(t, g.URL, func(_ *Config, d *DeliveryConfig, _ *Options) {
		d.MaxInFlight = limit
		d.BatchSize = 10
	})
	ctx := ctxTimeout(t, 10*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Deliver(ctx, goodEvents(30)) // 3 requests each
			errs <- err
		}()
	}
	select {
	case <-full:
	case <-ctx.Done():
		t.Fatal("never reached the in-flight limit")
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p != limit {
		t.Errorf("peak in-flight requests = %d, want %d", p, limit)
	}
	if n := g.n.Load(); n != 9 {
		t.Errorf("requests = %d, want 9", n)
	}
}

// TestThrottlePausesAllSending: once Meta throttles, no request of any
// Deliver call is sent before the hinted pause is over.
func TestThrottlePausesAllSending(t *testing.T) {
	const pause = 300 * time.Millisecond
	var mu sync.Mutex
	var throttledAt time.Time
	var arrivals []time.Time
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		mu.Lock()
		if n == 1 {
			throttledAt = time.Now()
			mu.Unlock()
			w.Header().Set("Retry-After", "0.3")
			writeJSON(w, 400, `{"error":{"message":"Application request limit reached","code":4,"fbtrace_id":"T"}}`)
			return
		}
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		writeJSON(w, 200, okBody(1))
	})
	rec := newStateRecorder()
	c := newTestClient(t, g.URL, func(_ *Config, d *DeliveryConfig, o *Options) { o.OnState = rec.record })
	ctx := ctxTimeout(t, 10*time.Second)
	done := make(chan error, 2)
	go func() { _, err := c.Deliver(ctx, goodEvents(1)); done <- err }()
	st := rec.waitFor(t, func(s State) bool { return s.Throttled })
	if st.Until.IsZero() || st.Halted {
		t.Errorf("throttled state = %+v", st)
	}
	go func() { _, err := c.Deliver(ctx, goodEvents(1)); done <- err }()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 2 {
		t.Fatalf("%d requests after the throttle, want 2", len(arrivals))
	}
	for _, a := range arrivals {
		if gap := a.Sub(throttledAt); gap < pause {
			t.Errorf("request %v after the throttle answer, want ≥ %v", gap, pause)
		}
	}
	rec.waitFor(t, func(s State) bool { return !s.Throttled })
	if s := c.State(); s.Throttled || s.Halted {
		t.Errorf("final state = %+v", s)
	}
}

func TestBackoff(t *testing.T) {
	d := DefaultDeliveryConfig()
	d.RetryMin, d.RetryMax = 100*time.Millisecond, 5*time.Second
	c := &Client{d: d, rnd: rand.New(rand.NewPCG(1, 2))}
	for n := 1; n <= 20; n++ {
		base := min(d.RetryMin<<(n-1), d.RetryMax)
		if n > 10 {
			base = d.RetryMax
		}
		for range 50 {
			got := c.backoff(n)
			if got < max(base/2, d.RetryMin) || got > base {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, got, base/2, base)
			}
		}
	}
	c.rnd = nil // global source
	if got := c.backoff(1000); got < d.RetryMax/2 || got > d.RetryMax {
		t.Fatalf("backoff(1000) = %v", got)
	}
}

func TestWarnings(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		writeJSON(w, 200, `{"events_received":8,"messages":["event_time in the future"],"fbtrace_id":"W"}`)
	})
	c := newTestClient(t, g.URL, nil)
	res, err := c.Deliver(ctxTimeout(t, 10*time.Second), goodEvents(10))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 10 || res.Warnings != 2 {
		t.Errorf("result = %+v, want 10 accepted, 2 warnings", res)
	}
	if !strings.Contains(c.logs.String(), "Meta accepted the request with warnings") {
		t.Errorf("no warning logged:\n%s", c.logs)
	}
}

func TestDryRun(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		t.Error("dry run sent a request")
		writeJSON(w, 500, "{}")
	})
	c := newTestClient(t, g.URL, func(cfg *Config, _ *DeliveryConfig, _ *Options) {
		cfg.DryRun = true
		cfg.AccessToken = ""
	})
	evs := goodEvents(3)
	evs[1].UserData.Em = []string{"jane@example.com"} // plaintext: dead-lettered, never logged
	res, err := c.Deliver(ctxTimeout(t, 10*time.Second), evs)
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{Accepted: 2, DeadLettered: 1}) {
		t.Errorf("result = %+v", res)
	}
	logs := c.logs.String()
	for _, want := range []string{"dry run: event not sent", "event_id=ev-00000", "event_id=ev-00002", "mapping=leads"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "jane@example.com") {
		t.Errorf("contact data in logs:\n%s", logs)
	}
}

// TestCancelDuringOutage: whatever the outage, a cancelled Deliver returns
// promptly with ctx's error and dead-letters nothing (not even an event
// Prepare refused: the caller will resend the batch).
func TestCancelDuringOutage(t *testing.T) {
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request)
	}{
		{"5xx", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 503, "<html>down</html>") }},
		{"throttled", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3600")
			writeJSON(w, 400, `{"error":{"message":"x","code":17}}`)
		}},
		{"halted", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 401, `{"error":{"message":"Invalid OAuth access token","code":190,"error_subcode":463}}`)
		}},
		{"hung", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) { tt.handler(w, r) })
			c := newTestClient(t, g.URL, func(_ *Config, d *DeliveryConfig, _ *Options) {
				d.HaltRetry = time.Hour
				d.RetryMax = time.Hour
				d.RetryMin = 50 * time.Millisecond
			})
			evs := goodEvents(5)
			evs[2].UserData.LeadID = 42 // refused by Prepare
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := c.Deliver(ctx, evs)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Deliver took %v after cancellation", took)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want DeadlineExceeded", err)
			}
			if res.DeadLettered != 0 || res.Accepted != 0 {
				t.Errorf("result = %+v", res)
			}
			if n, err := c.dl.Count(); err != nil || n != 0 {
				t.Errorf("dead letters = %d, %v", n, err)
			}
		})
	}
}

func TestRequestTimeoutIsTransient(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		if n == 1 {
			<-r.Context().Done()
			return
		}
		writeJSON(w, 200, okBody(1))
	})
	c := newTestClient(t, g.URL, func(_ *Config, d *DeliveryConfig, _ *Options) { d.RequestTimeout = 100 * time.Millisecond })
	res, err := c.Deliver(ctxTimeout(t, 10*time.Second), goodEvents(1))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || res.Requests != 2 {
		t.Errorf("result = %+v", res)
	}
	if !strings.Contains(c.logs.String(), "no answer within 100ms") {
		t.Errorf("timeout not logged:\n%s", c.logs)
	}
}

func TestNoDeadLetterFile(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) { writeJSON(w, 200, okBody(1)) })
	c := newTestClient(t, g.URL, func(_ *Config, _ *DeliveryConfig, o *Options) { o.DeadLetters = nil })
	evs := goodEvents(2)
	evs[0].UserData = UserData{}
	res, err := c.Deliver(ctxTimeout(t, 10*time.Second), evs)
	if err == nil {
		t.Fatal("no error without a dead-letter file")
	}
	if res.DeadLettered != 0 || res.Accepted != 1 {
		t.Errorf("result = %+v", res)
	}
}

func TestDeadLetterFileUnwritable(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		if strings.Contains(string(body), `"event_id":"ev-00001"`) {
			writeGraphErr(w, 400, 100, 2804036, "Invalid lead id")
			return
		}
		writeJSON(w, 200, okBody(1))
	})
	c := newTestClient(t, g.URL, nil)
	// Replace the file by a directory: appending fails, even for root.
	if err := os.Remove(c.dl.Path()); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(c.dl.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	evs := goodEvents(4)
	evs[3].UserData = UserData{} // refused by Prepare
	res, err := c.Deliver(ctxTimeout(t, 10*time.Second), evs)
	if err == nil {
		t.Fatal("no error with an unwritable dead-letter file")
	}
	if !strings.Contains(err.Error(), c.dl.Path()) {
		t.Errorf("error %q does not name the file", err)
	}
	if res.DeadLettered != 0 {
		t.Errorf("result = %+v: dead letters counted that were not written", res)
	}
	if res.Accepted != 2 {
		t.Errorf("accepted = %d, want 2", res.Accepted)
	}
}

// TestTokenNeverLeaks runs through every error class, with Meta echoing the
// token in its messages, and checks logs, errors, states and dead letters.
func TestTokenNeverLeaks(t *testing.T) {
	tokenMsg := "Invalid OAuth access token: " + testToken
	steps := []func(w http.ResponseWriter, r *http.Request){
		func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 502, "<html>"+testToken+"</html>") },
		func(w http.ResponseWriter, r *http.Request) { writeGraphErr(w, 500, 1, 0, tokenMsg) },
		func(w http.ResponseWriter, r *http.Request) { writeGraphErr(w, 500, 2, 0, tokenMsg) },
		func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, // timeout
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "0.01")
			writeGraphErr(w, 400, 4, 0, tokenMsg)
		},
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Business-Use-Case-Usage", `{"1":[{"estimated_time_to_regain_access":0.0002}]}`)
			writeGraphErr(w, 400, 80004, 0, tokenMsg)
		},
		func(w http.ResponseWriter, r *http.Request) { writeGraphErr(w, 400, 17, 0, tokenMsg) },
		func(w http.ResponseWriter, r *http.Request) { writeGraphErr(w, 401, 190, 463, tokenMsg) },
		func(w http.ResponseWriter, r *http.Request) { writeGraphErr(w, 400, 4242, 0, tokenMsg) },
		func(w http.ResponseWriter, r *http.Request) { writeGraphErr(w, 403, 200, 0, tokenMsg) },
		func(w http.ResponseWriter, r *http.Request) { writeGraphErr(w, 400, 100, 33, tokenMsg) },
		func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 404, `{"token":"`+testToken+`"}`) },
	}
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		if n <= len(steps) {
			steps[n-1](w, r)
			return
		}
		var req Request
		if err := json.Unmarshal(body, &req); err != nil {
			t.Error(err)
		}
		for _, ev := range req.Data {
			if ev.EventID == "ev-00003" {
				writeGraphErr(w, 400, 100, 2804016, "Unhashed em: "+testToken)
				return
			}
			if ev.EventTime < testNow.Add(-MaxEventAge+3*time.Hour).Unix() { // Meta's clock is ahead
				writeGraphErr(w, 400, 100, 2804003, tokenMsg)
				return
			}
		}
		writeJSON(w, 200, fmt.Sprintf(`{"events_received":%d,"messages":[%q],"fbtrace_id":"T"}`, len(req.Data), testToken))
	})
	rec := newStateRecorder()
	clock := atomic.Int64{}
	clock.Store(testNow.Unix())
	c := newTestClient(t, g.URL, func(cfg *Config, d *DeliveryConfig, o *Options) {
		cfg.AppSecret = testAppSecret
		d.RequestTimeout = 50 * time.Millisecond
		o.OnState = rec.record
		o.Now = func() time.Time { return time.Unix(clock.Load(), 0) }
	})
	SetMaxPause(c.Client, 20*time.Millisecond)
	evs := goodEvents(6)
	evs[3].UserData.Em = []string{"jane@example.com"} // reaches Meta: Prepare skipped
	evs[5].EventTime = testNow.Add(-MaxEventAge + 2*time.Hour).Unix()
	evs[4].UserData = UserData{} // refused by Prepare on the second run
	res, err := c.deliver(ctxTimeout(t, 20*time.Second), evs, deliverOpts{skipPrepare: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 4 || res.DeadLettered != 2 {
		t.Errorf("result = %+v", res.Result)
	}
	var errs []string
	// Pre-validation, an unwritable dead-letter file and a cancelled context.
	clock.Store(testNow.Add(2 * time.Hour).Unix()) // evs[5] is now stale by our clock
	if res, err := c.Deliver(ctxTimeout(t, 20*time.Second), evs); err != nil {
		t.Fatal(err)
	} else if res.Accepted != 3 || res.DeadLettered != 3 {
		t.Errorf("second result = %+v", res)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Deliver(ctx, goodEvents(1)); err == nil {
		t.Error("no error on a cancelled context")
	} else {
		errs = append(errs, err.Error())
	}
	os.Remove(c.dl.Path())
	os.Mkdir(c.dl.Path(), 0o700)
	if _, err := c.Deliver(ctxTimeout(t, 20*time.Second), evs[4:5]); err == nil {
		t.Error("no error with an unwritable dead-letter file")
	} else {
		errs = append(errs, err.Error())
	}
	os.Remove(c.dl.Path())
	if _, _, err := c.Replay(ctxTimeout(t, 20*time.Second)); err != nil {
		errs = append(errs, err.Error())
	}

	logs := c.logs.String()
	if os.Getenv("SHOWLOGS") != "" {
		t.Log(logs, errs)
	}
	for _, want := range []string{"Meta unavailable, retrying", "Meta is throttling", "delivery halted",
		"delivery resumed", "dead-lettering", "warnings", "no answer within"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	var reasons []string
	for _, s := range rec.all() {
		reasons = append(reasons, s.Reason)
	}
	if len(reasons) == 0 {
		t.Error("no state changes recorded")
	}
	proof := AppSecretProof(testAppSecret, testToken)
	for what, text := range map[string]string{
		"logs":    logs,
		"errors":  strings.Join(errs, "\n"),
		"reasons": strings.Join(reasons, "\n"),
	} {
		for _, secret := range []string{testToken, testAppSecret, proof} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain a secret:\n%s", what, text)
			}
		}
	}
	if strings.Contains(logs, "jane@example.com") {
		t.Error("logs contain contact data")
	}
}

// TestHaltedBlocksOtherCallers: while halted, a new Deliver does not send
// until the halt retry, and resumes with the others.
func TestHaltThenResume(t *testing.T) {
	var expired atomic.Bool
	expired.Store(true)
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		if expired.Load() {
			writeGraphErr(w, 401, 190, 463, "Error validating access token: Session has expired")
			return
		}
		var req Request
		_ = json.Unmarshal(body, &req)
		writeJSON(w, 200, okBody(len(req.Data)))
	})
	rec := newStateRecorder()
	c := newTestClient(t, g.URL, func(_ *Config, _ *DeliveryConfig, o *Options) { o.OnState = rec.record })
	ctx := ctxTimeout(t, 10*time.Second)
	done := make(chan error, 1)
	go func() {
		res, err := c.Deliver(ctx, goodEvents(3))
		if err == nil && (res.Accepted != 3 || res.DeadLettered != 0) {
			err = fmt.Errorf("result %+v", res)
		}
		done <- err
	}()
	st := rec.waitFor(t, func(s State) bool { return s.Halted })
	if !strings.Contains(st.Reason, "meta.access_token") || st.Since.IsZero() {
		t.Errorf("halted state = %+v", st)
	}
	if got := c.State(); !got.Halted {
		t.Errorf("State() = %+v", got)
	}
	expired.Store(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, func(s State) bool { return !s.Halted })
	if n, _ := c.dl.Count(); n != 0 {
		t.Errorf("%d dead letters during a halt", n)
	}
	if strings.Count(c.logs.String(), "delivery halted") != 1 {
		t.Errorf("halt logged more than once:\n%s", c.logs)
	}
}

func TestBisection(t *testing.T) {
	tests := []struct {
		name string
		n    int
		bad  []int
	}{
		{"one bad of 1000", 1000, []int{637}},
		{"two bad of 500", 500, []int{0, 499}},
		{"adjacent bad", 64, []int{31, 32}},
		{"all bad", 4, []int{0, 1, 2, 3}},
		{"single bad", 1, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := map[string]bool{}
			for _, i := range tt.bad {
				bad[fmt.Sprintf("ev-%05d", i)] = true
			}
			var accepted atomic.Int64
			g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
				var req Request
				if err := json.Unmarshal(body, &req); err != nil {
					t.Error(err)
				}
				for _, ev := range req.Data {
					if bad[ev.EventID] {
						writeGraphErr(w, 400, 100, 2804036, "Invalid lead id")
						return
					}
				}
				accepted.Add(int64(len(req.Data)))
				writeJSON(w, 200, okBody(len(req.Data)))
			})
			c := newTestClient(t, g.URL, func(_ *Config, d *DeliveryConfig, _ *Options) { d.BatchSize = 1000 })
			res, err := c.Deliver(ctxTimeout(t, 20*time.Second), goodEvents(tt.n))
			if err != nil {
				t.Fatal(err)
			}
			wantOK := tt.n - len(tt.bad)
			if res.Accepted != wantOK || res.DeadLettered != len(tt.bad) || int(accepted.Load()) != wantOK {
				t.Errorf("result = %+v, server accepted %d", res, accepted.Load())
			}
			dls, err := c.dl.Read()
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range dls {
				if !bad[d.Event.EventID] || d.Code != 100 || d.Subcode != 2804036 || d.FbtraceID != "Trace100" {
					t.Errorf("dead letter %+v", d)
				}
			}
		})
	}
}

func TestStaleByOurClock(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		if n == 1 {
			writeGraphErr(w, 400, 100, 2804003, "Event Timestamp Too Old")
			return
		}
		var req Request
		_ = json.Unmarshal(body, &req)
		writeJSON(w, 200, okBody(len(req.Data)))
	})
	var clock atomic.Int64
	clock.Store(testNow.Unix())
	c := newTestClient(t, g.URL, func(_ *Config, _ *DeliveryConfig, o *Options) {
		o.Now = func() time.Time { return time.Unix(clock.Load(), 0) }
		// The clock moves 2 hours while the first request is out.
		o.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(r)
			clock.Store(testNow.Add(2 * time.Hour).Unix())
			return resp, err
		})}
	})
	evs := goodEvents(10)
	evs[4].EventTime = testNow.Add(-MaxEventAge + 2*time.Hour).Unix() // passes Prepare, stale 2 h later
	res, err := c.Deliver(ctxTimeout(t, 10*time.Second), evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 9 || res.DeadLettered != 1 || res.Requests != 2 {
		t.Errorf("result = %+v", res)
	}
	dls, _ := c.dl.Read()
	if len(dls) != 1 || dls[0].Reason != ReasonExpired || dls[0].Subcode != 2804003 || dls[0].Event.EventID != "ev-00004" {
		t.Errorf("dead letters = %+v", dls)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestReplay(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		var req Request
		_ = json.Unmarshal(body, &req)
		for _, ev := range req.Data {
			if ev.EventID == "ev-00002" {
				writeGraphErr(w, 400, 100, 2804050, "Not enough user data")
				return
			}
		}
		writeJSON(w, 200, okBody(len(req.Data)))
	})
	c := newTestClient(t, g.URL, nil)
	evs := goodEvents(4)
	evs[1].EventTime = testNow.Add(-8 * 24 * time.Hour).Unix() // still expired
	var dls []DeadLetter
	for i := range evs {
		dls = append(dls, newDeadLetter(&evs[i], testNow, "rejected by Meta: Graph error 2/0", &GraphError{Code: 2}, c.redact))
	}
	if err := c.dl.Append(dls); err != nil {
		t.Fatal(err)
	}
	sent, left, err := c.Replay(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if sent != 2 || left != 2 {
		t.Errorf("sent %d, left %d; want 2, 2", sent, left)
	}
	got, err := c.dl.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Event.EventID != "ev-00001" || got[1].Event.EventID != "ev-00002" {
		t.Fatalf("left = %+v", got)
	}
	if got[1].Subcode != 2804050 || got[1].Mapping != "leads" {
		t.Errorf("re-rejected record = %+v", got[1])
	}
	// Nothing left to send: a second replay sends nothing and keeps both.
	if sent, left, err := c.Replay(ctxTimeout(t, 10*time.Second)); err != nil || sent != 0 || left != 2 {
		t.Errorf("second replay: %d, %d, %v", sent, left, err)
	}
}

func TestReplayStopsOnHalt(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		writeGraphErr(w, 403, 10, 0, "Permission denied")
	})
	c := newTestClient(t, g.URL, nil)
	evs := goodEvents(2)
	if err := c.dl.Append([]DeadLetter{
		newDeadLetter(&evs[0], testNow, "x", nil, c.redact),
		newDeadLetter(&evs[1], testNow, "x", nil, c.redact),
	}); err != nil {
		t.Fatal(err)
	}
	sent, left, err := c.Replay(ctxTimeout(t, 10*time.Second))
	var he *HaltError
	if !errors.As(err, &he) || he.Code != 10 {
		t.Fatalf("err = %v, want a HaltError", err)
	}
	if sent != 0 || left != 2 {
		t.Errorf("sent %d, left %d", sent, left)
	}
	if n, _ := c.dl.Count(); n != 2 {
		t.Errorf("%d dead letters left, want 2", n)
	}
}

func TestUnencodableEvent(t *testing.T) {
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		var req Request
		_ = json.Unmarshal(body, &req)
		writeJSON(w, 200, okBody(len(req.Data)))
	})
	c := newTestClient(t, g.URL, nil)
	evs := goodEvents(3)
	evs[1].CustomData = map[string]any{"event_source": "crm", "value": math.NaN()}
	res, err := c.Deliver(ctxTimeout(t, 10*time.Second), evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || res.DeadLettered != 1 {
		t.Errorf("result = %+v", res)
	}
	dls, err := c.dl.Read()
	if err != nil || len(dls) != 1 || dls[0].Reason != ReasonUnencodable || dls[0].Event.EventID != "ev-00001" {
		t.Errorf("dead letters = %+v, %v", dls, err)
	}
}

// TestNoRedirects: a redirect is never followed (the body carries the
// token) and halts with a reason naming meta.endpoint.
func TestNoRedirects(t *testing.T) {
	var elsewhere atomic.Int64
	other := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		elsewhere.Add(1)
		writeJSON(w, 200, okBody(1))
	})
	g := startGraph(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	rec := newStateRecorder()
	c := newTestClient(t, g.URL, func(_ *Config, _ *DeliveryConfig, o *Options) { o.OnState = rec.record })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := c.Deliver(ctx, goodEvents(1)); done <- err }()
	st := rec.waitFor(t, func(s State) bool { return s.Halted })
	if !strings.Contains(st.Reason, "meta.endpoint") {
		t.Errorf("reason = %q", st.Reason)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if elsewhere.Load() != 0 {
		t.Error("redirect followed")
	}
}
