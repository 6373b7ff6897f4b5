package main

// End-to-end tests of what an operator relies on: /healthz, /readyz and
// /metrics of a running daemon, `status`, `replay`, and JSON logs that
// never carry secrets or contact data.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sink/metatest"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
	"github.com/leadtail/leadtail/sources/postgres/pgtest"
)

// opsConfig writes a config with the HTTP endpoints on a free port.
// source is the YAML of the source section's body; lookup the contact
// lookup's query.
func opsConfig(t *testing.T, source, table, lookup, endpoint, logFormat string) (path, stateDir, base string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	listen := opsFreeAddr(t)
	cfg := fmt.Sprintf(`
log: {level: debug, format: %s}
state_dir: %s
source:
%s
meta:
  dataset_id: %q
  access_token: ${META_ACCESS_TOKEN}
  endpoint: %s
delivery: {batch_size: 100, batch_wait: 50ms, retry_min: 50ms, retry_max: 500ms, halt_retry: 200ms, shutdown_timeout: 10s}
http: {listen: %q}
mappings:
  - name: leads
    table: %s
    lead_event_source: E2E CRM
    stage:
      column: status
      events: {new: initial_lead, contacted: contacted, qualified: marketing_qualified_lead, won: converted}
    user_data:
      lead_id: fb_lead_id
      em: [email, {lookup: contact, column: email}]
      fn: {json: profile, path: name.first}
    lookups:
      contact: {query: %q, args: [id], cache_size: 0}
    custom_data:
      crm_id: id
`, logFormat, stateDir, source, metatest.DefaultDatasetID, endpoint, listen, table, lookup)
	path = filepath.Join(dir, "leadtail.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, stateDir, "http://" + listen
}

// opsFreeAddr returns a loopback address with a port free right now.
func opsFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

var opsHTTP = &http.Client{Timeout: 5 * time.Second}

// opsGet returns the status and body of GET url.
func opsGet(url string) (int, string, error) {
	resp, err := opsHTTP.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitReadyz polls /readyz until it answers code with a body containing want.
func waitReadyz(t *testing.T, d *daemon, base string, code int, want string) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("/readyz %d %q", code, want), func() (bool, string) {
		if d.exited() {
			t.Fatalf("leadtail exited (code %d)", d.exitCode())
		}
		c, body, err := opsGet(base + "/readyz")
		return err == nil && c == code && strings.Contains(body, want), fmt.Sprintf("%d %q %v", c, body, err)
	})
}

// readyWatch polls /readyz in its own goroutine and records every change
// of answer, to see a short not-ready window that a single poll after the
// fact could miss. It only records; the test goroutine asserts.
type readyWatch struct {
	stop, done chan struct{}
	mu         sync.Mutex
	seen       []string
}

