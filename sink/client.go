package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// maxResponseBytes bounds how much of an answer is read.
const maxResponseBytes = 1 << 20

// defaultMaxPause bounds a throttling pause, whatever Meta's hint says: a
// bogus hint must not stall delivery for days. Meta's estimates are minutes.
const defaultMaxPause = time.Hour

// Options are a Client's collaborators. Every field is optional.
type Options struct {
	// HTTPClient sends the requests; its Timeout should be 0, since
	// DeliveryConfig.RequestTimeout bounds each request, and it should not
	// follow redirects (the body carries the token). Default: a client
	// with a clone of http.DefaultTransport that follows no redirect.
	HTTPClient *http.Client
	// Logger receives constant messages with stable keys; never tokens,
	// event contents or contact data. The caller names it ("sink").
	// Default: no logging.
	Logger hclog.Logger
	// Now is the clock for event age (Prepare, stale events) and
	// dead-letter times. Waiting always uses the real clock. Default: time.Now.
	Now func() time.Time
	// DeadLetters receives the events that are not sent. Without it a
	// Deliver that has to dead-letter something fails with a local error.
	DeadLetters *DeadLetterFile
	// Rand is the jitter source (tests make it deterministic). Default:
	// math/rand/v2's global source.
	Rand *rand.Rand
	// OnState is called, never concurrently, after the State changed:
	// halted or resumed, throttled or no longer. It must not block long.
	OnState func(State)
	// Observer is told about requests, accepted and dead-lettered events
	// (metrics). Default: none.
	Observer Observer
}

// State is what readiness reports.
type State struct {
	// Halted: Meta refuses our configuration (token, permission, dataset,
	// policy, or an error leadtail does not know). Nothing is sent but the
	// periodic retry; nothing is dropped. Reason says what to fix.
	Halted bool
	Reason string
	// Since is when the halt began.
	Since time.Time
	// Throttled: Meta asked us to slow down; all sending pauses until Until.
	Throttled bool
	Until     time.Time
}

// Client sends events to the Conversions API. It is safe for concurrent
// use: Deliver may be called from several goroutines, and at most
// DeliveryConfig.MaxInFlight requests are in flight across all of them.
type Client struct {
	cfg      Config
	d        DeliveryConfig
	http     *http.Client
	log      hclog.Logger
	now      func() time.Time
	dl       *DeadLetterFile
	onState  func(State)
	obs      Observer
	url      string
	token    string
	proof    string
	sem      chan struct{}
	maxPause time.Duration

	randMu sync.Mutex
	rnd    *rand.Rand

	mu         sync.Mutex
	state      State
	pauseUntil time.Time     // no request starts before this (throttle or halt)
	pauseHalt  bool          // pauseUntil was set by a halt, not a throttle
	wake       chan struct{} // closed when a pause is lifted early
	throttleN  int           // consecutive throttled answers without a hint

	notifyMu     sync.Mutex
	lastNotified State
}

// New checks both config sections and returns a Client.
func New(cfg Config, d DeliveryConfig, opts Options) (*Client, error) {
	var errs []error
	for _, e := range cfg.Validate() {
		errs = append(errs, fmt.Errorf("meta.%w", e))
	}
	for _, e := range d.Validate() {
		errs = append(errs, fmt.Errorf("delivery.%w", e))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c := &Client{
		cfg:      cfg,
		d:        d,
		http:     opts.HTTPClient,
		log:      opts.Logger,
		now:      opts.Now,
		dl:       opts.DeadLetters,
		onState:  opts.OnState,
		obs:      opts.Observer,
		rnd:      opts.Rand,
		token:    cfg.AccessToken.Reveal(),
		sem:      make(chan struct{}, d.MaxInFlight),
		maxPause: defaultMaxPause,
		wake:     make(chan struct{}),
	}
	if c.http == nil {
		c.http = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// Never resend the body, and with it the token, elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	c.url = strings.TrimRight(cfg.Endpoint, "/") + "/" + url.PathEscape(cfg.APIVersion) + "/" +
		url.PathEscape(cfg.DatasetID) + "/events"
	if cfg.AppSecret != "" {
		c.proof = AppSecretProof(cfg.AppSecret.Reveal(), c.token)
	}
	return c, nil
}

// AppSecretProof is lower-case hex HMAC-SHA256 of the access token keyed
// with the app secret, Meta's appsecret_proof.
func AppSecretProof(appSecret, accessToken string) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(accessToken))
	return hex.EncodeToString(m.Sum(nil))
}

