package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sink/metatest"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
)

// startDaemonEnv is startDaemon with extra environment variables: several
// instances share one config file and differ only in their environment.
func startDaemonEnv(t testing.TB, logs *allLogs, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{out: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(leadtailBinary(t), args...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.Env = append(append(os.Environ(), "META_ACCESS_TOKEN="+metatest.DefaultAccessToken), env...)
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start leadtail: %v", err)
	}
	logs.add(d.out)
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// rewriteConfig replaces text in a config file (each old must occur once).
func rewriteConfig(t testing.TB, path string, oldNew ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if strings.Count(s, oldNew[i]) != 1 {
			t.Fatalf("config %s: %q occurs %d times", path, oldNew[i], strings.Count(s, oldNew[i]))
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// readyz returns the status and body of GET /readyz.
func readyz(addr string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitLog waits until the daemon's output contains s.
func waitLog(t testing.TB, d *daemon, s string, within time.Duration) {
	t.Helper()
	eventually(t, within, fmt.Sprintf("log line %q", s), func() (bool, string) {
		if d.exited() {
			t.Fatalf("leadtail exited (code %d):\n%s", d.exitCode(), d.out.String())
		}
		return strings.Contains(d.out.String(), s), "not yet"
	})
}

// instance is one of two leadtail processes on one configuration.
type instance struct {
	name  string
	meta  *metatest.Server
	env   []string
	http  string
	d     *daemon
	state string
}

// checkAcross asserts, over the events accepted by several fake Graph
// APIs, that every expected event arrived as many times (distinct ids) as
// expected, nothing else arrived, and an event_id always means one event.
// It returns the number of duplicate copies.
func checkAcross(t *testing.T, want map[eventKey]int, servers ...*metatest.Server) (unique, dups int) {
	t.Helper()
	got := map[eventKey]map[string]int{}
	seen := map[string]eventKey{}
	for _, srv := range servers {
		for _, r := range srv.Accepted() {
			k := eventKey{crmID: fmt.Sprint(r.Event.CustomData["crm_id"]), name: r.Event.EventName}
			if prev, ok := seen[r.Event.EventID]; ok && prev != k {
				t.Fatalf("event_id %s used for %v and %v", r.Event.EventID, prev, k)
			}
			seen[r.Event.EventID] = k
			if got[k] == nil {
				got[k] = map[string]int{}
			}
			got[k][r.Event.EventID]++
		}
		if v := srv.Violations(); len(v) > 0 {
			t.Errorf("the fake Graph API saw violations: %v", v)
		}
	}
	for k, n := range want {
		if len(got[k]) != n {
			t.Errorf("%v: %d distinct event(s), want %d", k, len(got[k]), n)
		}
	}
	for k, ids := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected event %v", k)
		}
		for _, c := range ids {
			unique++
			dups += c - 1
		}
	}
	return unique, dups
}

// failover kills the active instance and measures how long the standby
// takes to deliver: until its first accepted event, and until the change
// made right after the kill arrives.
func failover(t *testing.T, active, standby *instance, change func(), wantKey eventKey) (firstEvent, changeArrived time.Duration) {
	t.Helper()
	before := len(standby.meta.Accepted())
	killed := time.Now()
	active.d.kill(t)
	change()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if standby.d.exited() {
			t.Fatalf("standby exited (code %d):\n%s", standby.d.exitCode(), standby.d.out.String())
		}
		acc := standby.meta.Accepted()
		if firstEvent == 0 && len(acc) > before {
			firstEvent = time.Since(killed)
		}
		for _, r := range acc {
			if fmt.Sprint(r.Event.CustomData["crm_id"]) == wantKey.crmID && r.Event.EventName == wantKey.name {
				return firstEvent, time.Since(killed)
			}
		}
		time.Sleep(5 * time.Millisecond) // polling an external process, not synchronisation
	}
	t.Fatalf("the standby did not deliver %v within 90s after the kill", wantKey)
	return 0, 0
}

// TestStandbyPostgres runs two instances on one configuration: the slot
// admits one consumer, so the second waits (standby, /readyz says so)
// until the first is SIGKILLed, then takes over from the slot.
func TestStandbyPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts PostgreSQL (run without -short)")
	}
	pg, dsn, meta, cfgPath, _, logs := e2eSetup(t)
	// One file for both; each instance has its own state_dir, endpoint and
	// health port (the slot is the shared durable position).
	rewriteConfig(t, cfgPath, "http: {listen: \"\"}", "http: {listen: \"${HTTP_LISTEN}\"}")
	rewriteConfig(t, cfgPath, "endpoint: "+meta.URL(), "endpoint: ${META_ENDPOINT}")
	data, _ := os.ReadFile(cfgPath)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "state_dir: ") {
			rewriteConfig(t, cfgPath, line, "state_dir: ${STATE_DIR}")
		}
	}
	inst := func(name string) *instance {
		i := &instance{name: name, meta: metatest.Start(t, metatest.Options{}), http: freeAddr(t), state: filepath.Join(t.TempDir(), "state")}
		i.env = []string{"META_ENDPOINT=" + i.meta.URL(), "STATE_DIR=" + i.state, "HTTP_LISTEN=" + i.http}
		return i
	}
	a, b := inst("a"), inst("b")
	a.d = startDaemonEnv(t, logs, a.env, "run", "-c", cfgPath)
	waitStreaming(t, a.d, dsn, "leadtail_e2e")
	b.d = startDaemonEnv(t, logs, b.env, "run", "-c", cfgPath)
	waitLog(t, b.d, "standby: the replication slot is in use by another consumer", 60*time.Second)
	eventually(t, 30*time.Second, "the standby's /readyz to say standby", func() (bool, string) {
		code, body := readyz(b.http)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "standby"), fmt.Sprintf("%d %q", code, body)
	})

	want := map[eventKey]int{}
	expect := func(id int, name string) { want[eventKey{fmt.Sprint(id), name}]++ }
	for id := 1; id <= 20; id++ {
		pg.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id) VALUES ($1, 'new', $2)`, id, leadID(id))
		expect(id, "initial_lead")
	}
	for id := 1; id <= 10; id++ {
		pg.Exec(t, "crm", `UPDATE leads SET status = 'qualified' WHERE id = $1`, id)
		expect(id, "marketing_qualified_lead")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.meta.WaitAccepted(ctx, total(want)); err != nil {
		t.Fatalf("active: %v (got %d of %d)", err, len(a.meta.Accepted()), total(want))
	}
	if code, body := readyz(a.http); code != http.StatusOK {
		t.Errorf("active /readyz: %d %q", code, body)
	}
	if n := len(b.meta.Requests()); n != 0 {
		t.Fatalf("the standby sent %d request(s) while the active instance ran", n)
	}

	// SIGKILL the active instance mid-stream: a change right after the kill
	// must arrive through the standby.
	for id := 11; id <= 20; id++ {
		pg.Exec(t, "crm", `UPDATE leads SET status = 'won' WHERE id = $1`, id)
		expect(id, "converted")
	}
	first, arrived := failover(t, a, b, func() {
		pg.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id) VALUES (100, 'new', $1)`, leadID(100))
	}, eventKey{"100", "initial_lead"})
	expect(100, "initial_lead")
	t.Logf("PostgreSQL failover: kill -> first event accepted from the standby %s; -> the change made after the kill accepted %s",
		first.Round(time.Millisecond), arrived.Round(time.Millisecond))
	waitLog(t, b.d, "active: took over the replication slot", 10*time.Second)

	for id := 1; id <= 5; id++ {
		pg.Exec(t, "crm", `UPDATE leads SET status = 'contacted' WHERE id = $1`, id)
		expect(id, "contacted")
	}
	eventually(t, 60*time.Second, "every event through the two instances", func() (bool, string) {
		n := uniqueAcross(a.meta, b.meta)
		return n >= total(want), fmt.Sprintf("%d of %d", n, total(want))
	})
	if code, body := readyz(b.http); code != http.StatusOK {
		t.Errorf("new active /readyz: %d %q", code, body)
	}
	if code := b.d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	unique, dups := checkAcross(t, want, a.meta, b.meta)
	t.Logf("%d events expected, %d unique delivered (active %d, standby %d accepted), %d duplicates across the failover",
		total(want), unique, len(a.meta.Accepted()), len(b.meta.Accepted()), dups)
}

