// Package mysqltest starts throwaway MariaDB servers for tests, in the
// spirit of net/http/httptest: Start returns a running server that the
// test's Cleanup stops and deletes.
//
// Every Start is its own server: mariadb-install-db into a fresh temporary
// directory, then mariadbd with the binlog set up for row-based change
// capture (log_bin, binlog_format=ROW, binlog_row_image=FULL,
// binlog_row_metadata=FULL), a server_id unique in the process, a free
// loopback port and its socket in the temporary directory. It is kept
// small (16 MB buffer pool, no performance_schema) because tests run
// several at once on small machines. Grant tables are real: the root user
// (no password, TCP from 127.0.0.1) can create users whose replication
// privileges tests then check.
//
// The server runs as the OS user running the test. When that is root, it
// is started with --user=root, which mariadbd otherwise refuses; the data
// directory is private to the test, so nothing else is exposed.
//
// The binaries are taken from $MYSQLTEST_BINDIR or the usual locations
// (/usr/sbin/mariadbd, mariadb-install-db in $PATH). When they are
// missing the test fails with the package to install: never a silent skip.
package mysqltest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

const installHint = "install MariaDB with `apt-get install -y mariadb-server` (Debian/Ubuntu), " +
	"or point MYSQLTEST_BINDIR at the directory holding mariadbd and mariadb-install-db"

// startTimeout bounds install plus start: generous, since CI machines with
// 2 cores run several test binaries at once.
const startTimeout = 90 * time.Second

// Option configures a server before it starts.
type Option func(*options)

type options struct {
	settings map[string]string
	strict   bool
	domainID uint32
}

// WithGTIDStrict turns on gtid_strict_mode (sequence numbers only grow per
// domain, so GTID positions compare), with gtid_domain_id 1 so that tests
// do not depend on the default domain 0.
func WithGTIDStrict() Option {
	return func(o *options) { o.strict, o.domainID = true, 1 }
}

// WithSetting passes a server option, e.g. WithSetting("binlog_format",
// "STATEMENT"); it overrides the defaults.
func WithSetting(name, value string) Option {
	return func(o *options) { o.settings[strings.ReplaceAll(name, "-", "_")] = value }
}

var serverIDs atomic.Uint32

func init() { serverIDs.Store(uint32(os.Getpid()%1000)*100 + 1000) }

// Server is a running throwaway MariaDB server.
type Server struct {
	// Host is the loopback address the server listens on.
	Host string
	// Port is the TCP port; it stays the same across Restart.
	Port int
	// ServerID is the server's @@server_id.
	ServerID uint32

	mariadbd string
	root     string
	dataDir  string
	sockPath string
	logPath  string
	args     []string

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// Start installs and starts a server, and registers its shutdown and
// removal with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := &options{settings: map[string]string{}}
	for _, opt := range opts {
		opt(o)
	}
	mariadbd, installDB, err := findBinaries()
	if err != nil {
		t.Fatalf("mysqltest: %v; %s", err, installHint)
	}
	// Not t.TempDir(): the socket path must stay under 108 bytes, which
	// long subtest names would exceed.
	root, err := os.MkdirTemp("", "mysqltest-")
	if err != nil {
		t.Fatalf("mysqltest: temp dir: %v", err)
	}
	s := &Server{
		Host:     "127.0.0.1",
		ServerID: serverIDs.Add(1),
		mariadbd: mariadbd,
		root:     root,
		dataDir:  filepath.Join(root, "data"),
		sockPath: filepath.Join(root, "mysqld.sock"),
		logPath:  filepath.Join(root, "server.log"),
	}
	t.Cleanup(func() {
		s.stop(t, syscall.SIGKILL)
		if t.Failed() {
			s.dumpLog(t)
		}
		_ = os.RemoveAll(root)
	})

	// A private tmpdir: mariadbd deletes every #sql* file in its tmpdir at
	// start, which would break concurrent servers' (and any other local
	// server's) temporary tables in a shared /tmp.
	tmpDir := filepath.Join(root, "tmp")
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	small := []string{"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=4M", "--tmpdir=" + tmpDir}
	installArgs := append([]string{"--no-defaults", "--datadir=" + s.dataDir, "--user=" + currentUser(),
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}, small...)
	cmd := exec.CommandContext(ctx, installDB, installArgs...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mysqltest: %s: %v\n%s", installDB, err, out)
	}

	settings := map[string]string{
		"log_bin":                        "mariadb-bin",
		"binlog_format":                  "ROW",
		"binlog_row_image":               "FULL",
		"binlog_row_metadata":            "FULL",
		"server_id":                      strconv.FormatUint(uint64(s.ServerID), 10),
		"innodb_buffer_pool_size":        "16M",
		"innodb_log_file_size":           "4M",
		"innodb_flush_log_at_trx_commit": "2",
		"innodb_doublewrite":             "0",
		"sync_binlog":                    "0",
		"performance_schema":             "OFF",
		"skip_name_resolve":              "ON",
		"character_set_server":           "utf8mb4",
		"collation_server":               "utf8mb4_general_ci",
		"max_connections":                "60",
		"key_buffer_size":                "1M",
		"aria_pagecache_buffer_size":     "1M",
		"table_open_cache":               "200",
		"max_allowed_packet":             "64M",
	}
	if o.strict {
		settings["gtid_strict_mode"] = "ON"
		settings["gtid_domain_id"] = strconv.FormatUint(uint64(o.domainID), 10)
	}
	for k, v := range o.settings {
		settings[k] = v
	}
	s.args = []string{"--no-defaults", "--user=" + currentUser(), "--datadir=" + s.dataDir, "--tmpdir=" + tmpDir,
		"--socket=" + s.sockPath, "--bind-address=" + s.Host, "--pid-file=" + filepath.Join(root, "mysqld.pid")}
	for k, v := range settings {
		s.args = append(s.args, "--"+strings.ReplaceAll(k, "_", "-")+"="+v)
	}

	// A port picked by listening on :0 may be taken by someone else before
	// the server binds it: retry with a new one.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("mysqltest: free port: %v", err)
		}
		s.Port = port
		if lastErr = s.launch(ctx); lastErr == nil {
			return s
		}
		if !errors.Is(lastErr, errBind) {
			break
		}
	}
	t.Fatalf("mysqltest: start: %v", lastErr)
	return nil
}

