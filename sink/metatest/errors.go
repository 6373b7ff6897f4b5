package metatest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Sources cited in the comments of this package. Meta's pages are named by
// title; answers Meta really sent are quoted from the public repositories or
// issue threads that recorded them.
//
//	[ErrHandling]  Meta for Developers, Graph API, "Handling Errors"
//	               (developers.facebook.com/docs/graph-api/guides/error-handling):
//	               the error body {message, type, code, error_subcode,
//	               error_user_title, error_user_msg, fbtrace_id}; codes 1, 2, 3,
//	               4, 10, 17, 102, 190, 200-299, 341, 368 and subcode 463.
//	[MAPIErrors]   Meta, Marketing API, "Error Codes" (error-reference): 1, 4,
//	               10, 17, 100, 100/33 "Unsupported post request".
//	[RateLimits]   Meta, Graph API, "Rate Limits" (overview/rate-limiting) and
//	               Marketing API "Rate Limiting": codes 4, 17, 32, 613, the BUC
//	               codes 80000-80014 and the X-Business-Use-Case-Usage header.
//	[ServerEvent]  Meta, Conversions API, "Server Event Parameters".
//	[CustomerInfo] Meta, Conversions API, "Customer Information Parameters".
//	[MainBody]     Meta, Conversions API, "Main Body Parameters".
//	[CLPayload]    Meta, Conversions API, "Conversion Leads Integration -
//	               Payload Specification".
//	[CAPISupport]  Meta, Conversions API, "Troubleshooting": a valid payload gets
//	               2xx, an invalid one 4xx "with minimal error details".
//	[SDKAction]    facebook/facebook-python-business-sdk,
//	               facebook_business/adobjects/serverside/action_source.py.
//	[Rudder]       rudderlabs/rudder-transformer,
//	               test/integrations/destinations/facebook_pixel/network.ts and
//	               src/v0/util/facebookUtils/networkHandler.js: real bodies for
//	               100/2804003, 100/33, 17, and the CAPI validation subcodes
//	               2804001/7/16/17/19/48 that answer with error_user_title.
//	[LiveV26]      a public live-verification transcript of Graph v26.0
//	               (2026-09-05): 2804003 body with every field, invalid token =
//	               HTTP 401 code 190 "Invalid OAuth access token - Cannot parse
//	               access token", success = {"events_received":1,"messages":[],
//	               "fbtrace_id":...}.
//	[LeadtailDoc]  /work/shared/docs/meta-capi.md (leadtail's condensed reading
//	               of the above, with its Decisions).

// latestAPIVersion is the newest Graph API version leadtail knows of
// ([LeadtailDoc]: v26.0, released 2026-07). It only shapes the text of the
// deprecated-version error.
const latestAPIVersion = 26

// apiError is one Graph API error answer: the HTTP status, the body under
// "error", extra headers, and a reason for the request log that is never sent
// (Meta does not say which event failed, [LeadtailDoc]).
type apiError struct {
	status int
	body   wireError
	header http.Header
	reason string
}

// wireError is the "error" object exactly as Graph sends it ([ErrHandling],
// [LiveV26]). error_subcode is absent when there is none; is_transient is
// present (false) on Conversions API validation errors and on transient
// errors (true), absent on others, as in the observed bodies.
type wireError struct {
	Message        string `json:"message"`
	Type           string `json:"type"`
	Code           int    `json:"code"`
	ErrorSubcode   int    `json:"error_subcode,omitempty"`
	IsTransient    *bool  `json:"is_transient,omitempty"`
	ErrorUserTitle string `json:"error_user_title,omitempty"`
	ErrorUserMsg   string `json:"error_user_msg,omitempty"`
	FbtraceID      string `json:"fbtrace_id"`
}

const (
	typeOAuth       = "OAuthException"
	typeGraphMethod = "GraphMethodException"
)

func boolp(b bool) *bool { return &b }

// newTraceID returns a fresh fbtrace_id: Meta's are 11 to 23 characters of
// URL-safe base64 ("A6UyEgg_HdoiRX9duxcBOjb", [Rudder]).
func newTraceID() string {
	var b [17]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// capiInvalid is the shape of every Conversions API payload error Meta sends:
// HTTP 400, "Invalid parameter", OAuthException, code 100, a 2804xxx subcode,
// is_transient false and a user title and message ([LiveV26], [Rudder]).
func capiInvalid(subcode int, title, msg, reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: "Invalid parameter", Type: typeOAuth, Code: 100, ErrorSubcode: subcode,
		IsTransient: boolp(false), ErrorUserTitle: title, ErrorUserMsg: msg,
	}}
}

