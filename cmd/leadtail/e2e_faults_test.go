package main

// The fault-injection suite (GitHub issue 6): the built binary against a
// throwaway PostgreSQL and MariaDB, each behind a TCP proxy
// (tcpproxy_test.go), and the strict fake Graph API, while the tests crash
// the daemon, restart, cut and half-open its database connections, lose
// its slot or binlog, make Meta fail in every documented way, feed it
// poison rows, break its state_dir and stop it during an outage. Each
// scenario asserts that nothing is lost, that duplicates carry the same
// event_id, and that exactly the expected events are dead-lettered.
//
// `make test` runs a reduced version (fewer changes and kills, shorter
// outages; every fault kind is still injected). LEADTAIL_FAULTS=full (what
// `make faults` sets) runs the full counts. Both log a table of what was
// injected and what arrived.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"

	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sink/metatest"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
	"github.com/leadtail/leadtail/sources/postgres/pgtest"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

// faultScale is how hard the suite pushes.
type faultScale struct {
	full bool
	// crashChanges row changes with crashKills SIGKILLs in between.
	crashChanges, crashKills int
	// outage is how many requests each transient fault kind fails.
	outage int
	// backlog is how many changes are written during the Meta outage.
	backlog int
	// regain adds a throttle answer whose X-Business-Use-Case-Usage asks
	// for a one-minute pause (full run only: it costs a minute).
	regain bool
}

func faultScaleFromEnv() faultScale {
	if os.Getenv("LEADTAIL_FAULTS") == "full" {
		return faultScale{full: true, crashChanges: 10_000, crashKills: 50, outage: 150, backlog: 5_000, regain: true}
	}
	return faultScale{crashChanges: 1_000, crashKills: 10, outage: 15, backlog: 300}
}

// TestFaults runs every fault scenario against PostgreSQL and MariaDB (in
// parallel, one throwaway server each; the scenarios of one source run in
// order on its server) and logs the summary table.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts PostgreSQL and MariaDB (run without -short)")
	}
	sc := faultScaleFromEnv()
	rep := &faultReport{}
	started := time.Now()
	t.Run("sources", func(t *testing.T) {
		for _, kind := range []string{"postgres", "mysql"} {
			t.Run(kind, func(t *testing.T) {
				t.Parallel()
				b := startFaultBackend(t, kind)
				for _, s := range faultScenarios {
					t.Run(s.name, func(t *testing.T) { s.run(t, b, sc, rep) })
				}
			})
		}
	})
	mode := "reduced (LEADTAIL_FAULTS=full for the full run)"
	if sc.full {
		mode = "full"
	}
	table := rep.table()
	t.Logf("fault injection, %s run, %s:\n%s", mode, time.Since(started).Round(time.Second), table)
	if sc.full {
		// make faults prints it; -v shows the log line too, this is the
		// copy without test-log indentation.
		fmt.Printf("\nFault injection (full run, %s)\n\n%s\n", time.Since(started).Round(time.Second), table)
	}
}

var faultScenarios = []struct {
	name string
	run  func(*testing.T, *faultBackend, faultScale, *faultReport)
}{
	{"crashes", faultCrashes},
	{"database", faultDatabase},
	{"position-lost", faultPositionLost},
	{"meta", faultMeta},
	{"poison", faultPoison},
	{"local", faultLocal},
	{"graceful-stop", faultGracefulStop},
}

// ---- the report -----------------------------------------------------------

type faultRow struct {
	source, scenario string
	faults           int
	kinds            []string
	changes          int
	expected         int
	lost, dups       int
	dlWant, dlGot    int
	peakKiB          int64
}

type faultReport struct {
	mu   sync.Mutex
	rows []faultRow
}

func (r *faultReport) add(row faultRow) {
	r.mu.Lock()
	r.rows = append(r.rows, row)
	r.mu.Unlock()
}

func (r *faultReport) table() string {
	r.mu.Lock()
	rows := slices.Clone(r.rows)
	r.mu.Unlock()
	order := map[string]int{}
	for i, s := range faultScenarios {
		order[s.name] = i
	}
	slices.SortStableFunc(rows, func(a, b faultRow) int {
		if a.source != b.source {
			return strings.Compare(b.source, a.source) // postgres first
		}
		return order[a.scenario] - order[b.scenario]
	})
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "source\tscenario\tfaults\tchanges\tevents\tlost\tduplicates\tdead-lettered (want/got)\tpeak RSS\t")
	var tot faultRow
	for _, r := range rows {
		dupPct := 0.0
		if r.expected > 0 {
			dupPct = 100 * float64(r.dups) / float64(r.expected)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d (%.1f%%)\t%d/%d\t%.1f MiB\t\n", r.source, r.scenario, r.faults,
			r.changes, r.expected, r.lost, r.dups, dupPct, r.dlWant, r.dlGot, float64(r.peakKiB)/1024)
		tot.faults += r.faults
		tot.changes += r.changes
		tot.expected += r.expected
		tot.lost += r.lost
		tot.dups += r.dups
		tot.dlWant += r.dlWant
		tot.dlGot += r.dlGot
		tot.peakKiB = max(tot.peakKiB, r.peakKiB)
	}
	fmt.Fprintf(w, "total\t\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%.1f MiB\t\n", tot.faults, tot.changes, tot.expected,
		tot.lost, tot.dups, tot.dlWant, tot.dlGot, float64(tot.peakKiB)/1024)
	w.Flush()
	b.WriteString("\nfaults injected per scenario:\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "  %s/%s: %s\n", r.source, r.scenario, strings.Join(r.kinds, ", "))
	}
	return b.String()
}

// ---- one database server per source ---------------------------------------

// faultBackend is one throwaway server and the proxy every daemon goes
// through. Scenarios get their own database on it.
type faultBackend struct {
	kind  string
	pg    *pgtest.Server
	my    *mysqltest.Server
	proxy *sourcetest.Proxy
	n     int // scenarios so far (server_ids, slot names)
}

func startFaultBackend(t *testing.T, kind string) *faultBackend {
	t.Helper()
	b := &faultBackend{kind: kind}
	switch kind {
	case "postgres":
		// A walsender that hears nothing for 5 s is dropped by the server:
		// the half-open case then resolves in seconds, not a minute.
		b.pg = pgtest.Start(t, pgtest.WithSetting("wal_sender_timeout", "5s"))
		b.proxy = sourcetest.StartProxy(t, fmt.Sprintf("%s:%d", b.pg.Host, b.pg.Port))
	case "mysql":
		b.my = mysqltest.Start(t, mysqltest.WithGTIDStrict())
		b.proxy = sourcetest.StartProxy(t, b.my.Addr())
	}
	return b
}

// restartServer restarts the database server (same port, same data).
func (b *faultBackend) restartServer(t *testing.T) {
	t.Helper()
	if b.pg != nil {
		b.pg.Restart(t)
	} else {
		b.my.Restart(t)
	}
}

