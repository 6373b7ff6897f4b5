package metatest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFaults: each fault answers like Meta and keeps nothing.
func TestFaults(t *testing.T) {
	cases := []struct {
		name      string
		fault     Fault
		status    int
		code      int
		subcode   int
		transient bool
	}{
		{"http 5xx", Fault{Kind: FaultHTTP5xx}, 500, 1, 0, false},
		{"transient", Fault{Kind: FaultTransient}, 500, 2, 0, true},
		{"error 10 permission", Fault{Kind: FaultError, Code: 10}, 403, 10, 0, false},
		{"error 200 permission", Fault{Kind: FaultError, Code: 200}, 403, 200, 0, false},
		{"error 368 policy block", Fault{Kind: FaultError, Code: 368}, 400, 368, 0, false},
		{"error 100/33 dataset", Fault{Kind: FaultError, Code: 100, Subcode: 33}, 400, 100, 33, false},
		{"error 190/463 expired", Fault{Kind: FaultError, Code: 190, Subcode: 463}, 400, 190, 463, false},
		{"error 190 invalid", Fault{Kind: FaultError, Code: 190}, 401, 190, 0, false},
		{"error 102 session", Fault{Kind: FaultError, Code: 102}, 400, 102, 0, false},
		{"error 3 capability", Fault{Kind: FaultError, Code: 3}, 400, 3, 0, false},
		{"error 21009", Fault{Kind: FaultError, Code: 21009}, 500, 21009, 0, true},
		{"error 100 with CAPI subcode", Fault{Kind: FaultError, Code: 100, Subcode: 2804050}, 400, 100, 2804050, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{Now: fixedNow})
			s.Inject(tc.fault)
			a := send(t, s, jsonRequest(t, reqBody(goodEvent("e1"))))
			if a.status != tc.status || a.err.Code != tc.code || a.err.ErrorSubcode != tc.subcode || a.err.IsTransient != tc.transient {
				t.Fatalf("got %d %d/%d transient=%v, want %d %d/%d %v: %s",
					a.status, a.err.Code, a.err.ErrorSubcode, a.err.IsTransient, tc.status, tc.code, tc.subcode, tc.transient, a.raw)
			}
			if a.err.Message == "" || a.err.Type == "" || a.err.FbtraceID == "" {
				t.Errorf("incomplete body %s", a.raw)
			}
			checkFaulted(t, s, tc.fault.Kind)
		})
	}
}

// checkFaulted: one request, logged with the fault's name, nothing kept;
// then the fault is used up and the next request is accepted.
func checkFaulted(t *testing.T, s *Server, k FaultKind) {
	t.Helper()
	if n := len(s.Accepted()); n != 0 {
		t.Errorf("%d accepted during a fault", n)
	}
	if r := s.Requests(); len(r) != 1 || r[0].Fault != k.String() {
		t.Errorf("request log %+v", r)
	}
	mustPost(t, s, reqBody(goodEvent("after")))
	if n := len(s.Accepted()); n != 1 {
		t.Errorf("%d accepted after the fault", n)
	}
}

// TestBadGateway: a 502 whose body is HTML, not JSON.
func TestBadGateway(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	s.Inject(Fault{Kind: FaultBadGateway})
	a := send(t, s, jsonRequest(t, reqBody(goodEvent("e1"))))
	if a.status != http.StatusBadGateway || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") || json.Valid(a.raw) {
		t.Fatalf("status %d, type %q, body %s", a.status, a.header.Get("Content-Type"), a.raw)
	}
	checkFaulted(t, s, FaultBadGateway)
}

// TestThrottle: every throttling code, with and without the hint headers.
func TestThrottle(t *testing.T) {
	for _, code := range []int{0, 4, 17, 32, 613, 341, 80000, 80004, 80014} {
		for _, hints := range []bool{false, true} {
			name := "code " + map[bool]string{false: "bare", true: "with hints"}[hints]
			t.Run(name+"/"+jsonNum(code), func(t *testing.T) {
				s := Start(t, Options{Now: fixedNow})
				f := Fault{Kind: FaultThrottle, Code: code}
				if hints {
					f.RetryAfter = 1500 * time.Millisecond
					f.UsageRegainMinutes = 7
				}
				s.Inject(f)
				a := send(t, s, jsonRequest(t, reqBody(goodEvent("e1"))))
				want := code
				if want == 0 {
					want = 4
				}
				if a.err.Code != want || a.status < 400 || a.status > 499 || a.err.Type != "OAuthException" {
					t.Fatalf("status %d code %d, want 4xx %d: %s", a.status, a.err.Code, want, a.raw)
				}
				if want >= 80000 && a.err.ErrorSubcode != 2446079 {
					t.Errorf("BUC subcode %d", a.err.ErrorSubcode)
				}
				ra, buc := a.header.Get("Retry-After"), a.header.Get("X-Business-Use-Case-Usage")
				if !hints {
					if ra != "" || buc != "" {
						t.Errorf("unexpected hints %q %q", ra, buc)
					}
				} else {
					if ra != "2" {
						t.Errorf("Retry-After %q, want 2", ra)
					}
					var usage map[string][]struct {
						Type                        string `json:"type"`
						CallCount                   int    `json:"call_count"`
						TotalCPUTime                int    `json:"total_cputime"`
						TotalTime                   int    `json:"total_time"`
						EstimatedTimeToRegainAccess int    `json:"estimated_time_to_regain_access"`
					}
					if err := json.Unmarshal([]byte(buc), &usage); err != nil {
						t.Fatalf("X-Business-Use-Case-Usage %q: %v", buc, err)
					}
					u := usage[DefaultDatasetID]
					if len(u) != 1 || u[0].EstimatedTimeToRegainAccess != 7 || u[0].CallCount < 100 || u[0].Type == "" {
						t.Errorf("usage %+v", usage)
					}
				}
				checkFaulted(t, s, FaultThrottle)
			})
		}
	}
}