// Subcodes of the Conversions API chosen for each rule. 2804003, 2804016,
// 2804036 and 2804050 are the ones [LeadtailDoc] documents; the others are
// our closest choice among the CAPI validation subcodes [Rudder] lists, since
// Meta publishes no table of them.
const (
	// SubcodeInvalidEventTime: event_time not an integer count of seconds
	// (a float, a string, milliseconds). Closest choice, see above.
	SubcodeInvalidEventTime = 2804001
	// SubcodeEventTooOld: event_time more than 7 days in the past
	// ([ServerEvent]: "we return an error for the entire request").
	SubcodeEventTooOld = 2804003
	// SubcodeUnhashed: a customer information value that is not a
	// lower-case SHA-256 hex string ([CustomerInfo], [LeadtailDoc]).
	SubcodeUnhashed = 2804016
	// SubcodeMissingParameter: a required event parameter is missing
	// (event_name, event_time, action_source, user_data: [ServerEvent]).
	// 2804019 with title "Missing required parameter" is quoted from a live
	// answer in the public note "Fix the Facebook CAPI 400 Bad Request
	// Make.com Error" (creatoropsmatrix.com); [Rudder] lists 2804019 too.
	SubcodeMissingParameter = 2804019
	// SubcodeInvalidLeadID: lead_id not a 15-17 digit JSON integer
	// ([CLPayload], [LeadtailDoc]).
	SubcodeInvalidLeadID = 2804036
	// SubcodeNotEnoughUserData: no identifier, or only weak ones
	// ([LeadtailDoc]).
	SubcodeNotEnoughUserData = 2804050
)

func errEventTooOld(reason string) *apiError {
	// Body as observed ([Rudder], [LiveV26] in French).
	return capiInvalid(SubcodeEventTooOld, "Event Timestamp Too Old",
		"The timestamp for this event is too far in the past. Events need to be sent from your server within 7 days of when they occurred. Enter a timestamp that has occurred within the last 7 days.",
		reason)
}

func errInvalidEventTime(reason string) *apiError {
	// Title and text are ours: no live answer was found. [ServerEvent]:
	// "A Unix timestamp in seconds".
	return capiInvalid(SubcodeInvalidEventTime, "Invalid Event Timestamp",
		"The event_time parameter must be a Unix timestamp in seconds, sent as an integer.", reason)
}

func errMissingParameter(param, reason string) *apiError {
	return capiInvalid(SubcodeMissingParameter, "Missing required parameter",
		fmt.Sprintf("A required parameter is missing from your request: %s.", param), reason)
}

func errUnhashed(reason string) *apiError {
	// Text is ours; [CustomerInfo] requires SHA-256 hashes for these keys.
	return capiInvalid(SubcodeUnhashed, "Unhashed Customer Information",
		"Customer information parameters em, ph, fn, ln, ge, db, ct, st, zp, country and external_id must be hashed with SHA-256 and sent as lower-case hex strings.",
		reason)
}

func errInvalidLeadID(reason string) *apiError {
	// Text is ours, after [CLPayload] ("a 15 or 16-digit number ...
	// Do not hash"); [LeadtailDoc] accepts 15-17 digits.
	return capiInvalid(SubcodeInvalidLeadID, "Invalid Lead ID",
		"The lead_id parameter must be the 15 to 17 digit lead ID that Meta generated, sent as an integer.", reason)
}

func errNotEnoughUserData(reason string) *apiError {
	// Text is ours; [LeadtailDoc]: weak combinations are refused.
	return capiInvalid(SubcodeNotEnoughUserData, "Not Enough Customer Information",
		"This event does not contain enough customer information parameters to be matched. Add lead_id, fbc, em, ph or external_id.",
		reason)
}

// errInvalidParam is a plain code-100 parameter error without subcode, in
// Graph's "(#100) Param ..." style ([MAPIErrors] 100 "Invalid parameter").
// Used for wrong JSON types. The exact texts are ours.
func errInvalidParam(msg, reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: "(#100) " + msg, Type: typeOAuth, Code: 100,
	}}
}

