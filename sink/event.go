package sink

import (
	"encoding/json"
	"time"
)

// MaxBatch is Meta's limit of events per request.
const MaxBatch = 1000

// MaxEventAge is how old an event may be when Meta receives it.
const MaxEventAge = 7 * 24 * time.Hour

// ActionSystemGenerated is the action_source of every CRM event.
const ActionSystemGenerated = "system_generated"

// Event is one Conversions API event exactly as it goes into data[]. The
// fields tagged "-" travel with the event inside leadtail and never reach Meta.
type Event struct {
	EventName    string         `json:"event_name"`
	EventTime    int64          `json:"event_time"`
	ActionSource string         `json:"action_source"`
	EventID      string         `json:"event_id"`
	UserData     UserData       `json:"user_data"`
	CustomData   map[string]any `json:"custom_data"`

	// Mapping and Table name where the event came from (dead letters, metrics).
	Mapping string `json:"-"`
	Table   string `json:"-"`
	// LeadCreated is the lead's creation time when the mapping knows it
	// (Unix seconds, 0 = unknown); an event before it is refused.
	LeadCreated int64 `json:"-"`
	// CommitTime is when the change committed in the source (latency metrics).
	CommitTime time.Time `json:"-"`
	// Reject is a dead-letter reason the mapping already found (e.g. an
	// invalid lead_id); such an event is dead-lettered, never sent.
	Reject string `json:"-"`
}

// UserData holds Meta's customer information parameters. Hashed fields hold
// lower-case SHA-256 hex strings only; the mapping hashes before it fills them.
type UserData struct {
	// LeadID is Meta's lead id, sent as a JSON integer. int64 holds the 17
	// digits that float64 cannot.
	LeadID int64 `json:"lead_id,omitempty"`

	Em         []string `json:"em,omitempty"`
	Ph         []string `json:"ph,omitempty"`
	Fn         []string `json:"fn,omitempty"`
	Ln         []string `json:"ln,omitempty"`
	Ge         []string `json:"ge,omitempty"`
	Db         []string `json:"db,omitempty"`
	Ct         []string `json:"ct,omitempty"`
	St         []string `json:"st,omitempty"`
	Zp         []string `json:"zp,omitempty"`
	Country    []string `json:"country,omitempty"`
	ExternalID []string `json:"external_id,omitempty"`

	// Not hashed.
	Fbc              string `json:"fbc,omitempty"`
	Fbp              string `json:"fbp,omitempty"`
	ClientIPAddress  string `json:"client_ip_address,omitempty"`
	ClientUserAgent  string `json:"client_user_agent,omitempty"`
	SubscriptionID   string `json:"subscription_id,omitempty"`
	FbLoginID        string `json:"fb_login_id,omitempty"`
	AnonID           string `json:"anon_id,omitempty"`
	Madid            string `json:"madid,omitempty"`
	PageID           string `json:"page_id,omitempty"`
	PageScopedUserID string `json:"page_scoped_user_id,omitempty"`
	CtwaClid         string `json:"ctwa_clid,omitempty"`
	IgAccountID      string `json:"ig_account_id,omitempty"`
	IgSid            string `json:"ig_sid,omitempty"`
}

// HashedKeys are the user_data keys whose values must be SHA-256 hex.
var HashedKeys = []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}

// PlainKeys are the user_data keys sent as given (besides lead_id).
var PlainKeys = []string{"fbc", "fbp", "client_ip_address", "client_user_agent", "subscription_id",
	"fb_login_id", "anon_id", "madid", "page_id", "page_scoped_user_id", "ctwa_clid", "ig_account_id", "ig_sid"}

// Hashed returns a pointer to the slice for a hashed key, nil for others.
func (u *UserData) Hashed(key string) *[]string {
	switch key {
	case "em":
		return &u.Em
	case "ph":
		return &u.Ph
	case "fn":
		return &u.Fn
	case "ln":
		return &u.Ln
	case "ge":
		return &u.Ge
	case "db":
		return &u.Db
	case "ct":
		return &u.Ct
	case "st":
		return &u.St
	case "zp":
		return &u.Zp
	case "country":
		return &u.Country
	case "external_id":
		return &u.ExternalID
	}
	return nil
}

// Plain returns a pointer to the string for an unhashed key, nil for others.
func (u *UserData) Plain(key string) *string {
	switch key {
	case "fbc":
		return &u.Fbc
	case "fbp":
		return &u.Fbp
	case "client_ip_address":
		return &u.ClientIPAddress
	case "client_user_agent":
		return &u.ClientUserAgent
	case "subscription_id":
		return &u.SubscriptionID
	case "fb_login_id":
		return &u.FbLoginID
	case "anon_id":
		return &u.AnonID
	case "madid":
		return &u.Madid
	case "page_id":
		return &u.PageID
	case "page_scoped_user_id":
		return &u.PageScopedUserID
	case "ctwa_clid":
		return &u.CtwaClid
	case "ig_account_id":
		return &u.IgAccountID
	case "ig_sid":
		return &u.IgSid
	}
	return nil
}

// Request is the body of POST /{version}/{dataset}/events.
type Request struct {
	Data           []Event `json:"data"`
	AccessToken    string  `json:"access_token"`
	AppSecretProof string  `json:"appsecret_proof,omitempty"`
	TestEventCode  string  `json:"test_event_code,omitempty"`
}

// Response is Meta's success body.
type Response struct {
	EventsReceived int               `json:"events_received"`
	Messages       []json.RawMessage `json:"messages"`
	FbtraceID      string            `json:"fbtrace_id"`
}

// ErrorBody is Meta's error body: {"error": {...}}.
type ErrorBody struct {
	Error GraphError `json:"error"`
}

// GraphError is the "error" object of a Graph API error answer. ErrorData
// may be an object or a string, so it stays raw.
type GraphError struct {
	Message        string          `json:"message"`
	Type           string          `json:"type,omitempty"`
	Code           int             `json:"code"`
	ErrorSubcode   int             `json:"error_subcode,omitempty"`
	IsTransient    bool            `json:"is_transient,omitempty"`
	ErrorUserTitle string          `json:"error_user_title,omitempty"`
	ErrorUserMsg   string          `json:"error_user_msg,omitempty"`
	ErrorData      json.RawMessage `json:"error_data,omitempty"`
	FbtraceID      string          `json:"fbtrace_id,omitempty"`
}

// Result tells what became of the events given to one Deliver call.
type Result struct {
	// Accepted counts events Meta acknowledged (or, with dry_run, logged).
	Accepted int
	// DeadLettered counts events written to the dead-letter file.
	DeadLettered int
	// Requests counts HTTP requests made, retries and bisection included.
	Requests int
	// Warnings counts events Meta took with a warning (messages, or
	// events_received smaller than sent).
	Warnings int
}