// ---- a scenario's environment ------------------------------------------------

// faultEnv is one scenario: a database on the backend, a fake Graph API, a
// config, the daemons started, what was written and what must arrive.
type faultEnv struct {
	t        *testing.T
	b        *faultBackend
	name     string
	db       string
	slot     string // postgres
	serverID int    // mysql
	meta     *metatest.Server
	cfgPath  string
	stateDir string
	logs     *allLogs
	w        *sqlWriter

	// delivery is the config's delivery section.
	delivery string
	want     map[eventKey]int
	changes  int
	faults   int
	kinds    []string
	peakKiB  atomic.Int64
	nextID   int
}

type envOpts struct {
	// metaNow is the fake Graph API's clock (default time.Now).
	metaNow func() time.Time
	// delivery overrides the delivery section (YAML flow mapping).
	delivery string
	// stateDir overrides state_dir.
	stateDir string
}

const faultDelivery = `{batch_size: 100, batch_wait: 100ms, retry_min: 20ms, retry_max: 200ms, halt_retry: 200ms, request_timeout: 2s, shutdown_timeout: 10s}`

func (b *faultBackend) newEnv(t *testing.T, name string, o envOpts) *faultEnv {
	t.Helper()
	b.n++
	e := &faultEnv{
		t: t, b: b, name: name,
		db:       "crm_" + strings.ReplaceAll(name, "-", "_"),
		slot:     "lt_" + strings.ReplaceAll(name, "-", "_"),
		serverID: 7000 + b.n,
		logs:     &allLogs{},
		want:     map[eventKey]int{},
		delivery: o.delivery,
		nextID:   1,
	}
	if e.delivery == "" {
		e.delivery = faultDelivery
	}
	e.meta = metatest.Start(t, metatest.Options{Now: o.metaNow})
	dir := t.TempDir()
	e.stateDir = filepath.Join(dir, "state")
	if o.stateDir != "" {
		e.stateDir = o.stateDir
	}
	e.cfgPath = filepath.Join(dir, "leadtail.yaml")
	switch b.kind {
	case "postgres":
		b.pg.CreateDB(t, e.db)
		b.pg.Exec(t, e.db, `CREATE TABLE leads (
		  id bigint PRIMARY KEY, status text, email text, phone text, fb_lead_id text, notes text,
		  deleted boolean NOT NULL DEFAULT false, stage_changed_at timestamptz, created_at timestamptz)`)
	case "mysql":
		b.my.CreateDB(t, e.db)
		b.my.Exec(t, e.db, `CREATE TABLE leads (
		  id BIGINT PRIMARY KEY, status VARCHAR(32), email LONGTEXT, phone VARCHAR(64), fb_lead_id VARCHAR(32), notes LONGTEXT,
		  deleted TINYINT(1) NOT NULL DEFAULT 0, stage_changed_at DATETIME(6), created_at DATETIME(6))`)
	}
	e.w = openWriter(t, b, e.db)
	e.writeConfig()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("leadtail output (%s):\n%s", name, e.logs)
		}
	})
	return e
}

func (e *faultEnv) writeConfig() {
	e.t.Helper()
	var source, table, notDeleted string
	switch e.b.kind {
	case "postgres":
		source = fmt.Sprintf(`  postgres:
    dsn: "postgres://postgres@%s/%s?sslmode=disable"
    slot: %s
    publication: %s
    status_interval: 1s
    heartbeat_interval: 1s
    set_replica_identity_full: true`, e.b.proxy.Addr(), e.db, e.slot, e.slot)
		table, notDeleted = "public.leads", "false"
	case "mysql":
		source = fmt.Sprintf(`  mysql:
    dsn: "root@tcp(%s)/%s"
    server_id: %d
    heartbeat_period: 1s`, e.b.proxy.Addr(), e.db, e.serverID)
		table, notDeleted = e.db+".leads", "0"
	}
	cfg := fmt.Sprintf(`
log: {level: debug}
state_dir: %s
source:
%s
meta:
  dataset_id: %q
  access_token: ${META_ACCESS_TOKEN}
  endpoint: %s
delivery: %s
http: {listen: ""}
mappings:
  - name: leads
    table: %s
    lead_event_source: Fault CRM
    filter: [{column: deleted, equals: %s}]
    stage:
      column: status
      events: {new: initial_lead, contacted: contacted, qualified: marketing_qualified_lead, won: converted}
    event_time: {column: stage_changed_at}
    lead_created_time: {column: created_at}
    user_data:
      lead_id: fb_lead_id
      em: email
      ph: phone
    custom_data:
      crm_id: id
      note: notes
`, e.stateDir, source, metatest.DefaultDatasetID, e.meta.URL(), e.delivery, table, notDeleted)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// fault records an injected fault.
func (e *faultEnv) fault(n int, kind string) {
	e.faults += n
	e.kinds = append(e.kinds, fmt.Sprintf("%d×%s", n, kind))
}

func (e *faultEnv) expect(id int, name string) { e.want[eventKey{strconv.Itoa(id), name}]++ }

// ---- daemons ---------------------------------------------------------------

// start starts `leadtail run` and samples its peak RSS (VmHWM) until it
// exits.
func (e *faultEnv) start() *daemon {
	e.t.Helper()
	return e.startWith(e.cfgPath)
}

func (e *faultEnv) startWith(cfgPath string) *daemon {
	e.t.Helper()
	d := startDaemon(e.t, e.logs, "run", "-c", cfgPath)
	pid := d.cmd.Process.Pid
	go func() {
		// Polls external state (the kernel's counter) until the process ends.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			e.sampleRSS(pid)
			select {
			case <-d.done:
				return
			case <-tick.C:
			}
		}
	}()
	return d
}

func (e *faultEnv) sampleRSS(pid int) {
	if kib := vmHWM(pid); kib > e.peakKiB.Load() {
		e.peakKiB.Store(kib)
	}
}

// vmHWM reads the peak resident set size of pid in KiB (0 if gone).
func vmHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func (e *faultEnv) kill(d *daemon) {
	e.t.Helper()
	e.sampleRSS(d.cmd.Process.Pid)
	d.kill(e.t)
}

func (e *faultEnv) stop(d *daemon, within time.Duration) int {
	e.t.Helper()
	e.sampleRSS(d.cmd.Process.Pid)
	return d.stop(e.t, within)
}

// startedLine is what a source logs once its stream is up.
func (e *faultEnv) startedLine() string {
	if e.b.kind == "postgres" {
		return "replication started"
	}
	return "binlog stream started"
}

