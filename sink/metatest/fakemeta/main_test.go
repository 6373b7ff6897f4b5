package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sink/metatest"
)

const leadID17 = "12345678901234567"

var hashEm = strings.Repeat("ab", 32)

func eventBody(t *testing.T, ids ...string) []byte {
	t.Helper()
	var data []any
	for _, id := range ids {
		data = append(data, map[string]any{
			"event_name":    "Marketing Qualified Lead",
			"event_time":    json.Number(strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)),
			"action_source": "system_generated",
			"event_id":      id,
			"user_data":     map[string]any{"lead_id": json.Number(leadID17), "em": []any{hashEm}},
			"custom_data":   map[string]any{"event_source": "crm", "lead_event_source": "Acme CRM"},
		})
	}
	b, err := json.Marshal(map[string]any{"data": data, "access_token": "tok", "test_event_code": "TEST1"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, ctx context.Context, url, ctype string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, ctx context.Context, url string) []string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// syncBuffer is an io.Writer safe for the printer goroutine.
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

// TestRun: the command serves the fake and the inspection endpoints,
// prints accepted events, and stops cleanly when its context ends.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	addrc := make(chan string, 1)
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"-listen", "127.0.0.1:0", "-dataset", "111111111111111", "-token", "tok"},
			&stdout, &stderr, func(a string) { addrc <- a })
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	endpoint := base + "/v26.0/111111111111111/events"

	// An accepted request.
	if st, body := post(t, ctx, endpoint, "application/json", eventBody(t, "ev-1", "ev-2")); st != 200 || !strings.Contains(body, `"events_received":2`) {
		t.Fatalf("post: %d %s", st, body)
	}
	// A refused one (wrong dataset).
	if st, _ := post(t, ctx, base+"/v26.0/222222222222222/events", "application/json", eventBody(t, "ev-3")); st != 400 {
		t.Fatalf("wrong dataset: %d", st)
	}
	// A fault through the control endpoint.
	if st, body := post(t, ctx, base+"/_metatest/faults", "application/json",
		[]byte(`{"kind":"throttle","code":80004,"retry_after":"30s","usage_regain_minutes":5}`)); st != 204 {
		t.Fatalf("inject: %d %s", st, body)
	}
	if st, body := post(t, ctx, endpoint, "application/json", eventBody(t, "ev-4")); st != 400 || !strings.Contains(body, `"code":80004`) {
		t.Fatalf("throttled: %d %s", st, body)
	}
	if st, _ := post(t, ctx, base+"/_metatest/faults", "application/json", []byte(`{"kind":"throttle","code":100}`)); st != 400 {
		t.Fatalf("bad fault accepted: %d", st)
	}
	if st, _ := post(t, ctx, base+"/_metatest/token/expire", "", nil); st != 204 {
		t.Fatal("expire")
	}
	if st, body := post(t, ctx, endpoint, "application/json", eventBody(t, "ev-5")); st != 400 || !strings.Contains(body, `"error_subcode":463`) {
		t.Fatalf("expired: %d %s", st, body)
	}
	if st, _ := post(t, ctx, base+"/_metatest/token/restore", "", nil); st != 204 {
		t.Fatal("restore")
	}

	acc := get(t, ctx, base+"/_metatest/accepted")
	if len(acc) != 2 || !strings.Contains(acc[0], `"lead_id":`+leadID17) || !strings.Contains(acc[0], `"request_id":1`) ||
		!strings.Contains(acc[0], `"test_event_code":"TEST1"`) {
		t.Errorf("accepted lines %q", acc)
	}
	reqs := get(t, ctx, base+"/_metatest/requests")
	if len(reqs) != 4 || !strings.Contains(reqs[1], `"subcode":33`) || !strings.Contains(reqs[2], `"fault":"throttle"`) {
		t.Errorf("request lines %q", reqs)
	}
	if v := get(t, ctx, base+"/_metatest/violations"); len(v) != 0 {
		t.Errorf("violations %q", v)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	out := stdout.String()
	want := `"Marketing Qualified Lead" ev-1 lead_id=` + leadID17 + " time="
	if !strings.Contains(out, want) || !strings.Contains(out, "ev-2") || strings.Count(out, "\n") != 2 {
		t.Errorf("stdout %q, want lines like %q", out, want)
	}
	if strings.Contains(out, hashEm) || strings.Contains(stderr.String(), "tok\"") || strings.Contains(stderr.String(), hashEm) {
		t.Errorf("contact data or token printed:\n%s\n%s", out, stderr.String())
	}
}

// TestRunFlags: bad flags fail fast.
func TestRunFlags(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-log-level", "loud"}, {"-listen", "256.0.0.1:1"}} {
		var errOut bytes.Buffer
		if err := run(context.Background(), args, io.Discard, &errOut, nil); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestFormatEvent: one readable line, no contact data.
func TestFormatEvent(t *testing.T) {
	var r metatest.Received
	r.Event.EventName = "qualified"
	r.Event.EventID = "abc"
	r.Event.EventTime = 1757505600
	r.Event.UserData.LeadID = 12345678901234567
	r.Event.UserData.Em = []string{hashEm}
	r.RequestID = 3
	got := formatEvent(r)
	want := "qualified abc lead_id=12345678901234567 time=2025-09-10T12:00:00Z req=3"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
