package metatest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/leadtail/leadtail/internal/jsonscan"
	"github.com/leadtail/leadtail/sink"
)

// outcome is what a request that passed the checks brings.
type outcome struct {
	n          int // len(data), also set on failure once known
	events     []Received
	violations []string
	messages   []string
}

var (
	// Graph versions are always vNN.0 ([LeadtailDoc]); anything else in the
	// version position is an unknown path (koala#611, "v2.80").
	versionRe = regexp.MustCompile(`^v([0-9]{1,3})\.0$`)
	digitsRe  = regexp.MustCompile(`^[0-9]+$`)
	// [CustomerInfo]: hashed keys carry SHA-256; [LeadtailDoc]: lower-case hex.
	// [CustomerInfo] "fbc": fb.${subdomain_index}.${creation_time}.${fbclid},
	// subdomain index 0-2, creation time in milliseconds; case-sensitive.
	fbcRe = regexp.MustCompile(`^fb\.[0-2]\.[0-9]{13}\.\S+$`)
)

// msEventTime: an event_time at or above 10^12 is milliseconds (seconds
// reach 10^12 in the year 33658).
const msEventTime = 1_000_000_000_000

// futureSkew is how far in the future an event_time may be before it is a
// Violation: leadtail clamps future times to now ([LeadtailDoc]), and the
// client's clock may differ a little from the fake's.
const futureSkew = 5 * time.Minute

// actionSources are Meta's action_source values: [SDKAction] (email,
// website, app, phone_call, chat, physical_store, system_generated, other)
// and business_messaging ([ServerEvent]; "Conversions API for Business
// Messaging").
var actionSources = map[string]bool{
	"email": true, "website": true, "app": true, "phone_call": true, "chat": true,
	"physical_store": true, "system_generated": true, "business_messaging": true, "other": true,
}

// metaEventKeys are the server event parameters Meta documents
// ([ServerEvent]). Keys outside this set are refused as typos; keys inside
// it that leadtail's wire model does not have are accepted with a
// Violation.
var metaEventKeys = map[string]bool{
	"event_name": true, "event_time": true, "user_data": true, "custom_data": true,
	"event_source_url": true, "opt_out": true, "event_id": true, "action_source": true,
	"data_processing_options": true, "data_processing_options_country": true,
	"data_processing_options_state": true, "referrer_url": true, "customer_segmentation": true,
	"app_data": true, "original_event_data": true, "attribution_data": true, "messaging_channel": true,
}

// leadtailEventKeys are the JSON names of sink.Event's wire fields.
var leadtailEventKeys = jsonNames(reflect.TypeOf(sink.Event{}))

// userDataKeys: lead_id ([CLPayload]) plus leadtail's hashed and plain keys,
// all of which are Meta customer information parameters ([CustomerInfo]).
var (
	hashedKeys   = setOf(sink.HashedKeys...)
	plainKeys    = setOf(sink.PlainKeys...)
	userDataKeys = func() map[string]bool {
		m := setOf(sink.HashedKeys...)
		for k := range plainKeys {
			m[k] = true
		}
		m["lead_id"] = true
		return m
	}()
	// weakKeys alone do not identify anybody: names, gender, birth date,
	// location ([LeadtailDoc]: "Meta refuses events whose only identifiers
	// are weak combinations"), a lone IP address or user agent (only the
	// pair counts), and the business's own page and Instagram account.
	weakKeys = setOf("fn", "ln", "ge", "db", "ct", "st", "zp", "country",
		"client_ip_address", "client_user_agent", "page_id", "ig_account_id")
)

// topLevelKeys: [MainBody] (data, test_event_code) plus access_token and
// appsecret_proof, which leadtail puts in the body ([LeadtailDoc]).
var topLevelKeys = setOf("data", "access_token", "appsecret_proof", "test_event_code")

