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
	"github.com/leadtail/leadtail/sources/postgres/pgtest"
)

const e2eSchema = `
CREATE TABLE leads (
  id bigint PRIMARY KEY,
  status text,
  email text,
  fb_lead_id text,
  profile jsonb,
  notes text,
  deleted boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE contacts (id serial PRIMARY KEY, lead_id bigint NOT NULL, email text NOT NULL);
CREATE TABLE activity (id bigserial PRIMARY KEY, payload text);
`

// e2eConfig writes a config for the throwaway server and fake Meta.
func e2eConfig(t *testing.T, dsn, endpoint string, extra string) (path, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	cfg := fmt.Sprintf(`
log: {level: debug}
state_dir: %s
source:
  postgres:
    dsn: %q
    slot: leadtail_e2e
    publication: leadtail_e2e
    status_interval: 1s
    heartbeat_interval: 1s
    set_replica_identity_full: true
meta:
  dataset_id: %q
  access_token: ${META_ACCESS_TOKEN}
  endpoint: %s
delivery:
  batch_size: 100
  batch_wait: 100ms
  retry_min: 50ms
  retry_max: 500ms
  halt_retry: 200ms
  shutdown_timeout: 10s
http: {listen: ""}
mappings:
  - name: leads
    table: public.leads
    lead_event_source: E2E CRM
    filter: [{column: deleted, equals: false}]
    stage:
      column: status
      events: {new: initial_lead, contacted: contacted, qualified: marketing_qualified_lead, won: converted}
    user_data:
      lead_id: fb_lead_id
      em: [email, {lookup: contact, column: email}]
      fn: {json: profile, path: name.first}
    lookups:
      contact: {query: "SELECT email FROM public.contacts WHERE lead_id = $1 ORDER BY id", args: [id], cache_size: 0}
    custom_data:
      crm_id: id
%s`, stateDir, dsn, metatest.DefaultDatasetID, endpoint, extra)
	path = filepath.Join(dir, "leadtail.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, stateDir
}

// e2eSetup starts a throwaway PostgreSQL with the e2e schema and the fake
// Graph API, and writes the config; leadtail's output is logged on failure.
func e2eSetup(t *testing.T) (pg *pgtest.Server, dsn string, meta *metatest.Server, cfgPath, stateDir string, logs *allLogs) {
	t.Helper()
	pg = pgtest.Start(t)
	pg.CreateDB(t, "crm")
	pg.Exec(t, "crm", e2eSchema)
	dsn = pg.DSN("crm")
	meta = metatest.Start(t, metatest.Options{})
	cfgPath, stateDir = e2eConfig(t, dsn, meta.URL(), "")
	logs = &allLogs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("leadtail output:\n%s", logs)
		}
	})
	return pg, dsn, meta, cfgPath, stateDir, logs
}

func leadID(id int) string { return fmt.Sprintf("%d", 1_000_000_000_000_000+id) }