// waitStarted waits until d has logged its stream start n times (n > 1:
// reconnected) and, for MySQL, has checkpointed its first position: a
// first start begins at the end of the binlog.
func (e *faultEnv) waitStarted(d *daemon, n int) {
	e.t.Helper()
	eventually(e.t, 60*time.Second, fmt.Sprintf("the stream to start (%d)", n), func() (bool, string) {
		if d.exited() {
			e.t.Fatalf("leadtail exited early (code %d):\n%s", d.exitCode(), d.out.String())
		}
		c := strings.Count(d.out.String(), e.startedLine())
		_, err := os.Stat(filepath.Join(e.stateDir, sink.CheckpointFile))
		return c >= n && (e.b.kind == "postgres" || err == nil), fmt.Sprintf("%d start(s), checkpoint: %v", c, err)
	})
}

// countLog counts lines of d's output containing any of subs.
func countLog(d *daemon, subs ...string) int {
	n := 0
	for _, l := range strings.Split(d.out.String(), "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				n++
				break
			}
		}
	}
	return n
}

// reconnectLines are what the sources log when they lose the database.
var reconnectLines = []string{"reconnecting", "retrying", "lost the active lock"}

// missing returns how many expected events have not arrived yet.
func (e *faultEnv) missing() (int, string) {
	got := received(e.t, e.meta)
	miss, example := 0, ""
	for k, n := range e.want {
		if d := n - len(got[k]); d > 0 {
			miss += d
			example = k.String()
		}
	}
	return miss, example
}

// waitAll waits until every expected event has arrived; d (if not nil)
// must keep running meanwhile.
func (e *faultEnv) waitAll(d *daemon, within time.Duration) {
	e.t.Helper()
	eventually(e.t, within, "every expected event", func() (bool, string) {
		if d != nil && d.exited() {
			e.t.Fatalf("leadtail exited (code %d):\n%s", d.exitCode(), d.out.String())
		}
		n, ex := e.missing()
		return n == 0, fmt.Sprintf("%d of %d missing (e.g. %s)", n, total(e.want), ex)
	})
}

// deadLetters reads state_dir/dead-letters.jsonl.
func (e *faultEnv) deadLetters() []sink.DeadLetter {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join(e.stateDir, "dead-letters.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("dead letters: %v", err)
	}
	var out []sink.DeadLetter
	for i, l := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var dl sink.DeadLetter
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.UseNumber()
		if err := dec.Decode(&dl); err != nil {
			e.t.Fatalf("dead letters line %d: %v", i+1, err)
		}
		out = append(out, dl)
	}
	return out
}

// checkpoint returns the saved position ("" when none).
func (e *faultEnv) checkpoint() string {
	e.t.Helper()
	return e.checkpointAt(filepath.Join(e.stateDir, sink.CheckpointFile))
}