// State returns the current halt/throttle state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Deliver sends events to Meta in requests of at most BatchSize events
// and returns once every event was accepted by Meta or written (and
// fsynced) to the dead-letter file; then the error is nil.
//
// Events failing Prepare are dead-lettered without being sent. Transient
// failures are retried forever with backoff, throttling pauses all sending
// of the client, configuration errors halt it (see State) and retry every
// HaltRetry: none of these drops or dead-letters anything. A request that
// Meta rejects for a bad event is split in halves until the bad events are
// isolated; those are dead-lettered with Meta's error, the rest delivered.
//
// A non-nil error is ctx's (wrapped) or a local failure (dead-letter file
// unwritable). Events may then have been accepted (Result.Accepted; they
// are harmless to resend, Meta deduplicates by event_id) but none is
// counted as dead-lettered unless it was written. Deliver does not modify
// events.
func (c *Client) Deliver(ctx context.Context, events []Event) (Result, error) {
	r, err := c.deliver(ctx, events, deliverOpts{})
	return r.Result, err
}

// deliverOpts vary the delivery path for replay and tests.
type deliverOpts struct {
	// skipPrepare sends events without pre-validation (tests: make a bad
	// event reach Meta).
	skipPrepare bool
	// failOnHalt returns an error instead of waiting out a halt (replay is
	// a command and must end).
	failOnHalt bool
	// keepRejected returns the dead letters instead of writing them (replay
	// keeps them in the file it is rewriting).
	keepRejected bool
}

// rejection is one event not delivered, by index into the call's events.
type rejection struct {
	idx int
	dl  DeadLetter
}

// delivery is the state of one deliver call, shared by its chunks.
type delivery struct {
	events   []Event
	opts     deliverOpts
	mu       sync.Mutex
	res      Result
	accepted []bool
	rejected []rejection
}

func (st *delivery) addRequest() {
	st.mu.Lock()
	st.res.Requests++
	st.mu.Unlock()
}

func (st *delivery) accept(idx []int, warnings int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, i := range idx {
		st.accepted[i] = true
	}
	st.res.Accepted += len(idx)
	st.res.Warnings += warnings
}

func (st *delivery) reject(r ...rejection) {
	st.mu.Lock()
	st.rejected = append(st.rejected, r...)
	st.mu.Unlock()
}

type deliverResult struct {
	Result
	accepted []bool
	rejected []rejection
}