// TestStandbyMySQL: the same with MariaDB, where a named lock decides who
// streams and the instances share state_dir (the checkpoint file is the
// only durable position).
func TestStandbyMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts MariaDB (run without -short)")
	}
	db, meta, cfgPath, stateDir, logs := mysqlSetup(t, mysqltest.WithGTIDStrict())
	rewriteConfig(t, cfgPath, "endpoint: "+meta.URL(), "endpoint: ${META_ENDPOINT}",
		"http: {listen: \"\"}", "http: {listen: \"${HTTP_LISTEN}\"}")
	meta.Close() // each instance gets its own fake Graph API
	inst := func(name string) *instance {
		i := &instance{name: name, meta: metatest.Start(t, metatest.Options{}), http: freeAddr(t), state: stateDir}
		i.env = []string{"META_ENDPOINT=" + i.meta.URL(), "HTTP_LISTEN=" + i.http}
		return i
	}
	a, b := inst("a"), inst("b")
	a.d = startDaemonEnv(t, logs, a.env, "run", "-c", cfgPath)
	waitBinlogStreaming(t, a.d, db, stateDir)
	b.d = startDaemonEnv(t, logs, b.env, "run", "-c", cfgPath)
	waitLog(t, b.d, "standby: another leadtail instance holds the active lock", 60*time.Second)
	eventually(t, 30*time.Second, "the standby's /readyz to say standby", func() (bool, string) {
		code, body := readyz(b.http)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "standby"), fmt.Sprintf("%d %q", code, body)
	})
	// A third instance, stopped while it is a standby, exits cleanly.
	c := inst("c")
	c.d = startDaemonEnv(t, logs, c.env, "run", "-c", cfgPath)
	waitLog(t, c.d, "standby: another leadtail instance holds the active lock", 60*time.Second)
	if code := c.d.stop(t, 15*time.Second); code != 0 {
		t.Fatalf("SIGTERM to a standby: exit code %d", code)
	}

	want := map[eventKey]int{}
	expect := func(id int, name string) { want[eventKey{fmt.Sprint(id), name}]++ }
	for id := 1; id <= 20; id++ {
		db.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id) VALUES (?, 'new', ?)`, id, leadID(id))
		expect(id, "initial_lead")
	}
	for id := 1; id <= 10; id++ {
		db.Exec(t, "crm", `UPDATE leads SET status = 'qualified' WHERE id = ?`, id)
		expect(id, "marketing_qualified_lead")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.meta.WaitAccepted(ctx, total(want)); err != nil {
		t.Fatalf("active: %v (got %d of %d)", err, len(a.meta.Accepted()), total(want))
	}
	if n := len(b.meta.Requests()); n != 0 {
		t.Fatalf("the standby sent %d request(s) while the active instance ran", n)
	}
	// Only the active instance reads the binlog.
	if rows := db.Query(t, "", `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'`); rows[0][0] != "1" {
		t.Fatalf("%s binlog dump threads while one instance is a standby", rows[0][0])
	}

	for id := 11; id <= 20; id++ {
		db.Exec(t, "crm", `UPDATE leads SET status = 'won' WHERE id = ?`, id)
		expect(id, "converted")
	}
	first, arrived := failover(t, a, b, func() {
		db.Exec(t, "crm", `INSERT INTO leads (id, status, fb_lead_id) VALUES (100, 'new', ?)`, leadID(100))
	}, eventKey{"100", "initial_lead"})
	expect(100, "initial_lead")
	t.Logf("MariaDB failover: kill -> first event accepted from the standby %s; -> the change made after the kill accepted %s",
		first.Round(time.Millisecond), arrived.Round(time.Millisecond))
	waitLog(t, b.d, "active: took the active lock", 10*time.Second)

	// A server restart drops the lock connection too: the (single) instance
	// takes the lock again and goes on.
	db.Restart(t)
	for id := 1; id <= 5; id++ {
		db.Exec(t, "crm", `UPDATE leads SET status = 'contacted' WHERE id = ?`, id)
		expect(id, "contacted")
	}
	eventually(t, 90*time.Second, "every event through the two instances", func() (bool, string) {
		n := uniqueAcross(a.meta, b.meta)
		return n >= total(want), fmt.Sprintf("%d of %d", n, total(want))
	})
	if code := b.d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	out := b.d.out.String()
	if n := strings.Count(out, "active: took the active lock"); n < 2 || !strings.Contains(out, "lost the active lock") {
		t.Errorf("the server restart did not make the instance lose and retake the lock (%d takes)", n)
	}
	unique, dups := checkAcross(t, want, a.meta, b.meta)
	t.Logf("%d events expected, %d unique delivered (active %d, standby %d accepted), %d duplicates across the failover",
		total(want), unique, len(a.meta.Accepted()), len(b.meta.Accepted()), dups)
	if n := len(c.meta.Requests()); n != 0 {
		t.Errorf("the stopped standby sent %d request(s)", n)
	}
}

// uniqueAcross counts distinct event_ids accepted by any of the servers.
func uniqueAcross(servers ...*metatest.Server) int {
	ids := map[string]bool{}
	for _, srv := range servers {
		for _, r := range srv.Accepted() {
			ids[r.Event.EventID] = true
		}
	}
	return len(ids)
}