func (e *faultEnv) checkpointAt(path string) string {
	e.t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		e.t.Fatalf("checkpoint: %v", err)
	}
	var c struct {
		Position string `json:"position"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		e.t.Fatalf("checkpoint %s: %v", data, err)
	}
	return c.Position
}

// checkSlotNotAhead asserts that the PostgreSQL slot's confirmed position
// is not past the checkpoint: nothing is acknowledged before it is saved.
func (e *faultEnv) checkSlotNotAhead() {
	e.t.Helper()
	if e.b.kind != "postgres" {
		return
	}
	cp := e.checkpoint()
	if cp == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.b.pg.DSN(e.db))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ahead bool
	err = conn.QueryRow(ctx, `SELECT confirmed_flush_lsn > $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`, cp, e.slot).Scan(&ahead)
	if err != nil {
		e.t.Fatalf("slot position: %v", err)
	}
	if ahead {
		e.t.Errorf("slot %s confirmed past the checkpoint %s: acknowledged before saved", e.slot, cp)
	}
}

// finish checks what arrived against what was expected, adds the
// scenario's row to the report and drops the scenario's slot.
func (e *faultEnv) finish(rep *faultReport, dlWant int) {
	e.t.Helper()
	got := received(e.t, e.meta)
	row := faultRow{source: e.b.kind, scenario: e.name, faults: e.faults, kinds: e.kinds,
		changes: e.changes, expected: total(e.want), dlWant: dlWant, peakKiB: e.peakKiB.Load()}
	for k, n := range e.want {
		if d := n - len(got[k]); d > 0 {
			row.lost += d
			e.t.Errorf("lost: %v (%d of %d distinct event(s) arrived)", k, len(got[k]), n)
		} else if d < 0 {
			e.t.Errorf("%v: %d distinct event_ids, want %d (a replay got a new id?)", k, len(got[k]), n)
		}
	}
	for k, ids := range got {
		if _, ok := e.want[k]; !ok {
			e.t.Errorf("unexpected event %v", k)
		}
		for _, c := range ids {
			row.dups += c - 1
		}
	}
	if v := e.meta.Violations(); len(v) > 0 {
		e.t.Errorf("the fake Graph API saw violations: %v", v)
	}
	row.dlGot = len(e.deadLetters())
	if row.dlGot != dlWant {
		e.t.Errorf("%d dead letters, want %d", row.dlGot, dlWant)
	}
	rep.add(row)
	e.t.Logf("%s/%s: %d fault(s) [%s], %d changes, %d events, %d lost, %d duplicates, %d/%d dead-lettered, peak RSS %.1f MiB",
		row.source, row.scenario, row.faults, strings.Join(row.kinds, ", "), row.changes, row.expected, row.lost,
		row.dups, row.dlWant, row.dlGot, float64(row.peakKiB)/1024)
	if e.b.kind == "postgres" {
		e.dropSlot()
	}
}

// dropSlot removes the scenario's slot once its walsender is gone, so
// later scenarios do not retain WAL for it.
func (e *faultEnv) dropSlot() {
	e.t.Helper()
	eventually(e.t, 30*time.Second, "the slot to be dropped", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, e.b.pg.DSN(e.db))
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, e.slot)
		return err == nil, fmt.Sprint(err)
	})
}

// ---- writing changes -----------------------------------------------------

// sqlWriter writes to the database directly (not through the proxy).
type sqlWriter struct {
	b   *faultBackend
	db  string
	pgc *pgx.Conn
	myc *client.Conn
}

type stmt struct {
	sql  string
	args []any
}

func openWriter(t *testing.T, b *faultBackend, db string) *sqlWriter {
	t.Helper()
	w := &sqlWriter{b: b, db: db}
	w.reconnect(t)
	t.Cleanup(func() {
		if w.pgc != nil {
			w.pgc.Close(context.Background())
		}
	})
	return w
}

// reconnect opens a new connection (after a server restart).
func (w *sqlWriter) reconnect(t *testing.T) {
	t.Helper()
	if w.b.kind == "mysql" {
		w.myc = w.b.my.Conn(t, w.db)
		return
	}
	if w.pgc != nil {
		w.pgc.Close(context.Background())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, w.b.pg.DSN(w.db))
	if err != nil {
		t.Fatalf("writer: %v", err)
	}
	w.pgc = c
}

// pgPlaceholders turns ? into $1, $2, ...
func pgPlaceholders(sql string) string {
	var b strings.Builder
	n := 0
	for _, r := range sql {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ts renders a time for the stage_changed_at / created_at columns.
func (w *sqlWriter) ts(tm time.Time) any {
	if w.b.kind == "mysql" {
		return tm.UTC().Format("2006-01-02 15:04:05.000000")
	}
	return tm
}

// exec runs one autocommitted statement with ? placeholders.
func (w *sqlWriter) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	w.tx(t, stmt{sql, args})
}

// tx runs the statements in one transaction.
func (w *sqlWriter) tx(t *testing.T, stmts ...stmt) {
	t.Helper()
	if w.b.kind == "mysql" {
		if len(stmts) > 1 {
			if _, err := w.myc.Execute("BEGIN"); err != nil {
				t.Fatalf("writer: begin: %v", err)
			}
		}
		for _, s := range stmts {
			if _, err := w.myc.Execute(s.sql, s.args...); err != nil {
				t.Fatalf("writer: %s: %v", abbrev(s.sql), err)
			}
		}
		if len(stmts) > 1 {
			if _, err := w.myc.Execute("COMMIT"); err != nil {
				t.Fatalf("writer: commit: %v", err)
			}
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(stmts) == 1 {
		if _, err := w.pgc.Exec(ctx, pgPlaceholders(stmts[0].sql), stmts[0].args...); err != nil {
			t.Fatalf("writer: %s: %v", abbrev(stmts[0].sql), err)
		}
		return
	}
	tx, err := w.pgc.Begin(ctx)
	if err != nil {
		t.Fatalf("writer: begin: %v", err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, pgPlaceholders(s.sql), s.args...); err != nil {
			_ = tx.Rollback(ctx)
			t.Fatalf("writer: %s: %v", abbrev(s.sql), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("writer: commit: %v", err)
	}
}

func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// workload writes random stage changes like a busy CRM: inserts, stage
// moves (also into and out of unlisted stages), other updates, deletes.
type workload struct {
	e      *faultEnv
	rng    *rand.Rand
	status map[int]string
	ids    []int
}

var (
	faultStages = []string{"new", "contacted", "qualified", "won", "junk"}
	faultEvents = map[string]string{"new": "initial_lead", "contacted": "contacted", "qualified": "marketing_qualified_lead", "won": "converted"}
)

func newWorkload(e *faultEnv, seed uint64) *workload {
	return &workload{e: e, rng: rand.New(rand.NewPCG(seed, 42)), status: map[int]string{}}
}

// step writes one change and records the event it must produce.
func (wl *workload) step() {
	e, t := wl.e, wl.e.t
	t.Helper()
	switch r := wl.rng.IntN(10); {
	case r < 3 || len(wl.ids) == 0:
		id := e.nextID
		e.nextID++
		s := faultStages[wl.rng.IntN(len(faultStages))]
		e.w.exec(t, `INSERT INTO leads (id, status, fb_lead_id, email) VALUES (?, ?, ?, ?)`, id, s, leadID(id), fmt.Sprintf("lead%d@example.com", id))
		wl.ids = append(wl.ids, id)
		wl.status[id] = s
		if n, ok := faultEvents[s]; ok {
			e.expect(id, n)
		}
	case r < 9:
		id := wl.ids[wl.rng.IntN(len(wl.ids))]
		if wl.status[id] == "" {
			// Deleted: a no-op update of nothing still counts as a change.
			e.w.exec(t, `UPDATE leads SET notes = ? WHERE id = ?`, "gone", id)
			break
		}
		s := faultStages[wl.rng.IntN(len(faultStages))]
		e.w.exec(t, `UPDATE leads SET status = ?, notes = ? WHERE id = ?`, s, strconv.Itoa(e.changes), id)
		if s != wl.status[id] {
			if n, ok := faultEvents[s]; ok {
				e.expect(id, n)
			}
		}
		wl.status[id] = s
	default:
		id := wl.ids[wl.rng.IntN(len(wl.ids))]
		e.w.exec(t, `DELETE FROM leads WHERE id = ?`, id)
		wl.status[id] = ""
	}
	e.changes++
}

func (wl *workload) steps(n int) {
	wl.e.t.Helper()
	for i := 0; i < n; i++ {
		wl.step()
	}
}

// ---- 1. crashes -----------------------------------------------------------

// faultCrashes SIGKILLs the daemon while changes stream in, at points of
// five kinds in turn: a random moment; while Meta holds a slow answer to a
// request (delivery in flight); right after Meta accepted events (between
// delivery and checkpoint); while the database is unreachable (during
// reconnect); and right after a start (during setup).
func faultCrashes(t *testing.T, b *faultBackend, sc faultScale, rep *faultReport) {
	e := b.newEnv(t, "crashes", envOpts{})
	d := e.start()
	e.waitStarted(d, 1)
	wl := newWorkload(e, 1)
	rng := rand.New(rand.NewPCG(7, uint64(len(b.kind))))
	killAt := map[int]bool{}
	for len(killAt) < sc.crashKills {
		killAt[20+rng.IntN(sc.crashChanges-40)] = true
	}
	modes := []string{"random", "slow-delivery", "after-accept", "reconnect", "startup"}
	kills := map[string]int{}
	k := 0
	for i := 0; i < sc.crashChanges; i++ {
		if killAt[i] {
			mode := modes[k%len(modes)]
			k++
			d = e.crashAt(d, mode, wl, rng)
			kills[mode]++
		}
		wl.step()
	}
	for _, m := range modes {
		e.fault(kills[m], "SIGKILL "+m)
	}
	e.waitAll(d, time.Duration(60+sc.crashChanges/100)*time.Second)
	if code := e.stop(d, 30*time.Second); code != 0 {
		t.Fatalf("final SIGTERM: exit code %d", code)
	}
	if e.faults < sc.crashKills {
		t.Errorf("%d kills, want at least %d", e.faults, sc.crashKills)
	}
	e.finish(rep, 0)
}

// crashAt kills d at a point of the given kind and returns a new daemon.
func (e *faultEnv) crashAt(d *daemon, mode string, wl *workload, rng *rand.Rand) *daemon {
	t := e.t
	t.Helper()
	switch mode {
	case "random":
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // random kill point, not synchronisation
	case "slow-delivery":
		before := e.countRequests(func(r metatest.RequestLog) bool { return r.Fault == "slow" })
		e.meta.Inject(metatest.Fault{Kind: metatest.FaultSlow, Delay: 20 * time.Second})
		// Keep writing until a request is held by the slow answer.
		deadline := time.Now().Add(30 * time.Second)
		for e.countRequests(func(r metatest.RequestLog) bool { return r.Fault == "slow" }) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no request reached the slow answer")
			}
			wl.step()
		}
	case "after-accept":
		n := len(e.meta.Accepted())
		deadline := time.Now().Add(30 * time.Second)
		for len(e.meta.Accepted()) == n {
			if time.Now().After(deadline) {
				t.Fatalf("nothing accepted while writing")
			}
			wl.step()
		}
	case "reconnect":
		before := countLog(d, reconnectLines...)
		e.b.proxy.SetDown(true)
		e.b.proxy.Cut()
		eventually(t, 30*time.Second, "a reconnect attempt", func() (bool, string) {
			if d.exited() {
				t.Fatalf("leadtail exited (code %d)", d.exitCode())
			}
			return countLog(d, reconnectLines...) > before, "no reconnect logged yet"
		})
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // random kill point, not synchronisation
		e.kill(d)
		e.b.proxy.SetDown(false)
		return e.start()
	case "startup":
		e.kill(d)
		d = e.start()
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond) // random kill point, not synchronisation
	}
	e.kill(d)
	return e.start()
}

func (e *faultEnv) countRequests(match func(metatest.RequestLog) bool) int {
	n := 0
	for _, r := range e.meta.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}

// ---- 2. database faults ---------------------------------------------------

// faultDatabase: a server restart, connections cut by the proxy (both
// directions), the database unreachable for a while, and half-open
// connections: every change still arrives, the daemon never exits.
func faultDatabase(t *testing.T, b *faultBackend, sc faultScale, rep *faultReport) {
	e := b.newEnv(t, "database", envOpts{})
	d := e.start()
	e.waitStarted(d, 1)
	wl := newWorkload(e, 2)
	wl.steps(20)
	e.waitAll(d, 60*time.Second)

	for _, phase := range []struct {
		name   string
		inject func()
	}{
		{"server restart", func() {
			b.restartServer(t)
			e.w.reconnect(t)
		}},
		{"connections cut", func() {
			if n := b.proxy.Cut(); n == 0 {
				t.Fatal("no connection to cut")
			}
		}},
		{"database unreachable", func() {
			before := countLog(d, reconnectLines...)
			b.proxy.SetDown(true)
			b.proxy.Cut()
			wl.steps(10)
			eventually(t, 30*time.Second, "failing reconnect attempts", func() (bool, string) {
				n := countLog(d, reconnectLines...) - before
				return n >= 3, fmt.Sprintf("%d logged", n)
			})
			b.proxy.SetDown(false)
		}},
		{"half-open connections", func() {
			if n := b.proxy.Freeze(); n == 0 {
				t.Fatal("no connection to freeze")
			}
		}},
	} {
		starts := countLog(d, e.startedLine())
		phase.inject()
		e.fault(1, phase.name)
		wl.steps(20)
		e.waitAll(d, 90*time.Second)
		if phase.name != "server restart" || b.kind == "postgres" {
			// The stream was re-established (MariaDB's restart is seen as
			// a lost lock, whose regain logs no new stream start when the
			// binlog session had not failed yet).
			eventually(t, 30*time.Second, "the stream to be re-established after "+phase.name, func() (bool, string) {
				n := countLog(d, e.startedLine())
				return n > starts, fmt.Sprintf("%d starts", n)
			})
		}
		if phase.name == "half-open connections" {
			b.proxy.Cut() // release the frozen ones
		}
	}
	if code := e.stop(d, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	e.finish(rep, 0)
}

// ---- 2b. slot or binlog gone -------------------------------------------------

// faultPositionLost: while the daemon is stopped, its slot is dropped
// (PostgreSQL) or the binlog purged past its checkpoint (MariaDB). The
// restart must fail with exit 1 and say what to do, deliver nothing and
// leave the checkpoint alone; doing what it says then works.
func faultPositionLost(t *testing.T, b *faultBackend, sc faultScale, rep *faultReport) {
	e := b.newEnv(t, "position-lost", envOpts{})
	d := e.start()
	e.waitStarted(d, 1)
	wl := newWorkload(e, 3)
	wl.steps(20)
	e.waitAll(d, 60*time.Second)
	if code := e.stop(d, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	cp := e.checkpoint()
	if cp == "" {
		t.Fatal("no checkpoint after a clean stop")
	}

	// Changes while stopped; then the position is lost. These changes are
	// gone for streaming (a backfill recovers them): not expected.
	lost := newWorkload(e, 4)
	lostWant := e.want
	e.want = map[eventKey]int{}
	lost.steps(10)
	gone := e.want
	e.want = lostWant
	var wantMsg []string
	switch b.kind {
	case "postgres":
		eventually(t, 30*time.Second, "the slot to be dropped", func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, b.pg.DSN(e.db))
			if err != nil {
				return false, err.Error()
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, e.slot)
			return err == nil, fmt.Sprint(err)
		})
		e.fault(1, "slot dropped")
		wantMsg = []string{"does not exist but the checkpoint is at", "delete the checkpoint file"}
	case "mysql":
		b.my.PurgeBinlogs(t)
		e.fault(1, "binlog purged")
		wantMsg = []string{"no longer holds position", "Delete the checkpoint"}
	}
	accepted := len(e.meta.Accepted())
	d = e.start()
	d.wait(t, 60*time.Second)
	if code := d.exitCode(); code != 1 {
		t.Fatalf("start with the position lost: exit code %d, want 1:\n%s", code, d.out.String())
	}
	t.Logf("position lost: %s", fatalLine(d.out.String()))
	for _, s := range wantMsg {
		if !strings.Contains(d.out.String(), s) {
			t.Errorf("the error does not say %q:\n%s", s, d.out.String())
		}
	}
	if n := len(e.meta.Accepted()); n != accepted {
		t.Errorf("%d event(s) delivered by a daemon that had lost its position", n-accepted)
	}
	if got := e.checkpoint(); got != cp {
		t.Errorf("checkpoint moved from %s to %s although the position was lost", cp, got)
	}

	// Do what the message says: delete the checkpoint, start from now.
	if err := os.Remove(filepath.Join(e.stateDir, sink.CheckpointFile)); err != nil {
		t.Fatal(err)
	}
	d = e.start()
	e.waitStarted(d, 1)
	wl.steps(10)
	e.waitAll(d, 60*time.Second)
	if code := e.stop(d, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	got := received(t, e.meta)
	for k := range gone {
		if _, ok := e.want[k]; !ok && len(got[k]) > 0 {
			t.Errorf("%v arrived although it was written while the position was lost", k)
		}
	}
	e.finish(rep, 0)
}

// ---- 3. Meta faults --------------------------------------------------------

var throttleCodes = func() []int {
	c := []int{4, 17, 32, 613, 341}
	for i := 80000; i <= 80014; i++ {
		c = append(c, i)
	}
	return c
}()

// faultMeta: a long outage of every transient kind, every throttling code,
// timeouts and slow answers, an expired token restored later; changes keep
// coming meanwhile. Nothing may be dead-lettered or lost, the database
// stream stays up, memory stays bounded.
func faultMeta(t *testing.T, b *faultBackend, sc faultScale, rep *faultReport) {
	e := b.newEnv(t, "meta", envOpts{
		delivery: `{batch_size: 100, batch_wait: 100ms, retry_min: 20ms, retry_max: 100ms, halt_retry: 200ms, request_timeout: 1s, shutdown_timeout: 10s}`,
	})
	d := e.start()
	e.waitStarted(d, 1)
	wl := newWorkload(e, 5)
	wl.steps(10)
	e.waitAll(d, 60*time.Second)
	starts := countLog(d, e.startedLine())
	injected := 0 // faults injected so far

	phases := []struct {
		name   string
		faults []metatest.Fault
		// during runs while the faults are active (default: write changes).
		during func()
	}{
		{name: "outage", faults: []metatest.Fault{
			{Kind: metatest.FaultHTTP5xx, Times: sc.outage},
			{Kind: metatest.FaultBadGateway, Times: sc.outage},
			{Kind: metatest.FaultTransient, Times: sc.outage},
			{Kind: metatest.FaultError, Code: 21009, Times: sc.outage},
			{Kind: metatest.FaultError, Code: 2, Times: sc.outage},
		}, during: func() { wl.steps(sc.backlog) }},
		{name: "throttling", faults: func() []metatest.Fault {
			var fs []metatest.Fault
			for i, c := range throttleCodes {
				f := metatest.Fault{Kind: metatest.FaultThrottle, Code: c}
				if i == 0 {
					f.RetryAfter = time.Second
				}
				fs = append(fs, f)
			}
			if sc.regain {
				fs = append(fs, metatest.Fault{Kind: metatest.FaultThrottle, Code: 80004, UsageRegainMinutes: 1})
			}
			return fs
		}()},
		{name: "timeouts", faults: []metatest.Fault{
			{Kind: metatest.FaultTimeout, Times: 3},
			{Kind: metatest.FaultSlow, Delay: 3 * time.Second, Times: 2},        // past request_timeout
			{Kind: metatest.FaultSlow, Delay: 700 * time.Millisecond, Times: 3}, // slow but in time
		}},
		{name: "token expired", during: func() {
			e.meta.ExpireToken()
			wl.steps(20)
			eventually(t, 30*time.Second, "requests refused for the expired token", func() (bool, string) {
				n := e.countRequests(func(r metatest.RequestLog) bool { return r.Code == 190 })
				return n >= 5, fmt.Sprintf("%d refused", n)
			})
			if n := len(e.deadLetters()); n != 0 {
				t.Errorf("%d dead letters while the token was expired", n)
			}
			e.meta.RestoreToken()
		}},
	}
	for _, p := range phases {
		kinds := map[string]int{}
		for _, f := range p.faults {
			e.meta.Inject(f)
			n := max(f.Times, 1)
			k := f.Kind.String()
			if f.Code != 0 {
				k += " " + strconv.Itoa(f.Code)
			}
			kinds[k] += n
		}
		keys := make([]string, 0, len(kinds))
		for k := range kinds {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(p.faults) > 0 {
			if p.name == "throttling" {
				hints := "one with Retry-After"
				if sc.regain {
					hints += ", one with a one-minute X-Business-Use-Case-Usage regain time"
				}
				e.fault(len(p.faults), fmt.Sprintf("throttle (codes %v; %s)", throttleCodes, hints))
			} else {
				for _, k := range keys {
					e.fault(kinds[k], k)
				}
			}
		} else {
			e.fault(1, p.name)
		}
		if p.during != nil {
			p.during()
		} else {
			wl.steps(30)
		}
		// Every injected fault is served: changes keep coming (one per
		// poll) until the fake has answered them all.
		for _, f := range p.faults {
			injected += max(f.Times, 1)
		}
		eventually(t, time.Duration(60+sc.backlog/20)*time.Second, "the "+p.name+" faults to be used up", func() (bool, string) {
			if d.exited() {
				t.Fatalf("leadtail exited (code %d)", d.exitCode())
			}
			got := e.countRequests(func(r metatest.RequestLog) bool { return r.Fault != "" })
			if got < injected {
				wl.step()
			}
			return got >= injected, fmt.Sprintf("%d of %d", got, injected)
		})
		e.waitAll(d, time.Duration(90+sc.backlog/50)*time.Second)
	}
	wl.steps(10)
	e.waitAll(d, 60*time.Second)
	if n := countLog(d, e.startedLine()); n != starts {
		t.Logf("the stream was re-established %d time(s) during the Meta faults", n-starts)
	}
	if code := e.stop(d, 30*time.Second); code != 0 { // samples VmHWM first
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	const rssBound = 128 << 10 // KiB
	if peak := e.peakKiB.Load(); peak > rssBound {
		t.Errorf("peak RSS %d KiB during the Meta faults, want at most %d KiB", peak, rssBound)
	}
	if e.peakKiB.Load() == 0 {
		t.Errorf("peak RSS not measured")
	}
	e.finish(rep, 0)
}

// ---- 4. poison rows ----------------------------------------------------------

// faultPoison writes, in one transaction with good rows, rows that must not
// be sent: an invalid lead_id, only malformed contact data, an expired
// event_time, an event before the lead's creation, and one that passes
// leadtail's checks but Meta refuses (its clock is a day ahead: the event
// is past 7 days there). Rows with NULL or unknown stages emit nothing, 1 MB
// text columns go through. Then a request refused once with code 100 is
// split and fully delivered. Only the bad ones are dead-lettered, with
// their reasons; the stream goes on.
func faultPoison(t *testing.T, b *faultBackend, sc faultScale, rep *faultReport) {
	e := b.newEnv(t, "poison", envOpts{metaNow: func() time.Time { return time.Now().Add(24 * time.Hour) }})
	d := e.start()
	e.waitStarted(d, 1)
	w := e.w
	now := time.Now().UTC()
	mb := strings.Repeat("x", 1<<20)
	ins := `INSERT INTO leads (id, status, fb_lead_id, email, phone, notes, stage_changed_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	var stmts []stmt
	good := func(id int) {
		stmts = append(stmts, stmt{ins, []any{id, "new", leadID(id), fmt.Sprintf("lead%d@example.com", id), nil, nil, nil, nil}})
		e.expect(id, "initial_lead")
	}
	for id := 1; id <= 5; id++ {
		good(id)
	}
	wantDL := map[string]string{} // crm_id -> reason
	poison := []struct {
		id                   int
		status               any
		lead, email, phone   any
		notes                any
		changedAt, createdAt any
		deliver              bool   // delivered anyway (the bad value is dropped)
		reason               string // dead-letter reason
	}{
		{id: 101, status: "new", lead: "12345", email: "ok101@example.com", reason: sink.ReasonInvalidLeadID},
		{id: 102, status: "new", email: "not-an-email", phone: "+++", reason: sink.ReasonNoIdentifier},
		{id: 103, status: "new", lead: leadID(103), email: "not-an-email@", phone: "call me", deliver: true},
		{id: 104, status: nil, lead: leadID(104)},
		{id: 105, status: "zombie", lead: leadID(105)},
		{id: 106, status: "new", lead: leadID(106), changedAt: w.ts(now.Add(-8 * 24 * time.Hour)), reason: sink.ReasonExpired},
		{id: 107, status: "new", lead: leadID(107), changedAt: w.ts(now.Add(-time.Hour)), createdAt: w.ts(now), reason: sink.ReasonBeforeLead},
		{id: 108, status: "new", lead: leadID(108), notes: mb, deliver: true},
		{id: 109, status: "new", lead: leadID(109), email: mb, deliver: true},
		{id: 110, status: "new", lead: leadID(110), changedAt: w.ts(now.Add(-6*24*time.Hour - 12*time.Hour)), reason: "rejected by Meta: Graph error 100/2804003"},
	}
	for _, p := range poison {
		stmts = append(stmts, stmt{ins, []any{p.id, p.status, p.lead, p.email, p.phone, p.notes, p.changedAt, p.createdAt}})
		switch {
		case p.deliver:
			e.expect(p.id, "initial_lead")
		case p.reason != "":
			wantDL[strconv.Itoa(p.id)] = p.reason
		}
	}
	for id := 6; id <= 10; id++ {
		good(id)
	}
	w.tx(t, stmts...)
	e.changes += len(stmts)
	e.fault(len(poison), "poison row")
	e.waitAll(d, 60*time.Second)
	eventually(t, 60*time.Second, "the dead letters", func() (bool, string) {
		n := len(e.deadLetters())
		return n >= len(wantDL), fmt.Sprintf("%d of %d", n, len(wantDL))
	})

	// The stream goes on; a request Meta refuses once is split and
	// delivered in full.
	e.nextID = 1000 // past the fixed ids used here
	wl := newWorkload(e, 6)
	wl.steps(10)
	e.waitAll(d, 60*time.Second)
	e.meta.Inject(metatest.Fault{Kind: metatest.FaultError, Code: 100, Subcode: 2804050})
	e.fault(1, "error 100/2804050 on a whole request")
	stmts = nil
	for id := 201; id <= 220; id++ {
		good(id)
	}
	w.tx(t, stmts...)
	e.changes += len(stmts)
	e.waitAll(d, 60*time.Second)
	if n := e.countRequests(func(r metatest.RequestLog) bool { return r.Fault == "error" }); n != 1 {
		t.Errorf("%d requests got the injected error, want 1", n)
	}
	if code := e.stop(d, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}

	// Exactly the bad ones, with their reasons.
	got := map[string]string{}
	for _, dl := range e.deadLetters() {
		id := fmt.Sprint(dl.Event.CustomData["crm_id"])
		if prev, dup := got[id]; dup {
			t.Errorf("lead %s dead-lettered twice (%q, %q)", id, prev, dl.Reason)
		}
		got[id] = dl.Reason
		if strings.Contains(dl.Reason, "Meta") && (dl.Code != 100 || dl.FbtraceID == "") {
			t.Errorf("lead %s: Meta's rejection without code/fbtrace_id: %+v", id, dl)
		}
		for _, h := range dl.Event.UserData.Em {
			if strings.Contains(h, "@") {
				t.Errorf("lead %s: plaintext email in the dead letter", id)
			}
		}
	}
	for id, reason := range wantDL {
		if got[id] != reason {
			t.Errorf("lead %s: dead-letter reason %q, want %q", id, got[id], reason)
		}
	}
	for id, reason := range got {
		if _, ok := wantDL[id]; !ok {
			t.Errorf("lead %s dead-lettered (%q) but should not be", id, reason)
		}
	}
	e.finish(rep, len(wantDL))
}

// ---- 5. local faults -------------------------------------------------------

// faultLocal breaks state_dir: a file instead of a directory; the
// checkpoint's path taken by a directory (the atomic rename fails); and,
// where tmpfs can be mounted (root), a read-only state_dir, a full disk
// and a dead letter that does not fit. Each time the daemon stops with
// exit 1 and an error naming the problem, the checkpoint does not move
// (the slot is never acknowledged past it), and after the fix a restart
// delivers everything.
func faultLocal(t *testing.T, b *faultBackend, sc faultScale, rep *faultReport) {
	mnt, mountErr := mountTmpfs(t)
	stateDir := ""
	if mountErr == nil {
		stateDir = filepath.Join(mnt, "state")
	}
	e := b.newEnv(t, "local", envOpts{stateDir: stateDir})
	wl := newWorkload(e, 7)

	// state_dir is a file.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Replace(cfg, []byte("state_dir: "+e.stateDir), []byte("state_dir: "+file), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	d := e.startWith(bad)
	d.wait(t, 30*time.Second)
	e.fault(1, "state_dir is a file")
	t.Logf("state_dir is a file: %s", fatalLine(d.out.String()))
	if d.exitCode() != 1 || !strings.Contains(d.out.String(), "not a directory") {
		t.Errorf("state_dir is a file: exit %d, want 1 and \"not a directory\":\n%s", d.exitCode(), d.out.String())
	}

	d = e.start()
	e.waitStarted(d, 1)
	wl.steps(10)
	e.waitAll(d, 60*time.Second)

	cpPath := filepath.Join(e.stateDir, sink.CheckpointFile)
	// Meta's acceptance comes before the save: wait for the file.
	eventually(t, 30*time.Second, "the first checkpoint", func() (bool, string) {
		_, err := os.Stat(cpPath)
		return err == nil, fmt.Sprint(err)
	})
	type localFault struct {
		name    string
		needs   error // the fault cannot be made when not nil
		inject  func()
		write   func() // the changes written while broken
		wantErr []string
		fix     func()
	}
	var saved string
	faults := []localFault{
		{
			name: "checkpoint path taken by a directory",
			inject: func() {
				saved = e.stateDir + "/checkpoint.saved"
				if err := os.Rename(cpPath, saved); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(cpPath, "in-the-way"), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: []string{"save checkpoint", "checkpoint.json", "a directory is in the way"},
			fix: func() {
				if err := os.RemoveAll(cpPath); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(saved, cpPath); err != nil {
					t.Fatal(err)
				}
				saved = ""
			},
		},
		{
			name:    "state_dir read-only",
			needs:   mountErr,
			inject:  func() { remount(t, mnt, syscall.MS_RDONLY) },
			wantErr: []string{"save checkpoint", "read-only file system"},
			fix:     func() { remount(t, mnt, 0) },
		},
		{
			name:    "disk full",
			needs:   mountErr,
			inject:  func() { fillDisk(t, mnt, 0) },
			wantErr: []string{"no space left on device", "disk full"},
			fix:     func() { unfillDisk(t, mnt) },
		},
		{
			name:  "dead letter does not fit",
			needs: mountErr,
			// Room for checkpoints (a page each), not for a 600 KB dead letter.
			inject: func() { fillDisk(t, mnt, 256<<10) },
			write: func() {
				id := e.nextID
				e.nextID += 3
				ins := `INSERT INTO leads (id, status, fb_lead_id, notes, stage_changed_at) VALUES (?, ?, ?, ?, ?)`
				e.w.tx(t,
					stmt{ins, []any{id, "new", leadID(id), nil, nil}},
					stmt{ins, []any{id + 1, "new", leadID(id + 1), strings.Repeat("y", 600<<10), e.w.ts(time.Now().Add(-8 * 24 * time.Hour))}},
					stmt{ins, []any{id + 2, "won", leadID(id + 2), nil, nil}})
				e.changes += 3
				e.expect(id, "initial_lead")
				e.expect(id+2, "converted")
			},
			wantErr: []string{"dead letters", "no space left on device", "disk full"},
			fix:     func() { unfillDisk(t, mnt) },
		},
	}
	dlWant := 0
	for _, f := range faults {
		if f.needs != nil {
			t.Logf("SKIPPED local fault %q: cannot mount a tmpfs (%v); the checkpoint-directory case covers an unwritable state_dir", f.name, f.needs)
			continue
		}
		f.inject()
		// From here on no save can succeed (except where a write makes
		// the failing dead letter: checkpoints still fit then).
		var cpBefore string
		if saved != "" {
			cpBefore = e.checkpointAt(saved) // moved out of the way
		} else {
			cpBefore = e.checkpoint()
		}
		e.fault(1, f.name)
		if f.write != nil {
			f.write()
			dlWant++
		} else {
			wl.steps(10)
		}
		d.wait(t, 60*time.Second)
		if d.exitCode() != 1 {
			t.Errorf("%s: exit code %d, want 1", f.name, d.exitCode())
		}
		t.Logf("%s: %s", f.name, fatalLine(d.out.String()))
		for _, s := range f.wantErr {
			if !strings.Contains(d.out.String(), s) {
				t.Errorf("%s: the error does not say %q:\n%s", f.name, s, leadtailLines(d.out.String()))
			}
		}
		f.fix()
		if got := e.checkpoint(); got != cpBefore && f.write == nil {
			t.Errorf("%s: checkpoint moved from %s to %s", f.name, cpBefore, got)
		}
		e.checkSlotNotAhead()
		d = e.start()
		e.waitStarted(d, 1)
		e.waitAll(d, 60*time.Second)
	}
	if dlWant > 0 {
		eventually(t, 30*time.Second, "the dead letter", func() (bool, string) {
			n := len(e.deadLetters())
			return n >= dlWant, fmt.Sprintf("%d", n)
		})
	}
	if code := e.stop(d, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	e.finish(rep, dlWant)
}

// fatalLine returns the daemon's last error line (what the operator reads).
func fatalLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "[ERROR]") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

// mountTmpfs mounts a 2 MiB tmpfs for state_dir (needs root or
// CAP_SYS_ADMIN); the error says why not.
func mountTmpfs(t *testing.T) (string, error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "leadtail-statefs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	t.Cleanup(func() {
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		os.Remove(dir)
	})
	return dir, nil
}

