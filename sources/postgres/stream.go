package postgres

// Streaming design
//
// One Stream call runs a loop of sessions; a session is one replication
// connection. Each session is an errgroup of three goroutines, all finished
// before the session (and so Stream) returns:
//
//   - the reader owns the replication connection: it is the only goroutine
//     that reads from or writes to it. It parses CopyData frames into
//     pgoutput messages and hands them to the emitter over a bounded
//     channel. It sends a standby status update every StatusInterval and
//     when the server asks for one. When the channel is full (emit is
//     blocked: backpressure from the sink) the reader stops reading but
//     keeps sending status updates on a timer, so the walsender, which
//     processes replies even while its own send buffer is full, never hits
//     wal_sender_timeout however long the sink retries. Not reading means
//     the socket buffers fill and the server waits: memory stays bounded.
//     The flip side: a stopping walsender waits for our flush position to
//     catch up, so status updates alone would hold a PostgreSQL shutdown
//     open while the sink is stuck. While paused, and whenever the server
//     asks for a reply, the reader therefore probes the server over the
//     regular pool (at most once a second) and drops the connection when
//     the server no longer answers queries; see reader.probe.
//   - the emitter decodes messages into sources.Change values and calls
//     emit, in stream order. It holds the relation cache of the connection.
//   - the heartbeat writes pg_logical_emit_message on an idle stream.
//
// Positions. A Position is the text form of an LSN. Change.Commit is the
// transaction's commit LSN and Change.Ordinal the index of the mapped row
// in it, so (Commit, Ordinal) names a change stably across replays. Rows are
// streamed as they arrive (BEGIN carries the commit LSN and time), so the
// last row of a transaction is only known at COMMIT: every transaction ends
// with an OpNone marker change whose Pos is the transaction's end LSN. That
// marker is also the only change of a transaction without mapped rows.
// Other OpNone changes carry the LSN of a heartbeat (or any non-
// transactional logical message), or the server's WAL end from a keepalive
// when nothing is in flight. The server skips, on restart from L,
// exactly the transactions whose commit record starts before L, so acking
// a transaction's end LSN never skips the next one and never replays it.
//
// Acks. The flush (and apply) position of every status update is the
// highest Ack'ed LSN, set explicitly; pglogrepl's SendStandbyStatusUpdate
// would copy the write position into a zero flush position, confirming
// data that was received but not delivered. The write position is the
// last received LSN, which stops the server from sending a keepalive on
// every idle loop.
//
// Nothing in flight means every position handed to the emitter has been
// Ack'ed and no transaction is open. Only then is a keepalive's WAL end
// passed on as a position (so a slot whose tables are quiet advances while
// other tables are busy), and only then does the heartbeat fire (so a quiet
// database still produces a position to ack).
//
// Reconnects. Any error but a fatal one (see FatalError) or emit's own
// ends the session; the loop reconnects with capped, jittered exponential
// backoff from the last Ack'ed position, with a fresh relation cache. The
// emitter remembers how far it got in this Stream call and skips what the
// server sends again, so a reconnect does not hand the caller a change
// twice. emit's context is cancelled when the session ends; a change whose
// emit did not return nil is emitted again after the reconnect.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sync/errgroup"

	"github.com/leadtail/leadtail/sources"
)

// streamState lives for one Stream call, across reconnects.
type streamState struct {
	// Written by the reader, read by the heartbeat.
	pending atomic.Uint64 // highest position handed to the emitter
	inTxn   atomic.Bool   // between BEGIN and COMMIT on the wire

	// Stream goroutine only: when this instance became a standby (another
	// consumer held the slot); zero while active.
	standbySince time.Time

	// Reader only.
	received  pglogrepl.LSN // highest WAL position received
	serverEnd pglogrepl.LSN // server WAL end from the last keepalive

	// Emitter only.
	lastPos       pglogrepl.LSN       // last Pos emitted
	partialCommit pglogrepl.LSN       // commit LSN of a transaction emitted in part
	partialNext   int                 // its next ordinal to emit
	emitted       int64               // changes emitted
	columns       map[string][]string // per mapped table, from its last Relation message
	baseTypes     map[uint32]uint32   // domain OID -> base type OID
}

