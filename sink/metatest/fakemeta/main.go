// Command fakemeta serves metatest's strict fake of Meta's Conversions API
// (POST /{api_version}/{dataset_id}/events) for demos and end-to-end tests of
// the built leadtail binary:
//
//	go run ./sink/metatest/fakemeta -listen 127.0.0.1:8089 -dataset 123456789012345 -token test-token
//
// Point leadtail's meta.endpoint at http://127.0.0.1:8089. Each accepted
// event is printed to stdout as one line (event name, event_id, lead_id,
// time; never contact data). Logs go to stderr.
//
// Besides the Graph path it serves, for tests:
//
//	GET  /_metatest/accepted       accepted events, JSON lines {"request_id","test_event_code","event"}
//	GET  /_metatest/requests       the request log, JSON lines
//	GET  /_metatest/violations     what leadtail must never send, JSON lines (expect none)
//	POST /_metatest/faults         inject a fault: {"kind":"throttle","code":4,"times":1,
//	                               "delay":"2s","retry_after":"30s","usage_regain_minutes":5}
//	POST /_metatest/token/expire   make the token expired (190/463)
//	POST /_metatest/token/restore  undo it
//
// SIGINT or SIGTERM stops it gracefully: held requests are dropped, the
// listener drains, the remaining accepted events are printed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/sink/metatest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "fakemeta:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, if set, receives the listening address.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(addr string)) error {
	fs := flag.NewFlagSet("fakemeta", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8089", "address to listen on")
	dataset := fs.String("dataset", metatest.DefaultDatasetID, "the dataset (pixel) id that exists")
	token := fs.String("token", metatest.DefaultAccessToken, "the valid access token")
	appSecret := fs.String("app-secret", "", "app secret; when set, appsecret_proof is required")
	minVersion := fs.Int("min-version", metatest.DefaultMinAPIVersion, "oldest Graph API version accepted (older: code 2635)")
	logLevel := fs.String("log-level", "info", "stderr log level (trace, debug, info, warn, error); debug logs every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		return fmt.Errorf("unknown -log-level %q", *logLevel)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "fakemeta", Output: stderr, Level: level})

	s := metatest.New(metatest.Options{
		DatasetID: *dataset, AccessToken: *token, AppSecret: *appSecret,
		MinAPIVersion: *minVersion, Logger: log.Named("graph"),
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newMux(s, log), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	out := &lineWriter{w: stdout}
	printCtx, stopPrinting := context.WithCancel(context.Background())
	printed := make(chan int, 1)
	go func() { printed <- printAccepted(printCtx, s, out) }()

	addr := ln.Addr().String()
	log.Info("serving the fake Conversions API", "endpoint", "http://"+addr, "dataset", *dataset,
		"min_version", fmt.Sprintf("v%d.0", *minVersion), "app_secret_required", *appSecret != "")
	if ready != nil {
		ready(addr)
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		stopPrinting()
		<-printed
		s.Close()
		return err
	}
	log.Info("shutting down")
	s.Close() // drop requests held by timeout or slow faults first
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	stopPrinting()
	n := <-printed
	for _, r := range s.Accepted()[n:] {
		out.line(formatEvent(r))
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("stopped", "accepted", len(s.Accepted()), "requests", len(s.Requests()))
	return err
}

// printAccepted prints each accepted event as it arrives until ctx ends,
// and returns how many it printed.
func printAccepted(ctx context.Context, s *metatest.Server, out *lineWriter) int {
	n := 0
	for s.WaitAccepted(ctx, n+1) == nil {
		acc := s.Accepted()
		for _, r := range acc[n:] {
			out.line(formatEvent(r))
		}
		n = len(acc)
	}
	return n
}

// formatEvent renders one accepted event for a person: stage, event_id,
// lead_id, time, request. Never contact data, not even hashed.
func formatEvent(r metatest.Received) string {
	e := r.Event
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s lead_id=%d time=%s req=%d",
		word(e.EventName), word(e.EventID), e.UserData.LeadID,
		time.Unix(e.EventTime, 0).UTC().Format(time.RFC3339), r.RequestID)
	if r.TestEventCode != "" {
		fmt.Fprintf(&b, " test_event_code=%s", word(r.TestEventCode))
	}
	return b.String()
}

// word quotes s when it is empty or has spaces, so a line splits cleanly.
func word(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\r\n\"") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// lineWriter serialises lines to stdout.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, s)
}

// newMux routes /_metatest/ to the inspection endpoints, everything else to
// the fake Graph API.
func newMux(s *metatest.Server, log hclog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	mux.HandleFunc("GET /_metatest/accepted", func(w http.ResponseWriter, _ *http.Request) {
		type line struct {
			RequestID     int             `json:"request_id"`
			TestEventCode string          `json:"test_event_code,omitempty"`
			Event         json.RawMessage `json:"event"`
		}
		var lines []any
		for _, r := range s.Accepted() {
			lines = append(lines, line{r.RequestID, r.TestEventCode, r.Raw})
		}
		writeLines(w, lines)
	})
	mux.HandleFunc("GET /_metatest/requests", func(w http.ResponseWriter, _ *http.Request) {
		type line struct {
			ID      int    `json:"id"`
			Status  int    `json:"status"`
			Code    int    `json:"code,omitempty"`
			Subcode int    `json:"subcode,omitempty"`
			Events  int    `json:"events"`
			Fault   string `json:"fault,omitempty"`
			Reason  string `json:"reason,omitempty"`
		}
		var lines []any
		for _, r := range s.Requests() {
			lines = append(lines, line{r.ID, r.Status, r.Code, r.Subcode, r.Events, r.Fault, r.Reason})
		}
		writeLines(w, lines)
	})
	mux.HandleFunc("GET /_metatest/violations", func(w http.ResponseWriter, _ *http.Request) {
		var lines []any
		for _, v := range s.Violations() {
			lines = append(lines, v)
		}
		writeLines(w, lines)
	})
	mux.HandleFunc("POST /_metatest/faults", func(w http.ResponseWriter, r *http.Request) {
		f, err := decodeFault(r.Body)
		if err == nil {
			err = inject(s, f)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.Info("fault injected", "kind", f.Kind.String(), "code", f.Code, "subcode", f.Subcode, "times", max(f.Times, 1))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_metatest/token/expire", func(w http.ResponseWriter, _ *http.Request) {
		s.ExpireToken()
		log.Info("token expired")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_metatest/token/restore", func(w http.ResponseWriter, _ *http.Request) {
		s.RestoreToken()
		log.Info("token restored")
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func writeLines(w http.ResponseWriter, lines []any) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			return
		}
	}
}

// decodeFault reads the JSON form of a metatest.Fault; durations are Go
// duration strings ("1.5s").
func decodeFault(r io.Reader) (metatest.Fault, error) {
	var in struct {
		Kind               metatest.FaultKind `json:"kind"`
		Code               int                `json:"code"`
		Subcode            int                `json:"subcode"`
		Times              int                `json:"times"`
		Delay              string             `json:"delay"`
		RetryAfter         string             `json:"retry_after"`
		UsageRegainMinutes int                `json:"usage_regain_minutes"`
	}
	dec := json.NewDecoder(io.LimitReader(r, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return metatest.Fault{}, fmt.Errorf("fault: %w", err)
	}
	f := metatest.Fault{Kind: in.Kind, Code: in.Code, Subcode: in.Subcode, Times: in.Times, UsageRegainMinutes: in.UsageRegainMinutes}
	var err error
	if in.Delay != "" {
		if f.Delay, err = time.ParseDuration(in.Delay); err != nil {
			return f, fmt.Errorf("fault delay: %w", err)
		}
	}
	if in.RetryAfter != "" {
		if f.RetryAfter, err = time.ParseDuration(in.RetryAfter); err != nil {
			return f, fmt.Errorf("fault retry_after: %w", err)
		}
	}
	return f, nil
}

// inject turns Inject's panic on a nonsensical fault into an error.
func inject(s *metatest.Server, f metatest.Fault) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	s.Inject(f)
	return nil
}