func watchReadyz(t *testing.T, base string) *readyWatch {
	t.Helper()
	w := &readyWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		last := ""
		for {
			c, body, err := opsGet(base + "/readyz")
			s := fmt.Sprintf("%d %s", c, strings.TrimSpace(body))
			if err != nil {
				s = "error " + err.Error()
			}
			if s != last {
				w.mu.Lock()
				w.seen = append(w.seen, s)
				w.mu.Unlock()
				last = s
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { w.finish() })
	return w
}

// finish stops the watcher and returns the answers seen, in order.
func (w *readyWatch) finish() []string {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

// sawNotReady reports whether a 503 naming want was seen.
func sawNotReady(seen []string, want string) bool {
	for _, s := range seen {
		if strings.HasPrefix(s, "503 ") && strings.Contains(s, want) {
			return true
		}
	}
	return false
}

// opsMetrics scrapes /metrics: `name{labels}` -> value, and the raw text.
func opsMetrics(t *testing.T, base string) (map[string]float64, string) {
	t.Helper()
	code, body, err := opsGet(base + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics: bad line %q", line)
		}
		out[line[:i]] = v
	}
	return out, body
}

// waitMetric polls /metrics until sample key satisfies ok.
func waitMetric(t *testing.T, base, key string, ok func(float64) bool) {
	t.Helper()
	eventually(t, 60*time.Second, "metric "+key, func() (bool, string) {
		m, _ := opsMetrics(t, base)
		v, present := m[key]
		return present && ok(v), fmt.Sprintf("%v (present %v)", v, present)
	})
}

// runLeadtail runs a command of the binary to completion.
func runLeadtail(t *testing.T, logs *allLogs, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, leadtailBinary(t), args...)
	cmd.Env = append(os.Environ(), "META_ACCESS_TOKEN="+metatest.DefaultAccessToken)
	out, errOut := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	logs.add(errOut)
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("leadtail %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// secrets are the strings that must never appear in any output: the
// token and the plaintext contact data the tests write.
var opsSecrets = []string{metatest.DefaultAccessToken, "Jane.Doe@Example.com", "jane.doe@example.com",
	"bob.contact@example.org", "Zoë", "Mallory"}

func checkNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range opsSecrets {
		if strings.Contains(text, s) {
			t.Errorf("%s contains %q", what, s)
		}
	}
}

// lifecycle are log messages an operator's tooling may key on, with the
// keys each must carry.
var lifecycle = map[string][]string{
	"leadtail starting":                                      {"version", "commit", "source", "mappings", "dataset_id"},
	"serving http endpoints":                                 {"address"},
	"pipeline starting":                                      {"position"},
	"stream starting":                                        {"position"},
	"replication started":                                    {"slot", "position"},
	"replication connection lost, reconnecting":              {"error", "attempt", "wait", "position"},
	"delivery halted: fix the configuration":                 {"reason", "code", "subcode", "fbtrace_id"},
	"delivery resumed: Meta accepts the configuration again": nil,
	"Meta rejected an event, dead-lettering it":              {"code", "subcode", "fbtrace_id", "mapping", "event_id"},
	"stopping: draining in-flight batches":                   {"timeout"},
	"pipeline stopped":                                       {"changes", "accepted", "dead_lettered", "skipped"},
}

// checkJSONLogs parses every line of out as one JSON object and checks
// that each lifecycle message appears with its keys.
func checkJSONLogs(t *testing.T, out string) {
	t.Helper()
	found := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		n++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line %d is not one JSON object: %v\n%s", n, err, line)
			continue
		}
		for _, k := range []string{"@timestamp", "@level", "@message"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line %d lacks %s: %s", n, k, line)
			}
		}
		msg, _ := rec["@message"].(string)
		keys, ok := lifecycle[msg]
		if !ok {
			continue
		}
		found[msg] = true
		for _, k := range keys {
			if _, ok := rec[k]; !ok {
				t.Errorf("%q lacks key %q: %s", msg, k, line)
			}
		}
	}
	if n == 0 {
		t.Fatal("no log output")
	}
	for msg := range lifecycle {
		if !found[msg] {
			t.Errorf("no %q log line", msg)
		}
	}
}

