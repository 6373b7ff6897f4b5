package mysql

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// dsn is a parsed go-sql-driver style DSN:
//
//	[user[:password]@][tcp[(host:port)]|unix(/path/to.sock)]/dbname[?tls=true|skip-verify|false&timeout=5s]
//
// leadtail speaks to the server through go-mysql's client only, so the
// DSN is parsed here. Parameters go-sql-driver knows but that mean nothing
// to leadtail (charset, parseTime, loc, ...) are accepted and ignored:
// leadtail fixes the session's charset and time zone itself.
type dsn struct {
	user, password string
	network        string // "tcp" or "unix"
	addr           string // host:port or socket path
	db             string
	tls            *tls.Config
	timeout        time.Duration
}

// ignoredParams are go-sql-driver parameters leadtail accepts and ignores.
var ignoredParams = map[string]bool{
	"charset": true, "collation": true, "parseTime": true, "loc": true, "interpolateParams": true,
	"multiStatements": true, "allowNativePasswords": true, "allowCleartextPasswords": true,
	"columnsWithAlias": true, "clientFoundRows": true, "maxAllowedPacket": true,
	"readTimeout": true, "writeTimeout": true, "rejectReadOnly": true, "checkConnLiveness": true,
}

func parseDSN(s string) (*dsn, error) {
	d := &dsn{network: "tcp", addr: "127.0.0.1:3306", timeout: 10 * time.Second}
	rest := s
	// The password may contain '@' and '/': the user part ends at the
	// last '@' before the database slash, as in go-sql-driver.
	slash := strings.LastIndex(rest, "/")
	if slash < 0 {
		return nil, errors.New("missing /dbname")
	}
	if at := strings.LastIndex(rest[:slash], "@"); at >= 0 {
		cred := rest[:at]
		rest = rest[at+1:]
		slash -= at + 1
		d.user, d.password, _ = strings.Cut(cred, ":")
	}
	netAddr := rest[:slash]
	rest = rest[slash+1:]
	if netAddr != "" {
		open := strings.IndexByte(netAddr, '(')
		if open >= 0 {
			if !strings.HasSuffix(netAddr, ")") {
				return nil, fmt.Errorf("address %q: missing )", netAddr)
			}
			d.network = netAddr[:open]
			d.addr = netAddr[open+1 : len(netAddr)-1]
		} else {
			d.network = netAddr
		}
		switch d.network {
		case "tcp", "tcp4", "tcp6":
			d.network = "tcp"
			if d.addr == "" {
				d.addr = "127.0.0.1:3306"
			}
			if _, _, err := net.SplitHostPort(d.addr); err != nil {
				d.addr = net.JoinHostPort(d.addr, "3306")
			}
		case "unix":
			if d.addr == "" {
				d.addr = "/tmp/mysql.sock"
			}
		default:
			return nil, fmt.Errorf("network %q: want tcp or unix", d.network)
		}
	}
	db, query, _ := strings.Cut(rest, "?")
	d.db = db
	if query == "" {
		return d, nil
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("parameters: %w", err)
	}
	for k, vs := range params {
		v := vs[len(vs)-1]
		switch k {
		case "tls":
			switch v {
			case "false", "":
			case "true":
				host, _, _ := net.SplitHostPort(d.addr)
				d.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
			case "skip-verify":
				d.tls = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it
			default:
				return nil, fmt.Errorf("tls=%s: want true, skip-verify or false", v)
			}
		case "timeout":
			t, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("timeout=%s: %w", v, err)
			}
			d.timeout = t
		default:
			if !ignoredParams[k] {
				return nil, fmt.Errorf("unknown parameter %q (leadtail understands tls and timeout)", k)
			}
		}
	}
	return d, nil
}

// hostPort splits a TCP address for the binlog syncer; a unix socket is
// passed as the host with port 0, which go-mysql dials as a socket.
func (d *dsn) hostPort() (string, uint16) {
	if d.network == "unix" {
		return d.addr, 0
	}
	host, port, _ := net.SplitHostPort(d.addr)
	p, _ := strconv.ParseUint(port, 10, 16)
	return host, uint16(p)
}
