package postgres

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Config is the "source.postgres" section.
type Config struct {
	// DSN is a libpq connection string or URL (pgx syntax).
	DSN         string `yaml:"dsn"`
	Slot        string `yaml:"slot"`
	Publication string `yaml:"publication"`
	// StatusInterval is how often a standby status update is sent.
	StatusInterval time.Duration `yaml:"status_interval"`
	// HeartbeatInterval is how often an idle stream writes a logical
	// message so the slot can advance on a quiet database (0 = off).
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// SetReplicaIdentityFull lets leadtail run ALTER TABLE ... REPLICA
	// IDENTITY FULL on mapped tables that lack it (needs table ownership).
	SetReplicaIdentityFull bool `yaml:"set_replica_identity_full"`
}

// DefaultConfig returns the section's defaults.
func DefaultConfig() Config {
	return Config{Slot: "leadtail", Publication: "leadtail", StatusInterval: 10 * time.Second, HeartbeatInterval: time.Minute}
}

// FieldError is a validation problem at a dotted key path in this section.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Path is the dotted key path, for locating the line in the YAML.
func (e *FieldError) Path() string { return e.Field }

var identRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports every problem of the section.
func (c *Config) Validate() []error {
	var errs []error
	add := func(f, format string, a ...any) { errs = append(errs, &FieldError{f, fmt.Sprintf(format, a...)}) }
	if strings.TrimSpace(c.DSN) == "" {
		add("dsn", "required, e.g. postgres://leadtail@db:5432/crm?sslmode=verify-full")
	}
	if !identRe.MatchString(c.Slot) {
		add("slot", "must be a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters), got %q", c.Slot)
	}
	if !identRe.MatchString(c.Publication) {
		add("publication", "must be a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters), got %q", c.Publication)
	}
	if c.StatusInterval <= 0 || c.StatusInterval > 30*time.Second {
		add("status_interval", "must be between 1ms and 30s (wal_sender_timeout is usually 60s), got %s", c.StatusInterval)
	}
	if c.HeartbeatInterval < 0 {
		add("heartbeat_interval", "must not be negative")
	}
	return errs
}

// RedactedDSN returns the DSN with any password replaced, for printing.
func RedactedDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "redacted")
		}
		return u.String()
	}
	// key=value form: blank out password=...
	re := regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
	return re.ReplaceAllString(dsn, "${1}redacted")
}