func (c *Client) deliver(ctx context.Context, in []Event, opts deliverOpts) (deliverResult, error) {
	if len(in) == 0 {
		return deliverResult{}, nil
	}
	st := &delivery{events: slices.Clone(in), opts: opts, accepted: make([]bool, len(in))}
	now := c.now()
	send := make([]int, 0, len(in))
	var scratch []byte
	for i := range st.events {
		ev := &st.events[i]
		if opts.skipPrepare {
			send = append(send, i)
			continue
		}
		if reason := Prepare(ev, now, c.d.ExpiryMargin); reason != "" {
			c.log.Debug("event refused before sending", "reason", reason, "mapping", ev.Mapping, "event_id", ev.EventID)
			st.reject(rejection{i, newDeadLetter(ev, now, reason, nil, c.redact)})
			continue
		}
		var err error
		if !plainCustomData(ev.CustomData) {
			scratch, err = appendEvent(scratch[:0], ev)
		}
		if err != nil {
			// A value JSON cannot carry (NaN in custom_data): one such
			// event would fail every request it is in. Its custom_data
			// cannot be stored either.
			c.log.Warn("event cannot be encoded, dead-lettering it", "mapping", ev.Mapping, "event_id", ev.EventID, "error", err)
			bad := *ev
			bad.CustomData = nil
			st.reject(rejection{i, newDeadLetter(&bad, now, ReasonUnencodable, nil, c.redact)})
			continue
		}
		send = append(send, i)
	}

	var err error
	if c.cfg.DryRun {
		for _, i := range send {
			c.logDryRun(&st.events[i])
		}
		st.accept(send, 0)
		c.observeAccepted(st, send)
	} else {
		err = c.sendChunks(ctx, st, send)
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	out := deliverResult{Result: st.res, accepted: st.accepted}
	slices.SortFunc(st.rejected, func(a, b rejection) int { return a.idx - b.idx })
	out.rejected = st.rejected
	if err != nil {
		// Nothing of this call is dead-lettered: the caller resends the
		// whole batch and the same events are found again.
		return out, err
	}
	if len(st.rejected) == 0 || opts.keepRejected {
		return out, nil
	}
	if c.dl == nil {
		return out, fmt.Errorf("sink: %d events to dead-letter but no dead-letter file is configured", len(st.rejected))
	}
	dls := make([]DeadLetter, len(st.rejected))
	for i, r := range st.rejected {
		dls[i] = r.dl
	}
	if err := c.dl.Append(dls); err != nil {
		c.log.Error("cannot write dead letters", "batch_size", len(dls), "error", c.redact(err.Error()))
		return out, fmt.Errorf("sink: %w", err)
	}
	out.DeadLettered = len(dls)
	for i := range dls {
		c.obs.DeadLettered(&st.events[st.rejected[i].idx], dls[i].Reason)
	}
	c.log.Warn("events dead-lettered", "batch_size", len(dls), "path", c.dl.Path())
	return out, nil
}

func (c *Client) logDryRun(ev *Event) {
	var keys []string
	u := &ev.UserData
	if u.LeadID != 0 {
		keys = append(keys, "lead_id")
	}
	for _, k := range HashedKeys {
		if len(*u.Hashed(k)) > 0 {
			keys = append(keys, k)
		}
	}
	for _, k := range PlainKeys {
		if *u.Plain(k) != "" {
			keys = append(keys, k)
		}
	}
	c.log.Info("dry run: event not sent", "event_name", ev.EventName, "event_id", ev.EventID,
		"event_time", ev.EventTime, "mapping", ev.Mapping, "table", ev.Table, "user_data_keys", keys)
}

// sendChunks splits idx into requests of at most BatchSize events and sends
// them concurrently (the semaphore bounds requests in flight). The first
// error stops the others.
func (c *Client) sendChunks(ctx context.Context, st *delivery, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	chunks := slices.Collect(slices.Chunk(idx, c.d.BatchSize))
	if len(chunks) == 1 {
		return c.sendChunk(ctx, st, chunks[0])
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for _, ch := range chunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.sendChunk(ctx, st, ch); err != nil {
				errOnce.Do(func() { firstErr = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// sendChunk delivers the events at idx as one request, retrying until Meta
// gives a definite answer, and isolates bad events by bisection.
func (c *Client) sendChunk(ctx context.Context, st *delivery, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	body, err := c.body(st.events, idx)
	if err != nil {
		return err
	}
	o, err := c.sendRetrying(ctx, st, body, len(idx))
	if err != nil {
		return err
	}
	switch o.class {
	case classOK:
		warnings := 0
		if o.resp.EventsReceived < len(idx) {
			warnings = len(idx) - o.resp.EventsReceived
		}
		warnings = min(max(warnings, len(o.resp.Messages)), len(idx))
		if warnings > 0 {
			c.log.Warn("Meta accepted the request with warnings", "batch_size", len(idx),
				"events_received", o.resp.EventsReceived, "messages", c.messages(o.resp.Messages),
				"fbtrace_id", o.resp.FbtraceID)
		}
		st.accept(idx, warnings)
		c.observeAccepted(st, idx)
		return nil
	case classStale:
		now := c.now()
		var stale, fresh []int
		for _, i := range idx {
			if isStale(&st.events[i], now, c.d.ExpiryMargin) {
				stale = append(stale, i)
			} else {
				fresh = append(fresh, i)
			}
		}
		if len(stale) > 0 {
			c.log.Warn("Meta refused stale events, dead-lettering them", "batch_size", len(stale),
				"code", o.code(), "subcode", o.subcode(), "fbtrace_id", o.fbtrace())
			for _, i := range stale {
				st.reject(rejection{i, newDeadLetter(&st.events[i], now, ReasonExpired, o.graph, c.redact)})
			}
			return c.sendChunk(ctx, st, fresh)
		}
		// Stale by Meta's clock only: find the event by bisection.
	}
	// classBadEvent (or stale that our clock cannot find).
	if len(idx) == 1 {
		i := idx[0]
		c.log.Warn("Meta rejected an event, dead-lettering it", "code", o.code(), "subcode", o.subcode(),
			"fbtrace_id", o.fbtrace(), "error", c.redact(oneLine(o.describe())), "mapping", st.events[i].Mapping,
			"event_id", st.events[i].EventID)
		reason := fmt.Sprintf("rejected by Meta: Graph error %d/%d", o.code(), o.subcode())
		st.reject(rejection{i, newDeadLetter(&st.events[i], c.now(), reason, o.graph, c.redact)})
		return nil
	}
	half := len(idx) / 2
	c.log.Debug("Meta rejected the request, splitting it to find the bad events", "batch_size", len(idx),
		"code", o.code(), "subcode", o.subcode(), "fbtrace_id", o.fbtrace())
	if err := c.sendChunk(ctx, st, idx[:half]); err != nil {
		return err
	}
	return c.sendChunk(ctx, st, idx[half:])
}

func (c *Client) messages(ms []json.RawMessage) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString("; ")
		}
		b.Write(m)
		if b.Len() > 500 {
			break
		}
	}
	return c.redact(oneLine(b.String()))
}

// body encodes the request for the events at idx.
func (c *Client) body(events []Event, idx []int) ([]byte, error) {
	// About 480 bytes per event with a lead id and three hashed values.
	b, err := appendRequest(make([]byte, 0, 128+512*len(idx)), events, idx, c.token, c.proof, c.cfg.TestEventCode)
	if err != nil {
		// Only a custom_data value that JSON cannot hold fails.
		return nil, fmt.Errorf("sink: encode request: %s", c.redact(err.Error()))
	}
	return b, nil
}

// sendRetrying posts body until Meta gives a definite answer (accepted,
// stale, bad event), waiting out transient failures, throttling and halts.
// It returns an error only when ctx ends (or on halt with failOnHalt).
func (c *Client) sendRetrying(ctx context.Context, st *delivery, body []byte, n int) (outcome, error) {
	transient := 0
	for attempt := 1; ; attempt++ {
		if err := c.acquire(ctx); err != nil {
			return outcome{}, err
		}
		c.log.Debug("sending request", "batch_size", n, "attempt", attempt)
		began := time.Now()
		o, aborted := c.post(ctx, body)
		<-c.sem
		if aborted {
			return outcome{}, fmt.Errorf("sink: delivery stopped: %w", ctx.Err())
		}
		st.addRequest()
		c.observeRequest(&o, n, time.Since(began))

		switch o.class {
		case classOK, classStale, classBadEvent:
			c.resume()
			return o, nil
		case classTransient:
			transient++
			wait := c.backoff(transient)
			c.log.Warn("Meta unavailable, retrying", "batch_size", n, "attempt", attempt, "wait", wait,
				"code", o.code(), "subcode", o.subcode(), "fbtrace_id", o.fbtrace(),
				"error", c.redact(oneLine(o.describe())))
			if err := sleep(ctx, wait); err != nil {
				return outcome{}, err
			}
		case classThrottled:
			wait := c.throttle(o.wait)
			c.log.Warn("Meta is throttling, pausing all sending", "batch_size", n, "attempt", attempt,
				"wait", wait, "hinted", o.wait > 0, "code", o.code(), "subcode", o.subcode(),
				"fbtrace_id", o.fbtrace())
		case classHalt:
			reason := c.redact(haltReason(&o, &c.cfg))
			if st.opts.failOnHalt {
				c.log.Error("delivery halted: fix the configuration", "reason", reason, "code", o.code(),
					"subcode", o.subcode(), "fbtrace_id", o.fbtrace())
				return outcome{}, &HaltError{Reason: reason, Code: o.code(), Subcode: o.subcode()}
			}
			c.halt(reason, &o, attempt)
		}
	}
}

// observeRequest reports one answered request to the Observer.
func (c *Client) observeRequest(o *outcome, n int, d time.Duration) {
	info := RequestInfo{Class: o.class.String(), Code: o.code(), Subcode: o.subcode(), Events: n, Duration: d}
	if o.class == classOK {
		info.Warnings = min(max(n-o.resp.EventsReceived, len(o.resp.Messages), 0), n)
	}
	c.obs.Request(info)
}

// observeAccepted reports the accepted events at idx to the Observer.
func (c *Client) observeAccepted(st *delivery, idx []int) {
	for _, i := range idx {
		c.obs.Accepted(&st.events[i])
	}
}

// HaltError is returned by Replay when Meta refuses the configuration.
type HaltError struct {
	Reason        string
	Code, Subcode int
}

func (e *HaltError) Error() string { return "sink: halted: " + e.Reason }

// post sends one request. aborted means ctx ended before an answer.
func (c *Client) post(ctx context.Context, body []byte) (o outcome, aborted bool) {
	rctx, cancel := context.WithTimeout(ctx, c.d.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return outcome{class: classHalt, err: fmt.Errorf("build request: %s", c.redact(err.Error()))}, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "leadtail")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{}, true
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return outcome{class: classTransient, err: fmt.Errorf("no answer within %s (request_timeout)", c.d.RequestTimeout)}, false
		}
		return outcome{class: classTransient, err: errors.New(c.redact(err.Error()))}, false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		if ctx.Err() != nil {
			return outcome{}, true
		}
		return outcome{class: classTransient, status: resp.StatusCode,
			err: fmt.Errorf("HTTP %d, reading the answer: %s", resp.StatusCode, c.redact(err.Error()))}, false
	}
	return classify(resp.StatusCode, resp.Header, data, time.Now()), false
}

// redact removes the token, the app secret and the proof from s.
func (c *Client) redact(s string) string {
	for _, secret := range []string{c.token, c.cfg.AppSecret.Reveal(), c.proof} {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	return s
}

// backoff is the n-th (1-based) wait of a jittered exponential backoff:
// uniformly in [base/2, base] where base = RetryMin·2^(n-1), capped at
// RetryMax, never below RetryMin.
func (c *Client) backoff(n int) time.Duration {
	base := c.d.RetryMin
	for i := 1; i < n && base < c.d.RetryMax; i++ {
		base *= 2
	}
	base = min(base, c.d.RetryMax)
	half := base / 2
	d := half + time.Duration(c.int64N(int64(half)+1))
	return min(max(d, c.d.RetryMin), c.d.RetryMax)
}

func (c *Client) int64N(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if c.rnd == nil {
		return rand.Int64N(n)
	}
	c.randMu.Lock()
	defer c.randMu.Unlock()
	return c.rnd.Int64N(n)
}

// acquire waits until sending is not paused (throttled or halted) and a
// request slot is free, and takes the slot. A pause that began while
// waiting for the slot is honoured too.
func (c *Client) acquire(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sink: delivery stopped: %w", err)
		}
		if d, wake := c.pauseLeft(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-wake: // resumed early: another request got through
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("sink: delivery stopped: %w", ctx.Err())
			}
			t.Stop()
			continue
		}
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("sink: delivery stopped: %w", ctx.Err())
		}
		if d, _ := c.pauseLeft(); d <= 0 {
			return nil
		}
		<-c.sem
	}
}

