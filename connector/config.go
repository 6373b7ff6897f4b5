package connector

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/leadtail/leadtail/mapping"
	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources/mysql"
	"github.com/leadtail/leadtail/sources/postgres"
)

// Config is the whole configuration file. Each section's type belongs to
// the package that uses it; this type only composes them.
type Config struct {
	Log      LogConfig           `yaml:"log"`
	StateDir string              `yaml:"state_dir"`
	Source   SourceConfig        `yaml:"source"`
	Meta     sink.Config         `yaml:"meta"`
	Delivery sink.DeliveryConfig `yaml:"delivery"`
	HTTP     HTTPConfig          `yaml:"http"`
	// MappingFiles are paths or globs (relative to this file) of YAML files
	// that each hold a "mappings:" list, e.g. one file per CRM.
	MappingFiles []string         `yaml:"mapping_files"`
	Mappings     []mapping.Config `yaml:"mappings"`

	// Path is the file the config was loaded from.
	Path string `yaml:"-"`
	// Set is the compiled mappings, from Mappings and MappingFiles.
	Set *mapping.Set `yaml:"-"`
}

// LogConfig is the "log" section.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// HTTPConfig is the "http" section.
type HTTPConfig struct {
	// Listen serves /metrics, /healthz and /readyz; "" turns it off.
	Listen string `yaml:"listen"`
}

// SourceConfig holds exactly one of its members.
type SourceConfig struct {
	Postgres *postgres.Config `yaml:"postgres"`
	MySQL    *mysql.Config    `yaml:"mysql"`
}

// Kind names the configured source ("postgres" or "mysql").
func (s SourceConfig) Kind() string {
	switch {
	case s.Postgres != nil:
		return "postgres"
	case s.MySQL != nil:
		return "mysql"
	}
	return ""
}

// defaultConfig is the configuration before the file is applied.
func defaultConfig() Config {
	return Config{
		Log:      LogConfig{Level: "info", Format: "text"},
		StateDir: "./state",
		Meta:     sink.DefaultConfig(),
		Delivery: sink.DefaultDeliveryConfig(),
		HTTP:     HTTPConfig{Listen: "127.0.0.1:9464"},
	}
}