// errUnknownParam refuses an unknown key with code 100 "Invalid parameter"
// and no subcode. Meta ignores some unknown keys; the fake refuses them all,
// by leadtail's choice, to catch typos ("evnt_id", "email").
func errUnknownParam(key, reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: "Invalid parameter", Type: typeOAuth, Code: 100, IsTransient: boolp(false),
		ErrorUserTitle: "Unknown parameter",
		ErrorUserMsg:   fmt.Sprintf("The parameter %s is not a Conversions API parameter.", key),
	}}
}

// errDataRequired: Graph's answer when "data" is absent, empty, or the body
// could not be parsed at all: "(#100) The parameter data is required". A
// public Make.com integration note (Portuguese) reports Meta sending it for
// a corrupted JSON body; a public TypeScript fake of the endpoint answers it
// for an empty array.
func errDataRequired(reason string) *apiError {
	return errInvalidParam("The parameter data is required", reason)
}

// errPolicy is a refusal Meta would not make but leadtail's rules do: the
// fake exists to catch our mistakes. Code 100 so a client treats it as a bad
// request, message prefixed so nobody mistakes it for Meta's.
func errPolicy(msg, reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: "(#100) leadtail policy (metatest): " + msg, Type: typeOAuth, Code: 100,
	}}
}

// errUnknownPath: Graph's answer to a path it cannot route, e.g.
// {"message":"Unknown path components: /me/feed","type":"OAuthException",
// "code":2500} (arsduo/koala#611, laravel-notification-channels/facebook#53),
// also given for a malformed version segment (koala#611, "v2.80").
func errUnknownPath(rest, reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: "Unknown path components: " + rest, Type: typeOAuth, Code: 2500,
	}}
}

// errAlias: a non-numeric node name: "(#803) Some of the aliases you
// requested do not exist: X" (CrossGeeks/FacebookClientPlugin#5,
// facebookarchive/php-graph-sdk#1121). Graph answers it with HTTP 404.
func errAlias(node, reason string) *apiError {
	return &apiError{status: http.StatusNotFound, reason: reason, body: wireError{
		Message: "(#803) Some of the aliases you requested do not exist: " + node, Type: typeOAuth, Code: 803,
	}}
}

// errUnsupported: 100/33 for an object that does not exist, is not shared
// with the token, or does not support the method ([MAPIErrors]; body from
// [Rudder]: GraphMethodException, HTTP 400).
func errUnsupported(method, node, reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
			method, node),
		Type: typeGraphMethod, Code: 100, ErrorSubcode: 33,
	}}
}

// errDeprecatedVersion: "(#2635) You are calling a deprecated version of the
// Ads API. Please update to the latest version: vNN.0." type OAuthException
// (facebook/facebook-ruby-business-sdk#86, maraujo/pySocialWatcher#25).
func errDeprecatedVersion(latest int, reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: fmt.Sprintf("(#2635) You are calling a deprecated version of the Ads API. Please update to the latest version: v%d.0.", latest),
		Type:    typeOAuth, Code: 2635,
	}}
}

// errNoToken: {"message":"An access token is required to request this
// resource.","type":"OAuthException","code":104} (spring-guides/
// gs-consuming-rest#10, pellaeon/fb-post-bulk-privacy-edit#2).
func errNoToken(reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: "An access token is required to request this resource.", Type: typeOAuth, Code: 104,
	}}
}

// errBadToken: a token Graph cannot parse: HTTP 401, code 190, no subcode
// ([LiveV26]).
func errBadToken(reason string) *apiError {
	return &apiError{status: http.StatusUnauthorized, reason: reason, body: wireError{
		Message: "Invalid OAuth access token - Cannot parse access token", Type: typeOAuth, Code: 190,
	}}
}

// errExpiredToken: 190/463 "Error validating access token: Session has
// expired on ... The current time is ..." with HTTP 400 ([ErrHandling] lists
// subcode 463 "Expired"; bodies in snarfed/bridgy#59 and
// blynkkk/blynk-server#435).
func errExpiredToken(now time.Time, reason string) *apiError {
	const layout = "Monday, 02-Jan-06 15:04:05 MST"
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: fmt.Sprintf("Error validating access token: Session has expired on %s. The current time is %s.",
			now.Add(-time.Hour).UTC().Format(layout), now.UTC().Format(layout)),
		Type: typeOAuth, Code: 190, ErrorSubcode: 463,
	}}
}