func (st *streamState) idle(acked uint64) bool {
	return !st.inTxn.Load() && st.pending.Load() <= acked
}

// emitError carries an error returned by emit: it ends Stream as is.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

// Stream calls emit for each committed change of the mapped tables in
// commit order, starting strictly after from, and returns only when ctx is
// cancelled (ctx.Err()), emit fails (its error) or on an error reconnecting
// cannot fix (a *FatalError: slot lost or missing, mapped column dropped,
// permission denied). Connection loss, server restarts and timeouts are
// retried with backoff. emit may block: that is backpressure, and the slot
// is kept alive meanwhile. emit's ctx ends with Stream's ctx and also when
// the replication connection is lost or released (server shutting down);
// a change whose emit returned an error then is emitted again after the
// reconnect, and changes whose emit returned nil are not.
//
// Where it starts: the slot's confirmed_flush_lsn is durable on the server
// and the checkpoint (from) on our side. If from is ahead, the slot simply
// has not heard of the latest acks (the last status update came before the
// final Ack, or the process died in between): start at from, everything
// up to it is delivered. If from is behind, the server cannot go back
// (it may already have removed that WAL, and it silently moves a start
// below confirmed_flush_lsn up to it): start at the slot, and say so in
// the log.
//
// An empty from means no checkpoint: the slot is created when missing and
// streaming starts at its position. A non-empty from with a missing slot
// is an error, as is a slot whose WAL was removed (wal_status = lost).
func (s *Source) Stream(ctx context.Context, from sources.Position, emit func(context.Context, sources.Change) error) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("postgres: Stream is already running on this Source")
	}
	defer s.running.Store(false)
	fromLSN, err := parsePosition(from)
	if err != nil {
		return err
	}
	st := &streamState{columns: map[string][]string{}, baseTypes: map[uint32]uint32{}}
	bo := sources.Backoff{Min: s.backoffMin, Max: s.backoffMax}

	var slot slotState
	for attempt := 1; ; attempt++ {
		if slot, err = s.setup(ctx, fromLSN); err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isFatal(err) {
			return err
		}
		wait := bo.Next()
		s.log.Warn("setup failed, retrying", "error", err, "attempt", attempt, "wait", wait)
		if err := sources.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	start := max(fromLSN, slot.confirmed)
	if fromLSN != 0 && fromLSN < slot.confirmed {
		s.log.Warn("checkpoint behind slot, starting at slot", "position", fromLSN.String(), "slot_position", slot.confirmed.String())
	}
	// Everything up to start is delivered: it is the floor of every flush
	// position we report, never 0 (which pglogrepl would replace).
	_ = s.Ack(position(start))
	s.log.Info("stream starting", "slot", s.cfg.Slot, "publication", s.cfg.Publication, "position", start.String())

	bo.Reset()
	for attempt := 1; ; attempt++ {
		began := time.Now()
		progressed, err := s.session(ctx, st, emit)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isSlotInUse(err) {
			// Another consumer streams from the slot: standby, not failure.
			if err := s.standby(ctx, st, err); err != nil {
				return err
			}
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
		s.log.Warn("replication connection lost, reconnecting", "error", err, "attempt", attempt, "wait", wait,
			"position", pglogrepl.LSN(s.acked.Load()).String())
		if err := sources.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// session runs one replication connection until it fails or ctx ends.
// progressed reports whether it emitted anything new: a connection that
// fails again and again on the same data must keep backing off.
func (s *Source) session(ctx context.Context, st *streamState, emit func(context.Context, sources.Change) error) (progressed bool, err error) {
	conn, err := pgconn.ConnectConfig(ctx, s.replConf)
	if err != nil {
		return false, classify(fmt.Errorf("postgres: replication connection: %w", err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()

	// The slot may have been dropped or lost while we were away.
	acked := pglogrepl.LSN(s.acked.Load())
	slot, err := s.ensureSlot(ctx, acked)
	if err != nil {
		return false, err
	}
	if slot.confirmed > acked {
		s.log.Warn("slot ahead of acked position, starting at slot", "position", acked.String(), "slot_position", slot.confirmed.String())
	}
	start := max(acked, slot.confirmed)
	// Everything up to the slot's position is delivered, by us or by the
	// instance we take over from: it is the floor of our flush position.
	_ = s.Ack(position(start))
	args := []string{
		// Version 1 without streaming: whole transactions, in commit
		// order (pglogrepl speaks 1 and 2 only; 2 adds only streaming).
		"proto_version '1'",
		"publication_names '" + strings.ReplaceAll(s.cfg.Publication, "'", "''") + "'",
		"messages 'true'", // heartbeats arrive as logical messages
	}
	if err := pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, start,
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args}); err != nil {
		if slotInUse(err) {
			return false, &slotInUseError{err}
		}
		return false, classify(fmt.Errorf("postgres: start replication on slot %s: %w", s.cfg.Slot, err))
	}
	s.sessions.Add(1)
	s.setStreaming(true, "")
	defer func() { s.setStreaming(false, streamDownReason(err)) }()
	s.log.Info("replication started", "slot", s.cfg.Slot, "position", start.String())
	s.leaveStandby(st)
	st.received = max(st.received, start)
	// A new connection gets fresh Relation messages; a transaction cut off
	// by the old one is not open any more.
	st.inTxn.Store(false)

	items := make(chan item, s.queueLen)
	emittedBefore := st.emitted
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.read(gctx, conn, st, items) })
	g.Go(func() error { return s.emitLoop(gctx, st, items, emit) })
	if s.cfg.HeartbeatInterval > 0 {
		g.Go(func() error { s.heartbeat(gctx, st); return nil })
	}
	err = g.Wait()
	if !conn.IsClosed() {
		// Best effort: report the latest acks before closing.
		_ = s.sendStatus(conn, st, false)
	}
	return st.emitted > emittedBefore, err
}

// item is one unit from the reader to the emitter: a pgoutput message, or
// (msg == nil) a position-only keepalive WAL end.
type item struct {
	msg pglogrepl.Message
	pos pglogrepl.LSN
}

// read is the reader goroutine; see the design notes at the top.
func (s *Source) read(ctx context.Context, conn *pgconn.PgConn, st *streamState, items chan<- item) error {
	r := &reader{s: s, conn: conn, st: st, items: items, timeout: s.senderTimeout(ctx), lastMsg: time.Now()}
	// Report our flush position right away: a fresh connection otherwise
	// shows nothing until the first interval passes.
	if err := r.status(false); err != nil {
		return err
	}
	// Reads wait on a socket deadline, not on a context: a context per
	// message cost pgconn a watcher and a timer each, about a tenth of the
	// daemon's CPU when catching up. ctx's end still interrupts a read.
	nc := conn.Conn()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Now()) })
	defer func() {
		if stop() {
			_ = nc.SetReadDeadline(time.Time{})
		}
	}()
	var deadline time.Time
	for {
		if time.Now().After(r.nextStatus) {
			if err := r.status(false); err != nil {
				return err
			}
		}
		if err := r.pushIdle(ctx); err != nil {
			return err
		}
		if err := r.checkAlive(); err != nil {
			return err
		}
		if !r.nextStatus.Equal(deadline) {
			deadline = r.nextStatus
			if err := nc.SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("postgres: receive: %w", err)
			}
		}
		// After any deadline change: a cancellation that set its own
		// deadline before ours is seen here.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("postgres: receive: %w", err)
		}
		r.s.lastReceived.Store(time.Now().UnixNano())
		r.heard()
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := r.copyData(ctx, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			pgErr := pgconn.ErrorResponseToPgError(m)
			if pgErr.Code == "42704" { // undefined_object
				// pgoutput reads the publication as of each change: WAL
				// from before its creation cannot be decoded.
				return fatalf("postgres: replication: %w (if the publication was created after the slot's position, "+
					"drop the slot with SELECT pg_drop_replication_slot('%s') and delete the checkpoint to start from now)", pgErr, s.cfg.Slot)
			}
			return classify(fmt.Errorf("postgres: replication: %w", pgErr))
		case *pgproto3.CopyDone:
			return errors.New("postgres: server ended the replication stream")
		}
	}
}

