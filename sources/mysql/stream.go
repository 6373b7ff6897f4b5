package mysql

// Streaming design
//
// Stream runs a loop of sessions; a session is one binlog connection
// (go-mysql's BinlogSyncer, with its automatic retry disabled: it has
// skipped and repeated transactions). The syncer owns one goroutine that
// reads packets into a channel of EventCacheCount events (16: the count is
// of events, not bytes, and one rows event can be large); Close waits for
// it, and every session closes its syncer before returning, so nothing
// outlives Stream. The syncer runs in raw mode: Stream parses each event
// itself, in its own goroutine, under recover, because go-mysql's decoders
// index without bounds checks and a malformed event would otherwise panic
// in the syncer's goroutine and take the process down. A decode panic
// becomes an error that ends the session; the loop reconnects.
//
// Transactions. A transaction starts at its GTID event (MariaDB always
// writes one; MySQL writes an anonymous one without GTIDs) or at BEGIN,
// and ends at XID, at a COMMIT/ROLLBACK query (non-transactional engines),
// or at the single statement of a standalone group (DDL). Rows of mapped
// tables are emitted as they are decoded, one Change per row, never
// buffered per transaction; emit blocking is backpressure (the channel
// fills, the syncer stops reading, TCP pushes back on the server). Rows
// events of unmapped tables are not even decoded.
//
// Positions. Pos is set only at a transaction end: on an OpNone marker
// right after the last row (the last row is only known when XID arrives),
// or, for a transaction without mapped rows, on a lone OpNone change;
// those are coalesced to at most one per 100 ms so that a busy unmapped
// database does not flood the connector, and a timer flushes the last one.
// Commit names the transaction stably across replays: with GTID positions
// it is the position after the transaction (known at its GTID event, so
// the rows carry it too); with file positions it is where the transaction
// starts (file:NAME:OFFSET), because its end offset is only known after
// the rows were emitted. Ordinal counts the mapped rows of the transaction.
//
// Reconnects. Any error but a fatal one (FatalError) or emit's own ends
// the session; the loop reconnects with capped, jittered exponential
// backoff from the last position handed to Ack (before any Ack: from).
// The stream state remembers the last position emitted and how far a
// transaction cut off mid-way got, and skips what the server sends again:
// a reconnect never hands the caller a change twice. Backpressure longer
// than net_write_timeout (server side) or the read timeout (two heartbeat
// periods) drops the connection; that is such a routine reconnect.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/leadtail/leadtail/sources"
)

// streamState lives for one Stream call, across reconnects.
type streamState struct {
	info serverInfo
	// lastPos is the last Pos emitted.
	lastPos position
	// A transaction emitted in part before a reconnect: its Commit and
	// the next ordinal to emit.
	partialCommit string
	partialNext   int
	// schemas caches information_schema per mapped table; reloaded when a
	// DDL statement names the table.
	schemas map[string][]schemaCol
	// pending is a coalesced position of transactions without mapped rows,
	// not yet emitted; lastNoneAt is when the last one was.
	pending    position
	lastNoneAt time.Time
}