// errProofMissing / errProofInvalid: with "Require App Secret" on, Graph
// answers code 100 GraphMethodException with these texts
// (sromku/android-simple-facebook#160; facebook/facebook-python-business-sdk#528).
func errProofMissing(reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: "API calls from the server require an appsecret_proof argument", Type: typeGraphMethod, Code: 100,
	}}
}

func errProofInvalid(reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: reason, body: wireError{
		Message: "Invalid appsecret_proof provided in the API argument", Type: typeGraphMethod, Code: 100,
	}}
}

// isThrottleCode reports the codes [LeadtailDoc] and [RateLimits] class as
// throttling: 4, 17, 32, 613, 341 and the BUC codes 80000-80014.
func isThrottleCode(code int) bool {
	switch code {
	case 4, 17, 32, 613, 341:
		return true
	}
	return code >= 80000 && code <= 80014
}

// errForCode builds Meta's answer for an injected code/subcode
// (FaultError, FaultThrottle). Texts come from [ErrHandling] and
// [MAPIErrors] unless noted.
func errForCode(code, subcode int, now time.Time, dataset string) *apiError {
	e := &apiError{status: http.StatusBadRequest, reason: "injected", body: wireError{Type: typeOAuth, Code: code, ErrorSubcode: subcode}}
	switch {
	case code == 1:
		// "An unknown error has occurred." (php-graph-sdk#478), HTTP 500.
		e.status = http.StatusInternalServerError
		e.body.Message = "An unknown error has occurred."
	case code == 2:
		// code 2 is_transient true, HTTP 500 (arsduo/koala#425,
		// Trustroots/trustroots#673).
		e.status = http.StatusInternalServerError
		e.body.Message = "An unexpected error has occurred. Please retry your request later."
		e.body.IsTransient = boolp(true)
	case code == 3:
		e.body.Message = "(#3) Application does not have the capability to make this API call."
	case code == 4:
		e.status = http.StatusForbidden // social-core#859 saw 403 for (#4)
		e.body.Message = "(#4) Application request limit reached"
	case code == 10:
		e.status = http.StatusForbidden
		e.body.Message = "(#10) Application does not have permission for this action"
	case code == 17:
		e.body.Message = "(#17) User request limit reached"
	case code == 32:
		e.body.Message = "(#32) Page request limit reached"
	case code == 100 && subcode == 33:
		return &apiError{status: http.StatusBadRequest, reason: "injected", body: errUnsupported("post", dataset, "").body}
	case code == 100:
		e.body.Message = "Invalid parameter"
		e.body.IsTransient = boolp(false)
	case code == 102:
		e.body.Message = "Session key invalid or no longer valid"
	case code == 190 && subcode == 463:
		return &apiError{status: http.StatusBadRequest, reason: "injected", body: errExpiredToken(now, "").body}
	case code == 190:
		e.body.Message = "Invalid OAuth access token - Cannot parse access token"
		e.status = http.StatusUnauthorized
	case code >= 200 && code <= 299:
		e.status = http.StatusForbidden
		e.body.Message = fmt.Sprintf("(#%d) Permissions error", code)
	case code == 341:
		e.body.Message = "(#341) Application limit reached"
	case code == 368:
		e.body.Message = "(#368) The action attempted has been deemed abusive or is otherwise disallowed"
	case code == 613:
		// php-business-sdk#312
		e.body.Message = "(#613) Calls to this api have exceeded the rate limit."
	case code >= 80000 && code <= 80014:
		// airbytehq/airbyte#8773 (80004) and #10655 (80000): subcode 2446079.
		if subcode == 0 {
			e.body.ErrorSubcode = 2446079
		}
		e.body.Message = "(#" + strconv.Itoa(code) + ") There have been too many calls to this ad-account. Wait a bit and try again. For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
	case code == 21009:
		// [LeadtailDoc] classes 21009 as transient.
		e.status = http.StatusInternalServerError
		e.body.Message = "(#21009) The data set upload is temporarily not ready."
		e.body.IsTransient = boolp(true)
	default:
		e.body.Message = fmt.Sprintf("(#%d) Injected error", code)
	}
	return e
}
