package metatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sink"
)

// testNow is the fake's clock in these tests.
var testNow = time.Date(2026, 9, 10, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// leadID17 does not survive float64 (2^53 ≈ 9.007e15): it must reach the
// fake and come out of Accepted exactly.
const (
	leadID17    = "12345678901234567"
	leadID17Int = int64(12345678901234567)
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

var (
	hashEm = sha("jane@example.com")
	hashPh = sha("41791234567")
)

// unix renders t as a JSON integer.
func unix(t time.Time) json.Number { return json.Number(strconv.FormatInt(t.Unix(), 10)) }

// goodEvent is an event leadtail would send: accepted with no Violation.
func goodEvent(id string) map[string]any {
	return map[string]any{
		"event_name":    "marketing_qualified_lead",
		"event_time":    unix(testNow.Add(-time.Hour)),
		"action_source": "system_generated",
		"event_id":      id,
		"user_data": map[string]any{
			"lead_id": json.Number(leadID17),
			"em":      []any{hashEm},
			"ph":      []any{hashPh},
			"fbc":     "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
		},
		"custom_data": map[string]any{"event_source": "crm", "lead_event_source": "Acme CRM"},
	}
}

// userData returns the user_data map of ev for editing.
func userData(ev map[string]any) map[string]any { return ev["user_data"].(map[string]any) }

// reqBody wraps events into a request body with the default token.
func reqBody(events ...map[string]any) map[string]any {
	data := make([]any, len(events))
	for i, e := range events {
		data[i] = e
	}
	return map[string]any{"data": data, "access_token": DefaultAccessToken}
}

func eventsPath(dataset string) string { return "/v26.0/" + dataset + "/events" }

// request is one HTTP request to the fake.
type request struct {
	method string
	path   string // with query, if any
	ctype  string
	body   []byte
	header http.Header
}

// jsonRequest is a POST of b to the default dataset's events edge.
func jsonRequest(t testing.TB, b any) request {
	t.Helper()
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return request{method: http.MethodPost, path: eventsPath(DefaultDatasetID), ctype: "application/json", body: raw}
}

// answer is what the fake sent back.
type answer struct {
	status int
	header http.Header
	raw    []byte
	err    sink.GraphError // when status != 200
	ok     sink.Response   // when status == 200
}

// send performs rq against s with a 10 s safety deadline.
func send(t testing.TB, s *Server, rq request) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := sendCtx(ctx, s, rq)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	return a
}

func sendCtx(ctx context.Context, s *Server, rq request) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, rq.method, s.URL()+rq.path, bytes.NewReader(rq.body))
	if err != nil {
		return answer{}, err
	}
	for k, vs := range rq.header {
		req.Header[k] = vs
	}
	if rq.ctype != "" {
		req.Header.Set("Content-Type", rq.ctype)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(raw, &a.ok)
	} else if json.Valid(raw) {
		var eb sink.ErrorBody
		err = json.Unmarshal(raw, &eb)
		a.err = eb.Error
	}
	return a, err
}

// mustPost sends b and fails unless it is accepted.
func mustPost(t testing.TB, s *Server, b any) answer {
	t.Helper()
	a := send(t, s, jsonRequest(t, b))
	if a.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", a.status, a.raw)
	}
	return a
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