// Stream calls emit for each committed row change of the mapped tables in
// binlog (commit) order, starting strictly after from, and returns only
// when ctx is cancelled (ctx.Err()), emit fails (its error) or on an error
// reconnecting cannot fix (a *FatalError: binlog purged past the
// position, server_id in use, access denied, a table whose columns cannot
// be known). Connection loss, server restarts and decode failures are
// retried with backoff.
//
// An empty from means no checkpoint: streaming starts at the current end
// of the binlog (history is the backfill's job), and the first change is
// an OpNone carrying that position, so that the connector checkpoints it.
func (s *Source) Stream(ctx context.Context, from sources.Position, emit func(context.Context, sources.Change) error) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("mysql: Stream is already running on this Source")
	}
	defer s.running.Store(false)
	var start position
	if from != "" {
		var err error
		if start, err = parsePosition(from); err != nil {
			return err
		}
	}
	st := &streamState{schemas: map[string][]schemaCol{}}
	if s.lock != nil {
		// Standby until the lock is ours; see active.go.
		defer s.releaseLock()
		if err := s.becomeActive(ctx, &start); err != nil {
			return err
		}
	}
	bo := sources.Backoff{Min: s.backoffMin, Max: s.backoffMax}
	for attempt := 1; ; attempt++ {
		err := s.setup(ctx, st, &start)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isFatal(err) {
			s.log.Error("stream failed", "error", err)
			return err
		}
		wait := bo.Next()
		s.log.Warn("setup failed, retrying", "error", err, "attempt", attempt, "wait", wait)
		if err := sources.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	s.ackMu.Lock()
	s.acked = start
	s.ackMu.Unlock()
	st.lastPos = start
	if from == "" {
		if err := emit(ctx, sources.Change{Op: sources.OpNone, Pos: start.pos()}); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		st.lastNoneAt = time.Now()
	}
	s.log.Info("stream starting", "position", start.String(), "flavor", st.info.flavor, "server_id", s.cfg.ServerID)

	bo.Reset()
	for attempt := 1; ; attempt++ {
		if s.checkLock(); s.lockLost() {
			if err := s.regainActive(ctx); err != nil {
				return err
			}
		}
		began := time.Now()
		sctx, stopSession := s.sessionContext(ctx)
		progressed, err := s.session(sctx, st, emit)
		stopSession()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.lockLost() {
			// The session was cancelled for it (emit's error included).
			bo.Reset()
			attempt = 0
			continue
		}
		var ee *emitError
		if errors.As(err, &ee) {
			return ee.err
		}
		if isFatal(err) {
			s.log.Error("stream failed", "error", err)
			return err
		}
		if progressed || time.Since(began) > time.Minute {
			bo.Reset()
			attempt = 1
		}
		wait := bo.Next()
		s.log.Warn("binlog connection lost, reconnecting", "error", err, "attempt", attempt, "wait", wait,
			"position", s.ackedPos().String())
		if err := sources.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// setup reads the server's flavor and mode and resolves the start
// position: the current end of the binlog when there is none.
func (s *Source) setup(ctx context.Context, st *streamState, start *position) error {
	info, err := s.serverInfo(ctx)
	if err != nil {
		return err
	}
	st.info = info
	switch start.kind {
	case 0:
		p, err := s.endPosition(ctx, info)
		if err != nil {
			return err
		}
		*start = p
	case posMariaGTID:
		if info.flavor != gomysql.MariaDBFlavor {
			return fatalf("mysql: the checkpoint %s is a MariaDB GTID position but the server is MySQL (%s): "+
				"point the dsn at the MariaDB server, or delete the checkpoint to start from the current end", start, info.version)
		}
	case posMySQLGTID:
		if info.flavor != gomysql.MySQLFlavor {
			return fatalf("mysql: the checkpoint %s is a MySQL GTID position but the server is MariaDB (%s): "+
				"point the dsn at the MySQL server, or delete the checkpoint to start from the current end", start, info.version)
		}
	}
	// Sessions may override these, so a wrong global value is no proof
	// of a wrong binlog: warn here, and fail on the first statement-based
	// change to a mapped table (see query).
	if info.binlogFormat != "" && !strings.EqualFold(info.binlogFormat, "ROW") {
		s.log.Warn("binlog_format is not ROW: changes logged as statements cannot be streamed", "binlog_format", info.binlogFormat)
	}
	if info.rowImage != "" && !strings.EqualFold(info.rowImage, "FULL") {
		s.log.Warn("binlog_row_image is not FULL: columns missing from row images are streamed as unknown", "binlog_row_image", info.rowImage)
	}
	if info.serverID == s.cfg.ServerID {
		return fatalf("mysql: server_id %d is the server's own @@server_id: %w; choose another source.mysql.server_id",
			s.cfg.ServerID, ErrServerIDInUse)
	}
	return nil
}

// preflight runs before each binlog connection: it turns a purged
// position and a server_id collision into clear fatal errors instead of
// the server's 1236 (or, worse, killing another replica's stream).
func (s *Source) preflight(ctx context.Context, from position) error {
	return s.pool.do(ctx, func(conn *client.Conn) error {
		if from.kind == posFile {
			names, err := binlogNames(conn)
			if err != nil {
				return fmt.Errorf("SHOW BINARY LOGS: %w", classify(err))
			}
			if !slices.Contains(names, from.file) {
				oldest := "none"
				if len(names) > 0 {
					oldest = names[0]
				}
				return positionLostError(from.String(), fmt.Sprintf("binlog file %s is not in SHOW BINARY LOGS; the oldest is %s", from.file, oldest), nil)
			}
		}
		hosts, err := replicaHosts(conn)
		if err != nil {
			// SHOW SLAVE HOSTS needs REPLICATION MASTER ADMIN on MariaDB
			// >= 10.5: without it the check is Check's to report.
			s.log.Debug("cannot list replicas, skipping the server_id check", "error", err)
			return nil
		}
		for _, h := range hosts {
			if h.serverID == s.cfg.ServerID && h.host != s.host {
				if s.predecessor(h.host) {
					continue
				}
				return fatalf("mysql: %w: server_id %d is registered by replica %q; give this source a server_id "+
					"no other replica uses (see SHOW SLAVE HOSTS)", ErrServerIDInUse, s.cfg.ServerID, h.host)
			}
		}
		return nil
	})
}

// binlogNames lists SHOW BINARY LOGS, oldest first.
func binlogNames(conn *client.Conn) ([]string, error) {
	rows, err := queryStrings(conn, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(rows))
	for _, r := range rows {
		names = append(names, str(r, "Log_name"))
	}
	return names, nil
}

type replicaHost struct {
	serverID uint32
	host     string
}

// replicaHosts lists the registered replicas (SHOW REPLICAS on MySQL
// >= 8.0.22, SHOW SLAVE HOSTS elsewhere).
func replicaHosts(conn *client.Conn) ([]replicaHost, error) {
	rows, err := queryStrings(conn, "SHOW SLAVE HOSTS")
	if serverCode(err) == erParseError {
		rows, err = queryStrings(conn, "SHOW REPLICAS")
	}
	if err != nil {
		return nil, err
	}
	out := make([]replicaHost, 0, len(rows))
	for _, r := range rows {
		var id uint64
		_, _ = fmt.Sscan(str(r, "Server_id"), &id)
		out = append(out, replicaHost{serverID: uint32(id), host: str(r, "Host")})
	}
	return out, nil
}

// session runs one binlog connection until it fails or ctx ends.
// progressed reports whether any event arrived.
func (s *Source) session(ctx context.Context, st *streamState, emit func(context.Context, sources.Change) error) (progressed bool, err error) {
	from := s.ackedPos()
	if err := s.preflight(ctx, from); err != nil {
		return false, err
	}
	host, port := s.dsn.hostPort()
	cfg := replication.BinlogSyncerConfig{
		ServerID:  s.cfg.ServerID,
		Flavor:    st.info.flavor,
		Host:      host,
		Port:      port,
		User:      s.dsn.user,
		Password:  s.dsn.password,
		Localhost: s.host,
		TLSConfig: s.dsn.tls,
		// Parsed here, under recover; see the design notes.
		RawModeEnabled:   true,
		DisableRetrySync: true,
		EventCacheCount:  s.eventCache,
		HeartbeatPeriod:  s.cfg.HeartbeatPeriod,
		// MariaDB >= 11.4 may send LogPos 0; the syncer fills it in (and
		// asks for annotate events, which it needs for that).
		FillZeroLogPos: st.info.flavor == gomysql.MariaDBFlavor && versionAtLeast(st.info.version, 11, 4),
		Logger:         newSlog(s.log),
		Dialer:         (&net.Dialer{Timeout: s.dsn.timeout}).DialContext,
	}
	if s.cfg.HeartbeatPeriod > 0 {
		// A connection that stays silent past two heartbeats is dead.
		cfg.ReadTimeout = 2*s.cfg.HeartbeatPeriod + 5*time.Second
	}
	syncer := replication.NewBinlogSyncer(cfg)
	defer syncer.Close()
	var streamer *replication.BinlogStreamer
	if from.kind == posFile {
		streamer, err = syncer.StartSync(gomysql.Position{Name: from.file, Pos: from.offset})
	} else {
		var set gomysql.GTIDSet
		if set, err = from.gtidSet(); err == nil {
			streamer, err = syncer.StartSyncGTID(set)
		}
	}
	if err != nil {
		return false, s.streamError(ctx, from, fmt.Errorf("mysql: start binlog stream at %s: %w", from, err))
	}
	s.sessions.Add(1)
	s.log.Info("binlog stream started", "position", from.String())
	defer func() { s.setStreaming(false, streamDownReason(err)) }()

	sess := newSession(s, st, from, emit)
	st.pending = position{}
	for {
		ev, err := sess.next(ctx, streamer)
		if err == nil {
			// The server starts every dump with a Rotate and a format
			// description: the first event proves the stream is up.
			s.lastReceived.Store(time.Now().UnixNano())
			if !progressed {
				s.setStreaming(true, "")
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return progressed, ctx.Err()
			}
			var ee *emitError
			if errors.As(err, &ee) {
				return progressed, err
			}
			return progressed, s.streamError(ctx, from, fmt.Errorf("mysql: binlog stream: %w", err))
		}
		progressed = true
		if err := sess.handle(ctx, ev); err != nil {
			return progressed, err
		}
	}
}

// streamError turns the server's "cannot send the binlog from there"
// (1236) into a fatal error saying why, found by looking rather than by
// reading the message: the position's file is gone, another replica has
// our server_id, or (GTID positions) the server no longer has what the
// position needs.
func (s *Source) streamError(ctx context.Context, from position, err error) error {
	if serverCode(err) != erMasterFatalBinlog {
		return classify(err)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if perr := s.preflight(dctx, from); isFatal(perr) {
		return perr
	}
	return positionLostError(from.String(), "the server refused to send the binlog from there", err)
}

// session is one binlog connection's decoding state.
type session struct {
	s    *Source
	st   *streamState
	emit func(context.Context, sources.Change) error
	kind posKind

	parser  *replication.BinlogParser
	file    string   // current binlog file
	nextOff uint32   // end offset of the last event
	cur     position // GTID kinds: the position after the last transaction
	tables  map[uint64]*tableDef
	txn     txnState
	// trailer is the checksum length after each event's body, once the
	// format description told it (-1 before); inPayload: handling the
	// inner events of a compressed transaction, which carry none.
	trailer   int
	inPayload bool
}

type txnState struct {
	open    bool
	inBegin bool // inside BEGIN .. COMMIT (or a MariaDB non-standalone GTID group)
	commit  string
	end     position // GTID kinds: the position after this transaction
	time    time.Time
	ordinal int  // next ordinal among mapped rows
	rows    bool // has mapped rows
	// Already emitted before a reconnect: all of it, or the ordinals below.
	skipAll   bool
	skipBelow int
}

func newSession(s *Source, st *streamState, from position, emit func(context.Context, sources.Change) error) *session {
	sess := &session{s: s, st: st, emit: emit, kind: from.kind, cur: from, tables: map[uint64]*tableDef{}, trailer: -1}
	if from.kind == posFile {
		sess.file, sess.nextOff = from.file, from.offset
	}
	p := replication.NewBinlogParser()
	p.SetFlavor(st.info.flavor)
	p.SetParseTime(true)
	p.SetUseDecimal(true)
	p.SetVerifyChecksum(true)
	// Rows of unmapped tables, and of transactions already emitted, are
	// skipped without decoding their row images.
	p.SetRowsEventDecodeFunc(func(re *replication.RowsEvent, data []byte) error {
		pos, err := re.DecodeHeader(data)
		if err != nil {
			return err
		}
		if re.Table == nil || !s.mapped[tableName(re.Table)] || sess.txn.skipAll {
			return nil
		}
		return re.DecodeData(pos, data)
	})
	sess.parser = p
	return sess
}

func tableName(tm *replication.TableMapEvent) string {
	return string(tm.Schema) + "." + string(tm.Table)
}

// next returns the next event. While a coalesced position waits, it
// waits for an event only until that position is due, and emits it then.
func (sess *session) next(ctx context.Context, streamer *replication.BinlogStreamer) (*replication.BinlogEvent, error) {
	for {
		st := sess.st
		if st.pending.isZero() {
			return streamer.GetEvent(ctx)
		}
		due := st.lastNoneAt.Add(sess.s.coalesce)
		if wait := time.Until(due); wait > 0 {
			tctx, cancel := context.WithDeadline(ctx, due)
			ev, err := streamer.GetEvent(tctx)
			cancel()
			if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return ev, err
			}
		}
		if err := sess.flushPending(ctx); err != nil {
			return nil, err
		}
	}
}

func (sess *session) send(ctx context.Context, c sources.Change) error {
	if err := sess.emit(ctx, c); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &emitError{err}
	}
	return nil
}

func (sess *session) flushPending(ctx context.Context) error {
	st := sess.st
	p := st.pending
	if p.isZero() {
		return nil
	}
	if err := sess.send(ctx, sources.Change{Op: sources.OpNone, Pos: p.pos()}); err != nil {
		return err
	}
	st.pending = position{}
	st.lastPos = p
	st.lastNoneAt = time.Now()
	return nil
}

// handle decodes one event and acts on it. A panic while decoding (go-
// mysql does no bounds checks) becomes an error: the session ends and the
// stream reconnects.
func (sess *session) handle(ctx context.Context, raw *replication.BinlogEvent) (err error) {
	defer func() {
		if p := recover(); p != nil {
			detail := "panic"
			if re, ok := p.(runtime.Error); ok {
				detail = re.Error() // bounds and nil errors: no data in them
			}
			err = fmt.Errorf("mysql: malformed %s event at %s:%d (%d bytes): %s",
				raw.Header.EventType, sess.file, raw.Header.LogPos, len(raw.RawData), detail)
		}
	}()
	h := raw.Header
	ev, err := sess.parser.Parse(raw.RawData)
	if err != nil {
		return fmt.Errorf("mysql: decode %s event at %s:%d (%d bytes): %s",
			h.EventType, sess.file, h.LogPos, len(raw.RawData), decodeDetail(h.EventType, err))
	}
	// The syncer's header has MariaDB's zero LogPos filled in.
	ev.Header = h
	positioned := h.Flags&replication.LOG_EVENT_ARTIFICIAL_F == 0 && h.LogPos > 0
	start := sess.nextOff
	if positioned && h.LogPos >= h.EventSize {
		start = h.LogPos - h.EventSize
	}
	if err := sess.event(ctx, ev, start); err != nil {
		return err
	}
	switch ev.Event.(type) {
	case *replication.RotateEvent, *replication.HeartbeatEvent:
	default:
		if positioned {
			sess.nextOff = h.LogPos
		}
	}
	return nil
}

// decodeDetail is what a decode error may say in logs: go-mysql's
// EventError quotes the event's bytes, and its rows decoder the decoded
// rows, so for events that carry row data (or SQL text) it says nothing.
func decodeDetail(typ replication.EventType, err error) string {
	switch typ {
	case replication.QUERY_EVENT, replication.MARIADB_QUERY_COMPRESSED_EVENT, replication.ROWS_QUERY_EVENT,
		replication.MARIADB_ANNOTATE_ROWS_EVENT, replication.TRANSACTION_PAYLOAD_EVENT,
		replication.BEGIN_LOAD_QUERY_EVENT, replication.EXECUTE_LOAD_QUERY_EVENT, replication.USER_VAR_EVENT,
		replication.WRITE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv0,
		replication.WRITE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv1,
		replication.WRITE_ROWS_EVENTv2, replication.UPDATE_ROWS_EVENTv2, replication.DELETE_ROWS_EVENTv2,
		replication.PARTIAL_UPDATE_ROWS_EVENT, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1,
		replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		return "detail withheld: the event carries row data"
	}
	var ee *replication.EventError
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err.Error()
}

// event acts on one decoded event; start is where it begins in the
// current binlog file.
func (sess *session) event(ctx context.Context, ev *replication.BinlogEvent, start uint32) error {
	h := ev.Header
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		sess.file, sess.nextOff = string(e.NextLogName), uint32(e.Position)
	case *replication.FormatDescriptionEvent:
		sess.trailer = 0
		if e.ChecksumAlgorithm == replication.BINLOG_CHECKSUM_ALG_CRC32 {
			sess.trailer = replication.BinlogChecksumLength
		}
	case *replication.MariadbGTIDEvent:
		g := e.GTID
		return sess.begin(h, start, &g, nil, !e.IsStandalone())
	case *replication.GTIDEvent:
		return sess.beginMySQL(h, start, e, gomysql.Tag{})
	case *replication.GtidTaggedLogEvent:
		return sess.beginMySQL(h, start, &e.GTIDEvent, e.Tag)
	case *replication.QueryEvent:
		return sess.query(ctx, h, start, e)
	case *replication.TableMapEvent:
		return sess.tableMap(ctx, e, ev.RawData)
	case *replication.RowsEvent:
		return sess.rows(ctx, h, start, e)
	case *replication.XIDEvent:
		return sess.end(ctx, h, start)
	case *replication.TransactionPayloadEvent:
		// MySQL's compressed transaction: the inner events, the last of
		// which (XID) carries the payload event's end as its LogPos.
		sess.inPayload = true
		defer func() { sess.inPayload = false }()
		for _, inner := range e.Events {
			if err := sess.event(ctx, inner, start); err != nil {
				return err
			}
		}
	}
	return nil
}

