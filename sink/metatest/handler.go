package metatest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// serveHTTP answers one request: fault first (Meta's outages do not look at
// the payload), then the strict checks, then acceptance.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	id, fault := s.begin()

	// Read the whole body before anything else: net/http only notices a
	// client that went away once the body is consumed, and FaultTimeout
	// relies on that.
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))

	if fault != nil {
		switch fault.Kind {
		case FaultTimeout:
			s.hold(id, r)
			return
		case FaultSlow:
			if !s.sleep(r.Context(), fault.Delay) {
				s.abandon(id, r, "slow: client gone or server closed during the delay")
				return
			}
		case FaultBadGateway:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, badGatewayPage)
			s.finish(id, func(l *RequestLog) { l.Status = http.StatusBadGateway; l.Reason = "injected bad gateway" }, nil, nil)
			s.logRequest(id, http.StatusBadGateway, 0, 0, 0, fault)
			return
		default:
			s.writeError(w, id, s.faultAnswer(fault), 0, fault)
			return
		}
	}

	if readErr != nil {
		var tooBig *http.MaxBytesError
		if !errors.As(readErr, &tooBig) {
			s.abandon(id, r, "reading the body: "+readErr.Error())
			return
		}
		// Meta documents no size limit; 413 with a Graph body is our choice.
		e := errPolicy("request body larger than the fake's 10 MB limit", "body too large")
		e.status = http.StatusRequestEntityTooLarge
		s.writeError(w, id, e, 0, fault)
		return
	}

	out, e := s.checkRequest(r, body, id)
	if e != nil {
		s.writeError(w, id, e, out.n, fault)
		return
	}

	trace := newTraceID()
	msgs := out.messages
	if msgs == nil {
		msgs = []string{}
	}
	// Success shape: {"events_received": N, "messages": [], "fbtrace_id": "..."}
	// ([LiveV26]; [LeadtailDoc]).
	resp, err := json.Marshal(struct {
		EventsReceived int      `json:"events_received"`
		Messages       []string `json:"messages"`
		FbtraceID      string   `json:"fbtrace_id"`
	}{out.n, msgs, trace})
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-FB-Trace-ID", trace)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
	s.finish(id, func(l *RequestLog) { l.Status = http.StatusOK; l.Events = out.n }, out.events, out.violations)
	s.logRequest(id, http.StatusOK, 0, 0, out.n, fault)
}

// writeError sends a Graph error body with a fresh fbtrace_id and records it.
func (s *Server) writeError(w http.ResponseWriter, id int, e *apiError, events int, fault *Fault) {
	e.body.FbtraceID = newTraceID()
	b, err := json.Marshal(map[string]wireError{"error": e.body})
	if err != nil {
		panic(err)
	}
	for k, vs := range e.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-FB-Trace-ID", e.body.FbtraceID)
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
	s.finish(id, func(l *RequestLog) {
		l.Status, l.Code, l.Subcode, l.Events, l.Reason = e.status, e.body.Code, e.body.ErrorSubcode, events, e.reason
	}, nil, nil)
	s.logRequest(id, e.status, e.body.Code, e.body.ErrorSubcode, events, fault)
}

// hold keeps a FaultTimeout request open until the client goes away or the
// server closes; then the connection is dropped without an answer.
func (s *Server) hold(id int, r *http.Request) {
	select {
	case <-r.Context().Done():
		s.abandon(id, r, "timeout: held until the client went away")
	case <-s.closed:
		s.abandon(id, r, "timeout: held until the server closed")
	}
}

// sleep waits d; false if the client went away or the server closed first.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// abandon records a request that gets no answer. If the client is still
// there (the server is closing, or the body could not be read) the
// connection is dropped rather than answered with an empty 200.
func (s *Server) abandon(id int, r *http.Request, reason string) {
	s.finish(id, func(l *RequestLog) { l.Reason = reason }, nil, nil)
	s.logRequest(id, 0, 0, 0, 0, nil)
	if r.Context().Err() == nil {
		panic(http.ErrAbortHandler) // net/http drops the connection quietly
	}
}

func (s *Server) logRequest(id, status, code, subcode, events int, f *Fault) {
	fault := ""
	if f != nil {
		fault = f.Kind.String()
	}
	s.log.Debug("metatest request", "id", id, "status", status, "code", code, "subcode", subcode,
		"events", events, "fault", fault)
}