// pauseLeft is how long sending stays paused, and a channel closed when
// the pause is lifted early.
func (c *Client) pauseLeft() (time.Duration, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Until(c.pauseUntil), c.wake
}

// throttle pauses all sending for Meta's hint (capped), or for the next
// step of the client-wide backoff when there is none. It returns the pause.
func (c *Client) throttle(hint time.Duration) time.Duration {
	c.mu.Lock()
	wait := hint
	if wait <= 0 {
		c.throttleN++
		n := c.throttleN
		c.mu.Unlock()
		wait = c.backoff(n)
		c.mu.Lock()
	}
	wait = min(wait, c.maxPause)
	until := time.Now().Add(wait)
	if until.After(c.pauseUntil) {
		c.pauseUntil, c.pauseHalt = until, false
	}
	c.state.Throttled = true
	if until.After(c.state.Until) {
		c.state.Until = until
	}
	c.mu.Unlock()
	c.notify()
	return wait
}

// halt stops all sending until HaltRetry from now and records why.
func (c *Client) halt(reason string, o *outcome, attempt int) {
	c.mu.Lock()
	now := time.Now()
	if until := now.Add(c.d.HaltRetry); until.After(c.pauseUntil) {
		c.pauseUntil, c.pauseHalt = until, true
	}
	changed := !c.state.Halted || c.state.Reason != reason
	if !c.state.Halted {
		c.state.Since = now
	}
	c.state.Halted, c.state.Reason = true, reason
	c.mu.Unlock()
	if changed {
		c.log.Error("delivery halted: fix the configuration", "reason", reason, "code", o.code(),
			"subcode", o.subcode(), "fbtrace_id", o.fbtrace(), "wait", c.d.HaltRetry)
	} else {
		c.log.Debug("still halted", "attempt", attempt, "code", o.code(), "subcode", o.subcode(),
			"fbtrace_id", o.fbtrace(), "wait", c.d.HaltRetry)
	}
	c.notify()
}

