package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sink/metatest"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
)

// mysqlBenchEnv starts MariaDB, the fake and leadtail once so the
// checkpoint sits at the binlog end, then stops leadtail: the workload is
// written while it is down and the measured run catches up on it.
func mysqlBenchEnv(b *testing.B) (*mysqltest.Server, *metatest.Server, string, *allLogs) {
	b.Helper()
	db := mysqltest.Start(b, mysqltest.WithSetting("innodb_buffer_pool_size", "128M"))
	db.CreateDB(b, "crm")
	db.Exec(b, "crm", `CREATE TABLE leads (
	  id BIGINT AUTO_INCREMENT PRIMARY KEY,
	  status VARCHAR(32) NOT NULL,
	  email VARCHAR(255), phone VARCHAR(64), fb_lead_id VARCHAR(32), profile JSON,
	  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`)
	meta := metatest.Start(b, metatest.Options{})
	dir := b.TempDir()
	state := filepath.Join(dir, "state")
	cfg := fmt.Sprintf(`
log: {level: warn}
state_dir: %s
source:
  mysql: {dsn: %q, server_id: 4343}
meta:
  dataset_id: %q
  access_token: ${META_ACCESS_TOKEN}
  endpoint: %s
delivery: {batch_size: 500, batch_wait: 200ms}
http: {listen: ""}
mappings:
  - name: leads
    table: crm.leads
    lead_event_source: Bench CRM
    stage: {column: status, events: {new: initial_lead, contacted: contacted, qualified: marketing_qualified_lead, won: converted}}
    user_data:
      lead_id: fb_lead_id
      em: email
      ph: phone
      fn: {json: profile, path: name.first}
`, state, db.DSN("crm"), metatest.DefaultDatasetID, meta.URL())
	path := filepath.Join(dir, "leadtail.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	logs := &allLogs{}
	d := startDaemon(b, logs, "run", "-c", path)
	eventually(b, 60*time.Second, "the first checkpoint", func() (bool, string) {
		_, err := os.Stat(filepath.Join(state, "checkpoint.json"))
		return err == nil, fmt.Sprint(err)
	})
	if code := d.stop(b, 30*time.Second); code != 0 {
		b.Fatalf("exit %d:\n%s", code, logs)
	}
	return db, meta, path, logs
}

const mysqlRow = `'new', CONCAT('Lead', %[1]s, '@Example.com'), CONCAT('+1 555 ', LPAD(%[1]s, 7, '0')), CAST(1000000000000000 + %[1]s AS CHAR), JSON_OBJECT('name', JSON_OBJECT('first', CONCAT('Jane', %[1]s)))`

func mysqlCatchUp(b *testing.B, meta *metatest.Server, cfg string, logs *allLogs, n int) {
	b.Helper()
	start := time.Now()
	d := startDaemon(b, logs, "run", "-c", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := meta.WaitAccepted(ctx, n); err != nil {
		b.Fatalf("accepted %d of %d: %v\n%s", len(meta.Accepted()), n, err, logs)
	}
	elapsed := time.Since(start)
	rss := peakRSS(b, d)
	d.stop(b, time.Minute)
	if p := os.Getenv("LEADTAIL_BENCH_LOGS"); p != "" {
		// For profiling runs (e.g. with GODEBUG=gctrace=1): keep the daemon's output.
		if err := os.WriteFile(p, []byte(logs.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "changes/s")
	b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
}

// BenchmarkMySQLThroughput: 100,000 single-row transactions (autocommit
// inserts from a procedure), binlog to accepted events.
func BenchmarkMySQLThroughput(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		db, meta, cfg, logs := mysqlBenchEnv(b)
		db.Exec(b, "crm", fmt.Sprintf(`CREATE PROCEDURE gen(n INT) BEGIN DECLARE i INT DEFAULT 1;
			WHILE i <= n DO INSERT INTO leads (status, email, phone, fb_lead_id, profile) VALUES (%s); SET i = i + 1; END WHILE; END`,
			fmt.Sprintf(mysqlRow, "i")))
		db.Exec(b, "crm", fmt.Sprintf(`CALL gen(%d)`, n))
		mysqlCatchUp(b, meta, cfg, logs, n)
	}
}

// BenchmarkMySQLLargeTransaction: one transaction of N rows; the figure is
// leadtail's peak RSS, which must stay flat as N grows.
func BenchmarkMySQLLargeTransaction(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				db, meta, cfg, logs := mysqlBenchEnv(b)
				db.Exec(b, "crm", fmt.Sprintf(`INSERT INTO leads (status, email, phone, fb_lead_id, profile) SELECT %s FROM seq_1_to_%d`,
					fmt.Sprintf(mysqlRow, "seq"), n))
				mysqlCatchUp(b, meta, cfg, logs, n)
			}
		})
	}
}
