package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadtail/leadtail"
	"github.com/leadtail/leadtail/sources/mysql"
)

// `leadtail init` looks at a CRM database (read-only) and writes a starter
// configuration: for a CRM with a recipe (testdata/crm/<crm>) a config that
// includes the recipe through mapping_files and lists the stage values in
// the data; for any other schema a proposed mapping with "# TODO" where the
// user must decide. It never writes to the database: the session is made
// read-only before the first query (PostgreSQL default_transaction_read_only,
// MySQL SET SESSION TRANSACTION READ ONLY).

// InitOptions configures Init.
type InitOptions struct {
	// DSN: postgres:// or postgresql:// URL for PostgreSQL, else a MySQL DSN
	// (user:pass@tcp(host:port)/db).
	DSN string
	// Out is the config file to write; "" writes the config to stdout.
	Out string
	// RecipesDir holds the recipes (<dir>/<crm>/mapping.yaml). "" looks for
	// ./testdata/crm; when there is none, the embedded recipe is written next
	// to Out.
	RecipesDir string
	// Now dates the header (tests pin it). Zero: time.Now.
	Now time.Time
}

// InitResult is what Init found and wrote.
type InitResult struct {
	// Recipe is the recognised CRM's recipe name ("odoo", ...), "" when unknown.
	Recipe string
	// Config is the configuration text.
	Config string
	// Files are further files to write next to Out (name relative to Out's
	// directory -> content): the recipe's mapping file when it is not on disk.
	Files map[string][]byte
}

// dbPasswordVar is the variable the written DSN takes its password from:
// init never copies a password into a file.
const dbPasswordVar = "LEADTAIL_DB_PASSWORD"

// sampleRows bounds how many rows of a table init reads to count values.
const sampleRows = 100000

// InitCommand runs Init and writes its result: the config to opts.Out (and
// any recipe copy next to it) or to stdout. It refuses to overwrite files.
func InitCommand(ctx context.Context, opts InitOptions, stdout, stderr io.Writer) error {
	if opts.Out != "" {
		if _, err := os.Stat(opts.Out); err == nil {
			return fmt.Errorf("%s exists: init does not overwrite files (remove it or choose another --out)", opts.Out)
		}
	}
	res, err := Init(ctx, opts)
	if err != nil {
		return err
	}
	if opts.Out == "" {
		_, err := io.WriteString(stdout, res.Config)
		return err
	}
	dir := filepath.Dir(opts.Out)
	for name, data := range res.Files {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			fmt.Fprintf(stderr, "leadtail init: %s exists, kept as it is\n", p)
			continue
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		fmt.Fprintf(stderr, "leadtail init: wrote %s\n", p)
	}
	if err := os.WriteFile(opts.Out, []byte(res.Config), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", opts.Out, err)
	}
	what := "an unknown schema: fill in every # TODO"
	if res.Recipe != "" {
		what = "recipe " + res.Recipe
	}
	fmt.Fprintf(stderr, "leadtail init: wrote %s (%s); next: leadtail check -c %s\n", opts.Out, what, opts.Out)
	return nil
}

// Init connects read-only, recognises the CRM and builds the config.
func Init(ctx context.Context, opts InitOptions) (*InitResult, error) {
	if strings.TrimSpace(opts.DSN) == "" {
		return nil, errors.New("--dsn is required")
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	db, err := openInspectDB(ctx, opts.DSN)
	if err != nil {
		return nil, err
	}
	defer db.close()
	inv, err := loadInventory(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read the schema: %w", err)
	}
	w := &initWriter{opts: opts, db: db, inv: inv}
	for _, r := range initRecipes {
		if r.kind != db.kind() {
			continue
		}
		d, err := r.detect(ctx, db, inv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.title, err)
		}
		if d != nil {
			return w.recipeConfig(r, d)
		}
	}
	return w.unknownConfig(ctx)
}

// inspectDB is the read-only connection init queries through; every value
// comes back as text (nil for NULL).
type inspectDB interface {
	kind() string     // "postgres" or "mysql"
	database() string // the DSN's database
	query(ctx context.Context, sql string) ([][]*string, error)
	quoteIdent(name string) string
	close()
}

func isPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func openInspectDB(ctx context.Context, dsn string) (inspectDB, error) {
	if isPostgresDSN(dsn) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
		}
		// Read-only before anything else; a statement timeout so that
		// counting values never holds a production database for long.
		for _, s := range []string{"SET default_transaction_read_only = on", "SET statement_timeout = '60s'"} {
			if _, err := conn.Exec(ctx, s); err != nil {
				conn.Close(context.WithoutCancel(ctx))
				return nil, fmt.Errorf("%s: %w", s, err)
			}
		}
		return &pgInspect{conn: conn}, nil
	}
	c, err := mysql.OpenReadOnly(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to MySQL/MariaDB: %w", err)
	}
	if c.Database() == "" {
		c.Close()
		return nil, errors.New("the MySQL DSN must name the CRM's database: user:pass@tcp(host:3306)/crm")
	}
	return &myInspect{c: c}, nil
}

type pgInspect struct{ conn *pgx.Conn }

func (p *pgInspect) kind() string { return "postgres" }
func (p *pgInspect) database() string {
	return p.conn.Config().Database
}
func (p *pgInspect) quoteIdent(n string) string { return pgx.Identifier{n}.Sanitize() }
func (p *pgInspect) close()                     { p.conn.Close(context.Background()) }
func (p *pgInspect) query(ctx context.Context, sql string) ([][]*string, error) {
	rows, err := p.conn.Query(ctx, sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]*string
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]*string, len(raw))
		for i, v := range raw {
			if v != nil {
				s := string(v)
				row[i] = &s
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

type myInspect struct{ c *mysql.ReadOnlyConn }

func (m *myInspect) kind() string               { return "mysql" }
func (m *myInspect) database() string           { return m.c.Database() }
func (m *myInspect) quoteIdent(n string) string { return "`" + strings.ReplaceAll(n, "`", "``") + "`" }
func (m *myInspect) close()                     { m.c.Close() }
func (m *myInspect) query(ctx context.Context, sql string) ([][]*string, error) {
	_, rows, err := m.c.Query(ctx, sql)
	return rows, err
}

// sqlString quotes a string literal for either database (standard SQL
// quoting; MySQL's backslash escapes are avoided by refusing backslashes).
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, ``), "'", "''") + "'"
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// inventory is the database's tables and columns.
type inventory struct {
	tables []*invTable
	byName map[string]*invTable // "schema.table"
}

type invTable struct {
	schema, name string
	cols         []invColumn
	pk           []string
}

type invColumn struct {
	name, dataType, fullType string // fullType: udt name (PostgreSQL) or COLUMN_TYPE (MySQL)
	enum                     bool
}

func (t *invTable) qualified() string { return t.schema + "." + t.name }

func (t *invTable) col(name string) *invColumn {
	for i := range t.cols {
		if t.cols[i].name == name {
			return &t.cols[i]
		}
	}
	return nil
}

func (inv *inventory) table(schema, name string) *invTable { return inv.byName[schema+"."+name] }

