package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadtail/leadtail/connector"
	"github.com/leadtail/leadtail/sink/metatest"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
	"github.com/leadtail/leadtail/sources/postgres/pgtest"
)

// The recipe tests load each recipe's schema.sql into a throwaway server,
// run `leadtail init` against it (which must recognise the CRM and change
// nothing), then run the built binary with the recipe's mapping file and
// make stage changes the way the CRM's UI does, related-table writes
// included, and check what reaches the fake Graph API. One server per
// database kind, one database per recipe.

// recipeDir is the absolute path of testdata/crm/<crm>.
func recipeDir(t *testing.T, crm string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "crm", crm))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// sqlStatements splits a schema.sql into statements: comment lines are
// dropped, and a statement ends with ";" at the end of a line (mysqltest
// runs one statement per Exec).
func sqlStatements(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line + "\n")
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		t.Fatalf("%s: statement without a final ';': %s", path, cur.String())
	}
	return out
}

// writeRecipeConfig writes a config for a recipe against a throwaway server
// and the fake Graph API, including the recipe's mapping file.
func writeRecipeConfig(t *testing.T, source, endpoint, mappingFile string) (cfgPath, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	cfg := fmt.Sprintf(`log: {level: debug}
state_dir: %s
source:
%s
meta:
  dataset_id: %q
  access_token: ${META_ACCESS_TOKEN}
  endpoint: %s
delivery: {batch_size: 100, batch_wait: 100ms, retry_min: 50ms, retry_max: 500ms, halt_retry: 200ms, shutdown_timeout: 10s}
http: {listen: ""}
mapping_files: [%q]
`, stateDir, source, metatest.DefaultDatasetID, endpoint, mappingFile)
	cfgPath = filepath.Join(dir, "leadtail.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, stateDir
}

// initConfig runs `leadtail init` and returns the config it wrote.
func initConfig(t *testing.T, dsn string) (cfgPath, cfg string) {
	t.Helper()
	recipes, err := filepath.Abs(filepath.Join("..", "..", "testdata", "crm"))
	if err != nil {
		t.Fatal(err)
	}
	return initConfigIn(t, t.TempDir(), dsn, "--recipes", recipes)
}

// initConfigIn runs `leadtail init` in dir, writing dir/leadtail.yaml.
func initConfigIn(t *testing.T, dir, dsn string, args ...string) (cfgPath, cfg string) {
	t.Helper()
	cfgPath = filepath.Join(dir, "leadtail.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, leadtailBinary(t), append([]string{"init", "--dsn", dsn, "--out", cfgPath}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("leadtail init: %v\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		t.Logf("leadtail init wrote:\n%s", data)
	}
	return cfgPath, string(data)
}

// initEnv is the environment a config from init needs to load.
func initEnv(extra map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		switch k {
		case "META_DATASET_ID":
			return metatest.DefaultDatasetID, true
		case "META_ACCESS_TOKEN":
			return metatest.DefaultAccessToken, true
		}
		v, ok := extra[k]
		return v, ok
	}
}

// checkRecipeInit asserts what init wrote for a recognised CRM: the recipe
// by mapping_files, every wanted line, and a config that loads.
func checkRecipeInit(t *testing.T, cfgPath, cfg, crm string, env map[string]string, want ...string) {
	t.Helper()
	if !strings.Contains(cfg, "mapping_files:") || !strings.Contains(cfg, crm+"/mapping.yaml") {
		t.Errorf("init did not point mapping_files at the %s recipe:\n%s", crm, cfg)
	}
	for _, w := range want {
		if !strings.Contains(cfg, w) {
			t.Errorf("init's config lacks %q:\n%s", w, cfg)
		}
	}
	if strings.Contains(cfg, "# TODO") {
		t.Errorf("a recognised CRM needs no TODO:\n%s", cfg)
	}
	loaded, err := connector.LoadWith(cfgPath, initEnv(env))
	if err != nil {
		t.Fatalf("init's config does not load:\n%v\n%s", err, cfg)
	}
	if len(loaded.Set.Mappers()) == 0 {
		t.Fatalf("no mapping loaded from init's config")
	}
}

// todoRe matches a value init left for the user: `key: ""   # TODO ...`.
var todoRe = regexp.MustCompile(`(?m)^(\s*)("?[^:\n]*"?): ""(\s+# TODO.*)$`)