func (sess *session) beginMySQL(h *replication.EventHeader, start uint32, e *replication.GTIDEvent, tag gomysql.Tag) error {
	var sid [16]byte
	copy(sid[:], e.SID)
	if e.GNO == 0 || sid == ([16]byte{}) {
		// Anonymous: gtid_mode is not ON, so positions are file positions.
		return sess.begin(h, start, nil, nil, false)
	}
	g := &mysqlGTID{sid: sid, tag: tag, gno: e.GNO}
	if err := sess.begin(h, start, nil, g, false); err != nil {
		return err
	}
	// The original commit time (µs) is the real one, also on a replica.
	if ts := e.OriginalCommitTimestamp; ts > 0 {
		sess.txn.time = time.UnixMicro(int64(ts)).UTC()
	}
	return nil
}

type mysqlGTID struct {
	sid [16]byte
	tag gomysql.Tag
	gno int64
}

// begin opens a transaction at its first event (GTID or BEGIN).
func (sess *session) begin(h *replication.EventHeader, start uint32, maria *gomysql.MariadbGTID, my *mysqlGTID, inBegin bool) error {
	st := sess.st
	t := txnState{open: true, inBegin: inBegin, time: time.Unix(int64(h.Timestamp), 0).UTC()}
	var id position // what identifies the transaction for the replay check
	switch sess.kind {
	case posFile:
		id = position{kind: posFile, file: sess.file, offset: start}
		t.commit = id.String()
	case posMariaGTID:
		if maria == nil {
			return fmt.Errorf("mysql: transaction at %s:%d has no MariaDB GTID", sess.file, start)
		}
		id = position{kind: posMariaGTID, maria: []gomysql.MariadbGTID{*maria}}
		t.end = sess.cur.withMaria(*maria)
		t.commit = t.end.String()
	case posMySQLGTID:
		if my == nil {
			return fatalf("mysql: transaction at %s:%d has no GTID but the position is a GTID set: "+
				"set gtid_mode=ON (ON_PERMISSIVE allows anonymous transactions), or delete the checkpoint "+
				"to restart with file positions", sess.file, start)
		}
		id = position{}.withMySQL(my.sid, my.tag, my.gno)
		t.end = sess.cur.withMySQL(my.sid, my.tag, my.gno)
		t.commit = t.end.String()
	}
	t.skipAll, _ = st.lastPos.seen(id)
	if !t.skipAll && st.partialCommit == t.commit {
		t.skipBelow = st.partialNext
	}
	sess.txn = t
	return nil
}