func jsonNum(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestFaultQueue: Times and FIFO order.
func TestFaultQueue(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	s.Inject(Fault{Kind: FaultTransient, Times: 2})
	s.Inject(Fault{Kind: FaultError, Code: 368})
	var codes []int
	for i := 0; i < 4; i++ {
		a := send(t, s, jsonRequest(t, reqBody(goodEvent("e"))))
		codes = append(codes, a.err.Code)
	}
	if want := []int{2, 2, 368, 0}; !equalInts(codes, want) {
		t.Errorf("codes %v, want %v", codes, want)
	}
	if n := len(s.Accepted()); n != 1 {
		t.Errorf("accepted %d, want 1", n)
	}
	var faults []string
	for _, r := range s.Requests() {
		faults = append(faults, r.Fault)
	}
	if strings.Join(faults, ",") != "transient,transient,error," {
		t.Errorf("faults %q", faults)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestTimeoutHoldsUntilClientDeadline: no answer; the client's own deadline
// ends the request; the next request is served.
func TestTimeoutHoldsUntilClientDeadline(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	s.Inject(Fault{Kind: FaultTimeout})
	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	_, err := sendCtx(ctx, s, jsonRequest(t, reqBody(goodEvent("e1"))))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el < deadline {
		t.Errorf("returned after %v, before the deadline", el)
	}
	// The fake notices the client left and records it.
	r := waitLogged(t, s, 1)
	if r.Fault != "timeout" || r.Status != 0 || !strings.Contains(r.Reason, "client went away") {
		t.Errorf("request log %+v", r)
	}
	checkFaultedAfterwards(t, s)
}

// TestTimeoutReleasedByClose: Close does not wait for a held request.
func TestTimeoutReleasedByClose(t *testing.T) {
	s := NewServer(Options{Now: fixedNow})
	defer s.Close()
	s.Inject(Fault{Kind: FaultTimeout})
	rq := jsonRequest(t, reqBody(goodEvent("e1")))
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := sendCtx(ctx, s, rq)
		done <- err
	}()
	if err := s.waitRequests(ctx, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("held request got an answer")
		}
	case <-ctx.Done():
		t.Fatal("held request not released by Close")
	}
	if r := s.Requests(); len(r) != 1 || !strings.Contains(r[0].Reason, "server closed") {
		t.Errorf("request log %+v", r)
	}
}

// TestSlow: the answer comes after Delay and is normal.
func TestSlow(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	const delay = 150 * time.Millisecond
	s.Inject(Fault{Kind: FaultSlow, Delay: delay})
	start := time.Now()
	mustPost(t, s, reqBody(goodEvent("e1")))
	if el := time.Since(start); el < delay {
		t.Errorf("answered after %v, want >= %v", el, delay)
	}
	if r := s.Requests(); len(r) != 1 || r[0].Fault != "slow" || r[0].Status != 200 || len(s.Accepted()) != 1 {
		t.Errorf("request log %+v", r)
	}
}

// TestSlowClientGivesUp: a client deadline shorter than the delay keeps
// nothing.
func TestSlowClientGivesUp(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	s.Inject(Fault{Kind: FaultSlow, Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := sendCtx(ctx, s, jsonRequest(t, reqBody(goodEvent("e1")))); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if r := waitLogged(t, s, 1); r.Status != 0 || r.Fault != "slow" {
		t.Errorf("request log %+v", r)
	}
	if len(s.Accepted()) != 0 {
		t.Error("accepted")
	}
}

// waitLogged waits until request id has been finished (Reason or Status
// set) and returns its log.
func waitLogged(t *testing.T, s *Server, id int) RequestLog {
	t.Helper()
	var got RequestLog
	err := s.waitFor(testCtx(t), func() bool {
		if len(s.requests) < id {
			return false
		}
		got = s.requests[id-1]
		return got.Status != 0 || got.Reason != ""
	})
	if err != nil {
		t.Fatalf("request %d never finished: %v", id, err)
	}
	return got
}

func checkFaultedAfterwards(t *testing.T, s *Server) {
	t.Helper()
	mustPost(t, s, reqBody(goodEvent("after")))
	if n := len(s.Accepted()); n != 1 {
		t.Errorf("accepted %d after the fault", n)
	}
}

// TestInjectRejectsNonsense: a test bug is reported at once.
func TestInjectRejectsNonsense(t *testing.T) {
	for name, f := range map[string]Fault{
		"throttle with code 100": {Kind: FaultThrottle, Code: 100},
		"slow without delay":     {Kind: FaultSlow},
		"error without code":     {Kind: FaultError},
		"unknown kind":           {Kind: 99},
		"negative times":         {Kind: FaultHTTP5xx, Times: -1},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			New(Options{}).Inject(f)
		})
	}
}

// TestFaultKindText: names round-trip (the fakemeta command reads them).
func TestFaultKindText(t *testing.T) {
	for k := FaultHTTP5xx; k <= FaultError; k++ {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back FaultKind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("%s: %v %v", b, back, err)
		}
	}
	var k FaultKind
	if k.UnmarshalText([]byte("nope")) == nil {
		t.Error("unknown name accepted")
	}
}
