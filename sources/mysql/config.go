// Package mysql tails a MySQL or MariaDB database from its binlog.
package mysql

import (
	"fmt"
	"strings"
	"time"
)

// Config is the "source.mysql" section.
type Config struct {
	// DSN in go-sql-driver form: user:pass@tcp(host:3306)/crm
	DSN string `yaml:"dsn"`
	// ServerID is this replica's id in the replication topology; required
	// and unique (a collision kills the other replica's stream).
	ServerID uint32 `yaml:"server_id"`
	// Flavor is "mysql", "mariadb" or "" (detect).
	Flavor string `yaml:"flavor"`
	// DatetimeZone is the zone of DATETIME columns, which carry none.
	DatetimeZone string `yaml:"datetime_zone"`
	// HeartbeatPeriod asks the server for heartbeats on a quiet binlog.
	HeartbeatPeriod time.Duration `yaml:"heartbeat_period"`
}

// DefaultConfig returns the section's defaults.
func DefaultConfig() Config {
	return Config{DatetimeZone: "UTC", HeartbeatPeriod: 30 * time.Second}
}

// FieldError is a validation problem at a dotted key path in this section.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Path is the dotted key path, for locating the line in the YAML.
func (e *FieldError) Path() string { return e.Field }

// Validate reports every problem of the section.
func (c *Config) Validate() []error {
	var errs []error
	add := func(f, format string, a ...any) { errs = append(errs, &FieldError{f, fmt.Sprintf(format, a...)}) }
	if strings.TrimSpace(c.DSN) == "" {
		add("dsn", "required, e.g. leadtail:secret@tcp(db:3306)/crm")
	}
	if c.ServerID == 0 {
		add("server_id", "required: a number no other replica of this server uses, e.g. 4242")
	}
	switch c.Flavor {
	case "", "mysql", "mariadb":
	default:
		add("flavor", "must be mysql, mariadb or empty (detect), got %q", c.Flavor)
	}
	if _, err := time.LoadLocation(c.DatetimeZone); err != nil {
		add("datetime_zone", "unknown time zone %q", c.DatetimeZone)
	}
	if c.HeartbeatPeriod < 0 {
		add("heartbeat_period", "must not be negative")
	}
	return errs
}

// RedactedDSN returns the DSN with the password replaced, for printing.
func RedactedDSN(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	if at < 0 {
		return dsn
	}
	cred := dsn[:at]
	if i := strings.Index(cred, ":"); i >= 0 {
		return cred[:i] + ":redacted" + dsn[at:]
	}
	return dsn
}