type reader struct {
	s          *Source
	conn       *pgconn.PgConn
	st         *streamState
	items      chan<- item
	nextStatus time.Time
	blocked    bool
	lastProbe  time.Time
	// Liveness (liveness.go): the server's wal_sender_timeout, when the
	// last message arrived, whether a reply was asked for since.
	timeout time.Duration
	lastMsg time.Time
	pinged  bool
}

// probeEvery rate-limits probe.
const probeEvery = time.Second

// probe checks over the regular pool that the server still serves
// queries. It runs while reads are paused and when the server asks for a
// reply. Why: a walsender stops only once the client's flush position has
// reached everything it sent, and our flush position is the last Ack.
// While the sink is stuck, the status updates that keep the connection
// alive would also hold a fast shutdown of PostgreSQL open for as long as
// the sink stays stuck. A server that refuses or ends queries is shutting
// down (or gone): drop the replication connection so it can stop, and
// reconnect from the last Ack later.
func (r *reader) probe(ctx context.Context) error {
	if time.Since(r.lastProbe) < probeEvery {
		return nil
	}
	r.lastProbe = time.Now()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := r.s.pool.Exec(pctx, "SELECT 1")
	if err == nil || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("postgres: server not answering queries (shutting down?), releasing the replication connection: %w", err)
}