// TestRunPostgresEndToEnd drives the built binary through the main cases:
// stage moves, non-stage updates, deletes, a lookup, a TOASTed JSONB
// column, a multi-row transaction, a graceful stop, a server restart.
func TestRunPostgresEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts PostgreSQL (run without -short)")
	}
	pg, dsn, meta, cfgPath, stateDir, logs := e2eSetup(t)

	d := startDaemon(t, logs, "run", "-c", cfgPath)
	waitStreaming(t, d, dsn, "leadtail_e2e")
	want := map[eventKey]int{}
	expect := func(id int, name string) { want[eventKey{fmt.Sprint(id), name}]++ }

	// Stage moves, including back and forth: new -> contacted -> qualified -> new -> qualified.
	pg.Exec(t, "crm", `INSERT INTO leads (id, status, email, fb_lead_id) VALUES (1, 'new', ' Jane@Example.com', $1)`, leadID(1))
	expect(1, "initial_lead")
	pg.Exec(t, "crm", `UPDATE leads SET email = 'jane@example.org' WHERE id = 1`) // not a stage change
	for _, s := range []string{"contacted", "qualified", "new", "qualified"} {
		pg.Exec(t, "crm", `UPDATE leads SET status = $1 WHERE id = 1`, s)
	}
	expect(1, "contacted")
	expect(1, "marketing_qualified_lead")
	expect(1, "initial_lead")
	expect(1, "marketing_qualified_lead")

	// A lead whose email lives in another table (lookup), later deleted.
	pg.Exec(t, "crm", `BEGIN; INSERT INTO contacts (lead_id, email) VALUES (2, 'bob@example.com'); INSERT INTO leads (id, status) VALUES (2, 'new'); COMMIT`)
	expect(2, "initial_lead")
	pg.Exec(t, "crm", `DELETE FROM leads WHERE id = 2`)

	// A large JSONB column (TOAST), untouched by the later updates.
	big := strings.Repeat("x", 200_000)
	pg.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id, profile) VALUES (3, 'new', $1, jsonb_build_object('name', jsonb_build_object('first', 'Zoë'), 'blob', $2::text))`, leadID(3), big)
	expect(3, "initial_lead")
	pg.Exec(t, "crm", `UPDATE leads SET notes = 'called back' WHERE id = 3`)
	pg.Exec(t, "crm", `UPDATE leads SET status = 'won' WHERE id = 3`)
	expect(3, "converted")

	// Unlisted stages emit nothing; a move from one into the funnel does.
	pg.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id) VALUES (4, 'junk', $1)`, leadID(4))
	pg.Exec(t, "crm", `UPDATE leads SET status = 'won' WHERE id = 4`)
	expect(4, "converted")
	// Filtered rows emit nothing.
	pg.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id, deleted) VALUES (5, 'new', $1, true)`, leadID(5))

	// Many rows in one transaction.
	pg.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id) SELECT g, 'new', (1000000000000000 + g)::text FROM generate_series(100, 149) g`)
	for id := 100; id < 150; id++ {
		expect(id, "initial_lead")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := meta.WaitAccepted(ctx, total(want)); err != nil {
		t.Fatalf("waiting for %d events: %v (got %d)", total(want), err, len(meta.Accepted()))
	}

	// Graceful stop: exit 0 with everything checkpointed.
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "checkpoint.json")); err != nil {
		t.Fatalf("no checkpoint after a graceful stop: %v", err)
	}

	// Changes while stopped arrive after the restart; nothing is resent.
	pg.Exec(t, "crm", `UPDATE leads SET status = 'contacted' WHERE id = 100`)
	expect(100, "contacted")
	d = startDaemon(t, logs, "run", "-c", cfgPath)
	waitStreaming(t, d, dsn, "leadtail_e2e")

	// A server restart mid-stream: leadtail reconnects from its checkpoint.
	pg.Restart(t)
	pg.Exec(t, "crm", `UPDATE leads SET status = 'qualified' WHERE id = 101`)
	expect(101, "marketing_qualified_lead")
	if err := meta.WaitAccepted(ctx, total(want)); err != nil {
		t.Fatalf("after restarts: %v (got %d of %d)", err, len(meta.Accepted()), total(want))
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("second SIGTERM: exit code %d", code)
	}

	_, dups := checkDelivery(t, meta, want)
	if dups != 0 {
		t.Errorf("%d duplicate(s) although every stop was graceful", dups)
	}
	// The lookup filled the email; the TOASTed profile still gave fn.
	for _, r := range meta.Accepted() {
		id := fmt.Sprint(r.Event.CustomData["crm_id"])
		if id == "2" && len(r.Event.UserData.Em) != 1 {
			t.Errorf("lead 2: em from the lookup missing: %+v", r.Event.UserData)
		}
		if id == "3" && len(r.Event.UserData.Fn) != 1 {
			t.Errorf("lead 3 %s: fn from the TOASTed jsonb missing", r.Event.EventName)
		}
		if r.Event.UserData.LeadID != 0 && fmt.Sprint(r.Event.UserData.LeadID) != leadID(mustAtoi(t, id)) {
			t.Errorf("lead %s: lead_id %d", id, r.Event.UserData.LeadID)
		}
	}
	// Secrets and plaintext contact data never reach the logs.
	out := logs.String()
	for _, s := range []string{metatest.DefaultAccessToken, "Jane@Example.com", "jane@example.org", "bob@example.com", "Zoë"} {
		if strings.Contains(out, s) {
			t.Errorf("log output contains %q", s)
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestRunPostgresSIGKILL kills the daemon at random points while changes
// stream in, restarting it each time: every change must arrive, duplicates
// must share their event_id.
func TestRunPostgresSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts PostgreSQL (run without -short)")
	}
	pg, dsn, meta, cfgPath, _, logs := e2eSetup(t)
	d := startDaemon(t, logs, "run", "-c", cfgPath)
	waitStreaming(t, d, dsn, "leadtail_e2e")
	w := leadWriter{
		insert: func(id int, s string) {
			pg.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id, email) VALUES ($1, $2, $3, $4)`, id, s, leadID(id), fmt.Sprintf("lead%d@example.com", id))
		},
		update: func(id int, s string, i int) {
			pg.Exec(t, "crm", `UPDATE leads SET status = $1, notes = $2 WHERE id = $3`, s, fmt.Sprint(i), id)
		},
		remove: func(id int) { pg.Exec(t, "crm", `DELETE FROM leads WHERE id = $1`, id) },
	}
	killWorkload(t, 1, 1000, 10, w, meta, d, func() *daemon { return startDaemon(t, logs, "run", "-c", cfgPath) })
}

// TestRunPostgresIdleSlotAdvances: a quiet mapped table while another
// table is busy must not pin WAL: the slot's lag stays bounded.
func TestRunPostgresIdleSlotAdvances(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts PostgreSQL (run without -short)")
	}
	pg, dsn, meta, cfgPath, _, logs := e2eSetup(t)
	d := startDaemon(t, logs, "run", "-c", cfgPath)
	waitStreaming(t, d, dsn, "leadtail_e2e")
	// ~20 MB of WAL on an unmapped table.
	for i := 0; i < 40; i++ {
		pg.Exec(t, "crm", `INSERT INTO activity (payload) SELECT repeat(md5(g::text), 16) FROM generate_series(1, 1000) g`)
	}
	eventually(t, 30*time.Second, "the idle slot to catch up", func() (bool, string) {
		lag, err := slotLag(context.Background(), dsn, "leadtail_e2e")
		return err == nil && lag < 1<<20, fmt.Sprintf("lag %d bytes, err %v", lag, err)
	})
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	if n := len(meta.Accepted()); n != 0 {
		t.Fatalf("%d events from an unmapped table", n)
	}
}