// DSN returns a go-sql-driver style DSN for database db as root.
// Pid is the running mariadbd's process id (benchmarks read its CPU time).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Process == nil {
		return 0
	}
	return s.proc.Process.Pid
}

func (s *Server) DSN(db string) string {
	return fmt.Sprintf("root@tcp(%s:%d)/%s", s.Host, s.Port, db)
}

// UserDSN returns a DSN for database db as user with password.
func (s *Server) UserDSN(user, password, db string) string {
	return fmt.Sprintf("%s:%s@tcp(%s:%d)/%s", user, password, s.Host, s.Port, db)
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Conn opens a root connection to database db ("" for none), closed by
// t.Cleanup.
func (s *Server) Conn(t testing.TB, db string) *client.Conn {
	t.Helper()
	conn, err := s.connect(context.Background(), db)
	if err != nil {
		t.Fatalf("mysqltest: connect: %v", err)
	}
	t.Cleanup(func() { quit(conn) })
	return conn
}

func (s *Server) connect(ctx context.Context, db string) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := &net.Dialer{}
	conn, err := client.ConnectWithDialer(ctx, "tcp", s.Addr(), "root", "", db, d.DialContext)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Execute("SET NAMES utf8mb4"); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Exec runs one statement with args (? placeholders) in database db ("" for
// none) as root, and fails the test on error.
func (s *Server) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	conn, err := s.connect(context.Background(), db)
	if err != nil {
		t.Fatalf("mysqltest: connect: %v", err)
	}
	defer quit(conn)
	if _, err := conn.Execute(sql, args...); err != nil {
		t.Fatalf("mysqltest: exec %q: %v", abbreviate(sql), err)
	}
}

// ExecTx runs the statements in one transaction in database db as root,
// and fails the test on error.
func (s *Server) ExecTx(t testing.TB, db string, stmts ...string) {
	t.Helper()
	conn, err := s.connect(context.Background(), db)
	if err != nil {
		t.Fatalf("mysqltest: connect: %v", err)
	}
	defer quit(conn)
	for _, sql := range append(append([]string{"BEGIN"}, stmts...), "COMMIT") {
		if _, err := conn.Execute(sql); err != nil {
			t.Fatalf("mysqltest: exec %q: %v", abbreviate(sql), err)
		}
	}
}

// Query runs sql in database db and returns the rows as text (NULL as "").
func (s *Server) Query(t testing.TB, db, sql string, args ...any) [][]string {
	t.Helper()
	conn, err := s.connect(context.Background(), db)
	if err != nil {
		t.Fatalf("mysqltest: connect: %v", err)
	}
	defer quit(conn)
	res, err := conn.Execute(sql, args...)
	if err != nil {
		t.Fatalf("mysqltest: query %q: %v", abbreviate(sql), err)
	}
	defer res.Close()
	var out [][]string
	if res.Resultset == nil {
		return nil
	}
	for _, row := range res.Values {
		r := make([]string, len(row))
		for i := range row {
			switch row[i].Type {
			case gomysql.FieldValueTypeNull:
			case gomysql.FieldValueTypeString:
				r[i] = string(row[i].AsString())
			default:
				r[i] = row[i].String()
			}
		}
		out = append(out, r)
	}
	return out
}

// CreateDB creates database name (utf8mb4).
func (s *Server) CreateDB(t testing.TB, name string) {
	t.Helper()
	s.Exec(t, "", "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4")
}

// CreateUser creates user@'%' with password and grants it privileges on
// *.* (e.g. "REPLICATION SLAVE", "BINLOG MONITOR", "SELECT").
func (s *Server) CreateUser(t testing.TB, user, password string, privileges ...string) {
	t.Helper()
	s.Exec(t, "", fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, password))
	if len(privileges) > 0 {
		s.Exec(t, "", fmt.Sprintf("GRANT %s ON *.* TO '%s'@'%%'", strings.Join(privileges, ", "), user))
	}
}