// Problem is one configuration problem, located in a file.
type Problem struct {
	File string
	Line int
	Path string
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ConfigError lists every problem found in a configuration.
type ConfigError struct {
	Problems []Problem
}

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads, expands, decodes and validates a configuration file and the
// mapping files it names. Every problem is reported at once in a
// *ConfigError; each names the file, line and dotted key.
func Load(path string) (*Config, error) {
	return LoadWith(path, os.LookupEnv)
}

// LoadWith is Load with an explicit environment lookup (tests).
func LoadWith(path string, env func(string) (string, bool)) (*Config, error) {
	cfg := defaultConfig()
	cfg.Path = path
	// Decoding into a non-nil pointer keeps the defaults; the member that
	// the file does not name is dropped again below.
	pg, my := postgres.DefaultConfig(), mysql.DefaultConfig()
	cfg.Source.Postgres, cfg.Source.MySQL = &pg, &my
	var probs []Problem
	doc, ps := parseFile(path, &cfg, env)
	probs = append(probs, ps...)
	if doc == nil {
		return nil, &ConfigError{Problems: probs}
	}
	if !hasPath(doc, "source.postgres") {
		cfg.Source.Postgres = nil
	}
	if !hasPath(doc, "source.mysql") {
		cfg.Source.MySQL = nil
	}

	// Where each mapping came from, for locating its problems.
	type origin struct {
		file   string
		doc    *yaml.Node
		prefix string
	}
	origins := make([]origin, len(cfg.Mappings))
	for i := range cfg.Mappings {
		origins[i] = origin{path, doc, fmt.Sprintf("mappings[%d]", i)}
	}
	files, ps := expandMappingFiles(path, cfg.MappingFiles, doc)
	probs = append(probs, ps...)
	for _, f := range files {
		var inc struct {
			Mappings []mapping.Config `yaml:"mappings"`
		}
		fdoc, ps := parseFile(f, &inc, env)
		probs = append(probs, ps...)
		if fdoc == nil {
			continue
		}
		if len(inc.Mappings) == 0 && len(ps) == 0 {
			probs = append(probs, Problem{File: f, Line: 1, Path: "mappings", Msg: "a mapping file must hold a non-empty mappings: list"})
		}
		for i, m := range inc.Mappings {
			cfg.Mappings = append(cfg.Mappings, m)
			origins = append(origins, origin{f, fdoc, fmt.Sprintf("mappings[%d]", i)})
		}
	}

	// Section validation.
	locate := func(prefix string, errs []error) {
		for _, err := range errs {
			p := Problem{File: path, Msg: err.Error()}
			var pe interface{ Path() string }
			if errors.As(err, &pe) {
				p.Path = joinPath(prefix, pe.Path())
				p.Msg = strings.TrimPrefix(err.Error(), pe.Path()+": ")
			} else {
				p.Path = prefix
			}
			p.Line = lineOf(doc, p.Path)
			probs = append(probs, p)
		}
	}
	switch {
	case cfg.Source.Postgres != nil && cfg.Source.MySQL != nil:
		probs = append(probs, Problem{File: path, Line: lineOf(doc, "source"), Path: "source", Msg: "set exactly one of postgres or mysql, not both"})
	case cfg.Source.Postgres != nil:
		locate("source.postgres", cfg.Source.Postgres.Validate())
	case cfg.Source.MySQL != nil:
		locate("source.mysql", cfg.Source.MySQL.Validate())
	default:
		probs = append(probs, Problem{File: path, Line: lineOf(doc, "source"), Path: "source", Msg: "required: postgres: {dsn: ...} or mysql: {dsn: ..., server_id: ...}"})
	}
	locate("meta", cfg.Meta.Validate())
	locate("delivery", cfg.Delivery.Validate())
	locate("", cfg.validateOwn())

	// Mappings.
	if len(cfg.Mappings) == 0 {
		probs = append(probs, Problem{File: path, Line: lineOf(doc, "mappings"), Path: "mappings", Msg: "at least one mapping is required (here or through mapping_files)"})
	}
	names := map[string]string{}
	var mappers []*mapping.Mapper
	for i, mc := range cfg.Mappings {
		o := origins[i]
		if mc.Name != "" {
			if prev, dup := names[mc.Name]; dup {
				probs = append(probs, Problem{File: o.file, Line: lineOf(o.doc, o.prefix+".name"), Path: o.prefix + ".name",
					Msg: fmt.Sprintf("mapping name %q is already used by %s", mc.Name, prev)})
			}
			names[mc.Name] = fmt.Sprintf("%s (%s)", o.prefix, filepath.Base(o.file))
		}
		m, errs := mapping.Compile(mc, mapping.Options{DatasetID: cfg.Meta.DatasetID})
		for _, err := range errs {
			p := Problem{File: o.file, Path: o.prefix, Msg: err.Error()}
			var fe *mapping.FieldError
			if errors.As(err, &fe) {
				p.Path = joinPath(o.prefix, fe.Field)
				p.Msg = fe.Msg
				p.Line = fe.Line
			}
			if p.Line == 0 {
				p.Line = lineOf(o.doc, p.Path)
			}
			probs = append(probs, p)
		}
		if m != nil {
			mappers = append(mappers, m)
		}
	}
	if len(probs) > 0 {
		return nil, &ConfigError{Problems: dedupeProblems(probs)}
	}
	cfg.Set = mapping.NewSet(mappers...)
	return &cfg, nil
}

func (c *Config) validateOwn() []error {
	var errs []error
	add := func(f, format string, a ...any) { errs = append(errs, &fieldError{f, fmt.Sprintf(format, a...)}) }
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		add("log.level", "must be trace, debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "must be text or json, got %q", c.Log.Format)
	}
	if strings.TrimSpace(c.StateDir) == "" {
		add("state_dir", "required: a directory for the checkpoint and dead letters")
	}
	if c.HTTP.Listen != "" {
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
			add("http.listen", "must be host:port (or \"\" to turn the endpoint off), got %q", c.HTTP.Listen)
		}
	}
	return errs
}