// resume records a definite answer from Meta: a halt is over (and its
// pause lifted, waking the waiting requests); a throttle is over once its
// pause has run out (an answer to a request sent before the throttle says
// nothing about it).
func (c *Client) resume() {
	c.mu.Lock()
	wasHalted := c.state.Halted
	changed := false
	if c.state.Halted {
		c.state.Halted, c.state.Reason, c.state.Since = false, "", time.Time{}
		changed = true
		if c.pauseHalt && !c.pauseUntil.IsZero() {
			c.pauseUntil, c.pauseHalt = time.Time{}, false
			close(c.wake)
			c.wake = make(chan struct{})
		}
	}
	if c.state.Throttled && !time.Now().Before(c.pauseUntil) {
		c.state.Throttled, c.state.Until = false, time.Time{}
		c.throttleN = 0
		changed = true
	}
	c.mu.Unlock()
	if wasHalted {
		c.log.Info("delivery resumed: Meta accepts the configuration again")
	}
	if changed {
		c.notify()
	}
}

// notify calls OnState with the current state if it differs from the last
// one reported. notifyMu keeps calls ordered and never concurrent.
func (c *Client) notify() {
	if c.onState == nil {
		return
	}
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	s := c.State()
	if s == c.lastNotified {
		return
	}
	c.lastNotified = s
	c.onState(s)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sink: delivery stopped: %w", ctx.Err())
	}
}