// fillTODOs fills every empty value init marked TODO, the way a user
// would: a table, a column, a name, event names.
func fillTODOs(cfg string) string {
	return todoRe.ReplaceAllStringFunc(cfg, func(line string) string {
		m := todoRe.FindStringSubmatch(line)
		v := "some_event"
		switch strings.Trim(m[2], `"`) {
		case "table":
			v = "public.prospects"
		case "lead_event_source":
			v = "Acme CRM"
		case "column", "lead_id":
			v = "fb_lead_id"
		}
		return m[1] + m[2] + ": " + fmt.Sprintf("%q", v) + m[3]
	})
}

// checkUnknownInit asserts init's proposal for a schema without recipe:
// TODO markers that keep the config from loading, the right candidate,
// and a config that loads once the TODOs are filled.
func checkUnknownInit(t *testing.T, cfgPath, cfg, table, stageCol string, values ...string) {
	t.Helper()
	for _, w := range append([]string{"# TODO", `table: "` + table + `"`, `column: "` + stageCol + `"`}, values...) {
		if !strings.Contains(cfg, w) {
			t.Errorf("init's proposal lacks %q:\n%s", w, cfg)
		}
	}
	if _, err := connector.LoadWith(cfgPath, initEnv(nil)); err == nil {
		t.Errorf("a proposal with unfilled TODOs must not load:\n%s", cfg)
	}
	filled := fillTODOs(cfg)
	if err := os.WriteFile(cfgPath, []byte(filled), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := connector.LoadWith(cfgPath, initEnv(nil))
	if err != nil {
		t.Fatalf("the proposal does not load once its TODOs are filled:\n%v\n%s", err, filled)
	}
	m := loaded.Set.Mappers()
	if len(m) != 1 || m[0].Table() != table {
		t.Fatalf("mappings after filling: %+v", m)
	}
}

// pgChecksum fingerprints every table's content and the catalog's object
// count: init must leave both as they were.
func pgChecksum(t *testing.T, dsn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM pg_stat_user_tables ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, tb := range tables {
		var sum string
		if err := conn.QueryRow(ctx, `SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM `+tb+` t`).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%s ", tb, sum)
	}
	var objects int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class`).Scan(&objects); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "objects=%d", objects)
	return b.String()
}

// mysqlChecksum fingerprints every table of the database and the binlog
// position: a read-only init moves neither.
func mysqlChecksum(t *testing.T, db *mysqltest.Server, name string) string {
	t.Helper()
	var b strings.Builder
	for _, r := range db.Query(t, name, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME") {
		for _, c := range db.Query(t, name, "CHECKSUM TABLE `"+r[0]+"`") {
			fmt.Fprintf(&b, "%s=%s ", r[0], c[1])
		}
	}
	for _, r := range db.Query(t, "", "SHOW MASTER STATUS") {
		fmt.Fprintf(&b, "binlog=%s:%s", r[0], r[1])
	}
	return b.String()
}

// recipeRun is one recipe's end-to-end check: start leadtail, make the
// changes, wait for the expected events.
type recipeRun struct {
	t     *testing.T
	meta  *metatest.Server
	logs  *allLogs
	d     *daemon
	want  map[eventKey]int
	check func(r metatest.Received) error
}

func newRecipeRun(t *testing.T) *recipeRun {
	t.Helper()
	rr := &recipeRun{t: t, meta: metatest.Start(t, metatest.Options{}), logs: &allLogs{}, want: map[eventKey]int{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("leadtail output:\n%s", rr.logs)
		}
	})
	return rr
}

func (rr *recipeRun) expect(crmID any, event string) { rr.want[eventKey{fmt.Sprint(crmID), event}]++ }

// check runs `leadtail check` on the running setup: the recipe's tables,
// columns and lookups must exist in the CRM's schema.
func (rr *recipeRun) checkConfig(cfgPath string) {
	t := rr.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, leadtailBinary(t), "check", "-c", cfgPath)
	cmd.Env = append(os.Environ(), "META_ACCESS_TOKEN="+metatest.DefaultAccessToken)
	out, err := cmd.CombinedOutput()
	t.Logf("leadtail check:\n%s", out)
	if err != nil {
		t.Errorf("leadtail check: %v\n%s", err, out)
	}
}

// finish waits for every expected event, stops leadtail, and checks that
// nothing else arrived and each event passes rr.check.
func (rr *recipeRun) finish() {
	t := rr.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := rr.meta.WaitAccepted(ctx, total(rr.want)); err != nil {
		t.Fatalf("waiting for %d events: %v (got %d)", total(rr.want), err, len(rr.meta.Accepted()))
	}
	if code := rr.d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	if _, dups := checkDelivery(t, rr.meta, rr.want); dups != 0 {
		t.Errorf("%d duplicate(s) although the stop was graceful", dups)
	}
	for _, r := range rr.meta.Accepted() {
		if rr.check != nil {
			if err := rr.check(r); err != nil {
				t.Errorf("%s %v: %v", r.Event.EventName, r.Event.CustomData["crm_id"], err)
			}
		}
	}
}

// needIDs asserts that an accepted event carries a lead id and/or emails.
func needIDs(r metatest.Received, leadID bool, emails int) error {
	var errs []error
	if leadID && r.Event.UserData.LeadID == 0 {
		errs = append(errs, errors.New("lead_id missing"))
	}
	if len(r.Event.UserData.Em) < emails {
		errs = append(errs, fmt.Errorf("%d email(s), want at least %d", len(r.Event.UserData.Em), emails))
	}
	return errors.Join(errs...)
}

func TestRecipesPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts PostgreSQL (run without -short)")
	}
	pg := pgtest.Start(t)

	t.Run("odoo", func(t *testing.T) {
		pg.CreateDB(t, "odoo")
		pg.Exec(t, "odoo", readFile(t, filepath.Join(recipeDir(t, "odoo"), "schema.sql")))
		dsn := pg.DSN("odoo")

		before := pgChecksum(t, dsn)
		cfgPath, cfg := initConfig(t, dsn)
		if after := pgChecksum(t, dsn); after != before {
			t.Fatalf("init changed the database:\nbefore %s\nafter  %s", before, after)
		}
		checkRecipeInit(t, cfgPath, cfg, "odoo", nil, "Recognised as Odoo CRM", `"1" (New)`, `"4" (Won, is_won)`, "-> converted", "set_replica_identity_full: true")
		// Outside a checkout (no testdata/crm), init writes the recipe built
		// into the binary next to the config.
		dir := t.TempDir()
		cfgPath, cfg = initConfigIn(t, dir, dsn)
		if !strings.Contains(cfg, `- "odoo.mapping.yaml"`) {
			t.Errorf("init did not point at its own copy of the recipe:\n%s", cfg)
		}
		if copied, want := readFile(t, filepath.Join(dir, "odoo.mapping.yaml")), readFile(t, filepath.Join(recipeDir(t, "odoo"), "mapping.yaml")); copied != want {
			t.Errorf("the written recipe differs from testdata/crm/odoo/mapping.yaml")
		}
		if _, err := connector.LoadWith(cfgPath, initEnv(nil)); err != nil {
			t.Errorf("init's config with the written recipe does not load: %v", err)
		}

		rr := newRecipeRun(t)
		cfgPath, _ = writeRecipeConfig(t, fmt.Sprintf(`  postgres: {dsn: %q, slot: leadtail_odoo, publication: leadtail_odoo, status_interval: 1s, heartbeat_interval: 1s, set_replica_identity_full: true}`, dsn),
			rr.meta.URL(), filepath.Join(recipeDir(t, "odoo"), "mapping.yaml"))
		rr.d = startDaemon(t, rr.logs, "run", "-c", cfgPath)
		waitStreaming(t, rr.d, dsn, "leadtail_odoo")
		rr.checkConfig(cfgPath)

		const now = `(now() AT TIME ZONE 'UTC')`
		// A Lead Ads connector creates a lead in stage New.
		pg.Exec(t, "odoo", `INSERT INTO crm_lead (id, name, user_id, team_id, company_id, active, type, priority, stage_id,
			date_open, date_last_stage_update, contact_name, email_from, email_normalized, phone, city, zip, country_id,
			probability, automated_probability, facebook_lead_id, create_uid, create_date, write_uid, write_date)
			VALUES (46, 'Lead Ads: Solar panels quote', 2, 1, 1, true, 'lead', '1', 1, `+now+`, `+now+`, 'Sofia Rossi',
			'Sofia.Rossi@example.com', 'sofia.rossi@example.com', '+39 347 123 4567', 'Milano', '20121', NULL,
			10, 10, '1203847561029391', 1, `+now+`, 1, `+now+`)`)
		rr.expect(46, "initial_lead")
		// Pipeline drag New -> Qualified: stage_id and date_last_stage_update.
		pg.Exec(t, "odoo", `UPDATE crm_lead SET stage_id = 2, probability = 30, automated_probability = 30,
			date_last_stage_update = `+now+`, write_uid = 2, write_date = `+now+` WHERE id = 46`)
		rr.expect(46, "marketing_qualified_lead")
		// An edit that is no stage change.
		pg.Exec(t, "odoo", `UPDATE crm_lead SET phone = '+39 347 123 4568', write_date = `+now+` WHERE id = 46`)
		// "Mark as won" on opportunity 42: the won stage and probability 100.
		pg.Exec(t, "odoo", `UPDATE crm_lead SET stage_id = 4, probability = 100, automated_probability = 100,
			date_closed = `+now+`, date_last_stage_update = `+now+`, write_date = `+now+` WHERE id = 42`)
		rr.expect(42, "converted")
		// Dragged back: not reported.
		pg.Exec(t, "odoo", `UPDATE crm_lead SET stage_id = 3, probability = 70, date_closed = NULL,
			date_last_stage_update = `+now+`, write_date = `+now+` WHERE id = 42`)
		// "Mark as lost" on lead 41: archived, probability 0; no event.
		pg.Exec(t, "odoo", `UPDATE crm_lead SET active = false, probability = 0, automated_probability = 0, lost_reason_id = 1,
			date_closed = `+now+`, write_date = `+now+` WHERE id = 41`)
		rr.check = func(r metatest.Received) error {
			switch fmt.Sprint(r.Event.CustomData["crm_id"]) {
			case "46":
				return needIDs(r, true, 1)
			case "42": // the lead's email and its customer's (lookup)
				if len(r.Event.UserData.Country) != 1 {
					return errors.New("country from the res_country lookup missing")
				}
				return needIDs(r, true, 1)
			}
			return nil
		}
		rr.finish()
	})

	t.Run("twenty", func(t *testing.T) {
		const ws = "workspace_1wgvd1injqtife6y4rvfbu3h5"
		pg.CreateDB(t, "twenty")
		pg.Exec(t, "twenty", readFile(t, filepath.Join(recipeDir(t, "twenty"), "schema.sql")))
		dsn := pg.DSN("twenty")

		before := pgChecksum(t, dsn)
		cfgPath, cfg := initConfig(t, dsn)
		if after := pgChecksum(t, dsn); after != before {
			t.Fatalf("init changed the database:\nbefore %s\nafter  %s", before, after)
		}
		checkRecipeInit(t, cfgPath, cfg, "twenty", map[string]string{"TWENTY_WORKSPACE_SCHEMA": ws},
			"Recognised as Twenty", "TWENTY_WORKSPACE_SCHEMA="+ws, `"SCREENING"`, "-> marketing_qualified_lead")

		t.Setenv("TWENTY_WORKSPACE_SCHEMA", ws) // the recipe's table and lookup name the workspace
		rr := newRecipeRun(t)
		cfgPath, _ = writeRecipeConfig(t, fmt.Sprintf(`  postgres: {dsn: %q, slot: leadtail_twenty, publication: leadtail_twenty, status_interval: 1s, heartbeat_interval: 1s, set_replica_identity_full: true}`, dsn),
			rr.meta.URL(), filepath.Join(recipeDir(t, "twenty"), "mapping.yaml"))
		rr.d = startDaemon(t, rr.logs, "run", "-c", cfgPath)
		waitStreaming(t, rr.d, dsn, "leadtail_twenty")
		rr.checkConfig(cfgPath)

		// The Lead Ads import creates the person and the opportunity in one transaction.
		pg.Exec(t, "twenty", `BEGIN;
			INSERT INTO `+ws+`.person (id, "nameFirstName", "nameLastName", "emailsPrimaryEmail", "phonesPrimaryPhoneNumber",
				"phonesPrimaryPhoneCountryCode", "phonesPrimaryPhoneCallingCode", city, position, "createdBySource", "createdByName", "metaLeadId")
			VALUES ('0b8f1f7e-6d1c-4a55-8c3e-2a9f4b7d1e03', 'Inès', 'Moreau', 'ines.moreau@example.fr', '612345670', 'FR', '+33', 'Lyon', 3, 'API', 'Lead Ads import', '1203847561029502');
			INSERT INTO `+ws+`.opportunity (id, name, stage, position, "createdBySource", "createdByName", "pointOfContactId")
			VALUES ('7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e03', 'Moreau: heat pump', 'NEW', 3, 'API', 'Lead Ads import', '0b8f1f7e-6d1c-4a55-8c3e-2a9f4b7d1e03');
			COMMIT`)
		rr.expect("7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e03", "initial_lead")
		// Kanban drag SCREENING -> MEETING: stage, position and "updatedAt".
		pg.Exec(t, "twenty", `UPDATE `+ws+`.opportunity SET stage = 'MEETING', position = 0, "updatedAt" = now() WHERE id = '7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e01'`)
		rr.expect("7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e01", "sales_qualified_lead")
		// Reordering inside a column: no stage change.
		pg.Exec(t, "twenty", `UPDATE `+ws+`.opportunity SET position = 0.5, "updatedAt" = now() WHERE id = '7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e02'`)
		// Omar's deal (no Meta lead id) NEW -> SCREENING.
		pg.Exec(t, "twenty", `UPDATE `+ws+`.opportunity SET stage = 'SCREENING', position = 3, "updatedAt" = now() WHERE id = '7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e02'`)
		rr.expect("7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e02", "marketing_qualified_lead")
		// Soft delete, then a stage change in the trash: nothing.
		pg.Exec(t, "twenty", `UPDATE `+ws+`.opportunity SET "deletedAt" = now(), "updatedAt" = now() WHERE id = '7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e03'`)
		pg.Exec(t, "twenty", `UPDATE `+ws+`.opportunity SET stage = 'PROPOSAL' WHERE id = '7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e03'`)
		rr.check = func(r metatest.Received) error {
			switch fmt.Sprint(r.Event.CustomData["crm_id"]) {
			case "7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e02":
				if len(r.Event.UserData.Ph) != 1 {
					return errors.New("phone from the person lookup missing")
				}
				return needIDs(r, false, 1)
			default:
				if len(r.Event.UserData.Fn) != 1 || len(r.Event.UserData.Country) != 1 {
					return errors.New("fn or country from the person lookup missing")
				}
				return needIDs(r, true, 1)
			}
		}
		rr.finish()
	})

	t.Run("init-unknown-schema", func(t *testing.T) {
		pg.CreateDB(t, "sales")
		pg.Exec(t, "sales", `
			CREATE TABLE prospects (id serial PRIMARY KEY, full_name text, email text, phone text, status text NOT NULL,
				source text, notes text, fb_lead_id text, deleted boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now());
			CREATE TABLE settings (key text PRIMARY KEY, value text);
			INSERT INTO prospects (full_name, email, phone, status, source, notes)
			SELECT 'Person ' || g, 'p' || g || '@example.com', '+1 555 01' || g, (ARRAY['new','contacted','qualified','won','lost'])[1 + g % 5],
			       (ARRAY['ads','web'])[1 + g % 2], 'note ' || g FROM generate_series(1, 40) g;
			INSERT INTO settings VALUES ('theme', 'dark'), ('locale', 'en');`)
		dsn := pg.DSN("sales")
		before := pgChecksum(t, dsn)
		cfgPath, cfg := initConfig(t, dsn)
		if after := pgChecksum(t, dsn); after != before {
			t.Fatalf("init changed the database:\nbefore %s\nafter  %s", before, after)
		}
		checkUnknownInit(t, cfgPath, cfg, "public.prospects", "status",
			`"qualified": ""`, `em: "email"`, `lead_id: "fb_lead_id"`, `column: "deleted", equals: false`)
	})
}

func TestRecipesMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts MariaDB (run without -short)")
	}
	db := mysqltest.Start(t)
	serverID := 4300

	// setup loads the recipe's schema into its own database, runs init
	// against it and returns a started leadtail streaming the binlog.
	setup := func(t *testing.T, crm, database string, env map[string]string, want ...string) *recipeRun {
		t.Helper()
		db.CreateDB(t, database)
		for _, s := range sqlStatements(t, filepath.Join(recipeDir(t, crm), "schema.sql")) {
			db.Exec(t, database, s)
		}
		before := mysqlChecksum(t, db, database)
		cfgPath, cfg := initConfig(t, db.DSN(database))
		if after := mysqlChecksum(t, db, database); after != before {
			t.Fatalf("init changed the database or wrote to the binlog:\nbefore %s\nafter  %s", before, after)
		}
		checkRecipeInit(t, cfgPath, cfg, crm, env, want...)
		for k, v := range env {
			t.Setenv(k, v)
		}
		serverID++
		rr := newRecipeRun(t)
		var stateDir string
		cfgPath, stateDir = writeRecipeConfig(t, fmt.Sprintf(`  mysql: {dsn: %q, server_id: %d}`, db.DSN(database), serverID),
			rr.meta.URL(), filepath.Join(recipeDir(t, crm), "mapping.yaml"))
		rr.d = startDaemon(t, rr.logs, "run", "-c", cfgPath)
		waitBinlogStreaming(t, rr.d, db, stateDir)
		rr.checkConfig(cfgPath)
		return rr
	}

	t.Run("suitecrm", func(t *testing.T) {
		rr := setup(t, "suitecrm", "suitecrm", nil, "Recognised as SuiteCRM", `"New"`, `"Assigned"`, "-> assigned")
		const emma, lucas, priya, ava = "1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c01", "1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c02", "1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c03", "1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c04"
		// Web-to-lead: leads, then leads_cstm, then the email rows, each on its own (autocommit).
		db.Exec(t, "suitecrm", `INSERT INTO leads (id, date_entered, date_modified, modified_user_id, created_by, deleted, assigned_user_id,
			first_name, last_name, phone_mobile, primary_address_city, primary_address_postalcode, primary_address_country, converted, lead_source, status)
			VALUES (?, UTC_TIMESTAMP(), UTC_TIMESTAMP(), '1', '1', 0, 'seed_sally_id', 'Ava', 'Kowalski', '+48 501 234 567', 'Kraków', '31-001', 'Poland', 0, 'Campaign', 'New')`, ava)
		db.Exec(t, "suitecrm", `INSERT INTO leads_cstm (id_c, fb_lead_id_c) VALUES (?, '1203847561029604')`, ava)
		db.Exec(t, "suitecrm", `INSERT INTO email_addresses (id, email_address, email_address_caps, date_created, date_modified) VALUES ('2c6d3e7f-9a01-4b2c-8d3e-4f5a6b7c8d04', 'ava.kowalski@example.pl', 'AVA.KOWALSKI@EXAMPLE.PL', UTC_TIMESTAMP(), UTC_TIMESTAMP())`)
		db.Exec(t, "suitecrm", `INSERT INTO email_addr_bean_rel (id, email_address_id, bean_id, bean_module, primary_address, date_created, date_modified) VALUES ('3d7e4f80-ab12-4c3d-9e4f-5a6b7c8d9e04', '2c6d3e7f-9a01-4b2c-8d3e-4f5a6b7c8d04', ?, 'Leads', 1, UTC_TIMESTAMP(), UTC_TIMESTAMP())`, ava)
		rr.expect(ava, "initial_lead")
		// A save from the edit view: leads, leads_cstm (custom fields), leads_audit (status is audited).
		save := func(id, from, to string, extra string) {
			db.Exec(t, "suitecrm", `UPDATE leads SET status = ?, date_modified = UTC_TIMESTAMP(), modified_user_id = 'seed_max_id'`+extra+` WHERE id = ?`, to, id)
			db.Exec(t, "suitecrm", `UPDATE leads_cstm SET jjwg_maps_geocode_status_c = NULL WHERE id_c = ?`, id)
			db.Exec(t, "suitecrm", `INSERT INTO leads_audit (id, parent_id, date_created, created_by, field_name, data_type, before_value_string, after_value_string)
				VALUES (UUID(), ?, UTC_TIMESTAMP(), 'seed_max_id', 'status', 'enum', ?, ?)`, id, from, to)
		}
		save(emma, "New", "Assigned", ", assigned_user_id = 'seed_max_id'")
		rr.expect(emma, "assigned")
		save(emma, "Assigned", "In Process", "")
		rr.expect(emma, "in_process")
		// Conversion: status Converted, converted = 1 and the created records' ids.
		save(lucas, "Assigned", "Converted", ", converted = 1, contact_id = '4e8f5a91-bc23-4d4e-8f5a-6b7c8d9e0f01', account_id = '4e8f5a91-bc23-4d4e-8f5a-6b7c8d9e0f02'")
		rr.expect(lucas, "converted")
		// Going Dead is not reported; deleting only flags the row.
		save(priya, "New", "Dead", "")
		db.Exec(t, "suitecrm", `UPDATE leads SET deleted = 1, date_modified = UTC_TIMESTAMP() WHERE id = ?`, emma)
		rr.check = func(r metatest.Received) error {
			if fmt.Sprint(r.Event.CustomData["crm_id"]) == ava {
				// Inserted before its custom-field and email rows: the lookups
				// may or may not see them yet, the phone always identifies.
				if len(r.Event.UserData.Ph) != 1 {
					return errors.New("phone missing")
				}
				return nil
			}
			return needIDs(r, true, 1)
		}
		rr.finish()
	})

	t.Run("espocrm", func(t *testing.T) {
		rr := setup(t, "espocrm", "espocrm", nil, "Recognised as EspoCRM", `"Assigned"`, "-> converted")
		const sara, jonas, nils = "6931c0a2e4b5f1a01", "6931c0a2e4b5f1a02", "6931c0a2e4b5f1a03"
		// Lead Capture: the lead, its email and phone rows, a stream note; one transaction, as EspoCRM's entity manager saves.
		db.ExecTx(t, "espocrm",
			`INSERT INTO lead (id, deleted, first_name, last_name, status, source, address_city, address_country, address_postal_code, created_at, modified_at, created_by_id, modified_by_id, assigned_user_id, c_fb_lead_id)
			 VALUES ('`+nils+`', 0, 'Nils', 'Eriksen', 'New', 'Campaign', 'Aarhus', 'Denmark', '8000', UTC_TIMESTAMP(), UTC_TIMESTAMP(), 'system', 'system', '6931b8f00c1d2e301', '1203847561029703')`,
			`INSERT INTO email_address (id, name, deleted, lower, invalid, opt_out) VALUES ('6931c0a2e4b5f1e03', 'nils.eriksen@example.dk', 0, 'nils.eriksen@example.dk', 0, 0)`,
			`INSERT INTO entity_email_address (entity_id, email_address_id, entity_type, `+"`primary`"+`, deleted) VALUES ('`+nils+`', '6931c0a2e4b5f1e03', 'Lead', 1, 0)`,
			`INSERT INTO phone_number (id, name, deleted, type, `+"`numeric`"+`, invalid, opt_out) VALUES ('6931c0a2e4b5f1p03', '+45 20 12 34 56', 0, 'Mobile', '4520123456', 0, 0)`,
			`INSERT INTO entity_phone_number (entity_id, phone_number_id, entity_type, `+"`primary`"+`, deleted) VALUES ('`+nils+`', '6931c0a2e4b5f1p03', 'Lead', 1, 0)`,
			`INSERT INTO note (id, type, parent_id, parent_type, created_at, modified_at, created_by_id) VALUES ('6931c0a2e4b5f1n01', 'Create', '`+nils+`', 'Lead', UTC_TIMESTAMP(), UTC_TIMESTAMP(), 'system')`)
		rr.expect(nils, "initial_lead")
		// A status change from the detail view: the lead row, then a Status note in the stream.
		notes := 0
		status := func(id, to, extra string, note bool) {
			db.Exec(t, "espocrm", `UPDATE lead SET status = ?, modified_at = UTC_TIMESTAMP(), modified_by_id = '6931b8f00c1d2e301'`+extra+` WHERE id = ? AND deleted = 0`, to, id)
			if note {
				notes++
				db.Exec(t, "espocrm", `INSERT INTO note (id, type, data, parent_id, parent_type, created_at, modified_at, created_by_id)
					VALUES (?, 'Status', ?, ?, 'Lead', UTC_TIMESTAMP(), UTC_TIMESTAMP(), '6931b8f00c1d2e301')`,
					fmt.Sprintf("6931c0a2e4b5n%04d", notes), `{"field":"status","value":"`+to+`"}`, id)
			}
		}
		status(sara, "Assigned", "", true)
		rr.expect(sara, "assigned")
		// Conversion: status Converted, converted_at, created records.
		status(jonas, "Converted", ", converted_at = UTC_TIMESTAMP(), created_contact_id = '6931c0a2e4b5f1c02', created_account_id = '6931c0a2e4b5f1c01'", true)
		rr.expect(jonas, "converted")
		status(sara, "Dead", "", true)
		// Removing a lead only flags it.
		db.Exec(t, "espocrm", `UPDATE lead SET deleted = 1 WHERE id = ?`, nils)
		rr.check = func(r metatest.Received) error {
			if len(r.Event.UserData.Ph) != 1 {
				return errors.New("phone from the entity_phone_number lookup missing")
			}
			return needIDs(r, fmt.Sprint(r.Event.CustomData["crm_id"]) != jonas, 1)
		}
		rr.finish()
	})

	t.Run("vtiger", func(t *testing.T) {
		rr := setup(t, "vtiger", "vtiger", map[string]string{"VTIGER_LEAD_ID_COLUMN": "cf_853"},
			"Recognised as vtiger CRM", "VTIGER_LEAD_ID_COLUMN=cf_853", `"Not Contacted"`, "-> initial_lead", "-> converted")
		// A webform creates a lead: vtiger_crmentity, then the module's tables, one statement each.
		db.Exec(t, "vtiger", `INSERT INTO vtiger_crmentity (crmid, smcreatorid, smownerid, modifiedby, setype, createdtime, modifiedtime, presence, deleted)
			VALUES (105, 1, 5, 1, 'Leads', UTC_TIMESTAMP(), UTC_TIMESTAMP(), 1, 0)`)
		db.Exec(t, "vtiger", `INSERT INTO vtiger_leaddetails (leadid, lead_no, email, firstname, lastname, company, leadstatus, leadsource, converted)
			VALUES (105, 'LEA15', 'Eva.Horvat@example.hr', 'Eva', 'Horvat', 'Horvat d.o.o.', 'Not Contacted', 'Web Site', 0)`)
		db.Exec(t, "vtiger", `INSERT INTO vtiger_leadaddress (leadaddressid, city, code, country, mobile) VALUES (105, 'Zagreb', '10000', 'Croatia', '+385 91 234 5678')`)
		db.Exec(t, "vtiger", `INSERT INTO vtiger_leadscf (leadid, cf_853) VALUES (105, '1203847561029804')`)
		rr.expect(105, "initial_lead")
		// Saving from the edit view: vtiger_crmentity, then vtiger_leaddetails.
		save := func(id int, sets string) {
			db.Exec(t, "vtiger", `UPDATE vtiger_crmentity SET modifiedtime = UTC_TIMESTAMP(), modifiedby = 5 WHERE crmid = ?`, id)
			db.Exec(t, "vtiger", `UPDATE vtiger_leaddetails SET `+sets+` WHERE leadid = ?`, id)
		}
		save(101, "leadstatus = 'Contacted'")
		rr.expect(101, "contacted")
		// Conversion (include/Webservices/ConvertLead.php): converted = 1, leadstatus untouched.
		db.Exec(t, "vtiger", `UPDATE vtiger_leaddetails SET converted = 1 WHERE leadid = 101`)
		db.Exec(t, "vtiger", `UPDATE vtiger_crmentity SET modifiedtime = UTC_TIMESTAMP(), modifiedby = 5 WHERE crmid = 101`)
		rr.expect(101, "converted")
		save(102, "leadstatus = 'Junk Lead'")
		rr.check = func(r metatest.Received) error {
			if fmt.Sprint(r.Event.CustomData["crm_id"]) == "101" {
				if len(r.Event.UserData.Ph) != 1 || len(r.Event.UserData.Country) != 1 {
					return errors.New("phone or country from the vtiger_leadaddress lookup missing")
				}
				return needIDs(r, true, 1)
			}
			return needIDs(r, false, 1)
		}
		rr.finish()
	})

	t.Run("init-unknown-schema", func(t *testing.T) {
		db.CreateDB(t, "sales")
		db.Exec(t, "sales", `CREATE TABLE enquiries (id INT AUTO_INCREMENT PRIMARY KEY, email_address VARCHAR(255), mobile VARCHAR(50),
			stage ENUM('new','qualified','won','lost') NOT NULL DEFAULT 'new', comment TEXT, deleted TINYINT(1) NOT NULL DEFAULT 0,
			date_entered DATETIME NOT NULL)`)
		db.Exec(t, "sales", `INSERT INTO enquiries (email_address, mobile, stage, comment, date_entered) VALUES
			('a@example.com', '+44 7700 900001', 'new', 'x', UTC_TIMESTAMP()), ('b@example.com', NULL, 'qualified', 'y', UTC_TIMESTAMP()),
			('c@example.com', NULL, 'won', 'z', UTC_TIMESTAMP()), ('d@example.com', NULL, 'new', 'w', UTC_TIMESTAMP())`)
		before := mysqlChecksum(t, db, "sales")
		cfgPath, cfg := initConfig(t, db.DSN("sales"))
		if after := mysqlChecksum(t, db, "sales"); after != before {
			t.Fatalf("init changed the database or wrote to the binlog:\nbefore %s\nafter  %s", before, after)
		}
		checkUnknownInit(t, cfgPath, cfg, "sales.enquiries", "stage", `"new": ""   # TODO  2 row(s)`, `em: "email_address"`, `ph: "mobile"`,
			`lead_created_time: {column: "date_entered"}`, `column: "deleted", equals: 0`)
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
