// Package pgtest starts throwaway PostgreSQL servers for tests, in the
// spirit of net/http/httptest: Start returns a running server that the
// test's Cleanup stops and deletes.
//
// Every Start is its own server (initdb into a fresh directory), listening
// on a free loopback port with trust authentication for the superuser
// "postgres" and wal_level=logical. The binaries are taken from
// $PGTEST_BINDIR, `pg_config --bindir`, or the newest
// /usr/lib/postgresql/*/bin; when none is found the test fails with the
// command that installs them. PostgreSQL refuses to run as root, so when
// the test runs as root the server runs as the "postgres" OS user.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const installHint = "install the PostgreSQL server binaries with `apt-get install -y postgresql` (Debian/Ubuntu) or point PGTEST_BINDIR at the directory holding initdb and postgres"

// startTimeout bounds initdb plus server start; generous because CI
// machines with 2 cores running tests in parallel can be slow.
const startTimeout = 60 * time.Second

// Option configures a server before it starts.
type Option func(*options)

type options struct {
	settings   map[string]string
	initdbArgs []string
}

// WithSetting sets a postgresql.conf parameter, e.g.
// WithSetting("wal_sender_timeout", "2s").
func WithSetting(name, value string) Option {
	return func(o *options) { o.settings[name] = value }
}

// WithInitdbArgs passes extra arguments to initdb, e.g. "--wal-segsize=1".
func WithInitdbArgs(args ...string) Option {
	return func(o *options) { o.initdbArgs = append(o.initdbArgs, args...) }
}

// Server is a running throwaway PostgreSQL server.
type Server struct {
	// Host is the loopback address the server listens on.
	Host string
	// Port is the TCP port; it stays the same across Restart.
	Port int

	binDir  string
	root    string // temp dir owned by the server's OS user
	dataDir string
	sockDir string
	logPath string
	cred    *syscall.Credential

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// Start initialises and starts a server, and registers its shutdown and
// removal with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := &options{settings: map[string]string{}}
	for _, opt := range opts {
		opt(o)
	}
	binDir, err := findBinDir()
	if err != nil {
		t.Fatalf("pgtest: %v; %s", err, installHint)
	}
	cred, uid, gid, err := serverUser()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	// Not t.TempDir(): its parent directory is private to the test's user,
	// which the postgres OS user could not traverse.
	root, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: temp dir: %v", err)
	}
	s := &Server{
		Host:    "127.0.0.1",
		binDir:  binDir,
		root:    root,
		dataDir: filepath.Join(root, "data"),
		sockDir: filepath.Join(root, "sock"),
		logPath: filepath.Join(root, "server.log"),
		cred:    cred,
	}
	t.Cleanup(func() {
		s.stop(t, syscall.SIGQUIT)
		if t.Failed() {
			s.dumpLog(t)
		}
		_ = os.RemoveAll(root)
	})
	if err := os.Mkdir(s.sockDir, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if cred != nil {
		for _, p := range []string{root, s.sockDir} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatalf("pgtest: chown %s: %v", p, err)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	args := append([]string{"-D", s.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"}, o.initdbArgs...)
	if out, err := s.command(ctx, "initdb", args...).CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	if err := s.writeConf(o.settings); err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	// A port picked by listening on :0 may be taken by someone else before
	// the server binds it: retry with a new one.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("pgtest: free port: %v", err)
		}
		s.Port = port
		if lastErr = s.launch(ctx); lastErr == nil {
			return s
		}
		if !strings.Contains(lastErr.Error(), "could not bind") && !strings.Contains(lastErr.Error(), "could not create any TCP/IP sockets") {
			break
		}
	}
	t.Fatalf("pgtest: start: %v", lastErr)
	return nil
}

// DSN returns a connection URL for database db as the superuser.
// Pid is the running postmaster's process id (benchmarks read its CPU time).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Process == nil {
		return 0
	}
	return s.proc.Process.Pid
}

func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", s.Host, s.Port, db)
}

