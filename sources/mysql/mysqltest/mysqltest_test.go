package mysqltest_test

import (
	"testing"

	"github.com/leadtail/leadtail/sources/mysql/mysqltest"
)

func TestServer(t *testing.T) {
	t.Parallel()
	srv := mysqltest.Start(t, mysqltest.WithGTIDStrict())
	srv.CreateDB(t, "crm")
	srv.Exec(t, "crm", "CREATE TABLE t (id int PRIMARY KEY, v varchar(10))")
	srv.ExecTx(t, "crm", "INSERT INTO t VALUES (1, 'a')", "INSERT INTO t VALUES (2, 'b')")
	srv.Exec(t, "crm", "INSERT INTO t VALUES (?, ?)", 3, "c")

	vars := srv.Query(t, "", `SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata,
		@@gtid_strict_mode, @@gtid_domain_id, @@server_id, @@performance_schema`)
	want := []string{"1", "ROW", "FULL", "FULL", "1", "1", "", "0"}
	for i, w := range want {
		if w != "" && vars[0][i] != w {
			t.Errorf("variable %d = %q, want %q", i, vars[0][i], w)
		}
	}
	if vars[0][6] == "" || vars[0][6] == "1" {
		t.Errorf("server_id %q, want a unique one", vars[0][6])
	}

	port := srv.Port
	srv.Restart(t)
	if srv.Port != port {
		t.Errorf("port %d after restart, want %d", srv.Port, port)
	}
	if rows := srv.Query(t, "crm", "SELECT count(*) FROM t"); rows[0][0] != "3" {
		t.Errorf("%s rows after restart, want 3", rows[0][0])
	}

	srv.CreateUser(t, "repl", "pw", "REPLICATION SLAVE", "BINLOG MONITOR")
	if grants := srv.Query(t, "", "SHOW GRANTS FOR 'repl'@'%'"); len(grants) == 0 {
		t.Error("user has no grants")
	}

	srv.PurgeBinlogs(t)
	if logs := srv.Query(t, "", "SHOW BINARY LOGS"); len(logs) != 1 {
		t.Errorf("%d binlog files after purge", len(logs))
	}
	srv.Stop(t)
	srv.Stop(t) // twice is fine
}
