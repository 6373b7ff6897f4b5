package mapping

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Options are the settings a mapping needs from outside its own section.
type Options struct {
	// DatasetID goes into every event_id, so two datasets fed from one
	// database never share ids.
	DatasetID string
	// Now is the clock of the lookup cache's TTL. Default time.Now.
	Now func() time.Time
	// DisableCache turns lookup caching off (preview: each record brings
	// its own lookup results).
	DisableCache bool
}

type srcKind int

const (
	srcColumn srcKind = iota
	srcLiteral
	srcJSON
	srcLookup
)

// valueSource is one place a value comes from.
type valueSource struct {
	kind    srcKind
	column  string // column, json column, or lookup result column
	literal string
	path    []pathElem
	lookup  string
}

type field struct {
	key     string
	sources []valueSource
}

type stageDef struct {
	value string
	event string
}

type timeCol struct {
	column string
	loc    *time.Location // nil: no zone given (UTC for zone-less values)
	ms     bool
}

type cond struct {
	column string
	op     string
	values []string
	isNull bool
}

type lookupDef struct {
	name    string
	query   string
	args    []string
	maxRows int
	cache   *lruCache
}

// Mapper is one compiled mapping. It is safe for use by one goroutine at a
// time per Set call; the lookup cache has its own lock.
type Mapper struct {
	name            string
	table           string
	leadEventSource string
	dataset         string
	key             []string
	filter          []cond
	stageColumn     string
	stages          []stageDef
	stageIndex      map[string]int
	forward         bool
	fill            bool
	eventTime       *timeCol
	leadCreated     *timeCol
	user            []field
	custom          []field
	lookups         map[string]*lookupDef
	now             func() time.Time
}

// Name is the mapping's name.
func (m *Mapper) Name() string { return m.name }

// Table is the mapped table.
func (m *Mapper) Table() string { return m.table }

// Columns lists the row columns the mapping reads (for `check`).
func (m *Mapper) Columns() []string {
	seen := map[string]bool{}
	var out []string
	add := func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, k := range m.key {
		add(k)
	}
	add(m.stageColumn)
	for _, c := range m.filter {
		add(c.column)
	}
	if m.eventTime != nil {
		add(m.eventTime.column)
	}
	if m.leadCreated != nil {
		add(m.leadCreated.column)
	}
	for _, fs := range [][]field{m.user, m.custom} {
		for _, f := range fs {
			for _, s := range f.sources {
				if s.kind == srcColumn || s.kind == srcJSON {
					add(s.column)
				}
			}
		}
	}
	for _, l := range m.lookups {
		for _, a := range l.args {
			add(a)
		}
	}
	return out
}

// LookupQueries maps each lookup's name to its query text.
func (m *Mapper) LookupQueries() map[string]string {
	out := make(map[string]string, len(m.lookups))
	for n, l := range m.lookups {
		out[n] = l.query
	}
	return out
}

var (
	nameRe   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	tableRe  = regexp.MustCompile(`^[^.\s]+\.[^.\s]+$`)
	dollarRe = regexp.MustCompile(`\$([0-9]+)`)
)

// userKeys are the user_data keys a mapping may fill.
var userKeys = map[string]bool{"lead_id": true}

func init() {
	for _, k := range hashedKeyList {
		userKeys[k] = true
	}
	for _, k := range plainKeyList {
		userKeys[k] = true
	}
}

var hashedKeyList = []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}
var plainKeyList = []string{"fbc", "fbp", "client_ip_address", "client_user_agent", "subscription_id",
	"fb_login_id", "anon_id", "madid", "page_id", "page_scoped_user_id", "ctwa_clid", "ig_account_id", "ig_sid"}

func isHashedKey(k string) bool {
	for _, h := range hashedKeyList {
		if h == k {
			return true
		}
	}
	return false
}