func loadInventory(ctx context.Context, db inspectDB) (*inventory, error) {
	var colSQL, pkSQL string
	if db.kind() == "postgres" {
		colSQL = `SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.udt_name,
		         (SELECT t.typtype = 'e' FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		           WHERE t.typname = c.udt_name AND n.nspname = c.udt_schema)::text
		  FROM information_schema.columns c
		  JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		 WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
		 ORDER BY c.table_schema, c.table_name, c.ordinal_position`
		pkSQL = `SELECT kcu.table_schema, kcu.table_name, kcu.column_name
		  FROM information_schema.table_constraints tc
		  JOIN information_schema.key_column_usage kcu
		    ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name
		   AND kcu.table_name = tc.table_name
		 WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema NOT IN ('pg_catalog', 'information_schema')
		 ORDER BY kcu.table_schema, kcu.table_name, kcu.ordinal_position`
	} else {
		colSQL = `SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE,
		         CASE WHEN c.DATA_TYPE = 'enum' THEN 'true' ELSE 'false' END
		  FROM information_schema.COLUMNS c
		  JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
		 WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'
		 ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`
		pkSQL = `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		 WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY'
		 ORDER BY TABLE_NAME, ORDINAL_POSITION`
	}
	rows, err := db.query(ctx, colSQL)
	if err != nil {
		return nil, err
	}
	inv := &inventory{byName: map[string]*invTable{}}
	for _, r := range rows {
		key := str(r[0]) + "." + str(r[1])
		t := inv.byName[key]
		if t == nil {
			t = &invTable{schema: str(r[0]), name: str(r[1])}
			inv.byName[key] = t
			inv.tables = append(inv.tables, t)
		}
		t.cols = append(t.cols, invColumn{name: str(r[2]), dataType: strings.ToLower(str(r[3])), fullType: str(r[4]), enum: str(r[5]) == "true"})
	}
	rows, err = db.query(ctx, pkSQL)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if t := inv.byName[str(r[0])+"."+str(r[1])]; t != nil {
			t.pk = append(t.pk, str(r[2]))
		}
	}
	return inv, nil
}

// valueCount is one distinct value of a column and how many rows hold it.
type valueCount struct {
	value string
	null  bool
	label string // e.g. a stage's name for a stage id
	count int64
}

// readCounts turns rows of (value, count[, label]) into valueCounts.
func readCounts(rows [][]*string) []valueCount {
	var out []valueCount
	for _, r := range rows {
		vc := valueCount{value: str(r[0]), null: r[0] == nil}
		vc.count, _ = strconv.ParseInt(str(r[1]), 10, 64)
		if len(r) > 2 {
			vc.label = str(r[2])
		}
		out = append(out, vc)
	}
	return out
}

// initWriter assembles the config text.
type initWriter struct {
	opts InitOptions
	db   inspectDB
	inv  *inventory
}

// sourceBlock is the source section for the DSN, its password replaced by
// ${LEADTAIL_DB_PASSWORD}.
func (w *initWriter) sourceBlock(replicaIdentityNote string) (string, []string) {
	dsn, hadPassword := dsnWithoutPassword(w.opts.DSN)
	var env []string
	if hadPassword {
		env = append(env, dbPasswordVar+"=<the database password> (init never writes it into a file)")
	}
	var b strings.Builder
	b.WriteString("source:\n")
	if w.db.kind() == "postgres" {
		b.WriteString("  postgres:\n")
		b.WriteString("    # The role needs REPLICATION and SELECT on the mapped tables (init only read).\n")
		fmt.Fprintf(&b, "    dsn: %s\n", yamlQuote(dsn))
		b.WriteString("    slot: leadtail\n    publication: leadtail\n")
		if replicaIdentityNote != "" {
			fmt.Fprintf(&b, "    set_replica_identity_full: true   # %s\n", replicaIdentityNote)
		} else {
			b.WriteString("    set_replica_identity_full: true   # updates need before images of the mapped tables\n")
		}
	} else {
		b.WriteString("  mysql:\n")
		b.WriteString("    # The user needs REPLICATION SLAVE, REPLICATION CLIENT (BINLOG MONITOR on MariaDB)\n")
		b.WriteString("    # and SELECT on the CRM's tables (init only read).\n")
		fmt.Fprintf(&b, "    dsn: %s\n", yamlQuote(dsn))
		b.WriteString("    server_id: 4242                   # must differ from every other replica of this server\n")
	}
	return b.String(), env
}

// dsnWithoutPassword replaces the DSN's password by ${LEADTAIL_DB_PASSWORD}.
func dsnWithoutPassword(dsn string) (string, bool) {
	if isPostgresDSN(dsn) {
		u, err := url.Parse(dsn)
		if err != nil || u.User == nil {
			return dsn, false
		}
		if _, ok := u.User.Password(); !ok {
			return dsn, false
		}
		u.User = url.UserPassword(u.User.Username(), "PASSWORDPLACEHOLDER")
		return strings.Replace(u.String(), "PASSWORDPLACEHOLDER", "${"+dbPasswordVar+"}", 1), true
	}
	slash := strings.LastIndex(dsn, "/")
	if slash < 0 {
		return dsn, false
	}
	at := strings.LastIndex(dsn[:slash], "@")
	if at < 0 {
		return dsn, false
	}
	user, _, ok := strings.Cut(dsn[:at], ":")
	if !ok {
		return dsn, false
	}
	return user + ":${" + dbPasswordVar + "}" + dsn[at:], true
}

