package sink

import "time"

// Observer is told what a Client does, for metrics. Its methods are called
// from Deliver's goroutines, possibly concurrently; they must be fast,
// must not block and must not call back into the Client. Nothing passed
// to them carries a token; events carry hashed contact data only, and an
// Observer should read nothing but their Mapping, EventName and CommitTime.
type Observer interface {
	// Request is called once per HTTP request that got an answer (or a
	// network error or timeout), with the answer's classification. Requests
	// abandoned because the caller's context ended are not reported.
	Request(RequestInfo)
	// Accepted is called for each event Meta accepted (with dry_run: each
	// event logged instead of sent).
	Accepted(ev *Event)
	// DeadLettered is called for each event written to the dead-letter
	// file, with the record's reason (one of Prepare's, or "rejected by
	// Meta: Graph error CODE/SUBCODE"): a small set of stable strings.
	DeadLettered(ev *Event, reason string)
}

// RequestInfo describes one request to the Conversions API.
type RequestInfo struct {
	// Class is what the client made of the answer: "ok", "transient",
	// "throttled", "halt", "stale" or "bad_event".
	Class string
	// Code and Subcode are Meta's error code and subcode, 0 when the
	// answer carried no Graph error (success, network error, HTTP 5xx
	// without a JSON body).
	Code, Subcode int
	// Events is the number of events in the request.
	Events int
	// Warnings counts events Meta took with a warning (classOK only).
	Warnings int
	// Duration is how long the request took, answer read included.
	Duration time.Duration
}

// nopObserver is the default Observer.
type nopObserver struct{}

func (nopObserver) Request(RequestInfo)         {}
func (nopObserver) Accepted(*Event)             {}
func (nopObserver) DeadLettered(*Event, string) {}