func setOf(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func jsonNames(t reflect.Type) map[string]bool {
	m := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}

// AppSecretProof returns Meta's appsecret_proof: lower-case hex of
// HMAC-SHA256 with key = app secret and message = access token (Graph API
// "Securing Requests"; the PHP SDK computes hash_hmac('sha256', $token,
// $secret), facebookarchive/php-graph-sdk#1117; test vector in
// [LeadtailDoc]).
func AppSecretProof(appSecret, accessToken string) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(accessToken))
	return hex.EncodeToString(m.Sum(nil))
}

// checkRequest applies every rule, in the order Graph does: routing,
// authentication, object, parameters.
func (s *Server) checkRequest(r *http.Request, body []byte, id int) (outcome, *apiError) {
	var out outcome

	// A token in the query string. Meta accepts it; leadtail's policy
	// forbids it because URLs end up in proxy and access logs
	// ([LeadtailDoc]: "Put the token in the body, never in the URL"). The
	// fake refuses it to catch our mistake.
	if r.URL.Query().Has("access_token") {
		return out, errPolicy("access_token must not be sent in the URL query string; put it in the JSON body (URLs end up in logs)",
			"access_token in the URL")
	}

	// Routing: /vNN.0/{node}/events.
	path := r.URL.Path
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	m := versionRe.FindStringSubmatch(segs[0])
	if m == nil {
		return out, errUnknownPath(path, "no vNN.0 version segment")
	}
	if v, _ := strconv.Atoi(m[1]); v < s.opts.MinAPIVersion {
		return out, errDeprecatedVersion(max(latestAPIVersion, s.opts.MinAPIVersion), "version "+segs[0]+" is older than the minimum")
	}
	rest := segs[1:]
	if len(rest) == 0 || rest[0] == "" {
		return out, errUnknownPath(path, "no node after the version")
	}
	node := rest[0]
	if !digitsRe.MatchString(node) {
		return out, errAlias(node, "node is not an id")
	}
	if len(rest) != 2 || rest[1] != "events" {
		return out, errUnknownPath("/"+strings.Join(rest, "/"), "only the events edge exists")
	}
	if r.Method != http.MethodPost {
		return out, errUnsupported(strings.ToLower(r.Method), node, "method "+r.Method)
	}

	// JSON only. Graph also takes form posts; leadtail sends JSON
	// ([LeadtailDoc]: "JSON body, Content-Type: application/json").
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return out, errPolicy("the body must be JSON sent with Content-Type: application/json", "content type "+strconv.Quote(r.Header.Get("Content-Type")))
	}
	if !json.Valid(body) {
		return out, errDataRequired("body is not one JSON object")
	}
	top, ok := members(body)
	if !ok {
		return out, errDataRequired("body is not one JSON object")
	}

	// Authentication ([ErrHandling]).
	tokRaw, ok := top["access_token"]
	if !ok || isNull(tokRaw) {
		return out, errNoToken("no access_token in the body")
	}
	var token string
	if json.Unmarshal(tokRaw, &token) != nil {
		return out, errBadToken("access_token is not a string")
	}
	if token == "" {
		return out, errNoToken("empty access_token")
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.AccessToken)) != 1 {
		return out, errBadToken("wrong access_token")
	}
	if s.tokenExpired() {
		return out, errExpiredToken(s.opts.Now(), "token expired (ExpireToken)")
	}
	if s.opts.AppSecret != "" {
		proofRaw, ok := top["appsecret_proof"]
		if !ok || isNull(proofRaw) {
			return out, errProofMissing("no appsecret_proof")
		}
		var proof string
		want := AppSecretProof(s.opts.AppSecret, s.opts.AccessToken)
		if json.Unmarshal(proofRaw, &proof) != nil || subtle.ConstantTimeCompare([]byte(proof), []byte(want)) != 1 {
			return out, errProofInvalid("wrong appsecret_proof")
		}
	}
	if r.Header.Get("Authorization") != "" {
		out.violations = append(out.violations, fmt.Sprintf("request %d: Authorization header sent; leadtail sends the token in the body only", id))
	}

	// The object: only our dataset exists ([MAPIErrors] 100/33).
	if node != s.opts.DatasetID {
		return out, errUnsupported("post", node, "unknown dataset "+node)
	}

	// Main body parameters ([MainBody]).
	for _, k := range sortedKeys(top) {
		if !topLevelKeys[k] {
			return out, errUnknownParam(k, "unknown top-level key "+strconv.Quote(k))
		}
	}
	var testCode string
	if raw, ok := top["test_event_code"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &testCode) != nil {
			return out, errInvalidParam("Param test_event_code must be a string", "test_event_code is not a string")
		}
	}
	dataRaw, ok := top["data"]
	if !ok || isNull(dataRaw) {
		return out, errDataRequired("no data")
	}
	if kind(dataRaw) != '[' {
		return out, errInvalidParam("Param data must be an array", "data is not an array")
	}
	data, ok := elements(dataRaw) // the body is valid JSON: checked above
	if !ok {
		return out, errInvalidParam("Param data must be an array", "data is not an array")
	}
	out.n = len(data)
	if len(data) == 0 {
		return out, errDataRequired("data is empty")
	}
	if len(data) > sink.MaxBatch {
		// [LeadtailDoc]: at most 1,000 events per request. Meta's exact text
		// for this case was not found; this one is ours.
		return out, errInvalidParam(fmt.Sprintf("Param data must be an array of at most %d events, got %d", sink.MaxBatch, len(data)),
			"more than 1000 events")
	}

	// Events. One bad event rejects the whole request and nothing is kept
	// ([ServerEvent] for event_time; [LeadtailDoc] for every CAPI error).
	// Duplicates are accepted, counted in events_received and recorded like
	// any event. Meta keeps only the first of the same event_name + event_id
	// within 48 hours ([ServerEvent]) but still answers 200; leadtail is
	// at-least-once, so tests count duplicates themselves.
	now := s.opts.Now()
	for i, raw := range data {
		ev, viol, msgs, e := s.checkEvent(raw, i, id, now)
		if e != nil {
			return out, e
		}
		ev.TestEventCode = testCode
		ev.RequestID = id
		out.events = append(out.events, ev)
		out.violations = append(out.violations, viol...)
		out.messages = append(out.messages, msgs...)
	}
	return out, nil
}