// yamlQuote renders s as a double-quoted YAML scalar (JSON escaping is valid
// YAML); ${VARS} inside stay expandable.
func yamlQuote(s string) string { return strconv.Quote(s) }

func (w *initWriter) header(b *strings.Builder, what string) {
	fmt.Fprintf(b, "# leadtail configuration written by `leadtail init` on %s.\n", w.opts.Now.UTC().Format("2006-01-02"))
	fmt.Fprintf(b, "# %s\n", wrapComment(fmt.Sprintf("Database: %s %q. %s", w.db.kind(), w.db.database(), what), "# "))
	if strings.Contains(what, "TODO") {
		b.WriteString("# Next: decide every \"# TODO\" below, then\n")
	} else {
		b.WriteString("# Next:\n")
	}
	b.WriteString("#   leadtail check -c FILE      database, Meta and config ready?\n")
	b.WriteString("#   leadtail preview -c FILE    try change records offline\n")
	b.WriteString("#   leadtail run -c FILE\n")
}

func metaBlock() string {
	return `meta:
  dataset_id: "${META_DATASET_ID}"     # the CRM dataset in Events Manager (15-17 digits)
  access_token: ${META_ACCESS_TOKEN}   # a system-user token; keep it out of this file
  # test_event_code: TEST12345         # route events to Test Events while you try it out
`
}

func envBlock(b *strings.Builder, env []string) {
	if len(env) == 0 {
		return
	}
	b.WriteString("#\n# Set in leadtail's environment (systemd Environment=, docker -e, ...):\n")
	for _, e := range env {
		fmt.Fprintf(b, "#   %s\n", e)
	}
}

func notesBlock(b *strings.Builder, notes []string) {
	b.WriteString("#\n")
	if len(notes) == 0 {
		b.WriteString("# init found nothing it could not decide.\n")
		return
	}
	b.WriteString("# What init could not decide for you:\n")
	for _, n := range notes {
		fmt.Fprintf(b, "#   - %s\n", wrapComment(n, "#     "))
	}
}

// wrapComment wraps text at ~76 columns, continuing lines with prefix.
func wrapComment(text, prefix string) string {
	words := strings.Fields(text)
	var b strings.Builder
	line := 0
	for i, wd := range words {
		if i > 0 && line+len(wd)+1 > 72 {
			b.WriteString("\n" + prefix)
			line = 0
		} else if i > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(wd)
		line += len(wd)
	}
	return b.String()
}

// recipeMappingPath decides what mapping_files names: the recipe on disk
// when there is one, else a copy next to the config (from the binary).
func (w *initWriter) recipeMappingPath(r *initRecipe, res *InitResult) (path string, note string) {
	dir := w.opts.RecipesDir
	if dir == "" {
		dir = filepath.Join("testdata", "crm")
	}
	onDisk := filepath.Join(dir, r.name, "mapping.yaml")
	if _, err := os.Stat(onDisk); err == nil {
		abs, err := filepath.Abs(onDisk)
		if err == nil {
			onDisk = abs
		}
		if w.opts.Out != "" {
			if outDir, err := filepath.Abs(filepath.Dir(w.opts.Out)); err == nil {
				if rel, err := filepath.Rel(outDir, onDisk); err == nil {
					return rel, ""
				}
			}
		}
		return onDisk, ""
	}
	data, err := leadtail.Recipes.ReadFile("testdata/crm/" + r.name + "/mapping.yaml")
	if err != nil {
		return onDisk, "the recipe's mapping file is missing from this build"
	}
	name := r.name + ".mapping.yaml"
	if w.opts.Out == "" {
		return "testdata/crm/" + r.name + "/mapping.yaml",
			"the recipe's mapping file was not found on disk: get testdata/crm/" + r.name +
				"/mapping.yaml from the leadtail repository, or rerun init with --out to have it written next to the config"
	}
	res.Files = map[string][]byte{name: data}
	return name, ""
}

