package mysql

import (
	"testing"
	"time"
)

func TestParseDSN(t *testing.T) {
	cases := []struct {
		in                        string
		user, pass, network, addr string
		db                        string
		tls                       bool
		timeout                   time.Duration
	}{
		{"leadtail:secret@tcp(db:3306)/crm", "leadtail", "secret", "tcp", "db:3306", "crm", false, 10 * time.Second},
		{"leadtail:p@ss:w/rd@tcp(10.0.0.1:3307)/crm", "leadtail", "p@ss:w/rd", "tcp", "10.0.0.1:3307", "crm", false, 10 * time.Second},
		{"root@tcp(db)/crm?parseTime=true&charset=utf8mb4", "root", "", "tcp", "db:3306", "crm", false, 10 * time.Second},
		{"u:p@unix(/run/mysqld/mysqld.sock)/crm", "u", "p", "unix", "/run/mysqld/mysqld.sock", "crm", false, 10 * time.Second},
		{"u:p@tcp([::1]:3306)/crm?tls=true&timeout=3s", "u", "p", "tcp", "[::1]:3306", "crm", true, 3 * time.Second},
		{"u:p@/crm", "u", "p", "tcp", "127.0.0.1:3306", "crm", false, 10 * time.Second},
		{"/crm", "", "", "tcp", "127.0.0.1:3306", "crm", false, 10 * time.Second},
	}
	for _, c := range cases {
		d, err := parseDSN(c.in)
		if err != nil {
			t.Errorf("%s: %v", RedactedDSN(c.in), err)
			continue
		}
		if d.user != c.user || d.password != c.pass || d.network != c.network || d.addr != c.addr ||
			d.db != c.db || (d.tls != nil) != c.tls || d.timeout != c.timeout {
			t.Errorf("%s: got user %q pass %q net %s addr %s db %s tls %v timeout %v", RedactedDSN(c.in),
				d.user, d.password, d.network, d.addr, d.db, d.tls != nil, d.timeout)
		}
	}
	for _, bad := range []string{"no-slash", "u:p@tcp(db:3306/crm", "u:p@udp(db:1)/crm", "u:p@tcp(db)/crm?tls=maybe", "u:p@tcp(db)/crm?frobnicate=1"} {
		if _, err := parseDSN(bad); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
	host, port := (&dsn{network: "tcp", addr: "db:3307"}).hostPort()
	if host != "db" || port != 3307 {
		t.Errorf("hostPort: %s %d", host, port)
	}
	if host, port := (&dsn{network: "unix", addr: "/s.sock"}).hostPort(); host != "/s.sock" || port != 0 {
		t.Errorf("hostPort unix: %s %d", host, port)
	}
}