// checkEvent validates data[i].
func (s *Server) checkEvent(raw json.RawMessage, i, reqID int, now time.Time) (Received, []string, []string, *apiError) {
	var (
		rec  = Received{Raw: append(json.RawMessage(nil), raw...)}
		viol []string
		msgs []string
	)
	at := func(field string) string { return fmt.Sprintf("data[%d].%s", i, field) }
	if kind(raw) != '{' {
		return rec, nil, nil, errInvalidParam("Param data must be an array of objects", fmt.Sprintf("data[%d] is not an object", i))
	}
	ev, ok := members(raw) // valid JSON: the body passed the decoder
	if !ok {
		return rec, nil, nil, errInvalidParam("Param data must be an array of objects", fmt.Sprintf("data[%d] is not an object", i))
	}
	eventID := ""
	if r, ok := ev["event_id"]; ok && kind(r) == '"' {
		eventID = unquote(r)
	}
	violate := func(format string, a ...any) {
		viol = append(viol, fmt.Sprintf("request %d data[%d] event_id=%q: %s", reqID, i, eventID, fmt.Sprintf(format, a...)))
	}

	// Unknown keys: refused (typo guard, leadtail's choice: Meta ignores
	// some). Known to Meta but not in leadtail's model: Violation.
	for _, k := range sortedKeys(ev) {
		switch {
		case !metaEventKeys[k]:
			return rec, nil, nil, errUnknownParam(k, at(k)+": not a server event parameter")
		case !leadtailEventKeys[k]:
			violate("parameter %s is not part of leadtail's CRM event", k)
		}
	}

	// event_name: required, string ([ServerEvent], [CLPayload]).
	switch r := ev["event_name"]; {
	case isAbsent(r) || string(r) == `""`:
		return rec, nil, nil, errMissingParameter("event_name", at("event_name")+": missing or empty")
	case kind(r) != '"':
		return rec, nil, nil, errInvalidParam("Param event_name must be a string", at("event_name")+": not a string")
	}

	// event_time: required, an integer Unix time in seconds, at most 7 days
	// old ([ServerEvent]: "If any event_time in data is greater than 7 days
	// in the past, we return an error for the entire request").
	r := ev["event_time"]
	if isAbsent(r) {
		return rec, nil, nil, errMissingParameter("event_time", at("event_time")+": missing")
	}
	lit := string(bytes.TrimSpace(r))
	if kind(r) != '0' || !isInt(lit) {
		return rec, nil, nil, errInvalidEventTime(at("event_time") + ": not a JSON integer: " + lit)
	}
	t, err := strconv.ParseInt(lit, 10, 64)
	if err != nil || t <= 0 || t >= msEventTime {
		return rec, nil, nil, errInvalidEventTime(at("event_time") + ": not seconds (milliseconds?): " + lit)
	}
	if now.Unix()-t > int64(sink.MaxEventAge/time.Second) {
		return rec, nil, nil, errEventTooOld(fmt.Sprintf("%s: %s old", at("event_time"), now.Sub(time.Unix(t, 0)).Round(time.Second)))
	}
	if time.Unix(t, 0).After(now.Add(futureSkew)) {
		violate("event_time is %s in the future; leadtail clamps future times to now", time.Unix(t, 0).Sub(now).Round(time.Second))
	}

	// action_source: required, one of Meta's values ([ServerEvent],
	// [SDKAction]); CRM events are system_generated ([CLPayload],
	// [LeadtailDoc]): anything else valid is a Violation.
	r = ev["action_source"]
	if isAbsent(r) {
		return rec, nil, nil, errMissingParameter("action_source", at("action_source")+": missing")
	}
	as := unquote(r)
	if kind(r) != '"' {
		return rec, nil, nil, errInvalidParam("Param action_source must be a string", at("action_source")+": not a string")
	}
	if !actionSources[as] {
		return rec, nil, nil, errInvalidParam("Param action_source must be one of {email, website, app, phone_call, chat, physical_store, system_generated, business_messaging, other}",
			at("action_source")+": "+strconv.Quote(as))
	}
	if as != sink.ActionSystemGenerated {
		violate("action_source is %q; CRM events must be system_generated", as)
	}

	// event_id: optional for Meta, needed for deduplication ([ServerEvent]);
	// leadtail always sends a deterministic one ([LeadtailDoc]).
	switch r := ev["event_id"]; {
	case isAbsent(r) || string(r) == `""`:
		violate("event_id missing; leadtail always sends a deterministic event_id")
	case kind(r) != '"':
		return rec, nil, nil, errInvalidParam("Param event_id must be a string", at("event_id")+": not a string")
	}

	// user_data: required ([ServerEvent]).
	r = ev["user_data"]
	if isAbsent(r) {
		return rec, nil, nil, errMissingParameter("user_data", at("user_data")+": missing")
	}
	if kind(r) != '{' {
		return rec, nil, nil, errInvalidParam("Param user_data must be an object", at("user_data")+": not an object")
	}
	if e := s.checkUserData(r, at("user_data"), violate, &msgs, &rec.Event.UserData); e != nil {
		return rec, nil, nil, e
	}

	// custom_data: event_source "crm" and lead_event_source are required by
	// [CLPayload]; without them Meta accepts the event but does not count
	// it as a Conversion Leads event ([LeadtailDoc]): Violation.
	r = ev["custom_data"]
	var cd map[string]any
	switch {
	case isAbsent(r):
		violate("custom_data missing: event_source \"crm\" and lead_event_source are required for Conversion Leads")
	case kind(r) != '{':
		return rec, nil, nil, errInvalidParam("Param custom_data must be an object", at("custom_data")+": not an object")
	default:
		var err error
		if cd, err = decodeObject(r); err != nil {
			return rec, nil, nil, errInvalidParam("Param custom_data must be an object", at("custom_data")+": "+err.Error())
		}
		if v, _ := cd["event_source"].(string); v != "crm" {
			violate("custom_data.event_source is %v, want \"crm\"", jsonish(cd["event_source"]))
		}
		if v, _ := cd["lead_event_source"].(string); strings.TrimSpace(v) == "" {
			violate("custom_data.lead_event_source missing or empty; it names the CRM")
		}
	}

	// Decode into leadtail's model. user_data is re-encoded with hashed
	// strings turned into one-element arrays; numbers stay json.Number, so
	// a 17-digit lead_id is exact.
	// The event in leadtail's model, from the values checked above (one
	// decode per event: the fake used to cost more CPU than leadtail in the
	// whole-pipeline benchmarks). Numbers in custom_data stay json.Number.
	rec.Event.EventName = unquote(ev["event_name"])
	rec.Event.EventTime = t
	rec.Event.ActionSource = as
	rec.Event.EventID = eventID
	rec.Event.CustomData = cd
	return rec, viol, msgs, nil
}

