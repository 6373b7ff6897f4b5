package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadtail/leadtail/sources/postgres/pgtest"
)

func TestStartRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.WithSetting("wal_sender_timeout", "5s"))
	srv.CreateDB(t, "crm")
	srv.Exec(t, "crm", "CREATE TABLE t (id int PRIMARY KEY, v text)")
	srv.Exec(t, "crm", "INSERT INTO t VALUES ($1, $2)", 1, "a")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	query := func(sql string) string {
		t.Helper()
		conn, err := pgx.Connect(ctx, srv.DSN("crm"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var s string
		if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := query("SHOW wal_level"); got != "logical" {
		t.Errorf("wal_level = %q, want logical", got)
	}
	if got := query("SHOW wal_sender_timeout"); got != "5s" {
		t.Errorf("wal_sender_timeout = %q, want 5s", got)
	}
	port := srv.Port
	srv.Restart(t)
	if srv.Port != port {
		t.Errorf("port changed across restart: %d -> %d", port, srv.Port)
	}
	if got := query("SELECT v FROM t WHERE id = 1"); got != "a" {
		t.Errorf("after restart v = %q, want a", got)
	}
	srv.Stop(t)
	if _, err := pgx.Connect(ctx, srv.DSN("crm")); err == nil {
		t.Error("connect after Stop succeeded")
	}
}
