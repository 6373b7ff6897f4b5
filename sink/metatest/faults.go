package metatest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// FaultKind selects how an injected fault answers.
type FaultKind int

const (
	// FaultHTTP5xx answers HTTP 500 with Graph's code 1 "An unknown error
	// has occurred." (facebookarchive/php-graph-sdk#478; [ErrHandling]:
	// code 1 "API Unknown ... wait and retry").
	FaultHTTP5xx FaultKind = iota + 1
	// FaultBadGateway answers HTTP 502 with an HTML page, as Meta's edge
	// does ("Sorry, something went wrong." text/html, maiha/facebook.cr#1):
	// the client must cope with a body that is not JSON.
	FaultBadGateway
	// FaultTransient answers HTTP 500 code 2 "An unexpected error has
	// occurred. Please retry your request later." with is_transient true
	// (arsduo/koala#425, Trustroots/trustroots#673; [ErrHandling] code 2).
	FaultTransient
	// FaultThrottle answers a throttling error with Code (4, 17, 32, 613,
	// 341, 80000-80014; default 4), a Retry-After header when RetryAfter > 0
	// and an X-Business-Use-Case-Usage header carrying
	// estimated_time_to_regain_access when UsageRegainMinutes > 0
	// ([RateLimits]).
	FaultThrottle
	// FaultTimeout holds the request without answering until the client
	// goes away or the server closes.
	FaultTimeout
	// FaultSlow sleeps Delay, then answers normally.
	FaultSlow
	// FaultError answers Graph's error for Code/Subcode (e.g. 10, 200, 368,
	// 100/33, 190, 102, 3, 21009), whatever the request.
	FaultError
)

var faultNames = map[FaultKind]string{
	FaultHTTP5xx: "http5xx", FaultBadGateway: "bad_gateway", FaultTransient: "transient",
	FaultThrottle: "throttle", FaultTimeout: "timeout", FaultSlow: "slow", FaultError: "error",
}

func (k FaultKind) String() string {
	if n, ok := faultNames[k]; ok {
		return n
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText writes the name ("throttle", ...).
func (k FaultKind) MarshalText() ([]byte, error) {
	if _, ok := faultNames[k]; !ok {
		return nil, fmt.Errorf("unknown fault kind %d", int(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText reads a name written by MarshalText.
func (k *FaultKind) UnmarshalText(b []byte) error {
	for kind, n := range faultNames {
		if n == string(b) {
			*k = kind
			return nil
		}
	}
	return fmt.Errorf("unknown fault kind %q", b)
}

// Fault is an injected failure. See FaultKind for which fields apply.
type Fault struct {
	Kind          FaultKind
	Code, Subcode int
	// Times is how many consecutive requests suffer the fault; 0 means 1.
	Times int
	// Delay is FaultSlow's wait.
	Delay time.Duration
	// RetryAfter adds a Retry-After header (whole seconds, rounded up) to
	// FaultThrottle.
	RetryAfter time.Duration
	// UsageRegainMinutes adds X-Business-Use-Case-Usage to FaultThrottle.
	UsageRegainMinutes int
}

func (f Fault) check() error {
	switch f.Kind {
	case FaultHTTP5xx, FaultBadGateway, FaultTransient, FaultTimeout:
	case FaultSlow:
		if f.Delay <= 0 {
			return errors.New("FaultSlow needs a Delay")
		}
	case FaultThrottle:
		if f.Code != 0 && !isThrottleCode(f.Code) {
			return fmt.Errorf("FaultThrottle code %d is not a throttling code (4, 17, 32, 613, 341, 80000-80014)", f.Code)
		}
	case FaultError:
		if f.Code == 0 {
			return errors.New("FaultError needs a Code")
		}
	default:
		return fmt.Errorf("unknown fault kind %d", int(f.Kind))
	}
	if f.Times < 0 || f.RetryAfter < 0 || f.UsageRegainMinutes < 0 {
		return errors.New("negative Times, RetryAfter or UsageRegainMinutes")
	}
	return nil
}

// badGatewayPage is the kind of page Meta's edge sends on a 502.
const badGatewayPage = `<!DOCTYPE html>
<html lang="en" id="facebook"><head><title>Facebook | Error</title><meta charset="utf-8"></head>
<body><div id="core"><h1 id="sorry">Sorry, something went wrong.</h1>
<p id="promise">We're working on it and we'll get it fixed as soon as we can.</p></div></body></html>
`

// faultAnswer returns the error a fault answers with, or nil for the kinds
// that do not answer by themselves (timeout, slow) and for bad gateway,
// which is written directly.
func (s *Server) faultAnswer(f *Fault) *apiError {
	now := s.opts.Now()
	switch f.Kind {
	case FaultHTTP5xx:
		return errForCode(1, f.Subcode, now, s.opts.DatasetID)
	case FaultTransient:
		return errForCode(2, f.Subcode, now, s.opts.DatasetID)
	case FaultThrottle:
		code := f.Code
		if code == 0 {
			code = 4
		}
		e := errForCode(code, f.Subcode, now, s.opts.DatasetID)
		e.header = http.Header{}
		if f.RetryAfter > 0 {
			e.header.Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
		}
		if f.UsageRegainMinutes > 0 {
			e.header.Set("X-Business-Use-Case-Usage", bucUsage(s.opts.DatasetID, f.UsageRegainMinutes))
		}
		return e
	case FaultError:
		return errForCode(f.Code, f.Subcode, now, s.opts.DatasetID)
	}
	return nil
}

// bucUsage renders X-Business-Use-Case-Usage as [RateLimits] documents it:
// a JSON object keyed by business object id, each an array of
// {type, call_count, total_cputime, total_time (percentages),
// estimated_time_to_regain_access (minutes)}. Keyed here by the dataset id;
// the type "ads_management" is our guess for the Conversions API, whose
// calls count against the Marketing API's limits ([LeadtailDoc]).
func bucUsage(objectID string, regainMinutes int) string {
	type usage struct {
		Type          string `json:"type"`
		CallCount     int    `json:"call_count"`
		TotalCPUTime  int    `json:"total_cputime"`
		TotalTime     int    `json:"total_time"`
		EstimatedTime int    `json:"estimated_time_to_regain_access"`
	}
	b, err := json.Marshal(map[string][]usage{objectID: {{
		Type: "ads_management", CallCount: 100, TotalCPUTime: 34, TotalTime: 41, EstimatedTime: regainMinutes,
	}}})
	if err != nil {
		panic(err)
	}
	return string(b)
}