// query handles BEGIN/COMMIT and standalone statements (DDL).
func (sess *session) query(ctx context.Context, h *replication.EventHeader, start uint32, e *replication.QueryEvent) error {
	q := strings.TrimSpace(string(e.Query))
	word := strings.ToUpper(firstWords(q, 2))
	switch {
	case word == "BEGIN" || strings.HasPrefix(word, "BEGIN ") || word == "XA START":
		if !sess.txn.open {
			if err := sess.begin(h, start, nil, nil, true); err != nil {
				return err
			}
		}
		sess.txn.inBegin = true
		return nil
	case strings.HasPrefix(word, "ROLLBACK TO"), strings.HasPrefix(word, "SAVEPOINT"),
		strings.HasPrefix(word, "RELEASE SAVEPOINT"), word == "XA END":
		return nil
	case word == "COMMIT", word == "ROLLBACK", strings.HasPrefix(word, "COMMIT "), strings.HasPrefix(word, "ROLLBACK "),
		word == "XA PREPARE", word == "XA COMMIT", word == "XA ROLLBACK":
		// COMMIT ends transactions on non-transactional engines (which have
		// no XID); a ROLLBACK in the binlog still follows changes to such
		// tables, which stay applied.
		return sess.end(ctx, h, start)
	}
	if sess.txn.open && sess.txn.inBegin {
		// A statement inside a transaction: not the end. A DML statement
		// on a mapped table means statement-based logging (binlog_format
		// STATEMENT or MIXED in that session): its rows are not in the
		// binlog, and skipping it would lose them silently.
		if t := sess.statementOnMapped(word, q); t != "" {
			return fatalf("mysql: a change to %s at %s:%d is logged as a statement, not as rows: set binlog_format=ROW "+
				"globally (and reconnect the writers), then delete the checkpoint and backfill from that time", t, sess.file, start)
		}
		return nil
	}
	// A standalone statement: DDL, its own transaction.
	if err := sess.ddl(ctx, string(e.Schema), q); err != nil {
		return err
	}
	return sess.end(ctx, h, start)
}