// recipeEvents reads the stage -> event lists of the recipe's mappings.
func recipeEvents(name string) ([]stageEvents, error) {
	data, err := leadtail.Recipes.ReadFile("testdata/crm/" + name + "/mapping.yaml")
	if err != nil {
		return nil, err
	}
	return parseStageEvents(data)
}

func (w *initWriter) recipeConfig(r *initRecipe, d *detection) (*InitResult, error) {
	res := &InitResult{Recipe: r.name}
	path, pathNote := w.recipeMappingPath(r, res)
	notes := d.notes
	if pathNote != "" {
		notes = append(notes, pathNote)
	}
	events, err := recipeEvents(r.name)
	if err != nil {
		return nil, fmt.Errorf("recipe %s: %w", r.name, err)
	}
	var b strings.Builder
	w.header(&b, fmt.Sprintf("Recognised as %s (%s): using its recipe.", r.title, d.evidence))
	src, env := w.sourceBlock(d.replicaNote)
	env = append(env, d.env...)
	env = append(env, "META_DATASET_ID=<your dataset id>", "META_ACCESS_TOKEN=<a system-user access token>")
	envBlock(&b, env)
	unmapped := 0
	for _, sv := range d.stages {
		for _, v := range sv.values {
			if !v.null && v.value != sv.neutral && eventFor(events, sv.mapping, v.value) == "" {
				unmapped++
			}
		}
	}
	if unmapped > 0 {
		notes = append(notes, fmt.Sprintf("%d stage value(s) in the data are not in the recipe and will send nothing (listed below): "+
			"if they should reach Meta, copy %s next to this file, add them to stage.events and point mapping_files at the copy", unmapped, path))
	}
	notesBlock(&b, notes)
	b.WriteString("\nlog: {level: info, format: text}\n")
	b.WriteString("state_dir: ${LEADTAIL_STATE_DIR:-./state}   # checkpoint and dead letters: keep it on a persistent volume\n\n")
	b.WriteString(src + "\n")
	b.WriteString(metaBlock())
	b.WriteString("\nhttp:\n  listen: 127.0.0.1:9464   # /metrics /healthz /readyz; \"\" turns it off\n\n")
	fmt.Fprintf(&b, "# The %s recipe (its comments explain every choice).\nmapping_files:\n  - %s\n", r.title, yamlQuote(path))
	for _, sv := range d.stages {
		// The recipe's values that no row holds yet are listed too (0 rows),
		// so the list shows the whole funnel.
		for _, se := range events {
			if se.mapping != sv.mapping {
				continue
			}
			for _, p := range se.pairs {
				if !slices.ContainsFunc(sv.values, func(v valueCount) bool { return !v.null && v.value == p[0] }) {
					sv.values = append(sv.values, valueCount{value: p[0]})
				}
			}
		}
		fmt.Fprintf(&b, "\n# %s, now (mapping %s):\n", sv.title, sv.mapping)
		if len(sv.values) == 0 {
			b.WriteString("#   (no rows yet)\n")
		}
		width := 0
		for _, v := range sv.values {
			if l := len(displayValue(v)); l > width {
				width = l
			}
		}
		for _, v := range sv.values {
			ev := "sends nothing (NULL)"
			if !v.null {
				if e := eventFor(events, sv.mapping, v.value); e != "" {
					ev = "-> " + e
				} else if v.value == sv.neutral {
					ev = "sends nothing (no stage)"
				} else {
					ev = "sends nothing: not in the recipe"
				}
			}
			fmt.Fprintf(&b, "#   %-*s %8d row(s)  %s\n", width, displayValue(v), v.count, ev)
		}
	}
	res.Config = b.String()
	return res, nil
}

func displayValue(v valueCount) string {
	if v.null {
		return "(NULL)"
	}
	s := strconv.Quote(v.value)
	if v.label != "" {
		s += " (" + v.label + ")"
	}
	return s
}