func (r *reader) status(reply bool) error {
	if err := r.s.sendStatus(r.conn, r.st, reply); err != nil {
		return err
	}
	r.nextStatus = time.Now().Add(r.s.cfg.StatusInterval)
	return nil
}

func (r *reader) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	st := r.st
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("postgres: keepalive: %w", err)
		}
		st.received = max(st.received, pkm.ServerWALEnd)
		st.serverEnd = max(st.serverEnd, pkm.ServerWALEnd)
		if pkm.ReplyRequested {
			if err := r.status(false); err != nil {
				return err
			}
			// A shutting-down server asks again and again: it waits for our
			// flush position to reach its WAL end.
			if err := r.probe(ctx); err != nil {
				return err
			}
		}
		return r.pushIdle(ctx)
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("postgres: xlogdata: %w", err)
		}
		// CopyData is only valid until the next receive.
		msg, err := parseLogical(bytes.Clone(xld.WALData))
		if err != nil {
			return err
		}
		st.received = max(st.received, xld.WALStart)
		switch m := msg.(type) {
		case *pglogrepl.BeginMessage:
			st.inTxn.Store(true)
		case *pglogrepl.CommitMessage:
			st.inTxn.Store(false)
			st.pending.Store(max(st.pending.Load(), uint64(m.TransactionEndLSN)))
		case *pglogrepl.LogicalDecodingMessage:
			if !m.Transactional {
				st.pending.Store(max(st.pending.Load(), uint64(m.LSN)))
			}
		}
		return r.push(ctx, item{msg: msg})
	}
	return nil
}

// pushIdle passes the server's WAL end on as a position when nothing is in
// flight, so that an acked, idle slot follows the server.
func (r *reader) pushIdle(ctx context.Context) error {
	st := r.st
	acked := r.s.acked.Load()
	end := uint64(st.serverEnd)
	if !st.idle(acked) || end <= acked || end <= st.pending.Load() {
		return nil
	}
	st.pending.Store(end)
	return r.push(ctx, item{pos: st.serverEnd})
}