// decodeObject decodes a valid JSON object as json.Decoder with UseNumber
// does (FuzzScan checks it): strings, numbers and literals directly,
// nested values through the decoder.
func decodeObject(raw json.RawMessage) (map[string]any, error) {
	ms, ok := members(raw)
	if !ok {
		return nil, errors.New("not an object")
	}
	out := make(map[string]any, len(ms))
	for k, v := range ms {
		switch c := v[0]; {
		case c == '"':
			out[k] = unquote(v)
		case c == '-' || c >= '0' && c <= '9':
			out[k] = json.Number(v)
		case c == 't' || c == 'f':
			out[k] = c == 't'
		case c == 'n':
			out[k] = nil
		default:
			d := json.NewDecoder(bytes.NewReader(v))
			d.UseNumber()
			var x any
			if err := d.Decode(&x); err != nil {
				return nil, err
			}
			out[k] = x
		}
	}
	return out, nil
}

// unquote is the string a JSON string literal holds ("" for anything
// else).
func unquote(raw json.RawMessage) string {
	s, _ := jsonscan.Unquote(raw)
	return s
}

// checkUserData validates user_data and fills u with it, a hashed value
// sent as a single string as a one-element slice.
func (s *Server) checkUserData(raw json.RawMessage, at string, violate func(string, ...any), msgs *[]string, u *sink.UserData) *apiError {
	ud, ok := members(raw)
	if !ok {
		return errInvalidParam("Param user_data must be an object", at+": not an object")
	}
	present := map[string]bool{}
	for _, k := range sortedKeys(ud) {
		v := ud[k]
		if !userDataKeys[k] {
			return errUnknownParam("user_data."+k, at+"."+k+": not a customer information parameter")
		}
		if isNull(v) {
			continue
		}
		switch {
		case k == "lead_id":
			// [CLPayload]: an integer, "Do not hash"; 15-17 digits
			// ([LeadtailDoc]). A string or a float is refused, and the
			// literal is checked as written: no float64 on the way.
			lit := string(bytes.TrimSpace(v))
			if kind(v) != '0' || !isLeadID(lit) {
				return errInvalidLeadID(at + ".lead_id: " + describe(v))
			}
			u.LeadID, _ = strconv.ParseInt(lit, 10, 64) // 17 digits fit
			present[k] = true
		case hashedKeys[k]:
			// [CustomerInfo]: SHA-256 hashes, a string or an array of
			// strings; [LeadtailDoc]: lower-case hex, sent as arrays.
			var vals []string
			switch kind(v) {
			case '"':
				vals = []string{unquote(v)}
				violate("user_data.%s sent as a string; leadtail sends hashed fields as arrays", k)
			case '[':
				if vals = hexArray(v); vals != nil {
					break
				}
				var arr []json.RawMessage
				_ = json.Unmarshal(v, &arr)
				for j, el := range arr {
					var one string
					if kind(el) != '"' || json.Unmarshal(el, &one) != nil {
						return errUnhashed(fmt.Sprintf("%s.%s[%d]: not a string", at, k, j))
					}
					vals = append(vals, one)
				}
			default:
				return errUnhashed(fmt.Sprintf("%s.%s: neither a string nor an array", at, k))
			}
			for j, h := range vals {
				if !isSHA256Hex(h) {
					return errUnhashed(fmt.Sprintf("%s.%s[%d]: not a lower-case SHA-256 hex string (%d characters)", at, k, j, len(h)))
				}
			}
			*u.Hashed(k) = vals
			present[k] = len(vals) > 0
		case plainKeys[k]:
			str := unquote(v)
			if kind(v) != '"' {
				return errInvalidParam("Param user_data["+k+"] must be a string", at+"."+k+": not a string")
			}
			*u.Plain(k) = str
			present[k] = str != ""
			if k == "fbc" && str != "" && !fbcRe.MatchString(str) {
				// [CustomerInfo]/[LeadtailDoc]: a malformed fbc is accepted
				// but raises an alert at Meta.
				*msgs = append(*msgs, "The fbc parameter of an event is not formatted as fb.<subdomain index>.<creation time in milliseconds>.<fbclid>; it may not be used for attribution.")
				violate("user_data.fbc is not fb.[0-2].<13-digit ms>.<fbclid>")
			}
		}
	}

	// Enough to match? ([LeadtailDoc]: at least one identifier; weak
	// combinations alone are refused with 2804050.)
	strong := present["client_ip_address"] && present["client_user_agent"]
	for k, ok := range present {
		if ok && !weakKeys[k] {
			strong = true
		}
	}
	if !strong {
		var have []string
		for _, k := range sortedKeys(present) {
			if present[k] {
				have = append(have, k)
			}
		}
		return errNotEnoughUserData(fmt.Sprintf("%s: only weak identifiers %v", at, have))
	}
	return nil
}