// stageEvents is one mapping's ordered stage -> event list.
type stageEvents struct {
	mapping string
	column  string
	pairs   [][2]string
}

func eventFor(all []stageEvents, mappingName, value string) string {
	for _, se := range all {
		if se.mapping != mappingName {
			continue
		}
		for _, p := range se.pairs {
			if p[0] == value {
				return p[1]
			}
		}
	}
	return ""
}

var (
	leadTableRe  = regexp.MustCompile(`(?i)lead|prospect|deal|opportunit|enquir|inquir|contact|customer|client|person|people`)
	stageColRe   = regexp.MustCompile(`(?i)status|stage|state|phase|step|pipeline|funnel`)
	notStageRe   = regexp.MustCompile(`(?i)^(state|address_state|.*_state)$|country|city|zip|postal|email|phone|name$`)
	emailColRe   = regexp.MustCompile(`(?i)e_?mail`)
	phoneColRe   = regexp.MustCompile(`(?i)phone|mobile|^tel|_tel`)
	leadIDColRe  = regexp.MustCompile(`(?i)(fb|facebook|meta|leadgen)_?lead_?id|(fb|facebook|meta)_?id|leadgen_?id`)
	firstNameRe  = regexp.MustCompile(`(?i)^(first_?name|firstname|fname|given_?name)$`)
	lastNameRe   = regexp.MustCompile(`(?i)^(last_?name|lastname|lname|surname|family_?name)$`)
	cityColRe    = regexp.MustCompile(`(?i)^(city|.*_city)$`)
	zipColRe     = regexp.MustCompile(`(?i)zip|postal_?code|postcode`)
	countryColRe = regexp.MustCompile(`(?i)^(country|.*_country|country_code)$`)
	createdColRe = regexp.MustCompile(`(?i)^(created_?at|created|create_date|date_entered|createdtime|created_on|inserted_at)$`)
	deletedColRe = regexp.MustCompile(`(?i)^(deleted|is_deleted)$`)
)

// textLike reports whether a column holds text or an enum (stage candidates).
func (c invColumn) textLike() bool {
	if c.enum {
		return true
	}
	switch c.dataType {
	case "text", "character varying", "character", "varchar", "char", "enum", "citext", "tinytext":
		return true
	}
	return false
}

func (c invColumn) integer() bool {
	switch c.dataType {
	case "integer", "smallint", "bigint", "int", "tinyint", "mediumint":
		return true
	}
	return false
}

func (c invColumn) boolean() bool {
	return c.dataType == "boolean" || (c.dataType == "tinyint" && strings.HasPrefix(c.fullType, "tinyint(1)"))
}

// candidate is a (table, stage column) pair init proposes.
type candidate struct {
	table  *invTable
	col    invColumn
	values []valueCount
	score  int
}

func (w *initWriter) countValues(ctx context.Context, t *invTable, col string) ([]valueCount, error) {
	q := w.db.quoteIdent
	var sql string
	if w.db.kind() == "postgres" {
		sql = fmt.Sprintf(`SELECT v, count(*) FROM (SELECT %s::text AS v FROM %s.%s LIMIT %d) s GROUP BY v ORDER BY count(*) DESC, v LIMIT 31`,
			q(col), q(t.schema), q(t.name), sampleRows)
	} else {
		sql = fmt.Sprintf("SELECT v, COUNT(*) FROM (SELECT CAST(%s AS CHAR) AS v FROM %s.%s LIMIT %d) s GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 31",
			q(col), q(t.schema), q(t.name), sampleRows)
	}
	rows, err := w.db.query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return readCounts(rows), nil
}

