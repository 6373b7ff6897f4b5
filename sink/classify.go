package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// class is what to do with one answer from Meta.
type class int

const (
	// classOK: Meta took the events.
	classOK class = iota
	// classTransient: Meta (or the path to it) is unwell; retry the same
	// request with backoff, forever.
	classTransient
	// classThrottled: pause all sending, honouring Meta's hints.
	classThrottled
	// classHalt: our configuration is wrong (or Meta said something we do
	// not know); stop, keep everything, retry slowly.
	classHalt
	// classStale: 100/2804003, some event is older than 7 days.
	classStale
	// classBadEvent: other code 100, at least one bad event in the request.
	classBadEvent
)

func (c class) String() string {
	switch c {
	case classOK:
		return "ok"
	case classTransient:
		return "transient"
	case classThrottled:
		return "throttled"
	case classHalt:
		return "halt"
	case classStale:
		return "stale"
	case classBadEvent:
		return "bad_event"
	}
	return "unknown"
}

// Graph API error codes leadtail acts on.
const (
	codeUnknownError       = 1
	codeServiceUnavailable = 2
	codeCapability         = 3
	codeAppRateLimit       = 4
	codePermissionDenied   = 10
	codeUserRateLimit      = 17
	codePageRateLimit      = 32
	codeInvalidParameter   = 100
	codeSession            = 102
	codeAdAccountLimit     = 341
	codePolicyBlock        = 368
	codeAccessToken        = 190
	codeCustomRateLimit    = 613
	codeDatasetNotReady    = 21009

	codeDeprecatedVersion = 2635

	subcodeMissingObject = 33
	subcodeTooOld        = 2804003

	// typeGraphMethod is the error type of a refused call (as opposed to
	// OAuthException, which Conversions API payload errors carry).
	typeGraphMethod = "GraphMethodException"
)

// outcome is the classified answer to one request.
type outcome struct {
	class  class
	status int // HTTP status, 0 when no answer
	// graph is Meta's error object when the body carried one.
	graph *GraphError
	// resp is Meta's success body (classOK).
	resp Response
	// wait is Meta's hint how long to pause (classThrottled), 0 = none.
	wait time.Duration
	// err describes a failure without a Graph error: network error,
	// timeout, non-JSON body. Never contains the token.
	err error
}

func (o *outcome) code() int {
	if o.graph == nil {
		return 0
	}
	return o.graph.Code
}

func (o *outcome) subcode() int {
	if o.graph == nil {
		return 0
	}
	return o.graph.ErrorSubcode
}

func (o *outcome) fbtrace() string {
	if o.graph != nil && o.graph.FbtraceID != "" {
		return o.graph.FbtraceID
	}
	return o.resp.FbtraceID
}

// describe is a short description for logs and errors: Meta's message or
// the transport error. Callers redact it.
func (o *outcome) describe() string {
	switch {
	case o.graph != nil:
		return o.graph.Message
	case o.err != nil:
		return o.err.Error()
	}
	return "HTTP " + strconv.Itoa(o.status)
}

// classify decides what an HTTP answer means, by the JSON body (error.code,
// error.error_subcode, error.is_transient) and never by message text. The
// HTTP status only matters when the body carries no Graph error.
func classify(status int, header http.Header, body []byte, now time.Time) outcome {
	o := outcome{status: status}
	var eb struct {
		Error *GraphError `json:"error"`
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &eb) != nil {
		// Non-JSON: an HTML error page from a proxy or load balancer, a
		// truncated body. Meta never answers that way on purpose.
		if status == http.StatusTooManyRequests {
			o.class = classThrottled
			o.wait = throttleHint(header, now)
			return o
		}
		if status >= 300 && status < 400 {
			// Redirects are not followed (the body carries the token):
			// the endpoint is wrong, retrying will not help.
			o.class = classHalt
			o.err = fmt.Errorf("HTTP %d redirect to %q", status, header.Get("Location"))
			return o
		}
		o.class = classTransient
		o.err = fmt.Errorf("HTTP %d with a non-JSON body (%d bytes)", status, len(body))
		return o
	}
	if eb.Error == nil {
		switch {
		case status >= 200 && status < 300:
			if err := json.Unmarshal(trimmed, &o.resp); err != nil {
				o.class = classTransient
				o.err = fmt.Errorf("HTTP %d with an unreadable success body: %w", status, err)
				return o
			}
			o.class = classOK
		case status == http.StatusTooManyRequests:
			o.class = classThrottled
			o.wait = throttleHint(header, now)
		case status >= 500:
			o.class = classTransient
			o.err = fmt.Errorf("HTTP %d without a Graph error", status)
		default:
			// A JSON answer we do not understand: never guess that data
			// is bad, stop and let a human look.
			o.class = classHalt
			o.err = fmt.Errorf("HTTP %d without a Graph error", status)
		}
		return o
	}
	o.graph = eb.Error
	o.class = classifyGraph(eb.Error)
	if o.class == classThrottled {
		o.wait = throttleHint(header, now)
	}
	return o
}