// Replay re-sends the dead letters that are still valid (Prepare passes
// with the current clock) through the normal delivery path and removes
// those Meta accepts from the file. Still-invalid ones and ones Meta
// rejects again stay (the latter with Meta's new error). Records appended
// by a running daemon meanwhile are preserved.
//
// sent counts the events accepted and removed, left the records remaining
// from those read. Unlike Deliver, Replay does not wait out a halt: it
// returns a *HaltError so that the command ends. On any error, what was
// accepted until then is still removed.
func (c *Client) Replay(ctx context.Context) (sent, left int, err error) {
	if c.dl == nil {
		return 0, 0, errors.New("sink: replay: no dead-letter file configured")
	}
	if c.cfg.DryRun {
		return 0, 0, errors.New("sink: replay: meta.dry_run is set, nothing would be sent (dead letters left as they are)")
	}
	recs, prefix, err := c.dl.snapshot()
	if err != nil {
		return 0, 0, err
	}
	if len(recs) == 0 {
		return 0, 0, nil
	}
	now := c.now()
	var (
		events []Event
		from   []int // index into recs of each event
		keep   = make([]bool, len(recs))
	)
	for i := range recs {
		ev := recs[i].event()
		if reason := Prepare(&ev, now, c.d.ExpiryMargin); reason != "" {
			if recs[i].Code == 0 {
				recs[i].Reason = reason
			}
			keep[i] = true
			continue
		}
		events = append(events, ev)
		from = append(from, i)
	}
	res, derr := c.deliver(ctx, events, deliverOpts{failOnHalt: true, keepRejected: true})
	for _, r := range res.rejected {
		if derr == nil {
			recs[from[r.idx]] = r.dl // keep Meta's latest answer
		}
	}
	for j, i := range from {
		if res.accepted != nil && res.accepted[j] {
			sent++
		} else {
			keep[i] = true
		}
	}
	var kept []DeadLetter
	for i := range recs {
		if keep[i] {
			kept = append(kept, recs[i])
		}
	}
	if sent > 0 || (derr == nil && len(res.rejected) > 0) {
		if err := c.dl.rewriteFrom(prefix, kept); err != nil {
			return 0, len(recs), errors.Join(derr, err)
		}
	}
	c.log.Info("replay finished", "sent", sent, "left", len(kept))
	return sent, len(kept), derr
}