// statementOnMapped returns the mapped table a DML statement names, or "".
func (sess *session) statementOnMapped(word, q string) string {
	verb, _, _ := strings.Cut(word, " ")
	switch verb {
	case "INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD":
	default:
		return ""
	}
	q = stripLiterals(q)
	for t := range sess.s.mapped {
		_, table, _ := splitTable(t)
		if mentions(q, table) {
			return t
		}
	}
	return ""
}

// stripLiterals blanks out '...' and "..." string literals, so that a
// value does not read as a table name.
func stripLiterals(q string) string {
	b := []byte(q)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote != 0 && c == '\\' && i+1 < len(b):
			b[i], b[i+1] = ' ', ' '
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b[i] = ' '
		}
	}
	return string(b)
}

// mentions reports whether statement q names identifier name (case
// insensitive, as a whole identifier: "leads" is not in "leads_archive").
func mentions(q, name string) bool {
	lq, ln := strings.ToLower(q), strings.ToLower(name)
	isIdent := func(c byte) bool {
		return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 0x80
	}
	for i := 0; ; {
		j := strings.Index(lq[i:], ln)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(ln)
		if (start == 0 || !isIdent(lq[start-1])) && (end == len(lq) || !isIdent(lq[end])) {
			return true
		}
		i = start + 1
	}
}

