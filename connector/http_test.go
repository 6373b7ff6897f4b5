package connector

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/sink"
)

type streamingSource struct {
	fakeSource
	mu     sync.Mutex
	up     bool
	reason string
}

func (s *streamingSource) Streaming() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up, s.reason
}

type fixedState struct {
	mu sync.Mutex
	st sink.State
}

func (f *fixedState) State() sink.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func TestHealthEndpoints(t *testing.T) {
	src := &streamingSource{up: true}
	snk := &fixedState{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, ln, readiness(src, snk), nil, hclog.NewNullLogger()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveHTTP: %v", err)
		}
	})
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		name     string
		up       bool
		halted   bool
		wantCode int
		wantBody string
	}{
		{"streaming", true, false, 200, "ready"},
		{"replication down", false, false, 503, "source: reconnecting"},
		{"token expired", true, true, 503, "sink halted: token expired"},
		{"recovered", true, false, 200, "ready"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src.mu.Lock()
			src.up, src.reason = tc.up, "reconnecting"
			src.mu.Unlock()
			snk.mu.Lock()
			snk.st = sink.State{Halted: tc.halted, Reason: "token expired"}
			snk.mu.Unlock()
			code, body := get("/readyz")
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("/readyz = %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
			if code, _ := get("/healthz"); code != 200 {
				t.Fatalf("/healthz = %d while the process lives", code)
			}
		})
	}
}
