package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sink/metatest"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
)

var mysqlSchema = []string{
	`CREATE TABLE leads (
	  id BIGINT PRIMARY KEY,
	  status VARCHAR(32),
	  email VARCHAR(255),
	  fb_lead_id VARCHAR(32),
	  profile JSON,
	  notes LONGTEXT,
	  deleted TINYINT(1) NOT NULL DEFAULT 0,
	  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
	)`,
	`CREATE TABLE contacts (id INT AUTO_INCREMENT PRIMARY KEY, lead_id BIGINT NOT NULL, email VARCHAR(255) NOT NULL)`,
	`CREATE TABLE activity (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload TEXT)`,
}

// mysqlSetup starts a throwaway MariaDB with the e2e schema and the fake
// Graph API, and writes leadtail's config.
func mysqlSetup(t *testing.T, opts ...mysqltest.Option) (db *mysqltest.Server, meta *metatest.Server, cfgPath, stateDir string, logs *allLogs) {
	t.Helper()
	db = mysqltest.Start(t, opts...)
	db.CreateDB(t, "crm")
	for _, s := range mysqlSchema {
		db.Exec(t, "crm", s)
	}
	meta = metatest.Start(t, metatest.Options{})
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	cfg := fmt.Sprintf(`
log: {level: debug}
state_dir: %s
source:
  mysql:
    dsn: %q
    server_id: 4242
meta:
  dataset_id: %q
  access_token: ${META_ACCESS_TOKEN}
  endpoint: %s
delivery: {batch_size: 100, batch_wait: 100ms, retry_min: 50ms, retry_max: 500ms, halt_retry: 200ms, shutdown_timeout: 10s}
http: {listen: ""}
mappings:
  - name: leads
    table: crm.leads
    lead_event_source: E2E CRM
    filter: [{column: deleted, equals: 0}]
    stage:
      column: status
      events: {new: initial_lead, contacted: contacted, qualified: marketing_qualified_lead, won: converted}
    user_data:
      lead_id: fb_lead_id
      em: [email, {lookup: contact, column: email}]
      fn: {json: profile, path: name.first}
    lookups:
      contact: {query: "SELECT email FROM crm.contacts WHERE lead_id = ? ORDER BY id LIMIT 10", args: [id], cache_size: 0}
    custom_data:
      crm_id: id
`, stateDir, db.DSN("crm"), metatest.DefaultDatasetID, meta.URL())
	cfgPath = filepath.Join(dir, "leadtail.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs = &allLogs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("leadtail output:\n%s", logs)
		}
	})
	return db, meta, cfgPath, stateDir, logs
}

// waitBinlogStreaming waits until leadtail reads the binlog and has
// checkpointed its starting position: a first start begins at the end of
// the binlog, so changes made before that would be history (backfill's job).
func waitBinlogStreaming(t *testing.T, d *daemon, db *mysqltest.Server, stateDir string) {
	t.Helper()
	eventually(t, 60*time.Second, "leadtail to stream the binlog", func() (bool, string) {
		if d.exited() {
			t.Fatalf("leadtail exited early (code %d):\n%s", d.exitCode(), d.out.String())
		}
		rows := db.Query(t, "", `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'`)
		_, err := os.Stat(filepath.Join(stateDir, "checkpoint.json"))
		return len(rows) == 1 && rows[0][0] == "1" && err == nil, fmt.Sprintf("dump threads %v, checkpoint %v", rows, err)
	})
}

func TestRunMySQLEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts MariaDB (run without -short)")
	}
	for _, mode := range []struct {
		name string
		opts []mysqltest.Option
	}{{"file-positions", nil}, {"gtid-strict", []mysqltest.Option{mysqltest.WithGTIDStrict()}}} {
		t.Run(mode.name, func(t *testing.T) {
			db, meta, cfgPath, stateDir, logs := mysqlSetup(t, mode.opts...)
			d := startDaemon(t, logs, "run", "-c", cfgPath)
			waitBinlogStreaming(t, d, db, stateDir)
			want := map[eventKey]int{}
			expect := func(id int, name string) { want[eventKey{fmt.Sprint(id), name}]++ }

			db.Exec(t, "crm", `INSERT INTO leads (id, status, email, fb_lead_id) VALUES (1, 'new', ' Jane@Example.com', ?)`, leadID(1))
			expect(1, "initial_lead")
			db.Exec(t, "crm", `UPDATE leads SET email = 'jane@example.org' WHERE id = 1`)
			for _, s := range []string{"contacted", "qualified", "new", "qualified"} {
				db.Exec(t, "crm", `UPDATE leads SET status = ? WHERE id = 1`, s)
			}
			expect(1, "contacted")
			expect(1, "marketing_qualified_lead")
			expect(1, "initial_lead")
			expect(1, "marketing_qualified_lead")
			db.ExecTx(t, "crm", `INSERT INTO contacts (lead_id, email) VALUES (2, 'bob@example.com')`, `INSERT INTO leads (id, status) VALUES (2, 'new')`)
			expect(2, "initial_lead")
			db.Exec(t, "crm", `DELETE FROM leads WHERE id = 2`)
			big := strings.Repeat("x", 200_000)
			db.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id, profile, notes) VALUES (3, 'new', ?, JSON_OBJECT('name', JSON_OBJECT('first', 'Zoë')), ?)`, leadID(3), big)
			expect(3, "initial_lead")
			db.Exec(t, "crm", `UPDATE leads SET status = 'won' WHERE id = 3`)
			expect(3, "converted")
			db.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id) VALUES (4, 'junk', ?)`, leadID(4))
			db.Exec(t, "crm", `UPDATE leads SET status = 'won' WHERE id = 4`)
			expect(4, "converted")
			db.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id, deleted) VALUES (5, 'new', ?, 1)`, leadID(5))
			stmts := make([]string, 0, 50)
			for id := 100; id < 150; id++ {
				stmts = append(stmts, fmt.Sprintf(`INSERT INTO leads (id, status, fb_lead_id) VALUES (%d, 'new', '%s')`, id, leadID(id)))
				expect(id, "initial_lead")
			}
			db.ExecTx(t, "crm", stmts...)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := meta.WaitAccepted(ctx, total(want)); err != nil {
				t.Fatalf("waiting for %d events: %v (got %d)", total(want), err, len(meta.Accepted()))
			}
			if code := d.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("SIGTERM: exit code %d", code)
			}
			db.Exec(t, "crm", `UPDATE leads SET status = 'contacted' WHERE id = 100`)
			expect(100, "contacted")
			d = startDaemon(t, logs, "run", "-c", cfgPath)
			waitBinlogStreaming(t, d, db, stateDir)
			db.Restart(t)
			db.Exec(t, "crm", `UPDATE leads SET status = 'qualified' WHERE id = 101`)
			expect(101, "marketing_qualified_lead")
			if err := meta.WaitAccepted(ctx, total(want)); err != nil {
				t.Fatalf("after restarts: %v (got %d of %d)", err, len(meta.Accepted()), total(want))
			}
			if code := d.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("second SIGTERM: exit code %d", code)
			}
			if _, dups := checkDelivery(t, meta, want); dups != 0 {
				t.Errorf("%d duplicate(s) although every stop was graceful", dups)
			}
			for _, r := range meta.Accepted() {
				id := fmt.Sprint(r.Event.CustomData["crm_id"])
				if id == "2" && len(r.Event.UserData.Em) != 1 {
					t.Errorf("lead 2: em from the lookup missing")
				}
				if id == "3" && len(r.Event.UserData.Fn) != 1 {
					t.Errorf("lead 3 %s: fn from the JSON column missing", r.Event.EventName)
				}
			}
			out := logs.String()
			for _, s := range []string{metatest.DefaultAccessToken, "Jane@Example.com", "jane@example.org", "bob@example.com", "Zoë"} {
				if strings.Contains(out, s) {
					t.Errorf("log output contains %q", s)
				}
			}
		})
	}
}

// TestRunMySQLSIGKILL: 1,000 changes with 10 SIGKILLs and restarts, with
// GTID positions: nothing lost, duplicates share their event_id.
func TestRunMySQLSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts MariaDB (run without -short)")
	}
	db, meta, cfgPath, stateDir, logs := mysqlSetup(t, mysqltest.WithGTIDStrict())
	d := startDaemon(t, logs, "run", "-c", cfgPath)
	waitBinlogStreaming(t, d, db, stateDir)
	w := leadWriter{
		insert: func(id int, s string) {
			db.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id, email) VALUES (?, ?, ?, ?)`, id, s, leadID(id), fmt.Sprintf("lead%d@example.com", id))
		},
		update: func(id int, s string, i int) {
			db.Exec(t, "crm", `UPDATE leads SET status = ?, notes = ? WHERE id = ?`, s, fmt.Sprint(i), id)
		},
		remove: func(id int) { db.Exec(t, "crm", `DELETE FROM leads WHERE id = ?`, id) },
	}
	killWorkload(t, 3, 1000, 10, w, meta, d, func() *daemon { return startDaemon(t, logs, "run", "-c", cfgPath) })
}