// classifyGraph maps a Graph error object to a class, per the table in
// docs/meta-capi.md. Unknown codes halt: they must never lose data.
func classifyGraph(g *GraphError) class {
	switch c := g.Code; {
	case isThrottleCode(c):
		return classThrottled
	case g.IsTransient, c == codeUnknownError, c == codeServiceUnavailable, c == codeDatasetNotReady:
		return classTransient
	case c == codeInvalidParameter && g.ErrorSubcode == subcodeMissingObject:
		return classHalt
	case c == codeInvalidParameter && g.ErrorSubcode == 0 && g.Type == typeGraphMethod:
		// The call itself is refused (a wrong appsecret_proof, an object
		// that cannot be loaded), not one of its events: bisecting would
		// dead-letter every event.
		return classHalt
	case c == codeInvalidParameter && g.ErrorSubcode == subcodeTooOld:
		return classStale
	case c == codeInvalidParameter:
		return classBadEvent
	default:
		// 190, 102, 10, 200–299, 3, 368 and everything unknown.
		return classHalt
	}
}

func isThrottleCode(c int) bool {
	switch c {
	case codeAppRateLimit, codeUserRateLimit, codePageRateLimit, codeCustomRateLimit, codeAdAccountLimit:
		return true
	}
	return c >= 80000 && c <= 80014
}

// haltReason is the one line telling the operator what to fix. It never
// contains the token (callers redact Meta's text, which only appears for
// codes leadtail does not know).
func haltReason(o *outcome, cfg *Config) string {
	datasetID := cfg.DatasetID
	if o.graph == nil {
		return fmt.Sprintf("Meta answered %s, which leadtail does not understand: check meta.endpoint (a proxy in the way?) and Meta's status page", oneLine(o.describe()))
	}
	c, sc := o.graph.Code, o.graph.ErrorSubcode
	switch {
	case c == codeAccessToken:
		return fmt.Sprintf("Meta rejected the access token (Graph error 190/%d: expired, revoked or invalid): generate a new system-user token for dataset %s and set meta.access_token", sc, datasetID)
	case c == codeSession:
		return fmt.Sprintf("Meta rejected the session of the access token (Graph error 102): generate a new system-user token for dataset %s and set meta.access_token", datasetID)
	case c == codePermissionDenied || (c >= 200 && c <= 299):
		return fmt.Sprintf("the access token lacks permission to send events to dataset %s (Graph error %d/%d): assign the system user to the dataset with full control and grant ads_management", datasetID, c, sc)
	case c == codeCapability:
		return "the app behind the access token lacks the capability to call the Conversions API (Graph error 3): check the app's permissions and status in Meta for Developers"
	case c == codeInvalidParameter && sc == subcodeMissingObject:
		return fmt.Sprintf("dataset %s does not exist or is not shared with the token's system user (Graph error 100/33): check meta.dataset_id and the dataset's assigned users", datasetID)
	case c == codeInvalidParameter && sc == 0 && o.graph.Type == typeGraphMethod:
		if cfg.AppSecret != "" {
			return fmt.Sprintf("Meta refused the call to dataset %s (Graph error 100, GraphMethodException), most likely a wrong appsecret_proof: check meta.app_secret belongs to the token's app", datasetID)
		}
		return fmt.Sprintf("Meta refused the call to dataset %s (Graph error 100, GraphMethodException): if the app requires appsecret_proof set meta.app_secret, and check meta.dataset_id", datasetID)
	case c == codeDeprecatedVersion:
		return fmt.Sprintf("Graph API version %s is no longer served (Graph error 2635): set meta.api_version to a current version", cfg.APIVersion)
	case c == codePolicyBlock:
		return fmt.Sprintf("Meta blocked sending for policy reasons (Graph error 368/%d): check Account Quality in Business Manager before resuming", sc)
	}
	return fmt.Sprintf("Meta answered with Graph error %d/%d (%s), which leadtail does not know; nothing is dropped: look the code up in Meta's docs", c, sc, oneLine(o.graph.Message))
}

// oneLine keeps log reasons on one line and short.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// throttleHint reads how long Meta wants us to stay away: Retry-After
// (seconds or an HTTP date) or the largest estimated_time_to_regain_access
// (minutes) in X-Business-Use-Case-Usage. 0 means no hint.
func throttleHint(h http.Header, now time.Time) time.Duration {
	var wait time.Duration
	if ra := strings.TrimSpace(h.Get("Retry-After")); ra != "" {
		if s, err := strconv.ParseFloat(ra, 64); err == nil && s > 0 && s < math.MaxInt32 {
			wait = time.Duration(s * float64(time.Second))
		} else if t, err := http.ParseTime(ra); err == nil && t.After(now) {
			wait = t.Sub(now)
		}
	}
	if u := h.Get("X-Business-Use-Case-Usage"); u != "" {
		if m := regainMinutes(u); m > 0 {
			if d := time.Duration(m * float64(time.Minute)); d > wait {
				wait = d
			}
		}
	}
	return wait
}

// usageEntry is one object of X-Business-Use-Case-Usage:
// {"<business id>": [{"type": "ads_management", "call_count": 28,
// "total_cputime": 25, "total_time": 25, "estimated_time_to_regain_access": 19}]}.
type usageEntry struct {
	EstimatedTimeToRegainAccess *float64 `json:"estimated_time_to_regain_access"`
}

// regainMinutes returns the largest estimated_time_to_regain_access in the
// header, 0 when absent or unreadable.
func regainMinutes(header string) float64 {
	var usage map[string][]usageEntry
	if err := json.Unmarshal([]byte(header), &usage); err != nil {
		return 0
	}
	var m float64
	for _, entries := range usage {
		for _, e := range entries {
			if e.EstimatedTimeToRegainAccess != nil && *e.EstimatedTimeToRegainAccess > m {
				m = *e.EstimatedTimeToRegainAccess
			}
		}
	}
	if m > 7*24*60 {
		m = 7 * 24 * 60
	}
	return m
}
