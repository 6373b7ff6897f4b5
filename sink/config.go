package sink

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// Secret is a string that never prints: fmt, logs and YAML output show it
// redacted. Reveal() returns the value for the one place that needs it.
type Secret string

const redacted = "<redacted>"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML redacts the value when config is printed.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON redacts the value when config is printed as JSON.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// Config is the "meta" section.
type Config struct {
	DatasetID     string `yaml:"dataset_id"`
	AccessToken   Secret `yaml:"access_token"`
	AppSecret     Secret `yaml:"app_secret"`
	APIVersion    string `yaml:"api_version"`
	Endpoint      string `yaml:"endpoint"`
	TestEventCode string `yaml:"test_event_code"`
	DryRun        bool   `yaml:"dry_run"`
}

// DefaultConfig returns the "meta" section's defaults.
func DefaultConfig() Config {
	return Config{APIVersion: "v26.0", Endpoint: "https://graph.facebook.com"}
}

// DeliveryConfig is the "delivery" section: batching, retries, timeouts.
type DeliveryConfig struct {
	// BatchSize is the most events one request carries (Meta allows 1,000).
	BatchSize int `yaml:"batch_size"`
	// BatchWait is how long a partial batch waits for more events.
	BatchWait time.Duration `yaml:"batch_wait"`
	// MaxInFlight bounds concurrent requests.
	MaxInFlight int `yaml:"max_in_flight"`
	// RequestTimeout bounds one HTTP request.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// RetryMin and RetryMax bound the jittered exponential backoff of
	// transient failures, which are retried forever.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// HaltRetry is how often a halted sink (expired token, missing
	// permission) tries again on its own.
	HaltRetry time.Duration `yaml:"halt_retry"`
	// ExpiryMargin: events older than 7 days minus this margin are
	// dead-lettered before sending, since one stale event fails a request.
	ExpiryMargin time.Duration `yaml:"expiry_margin"`
	// ShutdownTimeout bounds the drain on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// DefaultDeliveryConfig returns the "delivery" section's defaults.
func DefaultDeliveryConfig() DeliveryConfig {
	return DeliveryConfig{
		BatchSize:       500,
		BatchWait:       time.Second,
		MaxInFlight:     2,
		RequestTimeout:  30 * time.Second,
		RetryMin:        500 * time.Millisecond,
		RetryMax:        5 * time.Minute,
		HaltRetry:       time.Minute,
		ExpiryMargin:    time.Hour,
		ShutdownTimeout: 30 * time.Second,
	}
}

// FieldError is a validation problem at a dotted key path relative to the
// section that reported it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Path is the dotted key path, for locating the line in the YAML.
func (e *FieldError) Path() string { return e.Field }

var (
	datasetRe    = regexp.MustCompile(`^[0-9]{1,20}$`)
	apiVersionRe = regexp.MustCompile(`^v([0-9]{1,3})\.0$`)
)

// OldestAPIVersion is the oldest Graph API version we know to be alive.
const OldestAPIVersion = 25

// Validate reports every problem of the section.
func (c *Config) Validate() []error {
	var errs []error
	add := func(f, format string, a ...any) { errs = append(errs, &FieldError{f, fmt.Sprintf(format, a...)}) }
	if c.DatasetID == "" {
		add("dataset_id", "required: the id of your CRM dataset (Events Manager → Data sources)")
	} else if !datasetRe.MatchString(c.DatasetID) {
		add("dataset_id", "must be digits only, got %d characters", len(c.DatasetID))
	}
	if c.AccessToken == "" && !c.DryRun {
		add("access_token", "required unless dry_run is true (set META_ACCESS_TOKEN)")
	}
	if m := apiVersionRe.FindStringSubmatch(c.APIVersion); m == nil {
		add("api_version", "must look like v26.0, got %q", c.APIVersion)
	}
	if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("endpoint", "must be an http(s) URL, got %q", c.Endpoint)
	} else if u.RawQuery != "" || u.User != nil {
		add("endpoint", "must not carry a query or credentials")
	}
	return errs
}

// APIVersionNumber returns NN of vNN.0 (0 when malformed).
func (c *Config) APIVersionNumber() int {
	m := apiVersionRe.FindStringSubmatch(c.APIVersion)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// Validate reports every problem of the section.
func (d *DeliveryConfig) Validate() []error {
	var errs []error
	add := func(f, format string, a ...any) { errs = append(errs, &FieldError{f, fmt.Sprintf(format, a...)}) }
	if d.BatchSize < 1 || d.BatchSize > MaxBatch {
		add("batch_size", "must be between 1 and %d (Meta's limit), got %d", MaxBatch, d.BatchSize)
	}
	if d.BatchWait < 0 {
		add("batch_wait", "must not be negative")
	}
	if d.MaxInFlight < 1 || d.MaxInFlight > 64 {
		add("max_in_flight", "must be between 1 and 64, got %d", d.MaxInFlight)
	}
	if d.RequestTimeout <= 0 {
		add("request_timeout", "must be positive")
	}
	if d.RetryMin <= 0 {
		add("retry_min", "must be positive")
	}
	if d.RetryMax < d.RetryMin {
		add("retry_max", "must be at least retry_min (%s)", d.RetryMin)
	}
	if d.HaltRetry <= 0 {
		add("halt_retry", "must be positive")
	}
	if d.ExpiryMargin < 0 || d.ExpiryMargin >= MaxEventAge {
		add("expiry_margin", "must be between 0 and 7 days")
	}
	if d.ShutdownTimeout <= 0 {
		add("shutdown_timeout", "must be positive")
	}
	return errs
}
