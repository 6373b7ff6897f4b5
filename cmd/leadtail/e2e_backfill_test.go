package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadtail/leadtail/sink/metatest"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
)

// stageEvents maps the e2e mapping's stages to event names.
var stageEvents = map[string]string{"new": "initial_lead", "contacted": "contacted", "qualified": "marketing_qualified_lead", "won": "converted"}

// leadState is a lead's current stage and stage-change time in the database.
type leadState struct {
	status  string
	changed time.Time
}

// backfillEnv is what the backfill scenario needs from a database.
type backfillEnv struct {
	cfgPath, stateDir string
	logs              *allLogs
	// exec runs one statement; ? placeholders.
	exec func(t *testing.T, sql string, args ...any)
	// ts renders a time as a SQL expression for stage_changed_at.
	ts func(time.Time) string
	// nowExpr is the database's current time at microsecond precision.
	nowExpr string
	// leads returns every lead's current stage and stage-change time.
	leads func(t *testing.T) map[string]leadState
	// waitStreaming waits until `run` streams.
	waitStreaming func(t *testing.T, d *daemon)
	// setsTimeItself: the database sets stage_changed_at on every stage
	// change (a trigger); otherwise the statements set it.
	setsTimeItself bool
}

// runBackfill runs `leadtail backfill` against the fake Graph API srv
// and returns its stdout and exit code.
func runBackfill(t *testing.T, env *backfillEnv, srv *metatest.Server, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, leadtailBinary(t), append([]string{"backfill", "-c", env.cfgPath}, args...)...)
	cmd.Env = append(os.Environ(), "META_ACCESS_TOKEN="+metatest.DefaultAccessToken, "META_ENDPOINT="+srv.URL())
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	env.logs.add(stderr)
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("backfill: %v", err)
	}
	return stdout.String(), 0
}

// idsByChange groups accepted events by (lead, event name, event_time).
func idsByChange(servers ...*metatest.Server) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, srv := range servers {
		for _, r := range srv.Accepted() {
			k := fmt.Sprintf("%v/%s@%d", r.Event.CustomData["crm_id"], r.Event.EventName, r.Event.EventTime)
			if out[k] == nil {
				out[k] = map[string]bool{}
			}
			out[k][r.Event.EventID] = true
		}
	}
	return out
}

// byLead maps crm_id/event_name to the event_ids accepted by srv.
func byLead(srv *metatest.Server) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, r := range srv.Accepted() {
		k := fmt.Sprintf("%v/%s", r.Event.CustomData["crm_id"], r.Event.EventName)
		if out[k] == nil {
			out[k] = map[string]bool{}
		}
		out[k][r.Event.EventID] = true
	}
	return out
}

