package connector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"

	"github.com/leadtail/leadtail/mapping"
	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources"
)

// Pipeline moves changes from a Source through the mappings to a Sink and
// checkpoints what was delivered. See the package doc for the protocol.
type Pipeline struct {
	Source   Source
	Sink     Sink
	Store    CheckpointStore
	Mappings *mapping.Set
	// Querier runs the mappings' lookups; usually the source itself.
	Querier  mapping.Querier
	Delivery sink.DeliveryConfig
	Logger   hclog.Logger
	// Stats counts what happened; may be nil.
	Stats *Stats
	// Metrics, when set, is fed the pipeline's counters and lag.
	Metrics *Metrics

	// seq numbers the changes received (the emitter's only).
	seq uint64
}

// item is what one change contributes to a batch.
type item struct {
	events []sink.Event
	pos    sources.Position
	seq    uint64 // of the last change folded in
}

type batch struct {
	seq    int
	events []sink.Event
	pos    sources.Position
	last   uint64 // item.seq of the last item folded in
	res    sink.Result
	err    error
}

// Run streams until ctx is cancelled (then drains, see the package doc) or
// a fatal error. A clean stop returns nil.
func (p *Pipeline) Run(ctx context.Context) error {
	log := p.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if p.Stats == nil {
		p.Stats = NewStats()
	}
	from, err := p.Store.Load(ctx)
	if err != nil {
		return fmt.Errorf("load checkpoint: %w", err)
	}
	log.Info("pipeline starting", "position", string(from))

	srcCtx, cancelSrc := context.WithCancel(ctx)
	defer cancelSrc()
	// Deliveries outlive ctx by up to the shutdown timeout, so a SIGTERM
	// drains what is in flight instead of abandoning it.
	dctx, cancelDeliver := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeliver()
	var drainTimer *time.Timer
	var timerMu sync.Mutex
	stopAfter := context.AfterFunc(ctx, func() {
		timerMu.Lock()
		defer timerMu.Unlock()
		log.Info("stopping: draining in-flight batches", "timeout", p.Delivery.ShutdownTimeout)
		drainTimer = time.AfterFunc(p.Delivery.ShutdownTimeout, cancelDeliver)
	})
	defer func() {
		stopAfter()
		timerMu.Lock()
		if drainTimer != nil {
			drainTimer.Stop()
		}
		timerMu.Unlock()
	}()

	// Source → mapper → batching loop. Mapping (lookups, normalising,
	// hashing) runs on its own goroutine so that the source decodes the
	// next changes meanwhile: in the same goroutine the two took turns,
	// and catching up was bounded by their sum. One mapper keeps the order.
	// A change the source has handed over is mapped and delivered even on
	// shutdown (the source stops, the mapper drains what it was given), so
	// the mapper runs on the delivery context, and stops early only when
	// the loop has ended.
	changes := make(chan seqChange, 64)
	items := make(chan item, 16)
	mctx, loopEnded := context.WithCancel(dctx)
	defer loopEnded()
	var g errgroup.Group
	g.Go(func() error {
		defer close(items)
		err := p.mapper(mctx, changes, items)
		if err != nil {
			cancelSrc()
			if mctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil // the loop's own result (or the drain timeout) tells
			}
		}
		return err
	})
	g.Go(func() error {
		defer close(changes)
		err := p.Source.Stream(srcCtx, from, p.emitter(changes))
		if err != nil && srcCtx.Err() != nil && errors.Is(err, context.Canceled) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		defer loopEnded()
		err := p.loop(dctx, items, log)
		if err != nil {
			cancelSrc()
		}
		return err
	})
	err = g.Wait()
	if err == nil && ctx.Err() != nil && dctx.Err() != nil {
		log.Warn("shutdown timeout reached: undelivered batches will be sent again after restart")
	}
	log.Info("pipeline stopped", p.Stats.logPairs()...)
	return err
}

// seqChange is a change numbered in stream order.
type seqChange struct {
	ch  sources.Change
	seq uint64
}

