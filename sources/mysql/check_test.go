package mysql

import (
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/leadtail/leadtail/sources"
)

// evaluate is tested on facts as MySQL 8 and older MariaDB report them,
// since only MariaDB 10.11 runs here; the integration tests cover the
// gathering.
func TestEvaluate(t *testing.T) {
	goodMySQL := func() *checkFacts {
		return &checkFacts{
			version: "8.0.36", flavor: gomysql.MySQLFlavor, serverID: 1,
			vars: map[string]string{
				"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_value_options": "",
				"binlog_row_metadata": "FULL", "binlog_expire_logs_seconds": "2592000", "expire_logs_days": "0",
				"binlog_expire_logs_auto_purge": "ON", "gtid_mode": "ON",
			},
			grants: []string{
				"GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `leadtail`@`%`",
				"GRANT BACKUP_ADMIN ON *.* TO `leadtail`@`%`",
			},
			tables: map[string]*tableFacts{"crm.leads": {columns: []string{"id", "status", "email"}}},
		}
	}
	goodMariaDB := func() *checkFacts {
		return &checkFacts{
			version: "10.11.19-MariaDB", flavor: gomysql.MariaDBFlavor, serverID: 1,
			vars: map[string]string{
				"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL",
				"binlog_expire_logs_seconds": "0", "expire_logs_days": "0.000000", "gtid_strict_mode": "OFF",
			},
			grants: []string{"GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `leadtail`@`%` IDENTIFIED BY PASSWORD '*hash'"},
			tables: map[string]*tableFacts{"crm.leads": {columns: []string{"id", "status", "email"}}},
		}
	}
	tables := map[string][]string{"crm.leads": {"status", "email"}}
	cases := []struct {
		name     string
		facts    func() *checkFacts
		serverID uint32
		problems []string // substrings of blocking problems, in order
		warnings []string
	}{
		{"mysql ready", goodMySQL, 4242, nil, nil},
		{"mariadb ready", goodMariaDB, 4242, nil, nil},
		{"binlog off", func() *checkFacts { f := goodMySQL(); f.vars["log_bin"] = "OFF"; return f }, 4242, []string{"binary log is off"}, nil},
		{"partial JSON updates", func() *checkFacts {
			f := goodMySQL()
			f.vars["binlog_row_value_options"] = "PARTIAL_JSON"
			return f
		}, 4242, []string{"binlog_row_value_options is PARTIAL_JSON"}, nil},
		{"no row metadata variable (MariaDB 10.4)", func() *checkFacts { f := goodMariaDB(); delete(f.vars, "binlog_row_metadata"); return f },
			4242, nil, []string{"binlog_row_metadata is unset"}},
		{"minimal metadata", func() *checkFacts { f := goodMySQL(); f.vars["binlog_row_metadata"] = "MINIMAL"; return f },
			4242, nil, []string{"binlog_row_metadata is MINIMAL"}},
		{"an hour of binlogs", func() *checkFacts { f := goodMySQL(); f.vars["binlog_expire_logs_seconds"] = "3600"; return f },
			4242, []string{"expire after 1h0m0s"}, nil},
		{"auto purge off keeps binlogs", func() *checkFacts {
			f := goodMySQL()
			f.vars["binlog_expire_logs_seconds"] = "3600"
			f.vars["binlog_expire_logs_auto_purge"] = "OFF"
			return f
		}, 4242, nil, nil},
		{"expire_logs_days half a day", func() *checkFacts {
			f := goodMariaDB()
			f.vars["expire_logs_days"] = "0.5"
			return f
		}, 4242, []string{"expire after 12h0m0s"}, nil},
		{"own server id", goodMySQL, 1, []string{"own @@server_id"}, nil},
		{"server id of another replica", func() *checkFacts {
			f := goodMySQL()
			f.replicas = []replicaHost{{serverID: 4242, host: "replica-b"}, {serverID: 7, host: "replica-c"}}
			return f
		}, 4242, []string{`in use by replica "replica-b"`}, nil},
		{"server id of a running leadtail", func() *checkFacts {
			f := goodMariaDB()
			f.replicas = []replicaHost{{serverID: 4242, host: replicaHostPrefix + "app1-77"}}
			return f
		}, 4242, nil, []string{"in use by a leadtail stream"}},
		{"replicas not listable", func() *checkFacts {
			f := goodMariaDB()
			f.replicasErr = &gomysql.MyError{Code: erSpecificAccess, Message: "Access denied"}
			return f
		}, 4242, nil, []string{"cannot list replicas"}},
		{"no REPLICATION SLAVE, no REPLICATION CLIENT (MySQL)", func() *checkFacts {
			f := goodMySQL()
			f.grants = []string{"GRANT SELECT ON `crm`.* TO `leadtail`@`%`"}
			f.statusErr = &gomysql.MyError{Code: erSpecificAccess, Message: "Access denied; you need the SUPER or REPLICATION CLIENT privilege"}
			return f
		}, 4242, []string{"REPLICATION SLAVE", "lacks REPLICATION CLIENT"}, nil},
		{"no BINLOG MONITOR (MariaDB)", func() *checkFacts {
			f := goodMariaDB()
			f.statusErr = &gomysql.MyError{Code: erSpecificAccess, Message: "Access denied"}
			return f
		}, 4242, []string{"lacks BINLOG MONITOR"}, nil},
		{"ALL PRIVILEGES", func() *checkFacts {
			f := goodMySQL()
			f.grants = []string{"GRANT ALL PRIVILEGES ON *.* TO `root`@`%` WITH GRANT OPTION"}
			return f
		}, 4242, nil, nil},
		{"privileges through a role", func() *checkFacts {
			f := goodMySQL()
			f.grants = []string{"GRANT USAGE ON *.* TO `leadtail`@`%`", "GRANT `cdc_reader`@`%` TO `leadtail`@`%`"}
			return f
		}, 4242, nil, []string{"lacks REPLICATION SLAVE"}},
		{"missing table and column", func() *checkFacts {
			f := goodMySQL()
			f.tables["crm.leads"] = &tableFacts{columns: []string{"id", "status"}}
			return f
		}, 4242, []string{"crm.leads.email does not exist"}, nil},
		{"no such table", func() *checkFacts {
			f := goodMySQL()
			f.tables["crm.leads"] = &tableFacts{selectErr: &gomysql.MyError{Code: erNoSuchTable}}
			return f
		}, 4242, []string{"crm.leads does not exist"}, nil},
		{"no SELECT", func() *checkFacts {
			f := goodMySQL()
			f.tables["crm.leads"] = &tableFacts{selectErr: &gomysql.MyError{Code: erTableAccessDenied}}
			return f
		}, 4242, []string{"no SELECT privilege on crm.leads"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			probs := evaluate(Config{ServerID: c.serverID}, "leadtail", tables, c.facts())
			var problems, warnings []sources.Problem
			for _, p := range probs {
				if p.Fix == "" || strings.Contains(p.Fix, "\n") {
					t.Errorf("no one-line fix: %+v", p)
				}
				if strings.Contains(p.Problem+p.Fix, "*hash") {
					t.Errorf("password hash leaked: %+v", p)
				}
				if p.Warning {
					warnings = append(warnings, p)
				} else {
					problems = append(problems, p)
				}
			}
			match(t, "problems", problems, c.problems)
			match(t, "warnings", warnings, c.warnings)
		})
	}
}

func match(t *testing.T, what string, got []sources.Problem, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %+v, want %q", what, got, want)
		return
	}
	for i, w := range want {
		if !strings.Contains(got[i].Problem, w) {
			t.Errorf("%s[%d]: %q does not mention %q", what, i, got[i].Problem, w)
		}
	}
}

func TestMySQLMissing(t *testing.T) {
	cur, _ := parseMySQLSet(uuidA + ":1-1000000:1000005," + uuidB + ":1-10")
	have, _ := parseMySQLSet(uuidA + ":1-999990," + uuidB + ":1-10")
	if n := mysqlMissing(cur, have); n != 11 {
		t.Errorf("missing %d, want 11", n)
	}
	if n := mysqlMissing(cur, nil); n != 1000011 {
		t.Errorf("missing from nothing %d", n)
	}
}