// isLeadID: 15-17 digits, as a JSON integer is written. [CLPayload] says
// "a 15 or 16-digit number", Meta's error text says 15-16, [LeadtailDoc]
// accepts 15-17.
func isLeadID(lit string) bool { return len(lit) >= 15 && len(lit) <= 17 && allDigits(lit) }

// isInt: a JSON integer literal (no fraction, no exponent).
func isInt(lit string) bool { return allDigits(strings.TrimPrefix(lit, "-")) }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// isSHA256Hex: 64 lower-case hex digits.
func isSHA256Hex(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hexArray reads the common case of a hashed field, a JSON array of
// strings without escapes, e.g. ["<hex>", "<hex>"], and returns nil for
// anything else, which then takes the general path with its exact errors.
// The strings are not checked here.
func hexArray(raw json.RawMessage) []string {
	b := bytes.TrimSpace(raw)
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil
	}
	b = bytes.TrimSpace(b[1 : len(b)-1])
	out := []string{}
	for len(b) > 0 {
		if b[0] != '"' {
			return nil
		}
		end := bytes.IndexByte(b[1:], '"')
		if end < 0 {
			return nil
		}
		str := b[1 : 1+end]
		for _, c := range str {
			if c == '\\' || c < 0x20 || c >= 0x80 {
				return nil
			}
		}
		out = append(out, string(str))
		b = bytes.TrimSpace(b[2+end:])
		if len(b) == 0 {
			break
		}
		if b[0] != ',' {
			return nil
		}
		b = bytes.TrimSpace(b[1:])
		if len(b) == 0 { // trailing comma
			return nil
		}
	}
	return out
}

// kind classifies a JSON value by its first byte: '"' string, '{' object,
// '[' array, 't'/'f' boolean, 'n' null, '0' number, 0 empty.
func kind(raw json.RawMessage) byte {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return 0
	}
	switch c := b[0]; c {
	case '"', '{', '[', 't', 'f', 'n':
		return c
	}
	return '0'
}

func isNull(raw json.RawMessage) bool { return kind(raw) == 'n' }

func isAbsent(raw json.RawMessage) bool { return raw == nil || isNull(raw) }

// describe names a JSON value's type and, for numbers, its literal.
func describe(raw json.RawMessage) string {
	switch kind(raw) {
	case '"':
		return "a string"
	case '0':
		return "the number " + string(bytes.TrimSpace(raw))
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return string(bytes.TrimSpace(raw))
}

func jsonish(v any) string {
	if v == nil {
		return "missing"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
