package metatest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestAppSecretProof: the test vector of [LeadtailDoc].
func TestAppSecretProof(t *testing.T) {
	const want = "d52ddf968d622d8af8677906b7fbae09ac1f89f7cd5c1584b27544624cc23e5a"
	if got := AppSecretProof("app_secret", "access_token"); got != want {
		t.Fatalf("AppSecretProof = %s, want %s", got, want)
	}
}

// TestAppSecretRequired: with an app secret, only the right proof passes.
func TestAppSecretRequired(t *testing.T) {
	const vector = "d52ddf968d622d8af8677906b7fbae09ac1f89f7cd5c1584b27544624cc23e5a"
	for _, tc := range []struct {
		name  string
		proof any // nil: absent
		ok    bool
		msg   string
	}{
		{"right proof", vector, true, ""},
		{"missing", nil, false, "API calls from the server require an appsecret_proof argument"},
		{"upper case", strings.ToUpper(vector), false, "Invalid appsecret_proof provided in the API argument"},
		{"proof of another token", AppSecretProof("app_secret", "other"), false, "Invalid appsecret_proof"},
		{"not a string", 5, false, "Invalid appsecret_proof"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{Now: fixedNow, AccessToken: "access_token", AppSecret: "app_secret"})
			b := reqBody(goodEvent("e1"))
			b["access_token"] = "access_token"
			if tc.proof != nil {
				b["appsecret_proof"] = tc.proof
			}
			a := send(t, s, jsonRequest(t, b))
			if tc.ok {
				if a.status != 200 || len(s.Accepted()) != 1 {
					t.Fatalf("status %d: %s", a.status, a.raw)
				}
				return
			}
			if a.status != 400 || a.err.Code != 100 || a.err.Type != "GraphMethodException" || a.err.Message != tc.msg && !strings.Contains(a.err.Message, tc.msg) {
				t.Fatalf("got %d %+v", a.status, a.err)
			}
			if len(s.Accepted()) != 0 {
				t.Error("accepted")
			}
		})
	}
}

// TestTokenExpiry: 190/463 OAuthException while expired, fine after restore.
func TestTokenExpiry(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	s.ExpireToken()
	for i := 0; i < 2; i++ {
		a := send(t, s, jsonRequest(t, reqBody(goodEvent("e1"))))
		if a.status != 400 || a.err.Code != 190 || a.err.ErrorSubcode != 463 || a.err.Type != "OAuthException" ||
			!strings.HasPrefix(a.err.Message, "Error validating access token: Session has expired on ") {
			t.Fatalf("got %d %s", a.status, a.raw)
		}
	}
	// A wrong token is still "invalid", not "expired".
	b := reqBody(goodEvent("e1"))
	b["access_token"] = "other"
	if a := send(t, s, jsonRequest(t, b)); a.err.Code != 190 || a.err.ErrorSubcode != 0 {
		t.Errorf("wrong token while expired: %s", a.raw)
	}
	if len(s.Accepted()) != 0 {
		t.Fatal("accepted with an expired token")
	}
	s.RestoreToken()
	mustPost(t, s, reqBody(goodEvent("e1")))
	if len(s.Accepted()) != 1 {
		t.Error("not accepted after RestoreToken")
	}
}

// TestCustomDatasetAndToken: Options override the defaults.
func TestCustomDatasetAndToken(t *testing.T) {
	s := Start(t, Options{Now: fixedNow, DatasetID: "111111111111111", AccessToken: "secret-xyz", MinAPIVersion: 26})
	b := reqBody(goodEvent("e1"))
	b["access_token"] = "secret-xyz"
	rq := jsonRequest(t, b)
	rq.path = eventsPath("111111111111111")
	mustPostRq(t, s, rq)
	rq.path = eventsPath(DefaultDatasetID)
	if a := send(t, s, rq); a.err.Code != 100 || a.err.ErrorSubcode != 33 {
		t.Errorf("default dataset: %s", a.raw)
	}
	rq.path = "/v25.0/111111111111111/events"
	if a := send(t, s, rq); a.err.Code != 2635 || !strings.Contains(a.err.Message, "v26.0") {
		t.Errorf("v25.0 with MinAPIVersion 26: %s", a.raw)
	}
	if s.DatasetID() != "111111111111111" || s.AccessToken() != "secret-xyz" || !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("accessors %q %q %q", s.DatasetID(), s.AccessToken(), s.URL())
	}
}

func mustPostRq(t *testing.T, s *Server, rq request) {
	t.Helper()
	if a := send(t, s, rq); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
}

// TestWaitAccepted: blocks until enough events arrive, or ctx ends.
func TestWaitAccepted(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() { done <- s.WaitAccepted(ctx, 3) }()

	mustPost(t, s, reqBody(goodEvent("a")))
	select {
	case err := <-done:
		t.Fatalf("returned after 1 of 3 events: %v", err)
	default:
	}
	mustPost(t, s, reqBody(goodEvent("b"), goodEvent("c")))
	if err := <-done; err != nil {
		t.Fatalf("WaitAccepted: %v", err)
	}
	// Already satisfied: returns at once.
	if err := s.WaitAccepted(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	// Refused requests do not count; the context ends the wait.
	send(t, s, jsonRequest(t, map[string]any{"data": []any{}, "access_token": DefaultAccessToken}))
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.WaitAccepted(short, 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitAccepted = %v, want deadline exceeded", err)
	}
}

// TestConcurrentRequests: under -race, events of one request stay together
// and nothing is lost.
func TestConcurrentRequests(t *testing.T) {
	s := Start(t, Options{Now: fixedNow, Logger: hclog.NewNullLogger()})
	const workers, perWorker, perRequest = 8, 5, 3
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := 0; w < workers; w++ {
		rqs := make([]request, perWorker)
		for i := range rqs {
			evs := make([]map[string]any, perRequest)
			for j := range evs {
				evs[j] = goodEvent(fmt.Sprintf("w%d-r%d-e%d", w, i, j))
			}
			rqs[i] = jsonRequest(t, reqBody(evs...))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, rq := range rqs {
				a, err := sendCtx(context.Background(), s, rq)
				if err == nil && a.status != http.StatusOK {
					err = fmt.Errorf("status %d: %s", a.status, a.raw)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	acc := s.Accepted()
	if len(acc) != workers*perWorker*perRequest || len(s.Requests()) != workers*perWorker {
		t.Fatalf("accepted %d, requests %d", len(acc), len(s.Requests()))
	}
	for i := 0; i < len(acc); i += perRequest {
		prefix := acc[i].Event.EventID[:strings.LastIndex(acc[i].Event.EventID, "-")]
		for j := 1; j < perRequest; j++ {
			if acc[i+j].RequestID != acc[i].RequestID || !strings.HasPrefix(acc[i+j].Event.EventID, prefix) {
				t.Fatalf("events of request %d interleaved", acc[i].RequestID)
			}
		}
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}
}

// TestHandlerWithoutListener: New + Handler serve without httptest's
// listener (the fakemeta command); Close is harmless.
func TestHandlerWithoutListener(t *testing.T) {
	s := New(Options{Now: fixedNow})
	defer s.Close()
	if s.URL() != "" {
		t.Errorf("URL %q", s.URL())
	}
	rq := jsonRequest(t, reqBody(goodEvent("e1")))
	req, err := http.NewRequest(rq.method, "http://fake"+rq.path, strings.NewReader(string(rq.body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", rq.ctype)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || len(s.Accepted()) != 1 {
		t.Fatalf("status %d body %s", rec.Code, rec.Body.String())
	}
}
