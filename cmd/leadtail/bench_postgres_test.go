package main

// Whole-pipeline benchmarks against a throwaway PostgreSQL and the fake
// Graph API, run by `make bench`. Each runs a fixed workload once (use
// -benchtime 1x) and reports its figures as custom metrics.

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

const benchSchema = `
CREATE TABLE leads (
  id bigserial PRIMARY KEY,
  status text NOT NULL,
  email text,
  phone text,
  fb_lead_id text,
  profile jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE leads REPLICA IDENTITY FULL;
CREATE TABLE activity (id bigserial PRIMARY KEY, payload text);
`

func benchConfig(b *testing.B, dsn, endpoint string) string {
	b.Helper()
	dir := b.TempDir()
	cfg := fmt.Sprintf(`
log: {level: warn}
state_dir: %s
source:
  postgres: {dsn: %q, slot: bench, publication: bench, status_interval: 1s, heartbeat_interval: 1s}
meta:
  dataset_id: %q
  access_token: ${META_ACCESS_TOKEN}
  endpoint: %s
delivery: {batch_size: 500, batch_wait: 200ms}
http: {listen: ""}
mappings:
  - name: leads
    table: public.leads
    lead_event_source: Bench CRM
    stage: {column: status, events: {new: initial_lead, contacted: contacted, qualified: marketing_qualified_lead, won: converted}}
    user_data:
      lead_id: fb_lead_id
      em: email
      ph: phone
      fn: {json: profile, path: name.first}
`, filepath.Join(dir, "state"), dsn, metatest.DefaultDatasetID, endpoint)
	path := filepath.Join(dir, "leadtail.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchEnv starts the server, the fake and leadtail once so the slot
// exists, then stops leadtail: the workload is written while it is down
// and the measured run catches up on it.
func benchEnv(b *testing.B, opts ...pgtest.Option) (*pgtest.Server, *metatest.Server, string, *allLogs) {
	b.Helper()
	// autovacuum off: a vacuum of the 200k dead rows would land in a random
	// phase and blur the server CPU figures.
	pg := pgtest.Start(b, append([]pgtest.Option{pgtest.WithSetting("max_wal_size", "4GB"), pgtest.WithSetting("shared_buffers", "128MB"),
		pgtest.WithSetting("autovacuum", "off")}, opts...)...)
	pg.CreateDB(b, "crm")
	pg.Exec(b, "crm", benchSchema)
	meta := metatest.Start(b, metatest.Options{})
	cfg := benchConfig(b, pg.DSN("crm"), meta.URL())
	logs := &allLogs{}
	d := startDaemon(b, logs, "run", "-c", cfg)
	waitStreaming(b, d, pg.DSN("crm"), "bench")
	if code := d.stop(b, 30*time.Second); code != 0 {
		b.Fatalf("exit %d:\n%s", code, logs)
	}
	return pg, meta, cfg, logs
}

const insertRow = `'new', 'Lead' || g || '@Example.com', '+1 555 ' || lpad(g::text, 7, '0'), (1000000000000000 + g)::text, jsonb_build_object('name', jsonb_build_object('first', 'Jane' || g))`

// BenchmarkPostgresThroughput: 100,000 single-row transactions, each a
// stage event, from the slot through mapping, hashing and delivery until
// the last event is accepted.
func BenchmarkPostgresThroughput(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		pg, meta, cfg, logs := benchEnv(b)
		pg.Exec(b, "crm", fmt.Sprintf(`DO $$ BEGIN FOR g IN 1..%d LOOP
			INSERT INTO leads (status, email, phone, fb_lead_id, profile) SELECT %s; COMMIT; END LOOP; END $$`, n, insertRow))
		start := time.Now()
		d := startDaemon(b, logs, "run", "-c", cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		if err := meta.WaitAccepted(ctx, n); err != nil {
			cancel()
			b.Fatalf("accepted %d of %d: %v\n%s", len(meta.Accepted()), n, err, logs)
		}
		cancel()
		elapsed := time.Since(start)
		rss := peakRSS(b, d)
		d.stop(b, time.Minute)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "changes/s")
		b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
	}
}

// BenchmarkPostgresLargeTransaction: one transaction of 1,000,000 rows;
// the figure is leadtail's peak RSS (memory must stay flat: rows stream
// through with backpressure, never a whole-transaction buffer).
func BenchmarkPostgresLargeTransaction(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				pg, meta, cfg, logs := benchEnv(b)
				pg.Exec(b, "crm", fmt.Sprintf(`INSERT INTO leads (status, email, phone, fb_lead_id, profile) SELECT %s FROM generate_series(1, %d) g`, insertRow, n))
				start := time.Now()
				d := startDaemon(b, logs, "run", "-c", cfg)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
				if err := meta.WaitAccepted(ctx, n); err != nil {
					cancel()
					b.Fatalf("accepted %d of %d: %v", len(meta.Accepted()), n, err)
				}
				cancel()
				elapsed := time.Since(start)
				rss := peakRSS(b, d)
				d.stop(b, time.Minute)
				if p := os.Getenv("LEADTAIL_BENCH_LOGS"); p != "" {
					// For profiling runs (e.g. with GODEBUG=gctrace=1): keep the daemon's output.
					if err := os.WriteFile(p, []byte(logs.String()), 0o644); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
				b.ReportMetric(float64(n)/elapsed.Seconds(), "changes/s")
			}
		})
	}
}

// BenchmarkPostgresIdleSlotLag: the mapped table stays quiet while another
// table takes steady traffic for LEADTAIL_BENCH_LAG_DURATION (default 5m);
// the figure is the slot's lag behind the current WAL at the end.
func BenchmarkPostgresIdleSlotLag(b *testing.B) {
	dur := 5 * time.Minute
	if v := os.Getenv("LEADTAIL_BENCH_LAG_DURATION"); v != "" {
		var err error
		if dur, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < b.N; i++ {
		pg, _, cfg, logs := benchEnv(b)
		d := startDaemon(b, logs, "run", "-c", cfg)
		waitStreaming(b, d, pg.DSN("crm"), "bench")
		end := time.Now().Add(dur)
		var maxLag int64
		for time.Now().Before(end) {
			pg.Exec(b, "crm", `INSERT INTO activity (payload) SELECT repeat(md5(g::text), 8) FROM generate_series(1, 200) g`)
			if lag, err := slotLag(context.Background(), pg.DSN("crm"), "bench"); err == nil && lag > maxLag {
				maxLag = lag
			}
		}
		lag, err := slotLag(context.Background(), pg.DSN("crm"), "bench")
		if err != nil {
			b.Fatal(err)
		}
		d.stop(b, time.Minute)
		b.ReportMetric(float64(lag), "end-lag-bytes")
		b.ReportMetric(float64(maxLag), "max-lag-bytes")
	}
}

// peakRSS is the daemon's own peak resident set (VmHWM) in KiB, read while
// it still runs. The rusage of an exited child is no good here: Linux
// carries the parent's high-water mark (the benchmark process, which holds
// every accepted event) into a child forked from it.
func peakRSS(b *testing.B, d *daemon) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read peak RSS: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmHWM:"), "kB")), &kb)
			return kb
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}