func firstWords(q string, n int) string {
	f := strings.Fields(q)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}

// ddl re-reads, in binlog order, the schema of every cached mapped table
// the statement names, so that events after an ALTER TABLE decode with the
// new columns when the binlog carries no column names.
func (sess *session) ddl(ctx context.Context, defaultDB, q string) error {
	for name := range sess.st.schemas {
		db, table, _ := splitTable(name)
		if !mentions(q, table) {
			continue
		}
		cols, err := readSchema(ctx, sess.s.pool, db, table)
		if err != nil {
			return err
		}
		if cols == nil {
			delete(sess.st.schemas, name)
			sess.s.log.Warn("mapped table no longer exists", "table", name)
			continue
		}
		sess.st.schemas[name] = cols
		sess.s.log.Debug("table schema reloaded after DDL", "table", name, "default_database", defaultDB)
	}
	return nil
}

func (sess *session) tableMap(ctx context.Context, tm *replication.TableMapEvent, raw []byte) error {
	name := tableName(tm)
	if !sess.s.mapped[name] {
		delete(sess.tables, tm.TableID)
		return nil
	}
	// Every transaction repeats its tables' TABLE_MAP events; an event the
	// same as the last one for this table id (between the header, which
	// holds the time and position, and the checksum) describes the same
	// table: building the definition again cost a sixth of the source's CPU.
	var body []byte
	if sess.trailer >= 0 && !sess.inPayload && len(raw) > replication.EventHeaderSize+sess.trailer {
		body = raw[replication.EventHeaderSize : len(raw)-sess.trailer]
	}
	schema, ok := sess.st.schemas[name]
	if def := sess.tables[tm.TableID]; def != nil && body != nil && bytes.Equal(def.event, body) && sameSchema(def.schema, schema) {
		return nil
	}
	if !ok {
		db, table, _ := splitTable(name)
		var err error
		if schema, err = readSchema(ctx, sess.s.pool, db, table); err != nil {
			return err
		}
		if schema != nil {
			sess.st.schemas[name] = schema
		}
	}
	def, err := buildTable(name, tm, schema)
	if err != nil {
		return err
	}
	if req := sess.s.columns[name]; len(req) > 0 {
		for i := range def.cols {
			def.cols[i].skip = !slices.Contains(req, def.cols[i].name)
		}
	}
	def.event, def.schema = bytes.Clone(body), schema
	sess.tables[tm.TableID] = def
	return nil
}