// TestOperatorPostgres runs the daemon with JSON logs against PostgreSQL
// and the fake Graph API through what an operator watches: readiness
// while replication dies (walsender terminated, server restarted) and
// while the token is expired; metrics; dead letters from a batch Meta
// refuses, `status` and `replay`; and logs that are JSON lines without
// secrets or contact data.
func TestOperatorPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts PostgreSQL (run without -short)")
	}
	pg := pgtest.Start(t)
	pg.CreateDB(t, "crm")
	pg.Exec(t, "crm", e2eSchema)
	dsn := pg.DSN("crm")
	meta := metatest.Start(t, metatest.Options{})
	src := fmt.Sprintf(`  postgres:
    dsn: %q
    slot: leadtail_e2e
    publication: leadtail_e2e
    status_interval: 1s
    heartbeat_interval: 1s
    set_replica_identity_full: true`, dsn)
	cfgPath, stateDir, base := opsConfig(t, src, "public.leads",
		"SELECT email FROM public.contacts WHERE lead_id = $1 ORDER BY id", meta.URL(), "json")
	logs := &allLogs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("leadtail output:\n%s", logs)
		}
	})

	d := startDaemon(t, logs, "run", "-c", cfgPath)
	waitStreaming(t, d, dsn, "leadtail_e2e")
	if code, body, err := opsGet(base + "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz = %d %q %v", code, body, err)
	}
	waitReadyz(t, d, base, 200, "ready")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	accepted := 0
	deliver := func(what string, sql string, args ...any) {
		t.Helper()
		pg.Exec(t, "crm", sql, args...)
		accepted++
		if err := meta.WaitAccepted(ctx, accepted); err != nil {
			t.Fatalf("%s: %v (got %d of %d)", what, err, len(meta.Accepted()), accepted)
		}
	}

	deliver("first lead", `INSERT INTO leads (id, status, email, fb_lead_id, profile) VALUES (1, 'new', ' Jane.Doe@Example.com', $1, '{"name": {"first": "Zoë"}}')`, leadID(1))
	// Meta's fake has the event; leadtail counts it once it read the answer.
	for _, k := range []string{
		`leadtail_events_sent_total{event_name="initial_lead",mapping="leads"}`,
		`leadtail_source_up`, `leadtail_commit_to_accepted_seconds_count`, `leadtail_changes_total`,
	} {
		waitMetric(t, base, k, func(v float64) bool { return v >= 1 })
	}
	m, _ := opsMetrics(t, base)
	for _, k := range []string{"leadtail_replication_lag_bytes", "leadtail_replication_retained_bytes",
		"leadtail_source_heartbeat_age_seconds", "leadtail_replication_lag_seconds", "leadtail_dead_letters"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}

	t.Run("walsender terminated", func(t *testing.T) {
		w := watchReadyz(t, base)
		pg.Exec(t, "crm", `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'leadtail_e2e'`)
		eventually(t, 30*time.Second, "a 503 and then ready again", func() (bool, string) {
			w.mu.Lock()
			seen := append([]string(nil), w.seen...)
			w.mu.Unlock()
			return sawNotReady(seen, "source: ") && strings.HasPrefix(seen[len(seen)-1], "200 "), fmt.Sprint(seen)
		})
		seen := w.finish()
		t.Logf("/readyz answers: %q", seen)
	})

	t.Run("server restart", func(t *testing.T) {
		w := watchReadyz(t, base)
		pg.Restart(t)
		waitReadyz(t, d, base, 200, "ready")
		seen := w.finish()
		if !sawNotReady(seen, "source: replication connection lost") {
			t.Fatalf("never saw /readyz fail while the server restarted: %q", seen)
		}
		deliver("a lead after the restart", `INSERT INTO contacts (lead_id, email) VALUES (2, 'bob.contact@example.org'); INSERT INTO leads (id, status) VALUES (2, 'new')`)
	})

	t.Run("token expired", func(t *testing.T) {
		meta.ExpireToken()
		pg.Exec(t, "crm", `UPDATE leads SET status = 'contacted' WHERE id = 1`)
		waitReadyz(t, d, base, 503, "sink halted: Meta rejected the access token")
		waitMetric(t, base, "leadtail_meta_halted", func(v float64) bool { return v == 1 })
		waitMetric(t, base, `leadtail_meta_retries_total{reason="halted"}`, func(v float64) bool { return v >= 1 })
		meta.RestoreToken()
		waitReadyz(t, d, base, 200, "ready")
		accepted++
		if err := meta.WaitAccepted(ctx, accepted); err != nil {
			t.Fatalf("the change held during the halt: %v", err)
		}
		waitMetric(t, base, "leadtail_meta_halted", func(v float64) bool { return v == 0 })
	})

	refused := `leadtail_events_dead_lettered_total{event_name="initial_lead",mapping="leads",reason="rejected by Meta: Graph error 100/2804019"}`
	t.Run("dead letters", func(t *testing.T) {
		// Each of the next two requests is refused with a bad-event code:
		// a single-event request is dead-lettered at once.
		meta.Inject(metatest.Fault{Kind: metatest.FaultError, Code: 100, Subcode: 2804019, Times: 2})
		for i, id := range []int{3, 4} {
			pg.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id, email) VALUES ($1, 'new', $2, 'Mallory@example.net')`, id, leadID(id))
			waitMetric(t, base, "leadtail_dead_letters", func(v float64) bool { return v == float64(i+1) })
		}
		waitMetric(t, base, refused, func(v float64) bool { return v == 2 })
		waitMetric(t, base, `leadtail_meta_requests_total{class="bad_event",code="100",subcode="2804019"}`, func(v float64) bool { return v == 2 })
	})

	t.Run("status", func(t *testing.T) {
		code, out, _ := runLeadtail(t, logs, "status", "-c", cfgPath)
		if code != 0 {
			t.Fatalf("status: exit %d:\n%s", code, out)
		}
		for _, want := range []string{"checkpoint:    0/", "dead letters:  2 (", "source lag:    slot leadtail_e2e confirmed at"} {
			if !strings.Contains(out, want) {
				t.Errorf("status output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("replay", func(t *testing.T) {
		// Meta still refuses one of the two: replay sends what it can,
		// keeps the other with Meta's new answer and exits 1.
		before := len(meta.Accepted())
		meta.Inject(metatest.Fault{Kind: metatest.FaultError, Code: 100, Subcode: 2804019, Times: 2})
		code, out, _ := runLeadtail(t, logs, "replay", "-c", cfgPath)
		if code != 1 || !strings.Contains(out, "replayed 1 dead-lettered event(s); 1 left") {
			t.Fatalf("replay with one still refused: exit %d, want 1:\n%s", code, out)
		}
		code, out, _ = runLeadtail(t, logs, "replay", "-c", cfgPath)
		if code != 0 || !strings.Contains(out, "replayed 1 dead-lettered event(s); 0 left") {
			t.Fatalf("replay: exit %d, want 0:\n%s", code, out)
		}
		code, out, _ = runLeadtail(t, logs, "replay", "-c", cfgPath)
		if code != 0 || !strings.Contains(out, "replayed 0 dead-lettered event(s); 0 left") {
			t.Fatalf("replay of an empty file: exit %d, want 0:\n%s", code, out)
		}
		ids := map[string]bool{}
		for _, r := range meta.Accepted()[before:] {
			ids[fmt.Sprint(r.Event.CustomData["crm_id"])] = true
		}
		if !ids["3"] || !ids["4"] || len(ids) != 2 {
			t.Fatalf("replayed leads %v, want 3 and 4", ids)
		}
		waitMetric(t, base, "leadtail_dead_letters", func(v float64) bool { return v == 0 })
		code, out, _ = runLeadtail(t, logs, "status", "-c", cfgPath)
		if code != 0 || !strings.Contains(out, "dead letters:  0 (") {
			t.Fatalf("status after replay: exit %d:\n%s", code, out)
		}
	})

	_, metricsText := opsMetrics(t, base)
	t.Logf("/metrics excerpt:\n%s", leadtailLines(metricsText))
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}

	t.Run("status with the database down", func(t *testing.T) {
		pg.Stop(t)
		code, out, _ := runLeadtail(t, logs, "status", "-c", cfgPath)
		if code != 0 || !strings.Contains(out, "source lag:    unknown (") || !strings.Contains(out, "dead letters:  0") {
			t.Fatalf("status: exit %d, want 0 with the lag unknown:\n%s", code, out)
		}
	})

	t.Run("json logs", func(t *testing.T) {
		checkJSONLogs(t, d.out.String())
	})
	checkNoSecrets(t, "log output", logs.String())
	checkNoSecrets(t, "/metrics", metricsText)
	if b, err := os.ReadFile(filepath.Join(stateDir, "dead-letters.jsonl")); err == nil {
		checkNoSecrets(t, "the dead-letter file", string(b))
	}
	if v := meta.Violations(); len(v) > 0 {
		t.Errorf("the fake Graph API saw violations: %v", v)
	}
}

// leadtailLines keeps leadtail's own samples of a scrape, for the test log.
func leadtailLines(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "leadtail_") && !strings.Contains(l, "_bucket{") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestOperatorMySQL: readiness of the MariaDB source while the server
// restarts and while the token is expired; binlog lag metrics; `status`.
func TestOperatorMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts MariaDB (run without -short)")
	}
	db := mysqltest.Start(t)
	db.CreateDB(t, "crm")
	for _, s := range mysqlSchema {
		db.Exec(t, "crm", s)
	}
	meta := metatest.Start(t, metatest.Options{})
	src := fmt.Sprintf("  mysql:\n    dsn: %q\n    server_id: 4243\n    heartbeat_period: 1s", db.DSN("crm"))
	cfgPath, stateDir, base := opsConfig(t, src, "crm.leads",
		"SELECT email FROM crm.contacts WHERE lead_id = ? ORDER BY id LIMIT 10", meta.URL(), "text")
	logs := &allLogs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("leadtail output:\n%s", logs)
		}
	})
	d := startDaemon(t, logs, "run", "-c", cfgPath)
	waitBinlogStreaming(t, d, db, stateDir)
	waitReadyz(t, d, base, 200, "ready")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	accepted := 0
	deliver := func(what, sql string, args ...any) {
		t.Helper()
		db.Exec(t, "crm", sql, args...)
		accepted++
		if err := meta.WaitAccepted(ctx, accepted); err != nil {
			t.Fatalf("%s: %v (got %d of %d)", what, err, len(meta.Accepted()), accepted)
		}
	}
	deliver("first lead", `INSERT INTO leads (id, status, email, fb_lead_id) VALUES (1, 'new', 'Jane.Doe@Example.com', ?)`, leadID(1))
	waitMetric(t, base, "leadtail_replication_binlog_files_behind", func(v float64) bool { return v >= 0 })
	waitMetric(t, base, "leadtail_replication_lag_bytes", func(v float64) bool { return v >= 0 })
	waitMetric(t, base, "leadtail_source_heartbeat_age_seconds", func(v float64) bool { return v < 30 })
	waitMetric(t, base, "leadtail_source_up", func(v float64) bool { return v == 1 })

	t.Run("server restart", func(t *testing.T) {
		w := watchReadyz(t, base)
		db.Restart(t)
		waitReadyz(t, d, base, 200, "ready")
		seen := w.finish()
		if !sawNotReady(seen, "source: binlog connection lost") {
			t.Fatalf("never saw /readyz fail while the server restarted: %q", seen)
		}
		deliver("a lead after the restart", `INSERT INTO leads (id, status, fb_lead_id) VALUES (2, 'new', ?)`, leadID(2))
	})

	t.Run("token expired", func(t *testing.T) {
		meta.ExpireToken()
		db.Exec(t, "crm", `UPDATE leads SET status = 'won' WHERE id = 2`)
		waitReadyz(t, d, base, 503, "sink halted: Meta rejected the access token")
		waitMetric(t, base, "leadtail_meta_halted", func(v float64) bool { return v == 1 })
		meta.RestoreToken()
		waitReadyz(t, d, base, 200, "ready")
		accepted++
		if err := meta.WaitAccepted(ctx, accepted); err != nil {
			t.Fatalf("the change held during the halt: %v", err)
		}
	})

	t.Run("status", func(t *testing.T) {
		code, out, _ := runLeadtail(t, logs, "status", "-c", cfgPath)
		if code != 0 {
			t.Fatalf("status: exit %d:\n%s", code, out)
		}
		for _, want := range []string{"checkpoint:    file:", "dead letters:  0 (", "binlog files / "} {
			if !strings.Contains(out, want) {
				t.Errorf("status output lacks %q:\n%s", want, out)
			}
		}
	})
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	checkNoSecrets(t, "log output", logs.String())
}