// testBackfill is the scenario both sources run:
//
//  1. history before `run` starts: leads whose stage changed inside the
//     72 h window, outside it, with an unmapped stage, filtered out, with
//     an invalid lead id;
//  2. backfill sends exactly the current stage of each lead inside the
//     window, dated by stage_changed_at; the stream sends none of it;
//  3. a second backfill sends the same event_ids (idempotent);
//  4. a backfill runs while `run` streams new leads and stage changes;
//  5. a last backfill after everything settled: for every lead, the
//     backfilled event_id of its current stage is the one the stream
//     sent, and no stage change ever got two ids;
//  6. --dry-run sends nothing.
func testBackfill(t *testing.T, env *backfillEnv) {
	now := time.Now().UTC()
	stages := []string{"new", "contacted", "qualified", "won"}
	want := map[string]leadState{} // crm_id -> the stage backfill must send
	for id := 1; id <= 30; id++ {
		at := now.Add(-time.Duration(id*2) * time.Hour).Add(-time.Duration(id) * 1234 * time.Microsecond)
		s := stages[id%len(stages)]
		env.exec(t, `INSERT INTO leads (id, status, fb_lead_id, email, stage_changed_at) VALUES (?, ?, ?, ?, `+env.ts(at)+`)`,
			id, s, leadID(id), fmt.Sprintf("lead%d@example.com", id))
		want[strconv.Itoa(id)] = leadState{s, at}
	}
	for id := 31; id <= 35; id++ { // changed before the window
		env.exec(t, `INSERT INTO leads (id, status, fb_lead_id, stage_changed_at) VALUES (?, 'won', ?, `+env.ts(now.Add(-time.Duration(70+id)*time.Hour))+`)`, id, leadID(id))
	}
	inWindow := env.ts(now.Add(-time.Hour))
	env.exec(t, `INSERT INTO leads (id, status, fb_lead_id, stage_changed_at) VALUES (36, 'junk', ?, `+inWindow+`)`, leadID(36))
	env.exec(t, `INSERT INTO leads (id, status, fb_lead_id, deleted, stage_changed_at) VALUES (37, 'won', ?, true, `+inWindow+`)`, leadID(37))
	env.exec(t, `INSERT INTO leads (id, status, fb_lead_id, stage_changed_at) VALUES (38, 'won', '12345', `+inWindow+`)`)

	stream := metatest.Start(t, metatest.Options{})
	d := startDaemonEnv(t, env.logs, []string{"META_ENDPOINT=" + stream.URL()}, "run", "-c", env.cfgPath)
	env.waitStreaming(t, d)

	// 2. One backfill: the current stage of each lead in the window.
	first := metatest.Start(t, metatest.Options{})
	out, code := runBackfill(t, env, first, "--since", "72h")
	if code != 0 {
		t.Fatalf("backfill: exit %d\n%s", code, out)
	}
	for _, s := range []string{"backfill leads: ", "30 event(s) sent, 1 dead-lettered", "skipped 1: filtered out: deleted", `skipped 1: unmapped stage value "junk"`} {
		if !strings.Contains(out, s) {
			t.Errorf("backfill output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "\r") {
		t.Errorf("progress bar drawn although stdout is not a terminal:\n%q", out)
	}
	got := map[string]string{} // crm_id -> event_id
	for _, r := range first.Accepted() {
		id := fmt.Sprint(r.Event.CustomData["crm_id"])
		w, ok := want[id]
		switch {
		case !ok:
			t.Errorf("lead %s backfilled although outside the window or not sendable", id)
		case r.Event.EventName != stageEvents[w.status]:
			t.Errorf("lead %s: %s sent, want its current stage's %s", id, r.Event.EventName, stageEvents[w.status])
		case r.Event.EventTime != w.changed.Unix():
			t.Errorf("lead %s: event_time %d, want stage_changed_at %d", id, r.Event.EventTime, w.changed.Unix())
		}
		got[id] = r.Event.EventID
	}
	if len(got) != len(want) || len(first.Accepted()) != len(want) {
		t.Fatalf("backfill sent %d event(s) for %d lead(s), want one for each of %d", len(first.Accepted()), len(got), len(want))
	}
	if v := first.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}

	// 3. Rerun: the same event_ids.
	again := metatest.Start(t, metatest.Options{})
	if out, code := runBackfill(t, env, again, "--since", "72h"); code != 0 {
		t.Fatalf("second backfill: exit %d\n%s", code, out)
	}
	for _, r := range again.Accepted() {
		if id := fmt.Sprint(r.Event.CustomData["crm_id"]); got[id] != r.Event.EventID {
			t.Errorf("lead %s: rerun sent event_id %s, first run %s", id, r.Event.EventID, got[id])
		}
	}
	if len(again.Accepted()) != len(first.Accepted()) {
		t.Errorf("rerun sent %d events, first run %d", len(again.Accepted()), len(first.Accepted()))
	}

	// 4. A backfill while `run` streams new leads and stage changes.
	live := map[string]bool{} // crm_id/event_name the stream must send
	var rows []string
	for id := 1000; id < 1600; id++ {
		rows = append(rows, fmt.Sprintf("(%d, 'new', '%s')", id, leadID(id)))
		live[fmt.Sprintf("%d/initial_lead", id)] = true
	}
	env.exec(t, `INSERT INTO leads (id, status, fb_lead_id) VALUES `+strings.Join(rows, ", "))
	during := metatest.Start(t, metatest.Options{})
	// A slow Meta keeps this backfill busy while the changes below commit.
	during.Inject(metatest.Fault{Kind: metatest.FaultSlow, Delay: 300 * time.Millisecond, Times: 1000})
	bctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	bf := exec.CommandContext(bctx, leadtailBinary(t), "backfill", "-c", env.cfgPath, "--since", "72h")
	bf.Env = append(os.Environ(), "META_ACCESS_TOKEN="+metatest.DefaultAccessToken, "META_ENDPOINT="+during.URL())
	bfOut := &syncBuffer{}
	env.logs.add(bfOut)
	bf.Stdout, bf.Stderr = bfOut, bfOut
	if err := bf.Start(); err != nil {
		t.Fatal(err)
	}
	bfDone := make(chan error, 1)
	go func() { bfDone <- bf.Wait() }()
	overlapped, changes := 0, 0 // changes committed while the backfill ran, of all
	running := func() {
		changes++
		select {
		case err := <-bfDone:
			bfDone <- err
		default:
			overlapped++
		}
	}
	setTime := ""
	if !env.setsTimeItself {
		setTime = ", stage_changed_at = " + env.nowExpr
	}
	for id := 1000; id < 1600; id += 5 {
		env.exec(t, `UPDATE leads SET status = 'qualified'`+setTime+` WHERE id = ?`, id)
		live[fmt.Sprintf("%d/marketing_qualified_lead", id)] = true
		running()
	}
	for id := 1; id <= 30; id += 3 {
		next := stages[(id+1)%len(stages)]
		env.exec(t, `UPDATE leads SET status = ?`+setTime+` WHERE id = ?`, next, id)
		live[fmt.Sprintf("%d/%s", id, stageEvents[next])] = true
		running()
	}
	if err := <-bfDone; err != nil {
		t.Fatalf("backfill during streaming: %v\n%s", err, bfOut.String())
	}
	if overlapped == 0 {
		t.Fatal("the backfill finished before the first live change: nothing ran concurrently")
	}
	eventually(t, 90*time.Second, "every streamed change", func() (bool, string) {
		have := byLead(stream)
		missing := 0
		for k := range live {
			if len(have[k]) == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d missing", missing, len(live))
	})

	// 5. After everything settled: backfill reproduces the stream's ids.
	last := metatest.Start(t, metatest.Options{})
	out, code = runBackfill(t, env, last, "--since", "72h")
	if code != 0 {
		t.Fatalf("last backfill: exit %d\n%s", code, out)
	}
	streamed := byLead(stream)
	current := env.leads(t)
	backfilled := 0
	for _, r := range last.Accepted() {
		id := fmt.Sprint(r.Event.CustomData["crm_id"])
		cur := current[id]
		if r.Event.EventName != stageEvents[cur.status] || r.Event.EventTime != cur.changed.Unix() {
			t.Errorf("lead %s: backfilled %s@%d, database has %s@%d", id, r.Event.EventName, r.Event.EventTime, cur.status, cur.changed.Unix())
		}
		k := id + "/" + r.Event.EventName
		if live[k] && !streamed[k][r.Event.EventID] {
			t.Errorf("lead %s: backfilled event_id %s for %s, the stream sent %v", id, r.Event.EventID, r.Event.EventName, streamed[k])
		}
		backfilled++
	}
	if wantN := len(want) + 600; backfilled != wantN {
		t.Errorf("last backfill sent %d events, want %d (30 older leads + 600 new ones)", backfilled, wantN)
	}
	for k, ids := range idsByChange(stream, first, again, during, last) {
		if len(ids) != 1 {
			t.Errorf("stage change %s has %d event_ids: %v", k, len(ids), ids)
		}
	}
	t.Logf("last backfill output:\n%s", out)
	t.Logf("streamed %d events; backfills sent %d, %d, %d (during streaming, %d of %d changes committed while it ran), %d", len(stream.Accepted()),
		len(first.Accepted()), len(again.Accepted()), len(during.Accepted()), overlapped, changes, len(last.Accepted()))

	// 6. --dry-run sends nothing.
	dry := metatest.Start(t, metatest.Options{})
	out, code = runBackfill(t, env, dry, "--since", "72h", "--dry-run")
	if code != 0 || !strings.Contains(out, "630 event(s) would be sent, 1 would be dead-lettered") {
		t.Errorf("dry run: exit %d\n%s", code, out)
	}
	if n := len(dry.Requests()); n != 0 {
		t.Errorf("dry run sent %d request(s)", n)
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("run: SIGTERM exit code %d", code)
	}
	if v := stream.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
}

// pgSQL turns ? placeholders into $1, $2, ...
func pgSQL(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestBackfillPostgres: the backfill scenario against PostgreSQL, where a
// trigger sets stage_changed_at on every stage change (what the CRM must
// guarantee for backfill and stream to agree on event_ids).
func TestBackfillPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts PostgreSQL (run without -short)")
	}
	pg, dsn, meta, cfgPath, stateDir, logs := e2eSetup(t)
	pg.Exec(t, "crm", `
ALTER TABLE leads ADD COLUMN stage_changed_at timestamptz;
CREATE FUNCTION leads_stage_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.stage_changed_at IS NULL THEN NEW.stage_changed_at := clock_timestamp(); END IF;
  ELSIF NEW.status IS DISTINCT FROM OLD.status AND NEW.stage_changed_at IS NOT DISTINCT FROM OLD.stage_changed_at THEN
    NEW.stage_changed_at := clock_timestamp();
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER leads_stage_changed BEFORE INSERT OR UPDATE ON leads FOR EACH ROW EXECUTE FUNCTION leads_stage_changed();`)
	rewriteConfig(t, cfgPath, "endpoint: "+meta.URL(), "endpoint: ${META_ENDPOINT}",
		"      crm_id: id\n", "      crm_id: id\n    event_time: {column: stage_changed_at}\n")
	meta.Close()
	env := &backfillEnv{
		cfgPath: cfgPath, stateDir: stateDir, logs: logs, setsTimeItself: true,
		exec: func(t *testing.T, sql string, args ...any) { t.Helper(); pg.Exec(t, "crm", pgSQL(sql), args...) },
		ts: func(at time.Time) string {
			return "'" + at.Format("2006-01-02 15:04:05.999999Z07:00") + "'::timestamptz"
		},
		nowExpr: "clock_timestamp()",
		leads: func(t *testing.T) map[string]leadState {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			rows, err := conn.Query(ctx, `SELECT id::text, coalesce(status, ''), stage_changed_at FROM leads`)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]leadState{}
			for rows.Next() {
				var id string
				var s leadState
				if err := rows.Scan(&id, &s.status, &s.changed); err != nil {
					t.Fatal(err)
				}
				out[id] = s
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		},
		waitStreaming: func(t *testing.T, d *daemon) { t.Helper(); waitStreaming(t, d, dsn, "leadtail_e2e") },
	}
	testBackfill(t, env)
}

// TestBackfillMySQL: the same against MariaDB with a DATETIME(6) column
// that the statements set on every stage change.
func TestBackfillMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts MariaDB (run without -short)")
	}
	db, meta, cfgPath, stateDir, logs := mysqlSetup(t, mysqltest.WithGTIDStrict())
	db.Exec(t, "crm", `ALTER TABLE leads ADD COLUMN stage_changed_at DATETIME(6) NULL`)
	rewriteConfig(t, cfgPath, "endpoint: "+meta.URL(), "endpoint: ${META_ENDPOINT}",
		"      crm_id: id\n", "      crm_id: id\n    event_time: {column: stage_changed_at}\n")
	meta.Close()
	env := &backfillEnv{
		cfgPath: cfgPath, stateDir: stateDir, logs: logs,
		exec: func(t *testing.T, sql string, args ...any) {
			t.Helper()
			if strings.HasPrefix(sql, "INSERT INTO leads (id, status, fb_lead_id) VALUES") {
				sql = strings.Replace(sql, "(id, status, fb_lead_id) VALUES", "(id, status, fb_lead_id, stage_changed_at) VALUES", 1)
				sql = strings.ReplaceAll(sql, "')", "', UTC_TIMESTAMP(6))")
			}
			db.Exec(t, "crm", strings.ReplaceAll(sql, "true", "1"), args...)
		},
		ts:      func(at time.Time) string { return "'" + at.Format("2006-01-02 15:04:05.999999") + "'" },
		nowExpr: "UTC_TIMESTAMP(6)",
		leads: func(t *testing.T) map[string]leadState {
			t.Helper()
			out := map[string]leadState{}
			for _, r := range db.Query(t, "crm", `SELECT id, COALESCE(status, ''), stage_changed_at FROM leads`) {
				at, err := time.ParseInLocation("2006-01-02 15:04:05.999999", r[2], time.UTC)
				if err != nil {
					t.Fatalf("stage_changed_at %q: %v", r[2], err)
				}
				out[r[0]] = leadState{r[1], at}
			}
			return out
		},
		waitStreaming: func(t *testing.T, d *daemon) { t.Helper(); waitBinlogStreaming(t, d, db, stateDir) },
	}
	testBackfill(t, env)
}