// PurgeBinlogs rotates the binlog and purges every file before the new
// one: positions in older files are then gone, as after expiry. MariaDB
// keeps a file until its binlog checkpoint is written (InnoDB flushed its
// commits) and while a replica reads it, so the purge is retried until
// one file is left, for up to 30 s.
func (s *Server) PurgeBinlogs(t testing.TB) {
	t.Helper()
	s.Exec(t, "", "FLUSH BINARY LOGS")
	rows := s.Query(t, "", "SHOW MASTER STATUS")
	if len(rows) == 0 {
		t.Fatalf("mysqltest: no binary log")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.Exec(t, "", "PURGE BINARY LOGS TO '"+rows[0][0]+"'")
		logs := s.Query(t, "", "SHOW BINARY LOGS")
		if len(logs) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mysqltest: %d binlog files left after purge, want 1 (a replica still reading one?)", len(logs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Restart stops the server (normal shutdown) and starts it again on the
// same port with the same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop(t, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var err error
	// The old listening socket can linger briefly: retry the same port.
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.launch(ctx); err == nil || !errors.Is(err, errBind) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("mysqltest: restart: %v", err)
	}
}

// Stop shuts the server down (normal shutdown). It is safe to call twice;
// Cleanup calls it too.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop(t, syscall.SIGTERM)
}

// stop signals mariadbd (SIGTERM: normal shutdown, SIGKILL: crash) and
// waits for it, killing it when it does not exit in time.
func (s *Server) stop(t testing.TB, sig syscall.Signal) {
	s.mu.Lock()
	proc, done := s.proc, s.done
	s.proc, s.done = nil, nil
	s.mu.Unlock()
	if proc == nil {
		return
	}
	_ = proc.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Logf("mysqltest: server did not stop in 60s, killing it")
		_ = proc.Process.Kill()
		<-done
	}
}

var errBind = errors.New("port in use")

// launch starts mariadbd and waits until it accepts connections, or
// returns an error carrying the log when it exits or the deadline passes.
func (s *Server) launch(ctx context.Context) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	st, _ := logf.Stat()
	logStart := st.Size()

	args := append(append([]string(nil), s.args...), "--port="+strconv.Itoa(s.Port), "--log-error="+s.logPath)
	// Not CommandContext: the server must outlive this call.
	cmd := exec.Command(s.mariadbd, args...)
	cmd.Dir = s.root
	cmd.Stdout, cmd.Stderr = logf, logf
	// Take the server down with the test binary if it dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.mariadbd, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	for {
		if s.ready(ctx) {
			s.mu.Lock()
			s.proc, s.done = cmd, done
			s.mu.Unlock()
			return nil
		}
		select {
		case <-done:
			log := s.logSince(logStart)
			if strings.Contains(log, "Address already in use") || strings.Contains(log, "Bind on TCP/IP port") {
				return fmt.Errorf("%w: %s", errBind, log)
			}
			return fmt.Errorf("mariadbd exited during start: %s", log)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("mariadbd not ready: %w: %s", ctx.Err(), s.logSince(logStart))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) ready(ctx context.Context) bool {
	conn, err := s.connect(ctx, "")
	if err != nil {
		return false
	}
	defer quit(conn)
	return conn.Ping() == nil
}

func (s *Server) logSince(off int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	out := strings.TrimSpace(string(b[off:]))
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	return out
}

func (s *Server) dumpLog(t testing.TB) {
	t.Logf("mysqltest: server log (tail):\n%s", s.logSince(0))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func findBinaries() (mariadbd, installDB string, err error) {
	var dirs []string
	if d := os.Getenv("MYSQLTEST_BINDIR"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/mysql/bin")
	dirs = append(dirs, filepath.SplitList(os.Getenv("PATH"))...)
	find := func(names ...string) string {
		for _, d := range dirs {
			for _, n := range names {
				p := filepath.Join(d, n)
				if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
					return p
				}
			}
		}
		return ""
	}
	mariadbd = find("mariadbd")
	installDB = find("mariadb-install-db")
	switch {
	case mariadbd == "":
		return "", "", errors.New("mariadbd not found")
	case installDB == "":
		return "", "", errors.New("mariadb-install-db not found")
	}
	return mariadbd, installDB, nil
}

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Geteuid())
}

// quit ends a connection with COM_QUIT, so that the server log is not
// full of aborted connections.
func quit(c *client.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if err := c.Quit(); err != nil {
		c.Close()
	}
}

func abbreviate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
