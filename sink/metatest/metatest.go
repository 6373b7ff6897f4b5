// Package metatest is a strict fake of Meta's Conversions API endpoint
// POST /{api_version}/{dataset_id}/events, shaped like httptest.Server.
//
// It refuses what Meta refuses, with Meta's codes, subcodes and bodies, and
// it is stricter than Meta where leadtail's own rules are (token in the URL,
// unknown keys, non-JSON bodies). What Meta would accept but leadtail must
// never send (a wrong action_source, a missing event_id or event_source, a
// malformed fbc, ...) is accepted and listed by Violations, which tests
// assert is empty. Every rule cites its source; see the list in errors.go.
//
// Typical use:
//
//	srv := metatest.Start(t, metatest.Options{Now: clock})
//	// configure the client under test with endpoint srv.URL(), dataset
//	// srv.DatasetID() and token srv.AccessToken(); run it
//	srv.Inject(metatest.Fault{Kind: metatest.FaultThrottle, Code: 80004, RetryAfter: time.Second})
//	if err := srv.WaitAccepted(ctx, 3); err != nil { t.Fatal(err) }
//	if v := srv.Violations(); len(v) > 0 { t.Fatal(v) }
//
// The command ./fakemeta serves the same handler on a fixed address for
// end-to-end tests of the built binary.
package metatest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/sink"
)

// Defaults of Options.
const (
	DefaultDatasetID     = "123456789012345"
	DefaultAccessToken   = "test-token"
	DefaultMinAPIVersion = 25
	// MaxBodyBytes is the fake's request size limit. Meta documents none
	// ([LeadtailDoc]: "A byte limit per request: unknown").
	MaxBodyBytes = 10 << 20
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// DatasetID is the only dataset that exists; others get 100/33.
	// Default DefaultDatasetID.
	DatasetID string
	// AccessToken is the only valid token. Default DefaultAccessToken.
	AccessToken string
	// AppSecret, when set, makes appsecret_proof mandatory: lower-case hex
	// of HMAC-SHA256(key = app secret, message = access token).
	AppSecret string
	// Now is the clock of the 7-day window. Default time.Now.
	Now func() time.Time
	// MinAPIVersion: versions below it get Meta's deprecated-version error
	// (code 2635). Default DefaultMinAPIVersion (v24.0 and older refused).
	MinAPIVersion int
	// Logger receives one Debug line per request (never tokens or user
	// data). Default: discard.
	Logger hclog.Logger
}

// Received is one accepted event.
type Received struct {
	// Event is the event decoded into leadtail's wire model. A hashed key
	// sent as a single string appears as a one-element slice.
	Event sink.Event
	// Raw is the event exactly as it was in the request body.
	Raw json.RawMessage
	// TestEventCode is the request's test_event_code, if any.
	TestEventCode string
	// RequestID is RequestLog.ID of the request that carried the event.
	RequestID int
	// At is when the fake accepted the event (latency measurements).
	At time.Time
}

// RequestLog describes one request, answered or not.
type RequestLog struct {
	// ID numbers requests from 1 in arrival order.
	ID int
	// Status is the HTTP status sent; 0 while in progress or when no answer
	// was sent (FaultTimeout, client gone).
	Status int
	// Code and Subcode are the Graph error's, 0 on success.
	Code, Subcode int
	// Events is the length of data[] when it could be read.
	Events int
	// Fault names the injected fault that shaped the answer, if any.
	Fault string
	// Reason says, for the test author, why a request was refused (e.g.
	// "data[3].user_data.em[0]: not a lower-case SHA-256 hex string"). Meta
	// never says which event failed, so this is not in the answer.
	Reason string
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	opts   Options
	log    hclog.Logger
	hs     *httptest.Server
	closed chan struct{}
	once   sync.Once

	mu         sync.Mutex
	nextID     int
	accepted   []Received
	requests   []RequestLog
	violations []string
	faults     []Fault // head first; Times counts down
	expired    bool
	changed    chan struct{} // closed and replaced whenever state changes
}

