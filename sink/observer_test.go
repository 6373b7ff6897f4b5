package sink

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// recordingObserver keeps what a Client reported.
type recordingObserver struct {
	mu       sync.Mutex
	requests []RequestInfo
	accepted []string // event ids
	dead     []string // "event_id: reason"
}

func (o *recordingObserver) Request(r RequestInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, r)
}

func (o *recordingObserver) Accepted(ev *Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.accepted = append(o.accepted, ev.EventID)
}

func (o *recordingObserver) DeadLettered(ev *Event, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dead = append(o.dead, ev.EventID+": "+reason)
}

func TestObserver(t *testing.T) {
	type req struct {
		class         string
		code, subcode int
		events        int
	}
	cases := []struct {
		name     string
		events   func() []Event
		answer   func(w http.ResponseWriter, n int)
		requests []req
		accepted []string
		dead     []string
	}{
		{
			name:     "accepted",
			events:   func() []Event { return goodEvents(2) },
			answer:   func(w http.ResponseWriter, n int) { writeJSON(w, 200, okBody(2)) },
			requests: []req{{"ok", 0, 0, 2}},
			accepted: []string{"ev-00000", "ev-00001"},
		},
		{
			name:   "transient then accepted",
			events: func() []Event { return goodEvents(1) },
			answer: func(w http.ResponseWriter, n int) {
				if n == 1 {
					writeGraphErr(w, 500, 2, 0, "Service temporarily unavailable")
					return
				}
				writeJSON(w, 200, okBody(1))
			},
			requests: []req{{"transient", 2, 0, 1}, {"ok", 0, 0, 1}},
			accepted: []string{"ev-00000"},
		},
		{
			name:   "bad event bisected and dead-lettered",
			events: func() []Event { return goodEvents(2) },
			answer: func(w http.ResponseWriter, n int) {
				// The whole batch and then the first event are refused.
				if n <= 2 {
					writeGraphErr(w, 400, 100, 2804019, "Invalid parameter")
					return
				}
				writeJSON(w, 200, okBody(1))
			},
			requests: []req{{"bad_event", 100, 2804019, 2}, {"bad_event", 100, 2804019, 1}, {"ok", 0, 0, 1}},
			accepted: []string{"ev-00001"},
			dead:     []string{"ev-00000: rejected by Meta: Graph error 100/2804019"},
		},
		{
			name: "refused before sending",
			events: func() []Event {
				evs := goodEvents(2)
				evs[1].EventTime = testNow.Add(-8 * 24 * time.Hour).Unix()
				return evs
			},
			answer:   func(w http.ResponseWriter, n int) { writeJSON(w, 200, okBody(1)) },
			requests: []req{{"ok", 0, 0, 1}},
			accepted: []string{"ev-00000"},
			dead:     []string{"ev-00001: " + ReasonExpired},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGraph(t, func(w http.ResponseWriter, _ *http.Request, n int, _ []byte) { tc.answer(w, n) })
			obs := &recordingObserver{}
			c := newTestClient(t, g.URL, func(_ *Config, d *DeliveryConfig, o *Options) {
				o.Observer = obs
				d.MaxInFlight = 1 // bisection halves go in order
			})
			if _, err := c.Deliver(ctxTimeout(t, 10*time.Second), tc.events()); err != nil {
				t.Fatal(err)
			}
			var got []req
			for _, r := range obs.requests {
				got = append(got, req{r.Class, r.Code, r.Subcode, r.Events})
				if r.Duration <= 0 {
					t.Errorf("request without duration: %+v", r)
				}
			}
			if !slices.Equal(got, tc.requests) {
				t.Errorf("requests %v, want %v", got, tc.requests)
			}
			if !slices.Equal(obs.accepted, tc.accepted) {
				t.Errorf("accepted %v, want %v", obs.accepted, tc.accepted)
			}
			if !slices.Equal(obs.dead, tc.dead) {
				t.Errorf("dead-lettered %v, want %v", obs.dead, tc.dead)
			}
			if n, err := c.dl.Count(); err != nil || n != len(tc.dead) {
				t.Errorf("dead-letter file holds %d (%v), the observer saw %d", n, err, len(tc.dead))
			}
		})
	}
}

func TestObserverWarnings(t *testing.T) {
	// An answer with messages counts a warning; RequestInfo carries no
	// text at all, so nothing from Meta's messages reaches metrics.
	g := startGraph(t, func(w http.ResponseWriter, _ *http.Request, n int, _ []byte) {
		writeJSON(w, 200, fmt.Sprintf(`{"events_received":1,"messages":["about %s"],"fbtrace_id":"T"}`, "em"))
	})
	obs := &recordingObserver{}
	c := newTestClient(t, g.URL, func(_ *Config, _ *DeliveryConfig, o *Options) { o.Observer = obs })
	if _, err := c.Deliver(ctxTimeout(t, 10*time.Second), goodEvents(1)); err != nil {
		t.Fatal(err)
	}
	if len(obs.requests) != 1 || obs.requests[0].Warnings != 1 {
		t.Fatalf("requests %+v: want one with one warning", obs.requests)
	}
}
