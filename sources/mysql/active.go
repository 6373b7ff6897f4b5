package mysql

// Active/standby
//
// The binlog admits any number of readers, so two leadtail instances on one
// configuration would both deliver (and, sharing a server_id, cut each
// other's dump connection off). With WithActiveLock, Stream first takes a
// named lock, GET_LOCK('leadtail:<server_id>:<dataset>'), on a dedicated
// connection that it holds for as long as it streams. A second instance
// waits on GET_LOCK (standby, said by Streaming and so /readyz) without
// opening a binlog connection; MySQL releases the lock the moment the
// holder's connection closes, so when the active instance dies (or
// stops), the standby gets it and starts.
//
// Where the standby starts: the binlog keeps no position for us; the
// checkpoint file does. A standby therefore re-reads the checkpoint after
// it got the lock (the reload function, the connector's checkpoint store)
// and starts from it when it is newer than the position it was given: the
// instances must share state_dir (one volume on one host, or shared
// storage), or the standby resumes from its own stale file (duplicates)
// or, without one, from the end of the binlog (a gap). leadtail writes
// nothing into the database, so the position cannot live there.
//
// Losing the lock: a goroutine pings the lock connection every lockPing.
// When that fails the lock may already be someone else's, so the binlog
// session is cancelled at once and Stream waits for the lock again (the
// pipeline keeps running and drains what was already emitted: at worst a
// duplicate, never a gap), then resumes from the later of its own acked
// position and the shared checkpoint.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/leadtail/leadtail/sources"
)

// Option adjusts a Source.
type Option func(*Source)

// WithColumns names, per "database.table", the columns the mappings read:
// rows of these tables carry only these columns (the others are not
// converted).
func WithColumns(cols map[string][]string) Option {
	return func(s *Source) {
		s.columns = map[string][]string{}
		for t, cs := range cols {
			s.columns[strings.TrimSpace(t)] = append([]string(nil), cs...)
		}
	}
}

// WithActiveLock makes Stream hold the named lock
// leadtail:<server_id>:<dataset> while it streams, so that of several
// instances on one configuration only one streams and the others wait to
// take over. reload returns the shared checkpoint; it is read after the
// lock was taken, to resume where the previous holder stopped.
func WithActiveLock(dataset string, reload func(context.Context) (sources.Position, error)) Option {
	return func(s *Source) {
		name := fmt.Sprintf("leadtail:%d:%s", s.cfg.ServerID, dataset)
		sum := sha256.Sum256([]byte(name))
		s.lock = &activeLock{name: name, reload: reload, tag: replicaHostPrefix + hex.EncodeToString(sum[:4]) + "-"}
		// The replica host we register under names the lock, so that a
		// later holder knows a registration left by a dead predecessor.
		s.host = s.lock.tag + strings.TrimPrefix(s.host, replicaHostPrefix)
		if len(s.host) > 60 {
			s.host = s.host[:60]
		}
	}
}

// predecessor reports whether a replica registered under host with our
// server_id is a previous holder of our active lock. We hold the lock, so
// that instance is gone; its dump thread lingers until the server tries to
// write to its closed socket, and the server replaces it when ours starts
// (a new dump with the same server_id ends the old one). Without the lock,
// or for any other host, the server_id is in use by someone else.
func (s *Source) predecessor(host string) bool {
	if s.lock == nil || s.lock.conn == nil || s.lock.ctx.Err() != nil || !strings.HasPrefix(host, s.lock.tag) {
		return false
	}
	s.log.Info("server_id registered by a previous holder of the active lock (gone): the server replaces its dump connection with ours",
		"replica_host", host, "server_id", s.cfg.ServerID)
	return true
}

// Tuning of the lock.
const (
	// lockWait bounds one GET_LOCK call; a standby calls it again and again.
	lockWait = 10 * time.Second
	// lockPing is how often the active instance checks its lock connection.
	lockPing = time.Second
)

// errLockLost cancels the session context when the lock connection fails.
var errLockLost = errors.New("mysql: lost the active lock (its connection failed)")

// activeLock is the named lock and its connection. Only the Stream
// goroutine uses it, except for the monitor goroutine, which pings conn
// (under mu) while the lock is held.
type activeLock struct {
	name   string
	reload func(context.Context) (sources.Position, error)
	// tag starts the replica host names of this lock's holders.
	tag string

	// mu serialises the use of conn by the monitor and checkLock while
	// the lock is held.
	mu sync.Mutex

	conn   *client.Conn
	ctx    context.Context // cancelled when the lock is lost
	cancel context.CancelCauseFunc
	stop   chan struct{} // closed to stop the monitor
	done   chan struct{} // closed when the monitor returned

	standbySince time.Time
}

// becomeActive waits for the lock (as a standby while another instance
// holds it), then moves *start to the shared checkpoint when that is newer.
func (s *Source) becomeActive(ctx context.Context, start *position) error {
	if err := s.acquireLock(ctx); err != nil {
		return err
	}
	p, err := s.lock.reload(ctx)
	if err != nil {
		return fmt.Errorf("mysql: read the checkpoint after taking the active lock: %w", err)
	}
	if p == "" {
		return nil
	}
	pos, err := parsePosition(p)
	if err != nil {
		return err
	}
	// The checkpoint wins unless it is the same as, or older than, start.
	if start.isZero() || start.kind != pos.kind || !start.notAfter(pos) {
		if !start.isZero() {
			s.log.Info("resuming from the shared checkpoint, written by the previous active instance", "position", pos.String(), "own_position", start.String())
		}
		*start = pos
	}
	return nil
}