// New returns a Server that is not listening: serve Handler yourself (the
// fakemeta command does). URL returns "". Close releases held requests.
func New(opts Options) *Server {
	if opts.DatasetID == "" {
		opts.DatasetID = DefaultDatasetID
	}
	if opts.AccessToken == "" {
		opts.AccessToken = DefaultAccessToken
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MinAPIVersion == 0 {
		opts.MinAPIVersion = DefaultMinAPIVersion
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Server{opts: opts, log: log, closed: make(chan struct{}), changed: make(chan struct{})}
}

// NewServer starts a fake on 127.0.0.1 at a free port, like
// httptest.NewServer. Call Close when done.
func NewServer(opts Options) *Server {
	s := New(opts)
	s.hs = httptest.NewServer(s.Handler())
	return s
}

// Start is NewServer with Close registered in t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// URL is the endpoint to configure (scheme, host and port, no path), e.g.
// http://127.0.0.1:PORT. Requests go to URL()+"/v26.0/"+dataset+"/events".
func (s *Server) URL() string {
	if s.hs == nil {
		return ""
	}
	return s.hs.URL
}

// Client returns an http.Client for the server (httptest's, or
// http.DefaultClient when not listening).
func (s *Server) Client() *http.Client {
	if s.hs == nil {
		return http.DefaultClient
	}
	return s.hs.Client()
}

// Close releases requests held by FaultTimeout or FaultSlow (their
// connections are dropped), then shuts the listener down and waits for
// in-flight requests. Safe to call more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		if s.hs != nil {
			s.hs.Close()
		}
	})
}

// Handler serves the fake Graph API. Every request it serves is logged and
// consumes the head of the fault queue, whatever its path.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// DatasetID is the dataset that exists.
func (s *Server) DatasetID() string { return s.opts.DatasetID }

// AccessToken is the valid token.
func (s *Server) AccessToken() string { return s.opts.AccessToken }

// Accepted returns every event accepted so far, in arrival order,
// duplicates included.
func (s *Server) Accepted() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.accepted))
	copy(out, s.accepted)
	return out
}

// Requests returns every request so far, in arrival order.
func (s *Server) Requests() []RequestLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RequestLog, len(s.requests))
	copy(out, s.requests)
	return out
}

// Violations returns what Meta accepted but leadtail must never send, one
// line each, naming the request, the event index, its event_id and the rule.
// Only accepted requests contribute.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.violations))
	copy(out, s.violations)
	return out
}

// WaitAccepted blocks until at least n events have been accepted or ctx is
// done, and returns ctx.Err() in the latter case.
func (s *Server) WaitAccepted(ctx context.Context, n int) error {
	return s.waitFor(ctx, func() bool { return len(s.accepted) >= n })
}

// waitRequests blocks until at least n requests have arrived (tests).
func (s *Server) waitRequests(ctx context.Context, n int) error {
	return s.waitFor(ctx, func() bool { return len(s.requests) >= n })
}

func (s *Server) waitFor(ctx context.Context, done func() bool) error {
	for {
		s.mu.Lock()
		ok := done()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifyLocked wakes every waiter. s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Inject queues f for the next f.Times requests (Times 0 means 1). Faults
// run in FIFO order: f starts once the faults queued before it are used up.
// It panics on a Kind or Code that makes no sense (a bug in the test).
func (s *Server) Inject(f Fault) {
	if err := f.check(); err != nil {
		panic("metatest: Inject: " + err.Error())
	}
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.mu.Unlock()
}

// ExpireToken makes the valid token expired: requests get 190/463 until
// RestoreToken.
func (s *Server) ExpireToken() {
	s.mu.Lock()
	s.expired = true
	s.mu.Unlock()
}

// RestoreToken undoes ExpireToken.
func (s *Server) RestoreToken() {
	s.mu.Lock()
	s.expired = false
	s.mu.Unlock()
}

func (s *Server) tokenExpired() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expired
}

// begin registers a request and takes the fault it must suffer, if any.
func (s *Server) begin() (id int, f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	id = s.nextID
	s.requests = append(s.requests, RequestLog{ID: id})
	if len(s.faults) > 0 {
		head := s.faults[0]
		f = &head
		s.faults[0].Times--
		if s.faults[0].Times <= 0 {
			s.faults = s.faults[1:]
		}
		s.requests[id-1].Fault = head.Kind.String()
	}
	s.notifyLocked()
	return id, f
}

// finish records the outcome of request id and, on success, its events.
func (s *Server) finish(id int, upd func(*RequestLog), acc []Received, viol []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	upd(&s.requests[id-1])
	now := time.Now()
	for i := range acc {
		acc[i].At = now
	}
	s.accepted = append(s.accepted, acc...)
	s.violations = append(s.violations, viol...)
	s.notifyLocked()
}