// candidates finds lead tables and stage columns: text or enum columns
// (integers only when the name says stage/status) with 2 to 30 distinct
// values in the sampled rows.
func (w *initWriter) candidates(ctx context.Context) ([]candidate, error) {
	var out []candidate
	evaluated := 0
	for _, t := range w.inv.tables {
		tableHint := leadTableRe.MatchString(t.name)
		for _, c := range t.cols {
			nameHint := stageColRe.MatchString(c.name) && !notStageRe.MatchString(c.name)
			if !(c.textLike() || (c.integer() && nameHint)) || !(tableHint || nameHint || c.enum) {
				continue
			}
			if !nameHint && !c.enum && (emailColRe.MatchString(c.name) || phoneColRe.MatchString(c.name) || notStageRe.MatchString(c.name)) {
				continue
			}
			if slices.Contains(t.pk, c.name) || evaluated >= 60 {
				continue
			}
			evaluated++
			vals, err := w.countValues(ctx, t, c.name)
			if err != nil {
				return nil, fmt.Errorf("count values of %s.%s: %w", t.qualified(), c.name, err)
			}
			distinct := 0
			for _, v := range vals {
				if !v.null {
					distinct++
				}
			}
			if distinct < 1 || distinct > 30 {
				continue
			}
			// Every value different (free text, ids) is no stage, unless
			// the name or an enum type says otherwise.
			if !nameHint && !c.enum && distinct > 2 && allOnce(vals) {
				continue
			}
			score := 0
			if nameHint {
				score += 10
			}
			if c.enum {
				score += 5
			}
			if tableHint {
				score += 5
			}
			if distinct >= 2 && distinct <= 15 {
				score += 3
			}
			out = append(out, candidate{table: t, col: c, values: vals, score: score})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].score > out[j].score })
	return out, nil
}

// firstCol returns the first column of t whose name matches re (and is not
// in skip), or "".
func firstCol(t *invTable, re *regexp.Regexp, skip ...string) string {
	for _, c := range t.cols {
		if re.MatchString(c.name) && !slices.Contains(skip, c.name) {
			return c.name
		}
	}
	return ""
}