type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }
func (e *fieldError) Path() string  { return e.field }

func joinPath(prefix, p string) string {
	switch {
	case prefix == "":
		return p
	case p == "":
		return prefix
	}
	return prefix + "." + p
}

// dedupeProblems keeps one problem per file and path: a missing variable
// also empties the value it was in, and "required" would say it twice.
func dedupeProblems(ps []Problem) []Problem {
	seen := map[string]bool{}
	out := ps[:0]
	for _, p := range ps {
		k := p.File + "\x00" + p.Path
		if p.Path != "" && seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, p)
	}
	sortProblems(out)
	return out
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		return ps[i].Line < ps[j].Line
	})
}

// parseFile reads one YAML file into out: parse, expand ${VARS} in scalar
// values, check for unknown keys, decode. It returns the expanded document
// node (nil when the file could not be read or parsed).
func parseFile(path string, out any, env func(string) (string, bool)) (*yaml.Node, []Problem) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []Problem{{File: path, Msg: fmt.Sprintf("cannot read config: %v", err)}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []Problem{yamlSyntaxProblem(path, err)}
	}
	if len(bytes.TrimSpace(data)) == 0 || doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, []Problem{{File: path, Line: 1, Msg: "the file is empty"}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, []Problem{{File: path, Line: root.Line, Msg: "the top level must be a mapping of sections"}}
	}
	var probs []Problem
	for _, m := range expandEnv(root, "", env) {
		m.File = path
		probs = append(probs, m)
	}
	for _, u := range unknownKeys(root, reflect.TypeOf(out).Elem(), "") {
		u.File = path
		probs = append(probs, u)
	}
	// Decode even when keys are unknown or variables missing: the
	// validation that follows then finds every other problem too.
	if err := root.Decode(out); err != nil {
		probs = append(probs, decodeProblems(path, root, err)...)
	}
	return root, probs
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func yamlSyntaxProblem(path string, err error) Problem {
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{File: path, Line: n, Msg: "YAML syntax: " + m[2]}
	}
	return Problem{File: path, Msg: "YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

func decodeProblems(path string, root *yaml.Node, err error) []Problem {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []Problem{{File: path, Msg: err.Error()}}
	}
	var out []Problem
	for _, e := range te.Errors {
		p := Problem{File: path, Msg: e}
		if m := yamlLineRe.FindStringSubmatch(e); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Msg = m[2]
			p.Path = pathAtLine(root, "", p.Line)
		}
		out = append(out, p)
	}
	return out
}

var envRe = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// expandEnv replaces ${NAME} and ${NAME:-default} in scalar values (never
// in keys or comments, and after parsing, so a value cannot inject YAML).
// "$$" is a literal "$". Every unset variable without a default is reported.
func expandEnv(n *yaml.Node, path string, env func(string) (string, bool)) []Problem {
	var probs []Problem
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			probs = append(probs, expandEnv(n.Content[i+1], joinPath(path, n.Content[i].Value), env)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			probs = append(probs, expandEnv(c, fmt.Sprintf("%s[%d]", path, i), env)...)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return nil
		}
		changed := false
		n.Value = envRe.ReplaceAllStringFunc(n.Value, func(s string) string {
			changed = true
			if s == "$$" {
				return "$"
			}
			m := envRe.FindStringSubmatch(s)
			if v, ok := env(m[1]); ok && v != "" {
				return v
			}
			if strings.Contains(s, ":-") {
				return m[2]
			}
			if v, ok := env(m[1]); ok {
				return v
			}
			probs = append(probs, Problem{Line: n.Line, Path: path,
				Msg: fmt.Sprintf("environment variable %s is not set (use ${%s:-default} for a default)", m[1], m[1])})
			return ""
		})
		if changed && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			// Let the expanded text resolve its own type (a port number
			// from ${PORT} decodes into an int field).
			n.Tag = ""
		}
	}
	return probs
}

var nodeType = reflect.TypeOf(yaml.Node{})