// Compile checks a mapping and builds its Mapper. It reports every problem,
// each as a *FieldError with a path relative to the mapping.
func Compile(cfg Config, opts Options) (*Mapper, []error) {
	var errs []error
	add := func(line int, f, format string, a ...any) { errs = append(errs, fieldErr(line, f, format, a...)) }
	m := &Mapper{
		name:            cfg.Name,
		table:           cfg.Table,
		leadEventSource: cfg.LeadEventSource,
		dataset:         opts.DatasetID,
		key:             cfg.Key,
		stageColumn:     cfg.Stage.Column,
		fill:            cfg.Stage.FillSkipped,
		stageIndex:      map[string]int{},
		lookups:         map[string]*lookupDef{},
		now:             opts.Now,
	}
	if m.now == nil {
		m.now = time.Now
	}
	if len(m.key) == 0 {
		m.key = []string{"id"}
	}
	if !nameRe.MatchString(cfg.Name) {
		add(0, "name", "required: letters, digits, '_', '-' or '.', at most 64 characters")
	}
	if !tableRe.MatchString(cfg.Table) {
		add(0, "table", "must be schema.table (PostgreSQL) or database.table (MySQL), got %q", cfg.Table)
	}
	if strings.TrimSpace(cfg.LeadEventSource) == "" {
		add(0, "lead_event_source", "required: the CRM's name, sent as custom_data.lead_event_source")
	}
	for i, k := range cfg.Key {
		if k == "" {
			add(0, fmt.Sprintf("key[%d]", i), "must name a column")
		}
	}

	// Stage.
	if cfg.Stage.Column == "" {
		add(0, "stage.column", "required: the column holding the lead stage")
	}
	switch cfg.Stage.Transitions {
	case "", "any":
	case "forward":
		m.forward = true
	default:
		add(0, "stage.transitions", "must be any or forward, got %q", cfg.Stage.Transitions)
	}
	ev := &cfg.Stage.Events
	switch {
	case ev.Kind == 0:
		add(0, "stage.events", "required: stage value -> Meta event name, in funnel order")
	case ev.Kind != yaml.MappingNode:
		add(ev.Line, "stage.events", "must be a mapping of stage value to event name, e.g. {new: initial_lead, won: converted}")
	case len(ev.Content) == 0:
		add(ev.Line, "stage.events", "must list at least one stage")
	default:
		for i := 0; i+1 < len(ev.Content); i += 2 {
			k, v := ev.Content[i], ev.Content[i+1]
			path := "stage.events." + k.Value
			if k.Kind != yaml.ScalarNode || k.Value == "" {
				add(k.Line, "stage.events", "stage values must be strings or integers")
				continue
			}
			if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" || v.Tag == "!!null" {
				add(v.Line, path, "must be a Meta event name, e.g. marketing_qualified_lead")
				continue
			}
			if _, dup := m.stageIndex[k.Value]; dup {
				add(k.Line, path, "stage value listed twice")
				continue
			}
			m.stageIndex[k.Value] = len(m.stages)
			m.stages = append(m.stages, stageDef{value: k.Value, event: v.Value})
		}
	}

	// Times.
	m.eventTime = compileTime(cfg.EventTime, "event_time", &errs)
	m.leadCreated = compileTime(cfg.LeadCreatedTime, "lead_created_time", &errs)

	// Filter.
	for i, c := range cfg.Filter {
		p := fmt.Sprintf("filter[%d]", i)
		if c.Column == "" {
			add(0, p+".column", "required")
		}
		var ops []string
		cc := cond{column: c.Column}
		if c.Equals != nil {
			ops = append(ops, "equals")
			cc.op, cc.values = "in", []string{canonYAML(c.Equals)}
		}
		if c.NotEquals != nil {
			ops = append(ops, "not_equals")
			cc.op, cc.values = "not_in", []string{canonYAML(c.NotEquals)}
		}
		if c.In != nil {
			ops = append(ops, "in")
			cc.op, cc.values = "in", canonList(c.In)
		}
		if c.NotIn != nil {
			ops = append(ops, "not_in")
			cc.op, cc.values = "not_in", canonList(c.NotIn)
		}
		if c.IsNull != nil {
			ops = append(ops, "is_null")
			cc.op, cc.isNull = "is_null", *c.IsNull
		}
		if len(ops) != 1 {
			add(0, p, "needs exactly one of equals, not_equals, in, not_in, is_null (got %d)", len(ops))
			continue
		}
		m.filter = append(m.filter, cc)
	}

	// Lookups before the fields that use them.
	for _, name := range sortedKeys(cfg.Lookups) {
		l := cfg.Lookups[name]
		p := "lookups." + name
		if !nameRe.MatchString(name) {
			add(0, p, "lookup names use letters, digits, '_', '-' or '.'")
		}
		if strings.TrimSpace(l.Query) == "" {
			add(0, p+".query", "required: a SELECT with placeholders for args")
		} else if n := placeholderCount(l.Query); n != len(l.Args) {
			add(0, p+".args", "the query has %d placeholder(s) but %d arg(s) are listed", n, len(l.Args))
		}
		d := &lookupDef{name: name, query: l.Query, args: l.Args, maxRows: l.MaxRows}
		if d.maxRows == 0 {
			d.maxRows = 10
		}
		if d.maxRows < 1 || d.maxRows > 1000 {
			add(0, p+".max_rows", "must be between 1 and 1000, got %d", l.MaxRows)
		}
		size := 10000
		if l.CacheSize != nil {
			size = *l.CacheSize
		}
		if size < 0 {
			add(0, p+".cache_size", "must not be negative")
		}
		ttl := l.CacheTTL
		if ttl == 0 {
			ttl = time.Minute
		}
		if ttl < 0 {
			add(0, p+".cache_ttl", "must not be negative")
		}
		if size > 0 && !opts.DisableCache {
			d.cache = newLRU(size, ttl)
		}
		m.lookups[name] = d
	}

	// user_data, in a fixed key order so events and errors are stable.
	if len(cfg.UserData) == 0 {
		add(0, "user_data", "required: at least one identifier, e.g. lead_id: fb_lead_id")
	}
	for _, k := range sortedKeys(cfg.UserData) {
		n := cfg.UserData[k]
		p := "user_data." + k
		if !userKeys[k] {
			add(n.Line, p, "unknown Meta customer-information key (known: lead_id, %s, %s)",
				strings.Join(hashedKeyList, ", "), strings.Join(plainKeyList, ", "))
			continue
		}
		srcs := m.compileSources(&n, p, &errs)
		if len(srcs) > 0 {
			m.user = append(m.user, field{key: k, sources: srcs})
		}
	}
	for _, k := range sortedKeys(cfg.CustomData) {
		n := cfg.CustomData[k]
		p := "custom_data." + k
		if k == "event_source" || k == "lead_event_source" {
			add(n.Line, p, "is set by leadtail (event_source: crm; lead_event_source from the mapping)")
			continue
		}
		srcs := m.compileSources(&n, p, &errs)
		if len(srcs) > 0 {
			m.custom = append(m.custom, field{key: k, sources: srcs})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return m, nil
}

func compileTime(tc *TimeColumn, p string, errs *[]error) *timeCol {
	if tc == nil {
		return nil
	}
	out := &timeCol{column: tc.Column}
	if tc.Column == "" {
		*errs = append(*errs, fieldErr(0, p+".column", "required"))
	}
	if tc.Timezone != "" {
		loc, err := time.LoadLocation(tc.Timezone)
		if err != nil {
			*errs = append(*errs, fieldErr(0, p+".timezone", "unknown time zone %q (use an IANA name such as Europe/Berlin)", tc.Timezone))
		}
		out.loc = loc
	}
	switch tc.Unit {
	case "", "s":
	case "ms":
		out.ms = true
	default:
		*errs = append(*errs, fieldErr(0, p+".unit", "must be s or ms, got %q", tc.Unit))
	}
	return out
}

var sourceKeys = map[string]bool{"column": true, "literal": true, "json": true, "path": true, "lookup": true}

// compileSources reads a value-source node: a column name, a mapping
// ({column}, {literal}, {json, path}, {lookup, column}) or a list of those.
func (m *Mapper) compileSources(n *yaml.Node, p string, errs *[]error) []valueSource {
	add := func(line int, f, format string, a ...any) { *errs = append(*errs, fieldErr(line, f, format, a...)) }
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
			add(n.Line, p, "must name a column, or be {literal: ...}, {json: column, path: ...} or {lookup: name, column: ...}")
			return nil
		}
		return []valueSource{{kind: srcColumn, column: n.Value}}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			add(n.Line, p, "empty list")
		}
		var out []valueSource
		for i, c := range n.Content {
			if c.Kind == yaml.SequenceNode {
				add(c.Line, fmt.Sprintf("%s[%d]", p, i), "lists do not nest")
				continue
			}
			out = append(out, m.compileSources(c, fmt.Sprintf("%s[%d]", p, i), errs)...)
		}
		return out
	case yaml.MappingNode:
		kv := map[string]*yaml.Node{}
		bad := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if !sourceKeys[k.Value] {
				add(k.Line, p+"."+k.Value, "unknown key (a value source takes column, literal, json+path or lookup+column)")
				bad = true
				continue
			}
			if v := n.Content[i+1]; v.Kind != yaml.ScalarNode {
				add(v.Line, p+"."+k.Value, "must be a single value")
				continue
			}
			kv[k.Value] = n.Content[i+1]
		}
		if bad {
			return nil
		}
		str := func(k string) string {
			if v := kv[k]; v != nil {
				return v.Value
			}
			return ""
		}
		switch {
		case kv["literal"] != nil:
			if len(kv) != 1 {
				add(n.Line, p, "literal stands alone")
				return nil
			}
			return []valueSource{{kind: srcLiteral, literal: str("literal")}}
		case kv["json"] != nil:
			if len(kv) != 2 || kv["path"] == nil {
				add(n.Line, p, "json needs path (and nothing else), e.g. {json: profile, path: contact.email}")
				return nil
			}
			path, err := parsePath(str("path"))
			if err != nil {
				add(kv["path"].Line, p+".path", "%v", err)
				return nil
			}
			return []valueSource{{kind: srcJSON, column: str("json"), path: path}}
		case kv["lookup"] != nil:
			if len(kv) != 2 || kv["column"] == nil {
				add(n.Line, p, "lookup needs column (the result column), e.g. {lookup: contact, column: email}")
				return nil
			}
			if _, ok := m.lookups[str("lookup")]; !ok {
				add(kv["lookup"].Line, p+".lookup", "no lookup named %q under lookups", str("lookup"))
				return nil
			}
			return []valueSource{{kind: srcLookup, lookup: str("lookup"), column: str("column")}}
		case kv["column"] != nil:
			if len(kv) != 1 {
				add(n.Line, p, "path belongs with json")
				return nil
			}
			return []valueSource{{kind: srcColumn, column: str("column")}}
		default:
			add(n.Line, p, "needs one of column, literal, json or lookup")
		}
	default:
		add(n.Line, p, "must name a column or a value source")
	}
	return nil
}

// placeholderCount counts $n (highest n) or, without those, '?' markers
// outside quotes.
func placeholderCount(q string) int {
	max := 0
	for _, m := range dollarRe.FindAllStringSubmatch(q, -1) {
		if n, _ := strconv.Atoi(m[1]); n > max {
			max = n
		}
	}
	if max > 0 {
		return max
	}
	n, quote := 0, rune(0)
	for _, r := range q {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"' || r == '`':
			quote = r
		case r == '?':
			n++
		}
	}
	return n
}

func canonYAML(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func canonList(vs []any) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = canonYAML(v)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Meta's priority order first, then alphabetical.
	rank := func(k string) int {
		for i, p := range []string{"lead_id", "fbc", "em", "ph", "external_id"} {
			if p == k {
				return i
			}
		}
		return 100
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0; j-- {
			a, b := keys[j-1], keys[j]
			if rank(a) < rank(b) || (rank(a) == rank(b) && a <= b) {
				break
			}
			keys[j-1], keys[j] = b, a
		}
	}
	return keys
}