func remount(t *testing.T, dir string, flags uintptr) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|flags, "size=2m,mode=0700"); err != nil {
		t.Fatalf("remount %s: %v", dir, err)
	}
}

// fillDisk writes a filler file until about leave bytes are left.
func fillDisk(t *testing.T, dir string, leave int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for written := int64(0); leave == 0 || written < free-leave; written += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

func unfillDisk(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
}

// ---- 6. graceful stop during an outage -------------------------------------------

// faultGracefulStop: SIGTERM while Meta answers 5xx. The daemon exits
// within delivery.shutdown_timeout, exit 0, without moving its checkpoint
// past what was delivered; after a restart and the end of the outage every
// event arrives.
func faultGracefulStop(t *testing.T, b *faultBackend, sc faultScale, rep *faultReport) {
	const shutdown = 2 * time.Second
	e := b.newEnv(t, "graceful-stop", envOpts{
		delivery: fmt.Sprintf(`{batch_size: 100, batch_wait: 100ms, retry_min: 50ms, retry_max: 100ms, halt_retry: 200ms, request_timeout: 2s, shutdown_timeout: %s}`, shutdown),
	})
	d := e.start()
	e.waitStarted(d, 1)
	wl := newWorkload(e, 8)
	wl.steps(10)
	e.waitAll(d, 60*time.Second)

	const outage = 400 // requests: tens of seconds at retry_max
	e.meta.Inject(metatest.Fault{Kind: metatest.FaultHTTP5xx, Times: outage})
	e.fault(1, "SIGTERM during a 5xx outage")
	wl.steps(30)
	eventually(t, 30*time.Second, "failing deliveries", func() (bool, string) {
		n := e.countRequests(func(r metatest.RequestLog) bool { return r.Fault == "http5xx" && r.Status != 0 })
		return n >= 5, fmt.Sprintf("%d", n)
	})
	cp := e.checkpoint()
	began := time.Now()
	code := e.stop(d, shutdown+20*time.Second)
	took := time.Since(began)
	if code != 0 {
		t.Errorf("SIGTERM during the outage: exit code %d, want 0", code)
	}
	if took > shutdown+5*time.Second { // the drain ends at shutdown_timeout; then the source closes
		t.Errorf("SIGTERM during the outage took %s, shutdown_timeout is %s", took.Round(time.Millisecond), shutdown)
	}
	if !strings.Contains(d.out.String(), "shutdown timeout reached") {
		t.Errorf("no word about the undelivered batches:\n%s", leadtailLines(d.out.String()))
	}
	if got := e.checkpoint(); got != cp {
		t.Errorf("checkpoint moved from %s to %s during an outage", cp, got)
	}
	e.checkSlotNotAhead()
	t.Logf("SIGTERM during the outage: exit %d after %s", code, took.Round(time.Millisecond))

	// End the outage: use up the remaining faults with requests of our own.
	eventually(t, 30*time.Second, "the outage to end", func() (bool, string) {
		reqs := e.meta.Requests()
		if len(reqs) > 0 && reqs[len(reqs)-1].Fault == "" {
			return true, ""
		}
		resp, err := http.Post(e.meta.URL()+"/v26.0/"+metatest.DefaultDatasetID+"/events", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
		return false, fmt.Sprintf("%d requests", len(reqs))
	})
	d = e.start()
	e.waitStarted(d, 1)
	e.waitAll(d, 60*time.Second)
	if code := e.stop(d, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	e.finish(rep, 0)
}
