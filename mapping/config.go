package mapping

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is one entry of the "mappings" list: how the rows of one table
// become Conversions API events. Fields holding yaml.Node are interpreted by
// Compile, which keeps their line numbers for error messages and keeps
// strictness (a custom UnmarshalYAML would lose it, go-yaml #460).
type Config struct {
	// Name identifies the mapping (preview --mapping, metrics, event_id).
	Name string `yaml:"name"`
	// Table is "schema.table" (PostgreSQL) or "database.table" (MySQL).
	Table string `yaml:"table"`
	// LeadEventSource is custom_data.lead_event_source: the CRM's name.
	LeadEventSource string `yaml:"lead_event_source"`
	// Key lists the primary key columns (event_id input). Default: [id].
	Key []string `yaml:"key"`
	// Filter: every condition must hold on the new row, else the change is skipped.
	Filter []Condition `yaml:"filter"`
	Stage  StageConfig `yaml:"stage"`
	// EventTime names a column holding the stage-change time; default: the
	// transaction's commit time.
	EventTime *TimeColumn `yaml:"event_time"`
	// LeadCreatedTime names the lead's creation time column; events before
	// it are dead-lettered (Meta refuses them).
	LeadCreatedTime *TimeColumn `yaml:"lead_created_time"`
	// UserData maps Meta customer-information keys to value sources.
	UserData map[string]yaml.Node `yaml:"user_data"`
	// CustomData adds fields to custom_data (sent as they are, unhashed).
	CustomData map[string]yaml.Node `yaml:"custom_data"`
	// Lookups are named queries against the source database.
	Lookups map[string]LookupConfig `yaml:"lookups"`
}

// StageConfig says which column holds the lead stage and which values are
// which Meta events.
type StageConfig struct {
	Column string `yaml:"column"`
	// Events maps stage values to event names, in funnel order (the order
	// of the YAML mapping matters for transitions: forward and fill_skipped).
	Events yaml.Node `yaml:"events"`
	// Transitions is "any" (every change to a mapped stage) or "forward"
	// (only moves further down the ordered list).
	Transitions string `yaml:"transitions"`
	// FillSkipped also emits the stages between the old and the new one,
	// in order, each with its own event_id.
	FillSkipped bool `yaml:"fill_skipped"`
}

// TimeColumn names a timestamp column.
type TimeColumn struct {
	Column string `yaml:"column"`
	// Timezone applies to values without a zone (e.g. "timestamp without
	// time zone", MySQL DATETIME, strings without offset). Default UTC.
	Timezone string `yaml:"timezone"`
	// Unit for numeric columns: "s" (Unix seconds, default) or "ms".
	Unit string `yaml:"unit"`
}

// Condition is one row filter. Exactly one operator is set.
type Condition struct {
	Column    string `yaml:"column"`
	Equals    any    `yaml:"equals"`
	NotEquals any    `yaml:"not_equals"`
	In        []any  `yaml:"in"`
	NotIn     []any  `yaml:"not_in"`
	IsNull    *bool  `yaml:"is_null"`
}

// LookupConfig is a parameterised query run against the source database.
type LookupConfig struct {
	// Query uses the database's placeholders ($1... for PostgreSQL, ? for MySQL).
	Query string `yaml:"query"`
	// Args are the row's columns bound to the placeholders, in order.
	Args []string `yaml:"args"`
	// MaxRows bounds how many rows (values) one lookup may return. Default 10.
	MaxRows int `yaml:"max_rows"`
	// CacheSize bounds the LRU cache of results (entries). Default 10000; 0 turns it off.
	CacheSize *int `yaml:"cache_size"`
	// CacheTTL is how long a cached result is used. Default 1m.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// FieldError is a problem at a dotted key path relative to the mapping.
// Line is set when the problem was found in a yaml.Node (0 otherwise: the
// caller locates the path in the document).
type FieldError struct {
	Field string
	Msg   string
	Line  int
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Path is the dotted key path, for locating the line in the YAML.
func (e *FieldError) Path() string { return e.Field }

// NodeLine is the line of the offending YAML node, 0 when unknown.
func (e *FieldError) NodeLine() int { return e.Line }

func fieldErr(line int, field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...), Line: line}
}