// emitter numbers each change and hands it to the mapper. Blocking on the
// channel is the backpressure the source expects.
func (p *Pipeline) emitter(changes chan<- seqChange) func(context.Context, sources.Change) error {
	return func(ctx context.Context, ch sources.Change) error {
		p.seq++
		p.Metrics.seen(p.seq, ch.CommitTime)
		select {
		case changes <- seqChange{ch: ch, seq: p.seq}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// mapper maps each change, in order, and hands its events and position to
// the loop. It returns when changes is closed (after the last one), or
// with ctx's error.
func (p *Pipeline) mapper(ctx context.Context, changes <-chan seqChange, items chan<- item) error {
	for sc := range changes {
		ch := sc.ch
		it := item{pos: ch.Pos, seq: sc.seq}
		if ch.Op != sources.OpNone {
			outs, err := p.mapWithRetry(ctx, ch)
			if err != nil {
				return err
			}
			for _, o := range outs {
				if o.Event == nil {
					p.Stats.skip(o.Mapping, o.Skip)
					p.Metrics.skip(o.Mapping, o.Skip)
					continue
				}
				for _, d := range o.Dropped {
					p.Stats.drop(o.Mapping, d.Key, d.Reason)
					p.Metrics.drop(o.Mapping, d.Key, d.Reason)
				}
				it.events = append(it.events, *o.Event)
			}
			p.Stats.change()
			p.Metrics.change()
		}
		if len(it.events) == 0 && it.pos == "" {
			continue
		}
		select {
		case items <- it:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// mapWithRetry retries lookup failures (the database is unwell) with
// backoff: skipping the change would lose its event.
func (p *Pipeline) mapWithRetry(ctx context.Context, ch sources.Change) ([]mapping.Outcome, error) {
	wait := p.Delivery.RetryMin
	for attempt := 1; ; attempt++ {
		outs, err := p.Mappings.Map(ctx, ch, p.Querier)
		if err == nil {
			return outs, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if p.Logger != nil {
			p.Logger.Warn("mapping lookup failed, retrying", "table", ch.Table, "attempt", attempt, "wait", wait, "error", err)
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		wait = min(wait*2, p.Delivery.RetryMax)
	}
}

// loop batches items, delivers batches concurrently and commits them in order.
func (p *Pipeline) loop(ctx context.Context, items <-chan item, log hclog.Logger) error {
	maxIn := max(p.Delivery.MaxInFlight, 1)
	done := make(chan *batch, maxIn)
	var (
		cur       = &batch{}
		ready     []*batch
		inflight  int
		nextSeq   int
		commitSeq int
		completed = map[int]*batch{}
		timer     *time.Timer
		timerC    <-chan time.Time
		closed    bool
		fatal     error
		wg        sync.WaitGroup
	)
	defer wg.Wait()
	closeCur := func() {
		if len(cur.events) == 0 && cur.pos == "" {
			return
		}
		cur.seq = nextSeq
		nextSeq++
		ready = append(ready, cur)
		cur = &batch{}
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
	}
	commit := func() error {
		var pos sources.Position
		var failed error
		for {
			b, ok := completed[commitSeq]
			if !ok {
				break
			}
			if b.err != nil {
				// Stay on the failed batch: nothing after it may be committed.
				failed = b.err
				break
			}
			delete(completed, commitSeq)
			commitSeq++
			p.Stats.delivered(b.res)
			p.Metrics.delivered(b.last)
			if b.pos != "" {
				pos = b.pos
			}
		}
		if pos != "" {
			// Save before Ack: a crash between the two re-reads from the file.
			if err := p.Store.Save(context.WithoutCancel(ctx), pos); err != nil {
				return fmt.Errorf("save checkpoint: %w", err)
			}
			p.Metrics.checkpointed()
			if err := p.Source.Ack(pos); err != nil {
				return fmt.Errorf("ack position: %w", err)
			}
			log.Trace("checkpoint saved", "position", string(pos))
		}
		return failed
	}
	for {
		// The window counts uncommitted batches, not just requests in flight:
		// while the oldest batch is held (a slow or hung answer), later ones
		// would otherwise be delivered without bound, kept in memory, and
		// all sent again after a crash.
		for fatal == nil && len(ready) > 0 && ready[0].seq-commitSeq < maxIn {
			b := ready[0]
			ready = ready[1:]
			if len(b.events) == 0 {
				completed[b.seq] = b
				if err := commit(); err != nil {
					fatal = err
				}
				continue
			}
			inflight++
			p.Metrics.batch(len(b.events))
			wg.Add(1)
			go func() {
				defer wg.Done()
				log.Debug("delivering batch", "batch_size", len(b.events))
				b.res, b.err = p.Sink.Deliver(ctx, b.events)
				done <- b
			}()
		}
		if (closed || fatal != nil) && inflight == 0 && (len(ready) == 0 || fatal != nil) {
			return fatal
		}
		in := items
		if closed || fatal != nil || len(ready) > 0 {
			in = nil // backpressure: the source waits while batches queue up
		}
		select {
		case it, ok := <-in:
			if !ok {
				closed = true
				closeCur()
				continue
			}
			cur.events = append(cur.events, it.events...)
			cur.last = it.seq
			if it.pos != "" {
				cur.pos = it.pos
			}
			if len(cur.events) >= p.Delivery.BatchSize {
				closeCur()
			} else if timer == nil {
				timer = time.NewTimer(p.Delivery.BatchWait)
				timerC = timer.C
			}
		case <-timerC:
			timer, timerC = nil, nil
			closeCur()
		case b := <-done:
			inflight--
			completed[b.seq] = b
			if fatal == nil {
				if err := commit(); err != nil {
					if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
						// Drain cut off by the shutdown timeout: not an error,
						// the batch is simply not committed.
						closed = true
						ready = nil
						continue
					}
					fatal = err
				}
			}
		}
	}
}