// unknownKeys walks the document along the Go type and reports every key
// the type does not have. yaml.v3's KnownFields works only on a Decoder, and
// we decode the expanded node tree, so the check is done here, with the
// dotted path and line of each unknown key.
func unknownKeys(n *yaml.Node, t reflect.Type, path string) []Problem {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType {
		return nil
	}
	var probs []Problem
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // a type error, which Decode reports
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "-" || !f.IsExported() {
				continue
			}
			if tag == "" {
				tag = strings.ToLower(f.Name)
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			p := joinPath(path, k.Value)
			if !ok {
				probs = append(probs, Problem{Line: k.Line, Path: p, Msg: "unknown key (known here: " + strings.Join(names, ", ") + ")"})
				continue
			}
			probs = append(probs, unknownKeys(n.Content[i+1], ft, p)...)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			probs = append(probs, unknownKeys(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value))...)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			probs = append(probs, unknownKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return probs
}

// lineOf finds the line of a dotted path ("mappings[0].stage.column") in
// the document; a path that is not there gives the line of its nearest
// ancestor that is (a missing key is reported where its parent is).
func lineOf(root *yaml.Node, path string) int {
	if root == nil {
		return 0
	}
	n := root
	line := root.Line
	for _, seg := range splitPath(path) {
		var next *yaml.Node
		switch {
		case seg.index >= 0 && n.Kind == yaml.SequenceNode:
			if seg.index < len(n.Content) {
				next = n.Content[seg.index]
			}
		case seg.index < 0 && n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg.key {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		}
		if next == nil {
			return line
		}
		if seg.index >= 0 {
			line = next.Line
		}
		n = next
	}
	return line
}

func hasPath(root *yaml.Node, path string) bool {
	n := root
	for _, seg := range splitPath(path) {
		if n.Kind != yaml.MappingNode {
			return false
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg.key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return false
		}
		n = next
	}
	return true
}

type pathSeg struct {
	key   string
	index int
}

func splitPath(p string) []pathSeg {
	var out []pathSeg
	for _, part := range strings.Split(p, ".") {
		if part == "" {
			continue
		}
		key := part
		var idx []int
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
			for _, x := range strings.Split(part[i:], "[") {
				if x == "" {
					continue
				}
				n, err := strconv.Atoi(strings.TrimSuffix(x, "]"))
				if err == nil {
					idx = append(idx, n)
				}
			}
		}
		if key != "" {
			out = append(out, pathSeg{key: key, index: -1})
		}
		for _, n := range idx {
			out = append(out, pathSeg{index: n})
		}
	}
	return out
}

// pathAtLine returns the dotted path of the key or value at line.
func pathAtLine(n *yaml.Node, path string, line int) string {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if k.Line == line && (v.Kind == yaml.ScalarNode || v.Line == line) {
				return p
			}
			if r := pathAtLine(v, p, line); r != "" {
				return r
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if c.Kind == yaml.ScalarNode && c.Line == line {
				return p
			}
			if r := pathAtLine(c, p, line); r != "" {
				return r
			}
		}
	}
	return ""
}

// expandMappingFiles resolves mapping_files entries relative to the
// config's directory. A plain path must exist; a glob may match nothing
// only if it is a glob (reported as a problem anyway: likely a typo).
func expandMappingFiles(cfgPath string, entries []string, doc *yaml.Node) ([]string, []Problem) {
	var out []string
	var probs []Problem
	seen := map[string]bool{}
	base := filepath.Dir(cfgPath)
	for i, e := range entries {
		p := fmt.Sprintf("mapping_files[%d]", i)
		pat := e
		if !filepath.IsAbs(pat) {
			pat = filepath.Join(base, pat)
		}
		matches, err := filepath.Glob(pat)
		if err != nil {
			probs = append(probs, Problem{File: cfgPath, Line: lineOf(doc, p), Path: p, Msg: fmt.Sprintf("bad glob %q: %v", e, err)})
			continue
		}
		if len(matches) == 0 {
			probs = append(probs, Problem{File: cfgPath, Line: lineOf(doc, p), Path: p, Msg: fmt.Sprintf("no file matches %q (relative to %s)", e, base)})
			continue
		}
		sort.Strings(matches)
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out, probs
}