// CreateDB creates database name.
func (s *Server) CreateDB(t testing.TB, name string) {
	t.Helper()
	s.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// Exec runs sql with args in database db and fails the test on error.
func (s *Server) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		t.Fatalf("pgtest: connect %s: %v", db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: exec %q: %v", abbreviate(sql), err)
	}
}

// Restart stops the server (fast shutdown) and starts it again on the same
// port with the same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop(t, syscall.SIGINT)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var err error
	// The old listening socket can linger briefly; retry the same port.
	for attempt := 0; attempt < 10; attempt++ {
		if err = s.launch(ctx); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pgtest: restart: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("pgtest: restart: %v", err)
}

// Stop shuts the server down (fast shutdown). It is safe to call twice;
// Cleanup calls it too.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop(t, syscall.SIGINT)
}

// stop signals the postmaster (SIGINT = fast shutdown, SIGQUIT =
// immediate) and waits for it, killing it when it does not exit in time.
func (s *Server) stop(t testing.TB, sig syscall.Signal) {
	s.mu.Lock()
	proc, done := s.proc, s.done
	s.proc, s.done = nil, nil
	s.mu.Unlock()
	if proc == nil {
		return
	}
	// Escalate: the requested mode, then immediate shutdown (the postmaster
	// takes its children down; a killed postmaster would leave them holding
	// its shared memory, and the next start would fail), then SIGKILL.
	for i, s := range []syscall.Signal{sig, syscall.SIGQUIT, syscall.SIGKILL} {
		if i > 0 {
			t.Logf("pgtest: server did not stop in 30s, sending %s", s)
		}
		_ = proc.Process.Signal(s)
		select {
		case <-done:
			return
		case <-time.After(30 * time.Second):
		}
	}
	<-done
}

// launch starts the postmaster and waits until it accepts connections, or
// returns an error carrying the log when it exits or the deadline passes.
func (s *Server) launch(ctx context.Context) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	st, _ := logf.Stat()
	logStart := st.Size()

	// Not CommandContext: the server must outlive this call.
	cmd := s.command(context.Background(), "postgres",
		"-D", s.dataDir, "-p", strconv.Itoa(s.Port), "-h", s.Host, "-k", s.sockDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Take the server down with the test binary if it dies without cleanup.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
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
			return fmt.Errorf("postgres exited during start: %s", s.logSince(logStart))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			return fmt.Errorf("postgres not ready: %w: %s", ctx.Err(), s.logSince(logStart))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) ready(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, s.DSN("postgres"))
	if err != nil {
		return false
	}
	_ = conn.Close(cctx)
	return true
}

func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, name), args...)
	cmd.Env = []string{"PATH=" + s.binDir + ":/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
	cmd.Dir = s.root
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

func (s *Server) writeConf(extra map[string]string) error {
	settings := map[string]string{
		"wal_level":             "logical",
		"max_wal_senders":       "10",
		"max_replication_slots": "10",
		"max_connections":       "30",
		"shared_buffers":        "16MB",
		"fsync":                 "off",
		"synchronous_commit":    "off",
		"full_page_writes":      "off",
		"listen_addresses":      "'127.0.0.1'",
		"log_min_messages":      "warning",
		"logging_collector":     "off",
	}
	for k, v := range extra {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("\n# pgtest\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteSetting(settings[k]))
	}
	f, err := os.OpenFile(filepath.Join(s.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// quoteSetting quotes values that are not plain numbers or identifiers.
func quoteSetting(v string) string {
	if strings.HasPrefix(v, "'") {
		return v
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return "'" + strings.ReplaceAll(v, "'", "''") + "'"
		}
	}
	return v
}

func (s *Server) logSince(off int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return strings.TrimSpace(string(b[off:]))
}

func (s *Server) dumpLog(t testing.TB) {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	t.Logf("pgtest: server log (tail):\n%s", b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("PGTEST_BINDIR=%s has no initdb/postgres", d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); has(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found")
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// serverUser returns the credential to run the server with: nil when the
// test does not run as root, else the "postgres" OS user.
func serverUser() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, os.Geteuid(), os.Getegid(), nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root and there is no \"postgres\" OS user to run the server as (PostgreSQL refuses root): %w; %s", err, installHint)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

func abbreviate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