// push hands it to the emitter. While the queue is full it keeps sending
// status updates so the server does not time the connection out.
func (r *reader) push(ctx context.Context, it item) error {
	select {
	case r.items <- it:
		return nil
	default:
	}
	if !r.blocked {
		r.blocked = true
		r.s.log.Debug("emit blocked, pausing reads")
	}
	defer func() {
		r.blocked = false
		r.heard() // time spent not reading is not the server's silence
	}()
	for {
		timer := time.NewTimer(time.Until(r.nextStatus))
		select {
		case r.items <- it:
			timer.Stop()
			return nil
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
			if r.s.noStatusWhileBlocked {
				r.nextStatus = time.Now().Add(r.s.cfg.StatusInterval)
				continue
			}
			if err := r.status(false); err != nil {
				return err
			}
			if err := r.probe(ctx); err != nil {
				return err
			}
		}
	}
}

// sendStatus writes a standby status update with every position set
// explicitly: flush = apply = the last Ack'ed LSN, write = the last
// received (never below flush).
func (s *Source) sendStatus(conn *pgconn.PgConn, st *streamState, reply bool) error {
	flush := s.acked.Load()
	write := max(uint64(st.received), flush)
	buf := make([]byte, 0, 1+4+1+8*4+1)
	// CopyData frame: 'd', int32 length (self-inclusive), payload.
	buf = append(buf, 'd')
	buf = binary.BigEndian.AppendUint32(buf, 4+1+8*4+1)
	buf = append(buf, pglogrepl.StandbyStatusUpdateByteID)
	buf = binary.BigEndian.AppendUint64(buf, write)
	buf = binary.BigEndian.AppendUint64(buf, flush)
	buf = binary.BigEndian.AppendUint64(buf, flush)
	buf = binary.BigEndian.AppendUint64(buf, uint64(pgTime(time.Now())))
	if reply {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	if err := conn.Frontend().SendUnbufferedEncodedCopyData(buf); err != nil {
		return fmt.Errorf("postgres: send standby status: %w", err)
	}
	s.statusSent.Add(1)
	s.log.Trace("standby status sent", "position", pglogrepl.LSN(flush).String())
	return nil
}

// pgTime is microseconds since 2000-01-01 UTC, the protocol's clock.
func pgTime(t time.Time) int64 {
	const unixToY2K = 946684800 * 1_000_000
	return t.UnixMicro() - unixToY2K
}

// parseLogical decodes a pgoutput message. pglogrepl does no bounds
// checks, so a truncated frame panics; that becomes an error, which ends
// the session and reconnects.
func parseLogical(data []byte) (msg pglogrepl.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			msg, err = nil, fmt.Errorf("postgres: malformed pgoutput message (%d bytes): %v", len(data), p)
		}
	}()
	if len(data) == 0 {
		return nil, errors.New("postgres: empty pgoutput message")
	}
	msg, err = pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse pgoutput message %q: %w", data[0], err)
	}
	return msg, nil
}

// heartbeat writes a logical message every HeartbeatInterval while the
// stream is idle, so that a quiet database still yields a position to ack
// and the slot's confirmed_flush_lsn keeps up with the server.
func (s *Source) heartbeat(ctx context.Context, st *streamState) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !st.idle(s.acked.Load()) {
			continue
		}
		_, err := s.pool.Exec(ctx, `SELECT pg_logical_emit_message(false, $1::text, ''::text)`, HeartbeatPrefix)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			// Once per failure streak: a missing privilege would repeat forever.
			s.log.Warn("heartbeat failed", "error", err)
			failing = true
		case err == nil && failing:
			s.log.Info("heartbeat recovered")
			failing = false
		}
	}
}