// TestBackfillRefuses: windows past Meta's 7 days and mappings without an
// event_time column are refused before anything is read, with why.
func TestBackfillRefuses(t *testing.T) {
	dir := t.TempDir()
	cfg := func(extra string) string {
		path := dir + "/leadtail" + strconv.Itoa(len(extra)) + ".yaml"
		text := `
state_dir: ` + dir + `/state
source: {postgres: {dsn: "postgres://nobody@127.0.0.1:1/crm"}}
meta: {dataset_id: "123456789012345", access_token: x}
http: {listen: ""}
mappings:
  - name: leads
    table: public.leads
    lead_event_source: CRM
    stage: {column: status, events: {new: initial_lead}}
    user_data: {lead_id: fb_lead_id}
` + extra
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	timed := cfg("    event_time: {column: stage_changed_at}\n")
	untimed := cfg("")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"8 days", []string{"-c", timed, "--since", "8d"}, []string{"--since 8d is too long", "Meta discards events older than 7 days", "longest window is 6d23h"}},
		{"7 days", []string{"-c", timed, "--since", "168h"}, []string{"--since 7d is too long"}},
		{"no window", []string{"-c", timed}, []string{"--since is required"}},
		{"bad window", []string{"-c", timed, "--since", "three days"}, []string{"want a duration such as 72h or 3d"}},
		{"no event_time", []string{"-c", untimed, "--since", "72h"}, []string{`mapping "leads" cannot be backfilled: it has no event_time.column`, "not when it was reached"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(leadtailBinary(t), append([]string{"backfill"}, tc.args...)...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want 2\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
