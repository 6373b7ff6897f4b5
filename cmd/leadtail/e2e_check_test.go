package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sink/metatest"
	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
	"github.com/leadtail/leadtail/sources/postgres/pgtest"
)

// runCheck runs `leadtail check` to completion and returns its exit code
// and output.
func runCheck(t *testing.T, cfgPath string) (int, string) {
	t.Helper()
	logs := &allLogs{}
	d := startDaemon(t, logs, "check", "-c", cfgPath)
	d.wait(t, 60*time.Second)
	return d.exitCode(), d.out.String()
}

func TestCheckCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts PostgreSQL and MariaDB (run without -short)")
	}
	t.Run("bad config exits 2 naming key and line", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(path, []byte("meta:\n  dataset_id: abc\n  colour: red\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := runCheck(t, path)
		if code != 2 || !strings.Contains(out, "bad.yaml:3: meta.colour: unknown key") || !strings.Contains(out, "bad.yaml:2: meta.dataset_id") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("postgres ready", func(t *testing.T) {
		_, _, _, cfgPath, _, _ := e2eSetup(t)
		code, out := runCheck(t, cfgPath)
		if code != 0 || !strings.Contains(out, "ok    meta:") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("postgres wal_level=replica and no replica identity", func(t *testing.T) {
		pg := pgtest.Start(t, pgtest.WithSetting("wal_level", "replica"))
		pg.CreateDB(t, "crm")
		pg.Exec(t, "crm", e2eSchema)
		meta := metatest.Start(t, metatest.Options{})
		cfgPath, _ := e2eConfig(t, pg.DSN("crm"), meta.URL(), "")
		// Without the flag, a missing REPLICA IDENTITY FULL is a problem too.
		text, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(text), "set_replica_identity_full: true", "set_replica_identity_full: false", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := runCheck(t, cfgPath)
		if code != 1 || !strings.Contains(out, "wal_level") || !strings.Contains(strings.ToLower(out), "replica identity") || !strings.Contains(out, "fix:") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("meta token expired", func(t *testing.T) {
		_, _, meta, cfgPath, _, _ := e2eSetup(t)
		meta.ExpireToken()
		code, out := runCheck(t, cfgPath)
		if code != 1 || !strings.Contains(out, "meta.access_token") || strings.Contains(out, metatest.DefaultAccessToken) {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("mysql ready", func(t *testing.T) {
		_, _, cfgPath, _, _ := mysqlSetup(t)
		code, out := runCheck(t, cfgPath)
		if code != 0 {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("mysql statement binlog", func(t *testing.T) {
		_, _, cfgPath, _, _ := mysqlSetup(t, mysqltest.WithSetting("binlog_format", "STATEMENT"), mysqltest.WithSetting("binlog_row_image", "MINIMAL"))
		code, out := runCheck(t, cfgPath)
		if code != 1 || !strings.Contains(out, "binlog_format") || !strings.Contains(out, "binlog_row_image") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
}