func (w *initWriter) unknownConfig(ctx context.Context) (*InitResult, error) {
	cands, err := w.candidates(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range initRecipes {
		names = append(names, r.title)
	}
	var b strings.Builder
	w.header(&b, "Not a CRM leadtail has a recipe for ("+strings.Join(names, ", ")+
		"): init proposes a mapping from the schema and the data. Every \"# TODO\" needs your decision; leadtail refuses the file until each is filled.")
	src, env := w.sourceBlock("")
	env = append(env, "META_DATASET_ID=<your dataset id>", "META_ACCESS_TOKEN=<a system-user access token>")
	envBlock(&b, env)
	b.WriteString("#\n# Candidate lead tables and stage columns (text or enum columns with few distinct\n")
	fmt.Fprintf(&b, "# values, first %d rows of each table), best first:\n", sampleRows)
	if len(cands) == 0 {
		b.WriteString("#   none found: no text or enum column with 1 to 30 distinct values in a table that looks like leads.\n")
	}
	for i, c := range cands {
		if i == 8 {
			fmt.Fprintf(&b, "#   ... and %d more\n", len(cands)-i)
			break
		}
		var vs []string
		for j, v := range c.values {
			if j == 6 {
				vs = append(vs, "...")
				break
			}
			vs = append(vs, fmt.Sprintf("%s %d", displayValue(v), v.count))
		}
		fmt.Fprintf(&b, "#   %s.%s: %s\n", c.table.qualified(), c.col.name, strings.Join(vs, ", "))
	}
	b.WriteString("\nlog: {level: info, format: text}\n")
	b.WriteString("state_dir: ${LEADTAIL_STATE_DIR:-./state}   # checkpoint and dead letters: keep it on a persistent volume\n\n")
	b.WriteString(src + "\n")
	b.WriteString(metaBlock())
	b.WriteString("\nhttp:\n  listen: 127.0.0.1:9464   # /metrics /healthz /readyz; \"\" turns it off\n\n")
	b.WriteString("mappings:\n  - name: leads\n")
	var best *candidate
	if len(cands) > 0 {
		best = &cands[0]
	}
	if best == nil {
		b.WriteString(`    table: ""                     # TODO: the table with one row per lead, as schema.table` + "\n")
		b.WriteString(`    lead_event_source: ""         # TODO: your CRM's name, sent as custom_data.lead_event_source` + "\n")
		b.WriteString("    stage:\n")
		b.WriteString(`      column: ""                  # TODO: the column holding the lead's stage` + "\n")
		b.WriteString("      events:\n")
		b.WriteString(`        "": ""                    # TODO: stage value: Meta event name, one line per stage, in funnel order` + "\n")
		b.WriteString("    user_data:\n")
		b.WriteString(`      lead_id: ""                 # TODO: the column holding Meta's lead id (or em: the email column)` + "\n")
		return &InitResult{Config: b.String()}, nil
	}
	t := best.table
	fmt.Fprintf(&b, "    table: %s   # TODO check: the best candidate above; one row per lead\n", yamlQuote(t.qualified()))
	b.WriteString(`    lead_event_source: ""         # TODO: your CRM's name, sent as custom_data.lead_event_source` + "\n")
	if len(t.pk) > 0 {
		fmt.Fprintf(&b, "    key: [%s]   # the primary key\n", strings.Join(quoteAll(t.pk), ", "))
	} else {
		b.WriteString(`    key: [""]                     # TODO: the column(s) identifying a row (the table has no primary key)` + "\n")
	}
	if del := firstCol(t, deletedColRe); del != "" {
		c := t.col(del)
		zero := "0"
		if c.boolean() && c.dataType == "boolean" {
			zero = "false"
		}
		fmt.Fprintf(&b, "    filter:                       # a soft-delete flag: deleted rows never report\n      - {column: %s, equals: %s}\n", yamlQuote(del), zero)
	}
	b.WriteString("    stage:\n")
	fmt.Fprintf(&b, "      column: %s   # TODO check: the lead-stage column (candidates listed at the top)\n", yamlQuote(best.col.name))
	b.WriteString("      # TODO: give every value that should reach Meta an event name (e.g. initial_lead,\n")
	b.WriteString("      # marketing_qualified_lead, converted), in funnel order; delete the lines of the others.\n")
	b.WriteString("      # Values found, with their row counts:\n")
	b.WriteString("      events:\n")
	for _, v := range best.values {
		if v.null {
			continue
		}
		fmt.Fprintf(&b, "        %s: \"\"   # TODO  %d row(s)\n", yamlQuote(v.value), v.count)
	}
	if len(best.values) == 31 {
		b.WriteString("        # (more values exist: only the 30 most frequent are listed)\n")
	}
	b.WriteString("      transitions: forward        # only moves down the list report; \"any\" reports every change\n")
	if created := firstCol(t, createdColRe); created != "" {
		fmt.Fprintf(&b, "    lead_created_time: {column: %s}   # events before it are refused by Meta\n", yamlQuote(created))
	}
	b.WriteString("    user_data:\n")
	if id := firstCol(t, leadIDColRe); id != "" {
		fmt.Fprintf(&b, "      lead_id: %s   # TODO check: Meta's lead id (15-17 digits), found by its name\n", yamlQuote(id))
	} else {
		b.WriteString(`      lead_id: ""                 # TODO: the column holding Meta's lead id (15-17 digits), or delete this line` + "\n")
	}
	for _, f := range []struct {
		key string
		re  *regexp.Regexp
	}{{"em", emailColRe}, {"ph", phoneColRe}, {"fn", firstNameRe}, {"ln", lastNameRe}, {"ct", cityColRe}, {"zp", zipColRe}, {"country", countryColRe}} {
		if col := firstCol(t, f.re); col != "" {
			fmt.Fprintf(&b, "      %s: %s   # found by its name\n", f.key, yamlQuote(col))
		}
	}
	if len(t.pk) == 1 {
		fmt.Fprintf(&b, "    custom_data:\n      crm_id: %s   # the row's id, to find the lead from Events Manager\n", yamlQuote(t.pk[0]))
	}
	return &InitResult{Config: b.String()}, nil
}

func allOnce(vals []valueCount) bool {
	for _, v := range vals {
		if !v.null && v.count > 1 {
			return false
		}
	}
	return true
}

func quoteAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = yamlQuote(x)
	}
	return out
}
