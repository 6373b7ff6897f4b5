package sink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	testToken     = "EAAB-test-token-0123456789"
	testAppSecret = "shh-app-secret"
	testDataset   = "123456789012345"
)

// testNow is the fixed clock of the unit tests.
var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// syncBuffer is a log sink safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// fastDelivery keeps every wait of a test in milliseconds.
func fastDelivery() DeliveryConfig {
	d := DefaultDeliveryConfig()
	d.RetryMin = time.Millisecond
	d.RetryMax = 20 * time.Millisecond
	d.HaltRetry = 10 * time.Millisecond
	d.RequestTimeout = 5 * time.Second
	return d
}

// goodEvent is a valid event number i, one hour old by testNow.
func goodEvent(i int) Event {
	return Event{
		EventName:    "marketing_qualified_lead",
		EventTime:    testNow.Add(-time.Hour).Unix(),
		ActionSource: ActionSystemGenerated,
		EventID:      fmt.Sprintf("ev-%05d", i),
		UserData: UserData{
			LeadID: 123456789012345 + int64(i),
			Em:     []string{sha(fmt.Sprintf("lead%d@example.com", i))},
		},
		CustomData: map[string]any{"event_source": "crm", "lead_event_source": "Acme CRM"},
		Mapping:    "leads",
		Table:      "public.leads",
	}
}

func goodEvents(n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = goodEvent(i)
	}
	return evs
}

type testClient struct {
	*Client
	logs *syncBuffer
	dl   *DeadLetterFile
}

// newTestClient returns a client for endpoint with fast retries, a fixed
// clock, a dead-letter file in a temp dir and logs captured at Trace.
func newTestClient(t *testing.T, endpoint string, mod func(*Config, *DeliveryConfig, *Options)) *testClient {
	t.Helper()
	dl, err := OpenDeadLetters(filepath.Join(t.TempDir(), "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := DefaultConfig()
	cfg.DatasetID = testDataset
	cfg.AccessToken = testToken
	cfg.Endpoint = endpoint
	d := fastDelivery()
	opts := Options{
		Logger:      hclog.New(&hclog.LoggerOptions{Name: "sink", Output: logs, Level: hclog.Trace}),
		Now:         func() time.Time { return testNow },
		DeadLetters: dl,
	}
	if mod != nil {
		mod(&cfg, &d, &opts)
	}
	c, err := New(cfg, d, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testClient{Client: c, logs: logs, dl: dl}
}

// graphServer is an httptest server whose handler gets the request number
// (from 1) and the body.
type graphServer struct {
	*httptest.Server
	n atomic.Int64
}

func startGraph(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int, body []byte)) *graphServer {
	t.Helper()
	g := &graphServer{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h(w, r, int(g.n.Add(1)), body)
	}))
	t.Cleanup(g.Close)
	return g
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func okBody(n int) string {
	return fmt.Sprintf(`{"events_received":%d,"messages":[],"fbtrace_id":"AbcTrace"}`, n)
}

// writeGraphErr answers a Graph error whose fbtrace_id is "Trace<code>".
func writeGraphErr(w http.ResponseWriter, status, code, subcode int, msg string) {
	writeJSON(w, status, fmt.Sprintf(`{"error":{"message":%q,"type":"OAuthException","code":%d,"error_subcode":%d,"fbtrace_id":"Trace%d"}}`,
		msg, code, subcode, code))
}

// ctxTimeout is a context for one test step, cancelled at cleanup.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// stateRecorder collects OnState calls.
type stateRecorder struct {
	mu     sync.Mutex
	states []State
	ch     chan State
}

func newStateRecorder() *stateRecorder { return &stateRecorder{ch: make(chan State, 1024)} }

func (r *stateRecorder) record(s State) {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.mu.Unlock()
	select {
	case r.ch <- s:
	default:
	}
}

// waitFor returns the first reported state matching ok, failing the test at
// the deadline.
func (r *stateRecorder) waitFor(t *testing.T, ok func(State) bool) State {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case s := <-r.ch:
			if ok(s) {
				return s
			}
		case <-deadline.C:
			t.Fatal("timed out waiting for a state change")
		}
	}
}

func (r *stateRecorder) all() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]State(nil), r.states...)
}