// sameSchema: the same schema read (a DDL replaces it with a new one).
func sameSchema(a, b []schemaCol) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (sess *session) rows(ctx context.Context, h *replication.EventHeader, start uint32, re *replication.RowsEvent) error {
	if re.Table == nil || !sess.s.mapped[tableName(re.Table)] {
		return nil
	}
	def, ok := sess.tables[re.TableID]
	if !ok {
		return fmt.Errorf("mysql: rows event for table id %d before its table map", re.TableID)
	}
	if !sess.txn.open {
		if err := sess.begin(h, start, nil, nil, false); err != nil {
			return err
		}
	}
	var op sources.Op
	step := 1
	switch re.Type() {
	case replication.EnumRowsEventTypeInsert:
		op = sources.OpInsert
	case replication.EnumRowsEventTypeUpdate:
		op, step = sources.OpUpdate, 2
	case replication.EnumRowsEventTypeDelete:
		op = sources.OpDelete
	default:
		return fmt.Errorf("mysql: %s: unknown rows event type %s", def.name, h.EventType)
	}
	t := &sess.txn
	t.rows = true
	sess.st.pending = position{} // this transaction's end supersedes it
	if t.skipAll {
		return nil // emitted before a reconnect; the rows were not decoded
	}
	loc := sess.s.loc
	for i := 0; i+step <= len(re.Rows); i += step {
		ord := t.ordinal
		t.ordinal++
		if ord < t.skipBelow {
			continue
		}
		c := sources.Change{Table: def.name, Op: op, CommitTime: t.time, Commit: t.commit, Ordinal: ord}
		sess.s.lastRowCommit.Store(t.time.UnixNano())
		var err error
		switch op {
		case sources.OpInsert:
			c.After, err = def.row(re.Rows[i], skipped(re, i), loc)
		case sources.OpDelete:
			c.Before, err = def.row(re.Rows[i], skipped(re, i), loc)
		case sources.OpUpdate:
			if c.Before, err = def.row(re.Rows[i], skipped(re, i), loc); err == nil {
				c.After, err = def.row(re.Rows[i+1], skipped(re, i+1), loc)
			}
		}
		if err != nil {
			return err
		}
		if err := sess.send(ctx, c); err != nil {
			return err
		}
		sess.st.partialCommit, sess.st.partialNext = t.commit, ord+1
		sess.s.log.Trace("change emitted", "table", def.name, "commit", c.Commit, "ordinal", ord)
	}
	return nil
}

