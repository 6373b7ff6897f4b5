package sink

import (
	"strconv"
	"time"
)

// Dead-letter reasons given by Prepare. They are stable: scripts and the
// preview command show them.
const (
	ReasonMissingEventName = "missing event_name"
	ReasonMissingEventID   = "missing event_id"
	ReasonMissingEventTime = "missing event_time"
	ReasonMillis           = "event_time is not in Unix seconds"
	ReasonExpired          = "expired: event_time older than 7 days"
	ReasonBeforeLead       = "event before lead creation"
	ReasonInvalidLeadID    = "invalid lead_id"
	ReasonUnhashed         = "unhashed contact field"
	ReasonNoIdentifier     = "no usable identifier"
	// ReasonUnencodable is given by Deliver, not Prepare: custom_data holds
	// a value JSON cannot encode (NaN, infinity); custom_data is dropped
	// from the dead letter.
	ReasonUnencodable = "custom_data cannot be encoded as JSON"
)

// maxSaneUnixSeconds is far in the future (year 5138); a larger event_time
// is a millisecond timestamp, a mapping bug that clamping would hide.
const maxSaneUnixSeconds = 100_000_000_000

// Prepare checks one event against Meta's rules before it is sent and
// returns "" when it may go, or the reason to dead-letter it instead. One
// bad event makes Meta reject a whole request, so everything Meta is known
// to refuse is caught here.
//
// Prepare changes the event in two harmless ways: an event_time in the
// future is clamped to now (Meta's tolerance is undocumented), and an empty
// action_source becomes "system_generated", the only value for CRM events.
//
// The checks, in order: event_name and event_id present; event_time in Unix
// seconds, not before the lead's creation, not older than 7 days minus
// expiryMargin when it reaches Meta; lead_id, when set, 15–17 digits; every
// hashed field 64 lower-case hex characters (anything else is plaintext
// contact data, a bug that must never reach Meta); at least one strong
// identifier: lead_id, em, ph, external_id, fbc, fbp, or client_ip_address
// together with client_user_agent.
func Prepare(ev *Event, now time.Time, expiryMargin time.Duration) string {
	if ev.Reject != "" {
		// The mapping already found a reason (e.g. an invalid lead_id it
		// could not put into the event): it wins over later checks.
		return ev.Reject
	}
	switch {
	case ev.EventName == "":
		return ReasonMissingEventName
	case ev.EventID == "":
		return ReasonMissingEventID
	case ev.EventTime <= 0:
		return ReasonMissingEventTime
	case ev.EventTime >= maxSaneUnixSeconds:
		return ReasonMillis
	}
	if ev.LeadCreated > 0 && ev.EventTime < ev.LeadCreated {
		return ReasonBeforeLead
	}
	if n := now.Unix(); ev.EventTime > n {
		ev.EventTime = n
	}
	if isStale(ev, now, expiryMargin) {
		return ReasonExpired
	}
	if ev.UserData.LeadID != 0 && !validLeadID(ev.UserData.LeadID) {
		return ReasonInvalidLeadID
	}
	for _, k := range HashedKeys {
		for _, v := range *ev.UserData.Hashed(k) {
			if !isSHA256Hex(v) {
				return ReasonUnhashed
			}
		}
	}
	if !hasStrongIdentifier(&ev.UserData) {
		return ReasonNoIdentifier
	}
	if ev.ActionSource == "" {
		ev.ActionSource = ActionSystemGenerated
	}
	return ""
}

// isStale reports whether ev is older than Meta's 7 days minus margin.
func isStale(ev *Event, now time.Time, margin time.Duration) bool {
	return now.Sub(time.Unix(ev.EventTime, 0)) > MaxEventAge-margin
}

func validLeadID(id int64) bool {
	if id <= 0 {
		return false
	}
	n := len(strconv.FormatInt(id, 10))
	return n >= 15 && n <= 17
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func hasStrongIdentifier(u *UserData) bool {
	return u.LeadID != 0 || len(u.Em) > 0 || len(u.Ph) > 0 || len(u.ExternalID) > 0 ||
		u.Fbc != "" || u.Fbp != "" || (u.ClientIPAddress != "" && u.ClientUserAgent != "")
}
