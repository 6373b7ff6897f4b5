package mysql

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Regular (non-replication) connections: lookups, preflight checks,
// information_schema reads. They use go-mysql's client, the same driver as
// the binlog stream, with a small idle pool of our own: go-mysql's
// client.Pool dials without a context and pings with a fixed 100 ms
// deadline, and lookups must honour the caller's context.

// sessionInit pins what decoding relies on: utf8mb4 text, and TIMESTAMP
// values rendered in UTC (DATETIME has no zone and is read in the
// configured datetime_zone).
const sessionInit = "SET NAMES utf8mb4, time_zone = '+00:00'"

func dial(ctx context.Context, d *dsn, db string) (*client.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	dialer := &net.Dialer{}
	conn, err := client.ConnectWithDialer(dctx, d.network, d.addr, d.user, d.password, db, dialer.DialContext,
		func(c *client.Conn) error {
			if d.tls != nil {
				c.SetTLSConfig(d.tls)
			}
			c.SetAttributes(map[string]string{"program_name": "leadtail"})
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", d.addr, err)
	}
	// The handshake runs without a deadline of its own past the dial:
	// bound the first statement by the context too.
	if err := withConn(dctx, conn, func() error { _, err := conn.Execute(sessionInit); return err }); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to %s: %w", d.addr, err)
	}
	return conn, nil
}

// withConn runs fn with conn's I/O bounded by ctx: its deadline, and
// cancellation (which sets a past deadline so blocked reads return).
// After a cancellation the connection is unusable: the caller drops it.
func withConn(ctx context.Context, conn *client.Conn, fn func() error) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	err := fn()
	if !stop() {
		if err == nil {
			err = ctx.Err()
		}
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	_ = conn.SetDeadline(time.Time{})
	return err
}

// connPool keeps a few idle connections for lookups and schema reads.
type connPool struct {
	dsn     *dsn
	maxIdle int

	mu     sync.Mutex
	idle   []*client.Conn
	since  map[*client.Conn]time.Time // when each idle connection was put back
	closed bool
}

func newConnPool(d *dsn, maxIdle int) *connPool { return &connPool{dsn: d, maxIdle: maxIdle} }

func (p *connPool) get(ctx context.Context) (conn *client.Conn, reused bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, errors.New("connection pool closed")
	}
	if n := len(p.idle); n > 0 {
		conn = p.idle[n-1]
		p.idle = p.idle[:n-1]
		since := p.since[conn]
		delete(p.since, conn)
		p.mu.Unlock()
		if time.Since(since) < idlePingAfter || pingIdle(ctx, conn) == nil {
			return conn, true, nil
		}
		conn.Close()
		conn, err = dial(ctx, p.dsn, p.dsn.db)
		return conn, false, err
	}
	p.mu.Unlock()
	conn, err = dial(ctx, p.dsn, p.dsn.db)
	return conn, false, err
}

func (p *connPool) put(conn *client.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= p.maxIdle || conn.IsInTransaction() {
		quit(conn)
		return
	}
	p.idle = append(p.idle, conn)
	if p.since == nil {
		p.since = map[*client.Conn]time.Time{}
	}
	p.since[conn] = time.Now()
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		quit(c)
	}
	p.idle = nil
	p.since = nil
}

// do runs fn on a pooled connection. A connection that failed with
// anything but a server error (which leaves it usable) is dropped; when it
// came from the idle pool, fn is tried once more on a fresh one, since an
// idle connection may have been closed by the server (wait_timeout).
func (p *connPool) do(ctx context.Context, fn func(*client.Conn) error) error {
	for attempt := 0; ; attempt++ {
		conn, reused, err := p.get(ctx)
		if err != nil {
			return err
		}
		err = withConn(ctx, conn, func() error { return fn(conn) })
		if err == nil || (serverCode(err) != 0 && ctx.Err() == nil) {
			p.put(conn)
			return err
		}
		conn.Close()
		if !reused || attempt > 0 || ctx.Err() != nil {
			return err
		}
	}
}

// queryStrings runs query and returns every row as text (NULL as "" with
// ok false in nulls). It is for small metadata results.
func queryStrings(conn *client.Conn, query string, args ...any) ([]map[string]*string, error) {
	res, err := conn.Execute(query, args...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []map[string]*string
	if res.Resultset == nil {
		return nil, nil
	}
	for _, vals := range res.Values {
		row := make(map[string]*string, len(vals))
		for i, f := range res.Fields {
			name := strings.ToLower(string(f.Name))
			if vals[i].Type == gomysql.FieldValueTypeNull {
				row[name] = nil
				continue
			}
			s := vals[i].String()
			if vals[i].Type == gomysql.FieldValueTypeString {
				s = string(vals[i].AsString())
			}
			row[name] = &s
		}
		out = append(out, row)
	}
	return out, nil
}

// str returns the text of a column of a queryStrings row, "" for NULL or
// a missing column.
func str(row map[string]*string, col string) string {
	if v := row[strings.ToLower(col)]; v != nil {
		return *v
	}
	return ""
}

// variables reads global variables by name; missing ones are absent from
// the map (a variable this server version does not have).
func variables(conn *client.Conn, names ...string) (map[string]string, error) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "'" + n + "'"
	}
	rows, err := queryStrings(conn, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ("+strings.Join(quoted, ", ")+")")
	if err != nil {
		return nil, fmt.Errorf("read server variables: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[strings.ToLower(str(r, "Variable_name"))] = str(r, "Value")
	}
	return out, nil
}

// quit ends a healthy connection politely (COM_QUIT), so that the server
// does not log an aborted connection.
func quit(c *client.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if err := c.Quit(); err != nil {
		c.Close()
	}
}

// quoteIdent quotes a MySQL identifier.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// splitTable splits "database.table".
func splitTable(t string) (db, table string, ok bool) {
	db, table, ok = strings.Cut(strings.TrimSpace(t), ".")
	return db, table, ok && db != "" && table != "" && !strings.Contains(table, ".")
}

// A connection idle for idlePingAfter is pinged (within idlePingTimeout)
// before reuse: one that went half-open meanwhile (a firewall, NAT or proxy
// dropped it without telling either side) would otherwise hold the first
// query on it, without a deadline, forever. Found by the fault-injection
// suite (TestLockReleasedAfterHalfOpen).
const (
	idlePingAfter   = time.Second
	idlePingTimeout = 5 * time.Second
)

func pingIdle(ctx context.Context, conn *client.Conn) error {
	pctx, cancel := context.WithTimeout(ctx, idlePingTimeout)
	defer cancel()
	return withConn(pctx, conn, conn.Ping)
}