func skipped(re *replication.RowsEvent, i int) []int {
	if i < len(re.SkippedColumns) {
		return re.SkippedColumns[i]
	}
	return nil
}

// end closes the transaction at its last event h.
func (sess *session) end(ctx context.Context, h *replication.EventHeader, start uint32) error {
	st := sess.st
	if !sess.txn.open {
		// A group with no GTID event or BEGIN (old servers' DDL).
		if err := sess.begin(h, start, nil, nil, false); err != nil {
			return err
		}
	}
	t := sess.txn
	sess.txn = txnState{}
	var end position
	switch sess.kind {
	case posFile:
		end = position{kind: posFile, file: sess.file, offset: h.LogPos}
	default:
		end = t.end
		sess.cur = end
	}
	if t.skipAll || st.lastPos.notAfter(end) {
		return nil
	}
	if !t.rows {
		// No mapped rows: a position to checkpoint, coalesced.
		st.pending = end
		if time.Since(st.lastNoneAt) >= sess.s.coalesce {
			return sess.flushPending(ctx)
		}
		return nil
	}
	c := sources.Change{Op: sources.OpNone, CommitTime: t.time, Commit: t.commit, Ordinal: t.ordinal, Pos: end.pos()}
	if err := sess.send(ctx, c); err != nil {
		return err
	}
	st.lastPos = end
	st.pending = position{}
	st.partialCommit, st.partialNext = "", 0
	sess.s.log.Trace("transaction emitted", "position", c.Pos, "changes", t.ordinal)
	return nil
}