// regainActive runs after the lock was lost: it stops the monitor, waits
// for the lock again and resumes from the later of the acked position and
// the shared checkpoint.
func (s *Source) regainActive(ctx context.Context) error {
	s.log.Warn("lost the active lock: its connection failed, so another instance may be active now; stopped streaming, waiting to become active again",
		"lock", s.lock.name, "error", context.Cause(s.lock.ctx))
	s.setStreaming(false, "standby: lost the active lock "+s.lock.name+", waiting to take it again")
	s.releaseLock()
	pos := s.ackedPos()
	if err := s.becomeActive(ctx, &pos); err != nil {
		return err
	}
	s.ackMu.Lock()
	if s.acked.isZero() || s.acked.kind != pos.kind || !s.acked.notAfter(pos) {
		s.acked = pos
	}
	s.ackMu.Unlock()
	return nil
}

// sessionContext returns ctx, also cancelled when the lock is lost.
func (s *Source) sessionContext(ctx context.Context) (context.Context, func()) {
	if s.lock == nil {
		return ctx, func() {}
	}
	sctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.lock.ctx, cancel)
	return sctx, func() { stop(); cancel() }
}

// lockLost reports whether Stream holds a lock it has since lost.
func (s *Source) lockLost() bool {
	return s.lock != nil && s.lock.conn != nil && s.lock.ctx.Err() != nil
}

// checkLock pings the lock connection now, before a binlog session
// (re)connects: after a server restart the monitor may not have noticed
// yet that the lock went with the old connection.
func (s *Source) checkLock() {
	if l := s.lock; l != nil && l.conn != nil && l.ctx.Err() == nil {
		l.ping()
	}
}

// ping checks the lock connection; a failure means the lock is lost.
func (l *activeLock) ping() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := withConn(pctx, l.conn, l.conn.Ping); err != nil {
		l.cancel(fmt.Errorf("%w: %w", errLockLost, err))
	}
}

// acquireLock takes the named lock on a new connection, waiting as long as
// another instance holds it, and starts the monitor.
func (s *Source) acquireLock(ctx context.Context) error {
	l := s.lock
	bo := sources.Backoff{Min: s.backoffMin, Max: s.backoffMax}
	for attempt := 1; ; attempt++ {
		conn, err := dial(ctx, s.dsn, s.dsn.db)
		if err == nil {
			// A holder that falls silent loses the lock (lockidle.go).
			if err = setLockIdleTimeout(ctx, conn); err != nil {
				conn.Close()
			}
		}
		if err == nil {
			// The first try does not wait, so that a standby says so at once.
			var got bool
			for wait := time.Duration(0); err == nil && !got; wait = lockWait {
				if got, err = l.try(ctx, conn, wait); err == nil && !got {
					s.standby(ctx, conn)
				}
			}
			if err == nil {
				s.lockHeld(conn)
				return nil
			}
			conn.Close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err = classify(err); isFatal(err) {
			return err
		}
		wait := bo.Next()
		s.log.Warn("cannot take the active lock, retrying", "lock", l.name, "error", err, "attempt", attempt, "wait", wait)
		if err := sources.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// try runs one GET_LOCK, waiting up to wait: true when the lock is ours.
func (l *activeLock) try(ctx context.Context, conn *client.Conn, wait time.Duration) (bool, error) {
	qctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
	defer cancel()
	var v string
	err := withConn(qctx, conn, func() error {
		rows, err := queryStrings(conn, fmt.Sprintf("SELECT GET_LOCK(%s, %d) AS l", quoteString(l.name), int(wait/time.Second)))
		if err != nil {
			return err
		}
		if len(rows) != 1 || rows[0]["l"] == nil {
			return errors.New("GET_LOCK returned NULL")
		}
		v = *rows[0]["l"]
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("mysql: GET_LOCK(%s): %w", l.name, err)
	}
	return v == "1", nil
}

// standby logs (once per standby period) and reports that another
// instance holds the lock.
func (s *Source) standby(ctx context.Context, conn *client.Conn) {
	l := s.lock
	if !l.standbySince.IsZero() {
		return
	}
	l.standbySince = time.Now()
	holder := ""
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = withConn(qctx, conn, func() error {
		rows, err := queryStrings(conn, "SELECT IS_USED_LOCK("+quoteString(l.name)+") AS id")
		if err == nil && len(rows) == 1 {
			holder = str(rows[0], "id")
		}
		return err
	})
	s.log.Info("standby: another leadtail instance holds the active lock; waiting to take over when it stops",
		"lock", l.name, "holder_connection_id", holder)
	s.setStreaming(false, fmt.Sprintf("standby: another instance holds the active lock %s (connection %s); taking over when it is released", l.name, holder))
}

// lockHeld starts the monitor of a freshly taken lock.
func (s *Source) lockHeld(conn *client.Conn) {
	l := s.lock
	if !l.standbySince.IsZero() {
		s.log.Info("active: took the active lock", "lock", l.name, "standby_for", time.Since(l.standbySince).Round(time.Millisecond))
		l.standbySince = time.Time{}
	} else {
		s.log.Info("active: took the active lock", "lock", l.name)
	}
	l.conn = conn
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(lockPing)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			if l.ping(); l.ctx.Err() != nil {
				return
			}
		}
	}()
}

// releaseLock stops the monitor and gives the lock up (closing its
// connection releases it on the server in any case).
func (s *Source) releaseLock() {
	l := s.lock
	if l == nil || l.conn == nil {
		return
	}
	close(l.stop)
	<-l.done
	if l.ctx.Err() == nil {
		l.cancel(errors.New("mysql: active lock released"))
		qctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = withConn(qctx, l.conn, func() error {
			_, err := l.conn.Execute("DO RELEASE_LOCK(" + quoteString(l.name) + ")")
			return err
		})
		cancel()
		quit(l.conn)
	} else {
		l.conn.Close()
	}
	l.conn = nil
}

// quoteString quotes a string literal for MySQL.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}
