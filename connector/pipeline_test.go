package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadtail/leadtail/mapping"
	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources"
)

// journal records the order of protocol steps across the fakes.
type journal struct {
	mu    sync.Mutex
	steps []string
	cond  *sync.Cond
}

func newJournal() *journal {
	j := &journal{}
	j.cond = sync.NewCond(&j.mu)
	return j
}

func (j *journal) add(format string, a ...any) {
	j.mu.Lock()
	j.steps = append(j.steps, fmt.Sprintf(format, a...))
	j.mu.Unlock()
	j.cond.Broadcast()
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.steps...)
}

// waitFor blocks until a step with the prefix is recorded or the deadline.
func (j *journal) waitFor(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	stop := time.AfterFunc(time.Until(deadline), j.cond.Broadcast)
	defer stop.Stop()
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		for _, s := range j.steps {
			if strings.HasPrefix(s, prefix) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no step %q; journal: %v", prefix, j.steps)
		}
		j.cond.Wait()
	}
}

type fakeSource struct {
	j       *journal
	changes []sources.Change
	from    sources.Position
	err     error // returned after the changes instead of waiting for ctx
}

func (s *fakeSource) Stream(ctx context.Context, from sources.Position, emit func(context.Context, sources.Change) error) error {
	s.from = from
	for _, c := range s.changes {
		if err := emit(ctx, c); err != nil {
			return err
		}
		s.j.add("emitted %s", c.Pos)
	}
	if s.err != nil {
		return s.err
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s *fakeSource) Ack(p sources.Position) error { s.j.add("ack %s", p); return nil }
func (s *fakeSource) Close() error                 { return nil }

type fakeSink struct {
	j       *journal
	deliver func(ctx context.Context, events []sink.Event) (sink.Result, error)
}

func (s *fakeSink) Deliver(ctx context.Context, events []sink.Event) (sink.Result, error) {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.EventName
	}
	s.j.add("deliver %s", strings.Join(ids, ","))
	if s.deliver != nil {
		return s.deliver(ctx, events)
	}
	return sink.Result{Accepted: len(events)}, nil
}

type fakeStore struct {
	j     *journal
	start sources.Position
	err   error
}

func (s *fakeStore) Load(context.Context) (sources.Position, error) { return s.start, nil }
func (s *fakeStore) Save(_ context.Context, p sources.Position) error {
	if s.err != nil {
		s.j.add("save-failed %s", p)
		return s.err
	}
	s.j.add("save %s", p)
	return nil
}

func testSet(t *testing.T) *mapping.Set {
	t.Helper()
	cfg, err := LoadWith("../testdata/config/good/minimal.yaml", testEnv(map[string]string{"TEST_TOKEN": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Set
}

// leadChange is an insert into public.leads at the given stage; the
// event name it maps to is the stage's (initial_lead / converted).
func leadChange(id int, stage string, pos sources.Position) sources.Change {
	return sources.Change{Table: "public.leads", Op: sources.OpInsert, CommitTime: time.Now(), Commit: fmt.Sprint(id),
		After: sources.Row{"id": int64(id), "status": stage, "fb_lead_id": "1234567890123456"}, Pos: pos}
}

func newPipeline(t *testing.T, src *fakeSource, snk *fakeSink, st *fakeStore) *Pipeline {
	t.Helper()
	d := sink.DefaultDeliveryConfig()
	d.BatchWait = 20 * time.Millisecond
	d.BatchSize = 2
	d.ShutdownTimeout = time.Second
	d.RetryMin, d.RetryMax = time.Millisecond, 5*time.Millisecond
	return &Pipeline{Source: src, Sink: snk, Store: st, Mappings: testSet(t), Delivery: d}
}

func runPipeline(t *testing.T, p *Pipeline) (cancel func(), wait func() error) {
	t.Helper()
	ctx, cancelFn := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	t.Cleanup(cancelFn)
	return cancelFn, func() error {
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("pipeline did not stop")
			return nil
		}
	}
}

func indexOf(steps []string, s string) int {
	for i, x := range steps {
		if x == s {
			return i
		}
	}
	return -1
}

func TestProtocolDeliverSaveAck(t *testing.T) {
	j := newJournal()
	src := &fakeSource{j: j, changes: []sources.Change{
		leadChange(1, "new", ""), leadChange(2, "won", "p1"), // one transaction, two rows
		{Op: sources.OpNone, Pos: "p2"}, // heartbeat
		leadChange(3, "junk", "p3"),     // skipped: still advances
	}}
	p := newPipeline(t, src, &fakeSink{j: j}, &fakeStore{j: j, start: "p0"})
	cancel, wait := runPipeline(t, p)
	j.waitFor(t, "ack p3")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if src.from != "p0" {
		t.Fatalf("stream started from %q, want the stored p0", src.from)
	}
	steps := j.all()
	d, s, a := indexOf(steps, "deliver initial_lead,converted"), indexOf(steps, "save p1"), indexOf(steps, "ack p1")
	if d < 0 || s < 0 || a < 0 || !(d < s && s < a) {
		t.Fatalf("want deliver < save < ack, got %v", steps)
	}
	if indexOf(steps, "ack p2") < 0 && indexOf(steps, "ack p3") < 0 {
		t.Fatalf("position-only changes must advance: %v", steps)
	}
	c := p.Stats.Snapshot()
	if c.Accepted != 2 || c.Skipped["leads: "+mapping.SkipUnmappedStage+` "junk"`] != 1 {
		t.Fatalf("stats %+v", c)
	}
}

func TestProtocolInOrderCommit(t *testing.T) {
	j := newJournal()
	release := make(chan struct{})
	snk := &fakeSink{j: j, deliver: func(ctx context.Context, ev []sink.Event) (sink.Result, error) {
		if ev[0].EventID != "" && ev[0].EventName == "initial_lead" {
			// The first batch is slow: the second must not be committed first.
			select {
			case <-release:
			case <-ctx.Done():
				return sink.Result{}, ctx.Err()
			}
		}
		return sink.Result{Accepted: len(ev)}, nil
	}}
	src := &fakeSource{j: j, changes: []sources.Change{
		leadChange(1, "new", ""), leadChange(2, "new", "p1"),
		leadChange(3, "won", ""), leadChange(4, "won", "p2"),
	}}
	p := newPipeline(t, src, snk, &fakeStore{j: j})
	cancel, wait := runPipeline(t, p)
	j.waitFor(t, "deliver converted,converted")
	// Batch 2 is done, batch 1 is not: nothing may be saved.
	for _, s := range j.all() {
		if strings.HasPrefix(s, "save") {
			t.Fatalf("saved before the earlier batch was delivered: %v", j.all())
		}
	}
	close(release)
	j.waitFor(t, "ack p2")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if indexOf(j.all(), "save p2") < 0 {
		t.Fatalf("p2 not saved: %v", j.all())
	}
}

func TestProtocolShutdownFlushes(t *testing.T) {
	j := newJournal()
	src := &fakeSource{j: j, changes: []sources.Change{leadChange(1, "new", "p1")}}
	p := newPipeline(t, src, &fakeSink{j: j}, &fakeStore{j: j})
	p.Delivery.BatchWait = time.Hour // only the shutdown can flush it
	cancel, wait := runPipeline(t, p)
	// Emitted items sit in the channel; closing it on shutdown still
	// hands them to the loop, which must flush them.
	j.waitFor(t, "emitted p1")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	steps := j.all()
	if indexOf(steps, "deliver initial_lead") < 0 || indexOf(steps, "ack p1") < 0 {
		t.Fatalf("shutdown must deliver and ack the open batch: %v", steps)
	}
}

func TestProtocolShutdownTimeoutKeepsPosition(t *testing.T) {
	j := newJournal()
	snk := &fakeSink{j: j, deliver: func(ctx context.Context, ev []sink.Event) (sink.Result, error) {
		<-ctx.Done() // Meta outage: never answers
		return sink.Result{}, fmt.Errorf("deliver: %w", ctx.Err())
	}}
	src := &fakeSource{j: j, changes: []sources.Change{leadChange(1, "new", "p1"), leadChange(2, "new", "p2")}}
	p := newPipeline(t, src, snk, &fakeStore{j: j})
	p.Delivery.ShutdownTimeout = 50 * time.Millisecond
	cancel, wait := runPipeline(t, p)
	j.waitFor(t, "deliver")
	start := time.Now()
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("a drain cut off by the timeout is a clean stop, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("shutdown did not respect the timeout")
	}
	for _, s := range j.all() {
		if strings.HasPrefix(s, "save") || strings.HasPrefix(s, "ack") {
			t.Fatalf("position advanced past undelivered events: %v", j.all())
		}
	}
}

func TestProtocolFatalErrors(t *testing.T) {
	t.Run("sink local failure stops without saving", func(t *testing.T) {
		j := newJournal()
		snk := &fakeSink{j: j, deliver: func(context.Context, []sink.Event) (sink.Result, error) {
			return sink.Result{}, errors.New("dead-letter file: no space left on device")
		}}
		src := &fakeSource{j: j, changes: []sources.Change{leadChange(1, "new", "p1")}}
		p := newPipeline(t, src, snk, &fakeStore{j: j})
		_, wait := runPipeline(t, p)
		err := wait()
		if err == nil || !strings.Contains(err.Error(), "no space left") {
			t.Fatalf("want the sink's error, got %v", err)
		}
		for _, s := range j.all() {
			if strings.HasPrefix(s, "save") || strings.HasPrefix(s, "ack") {
				t.Fatalf("advanced after a failed delivery: %v", j.all())
			}
		}
	})
	t.Run("checkpoint save failure does not ack", func(t *testing.T) {
		j := newJournal()
		src := &fakeSource{j: j, changes: []sources.Change{leadChange(1, "new", "p1")}}
		p := newPipeline(t, src, &fakeSink{j: j}, &fakeStore{j: j, err: errors.New("read-only file system")})
		_, wait := runPipeline(t, p)
		if err := wait(); err == nil || !strings.Contains(err.Error(), "save checkpoint") {
			t.Fatalf("want a save error, got %v", err)
		}
		if indexOf(j.all(), "ack p1") >= 0 {
			t.Fatalf("acked without a saved checkpoint: %v", j.all())
		}
	})
	t.Run("source error drains then fails", func(t *testing.T) {
		j := newJournal()
		src := &fakeSource{j: j, changes: []sources.Change{leadChange(1, "new", "p1")}, err: errors.New("slot lost")}
		p := newPipeline(t, src, &fakeSink{j: j}, &fakeStore{j: j})
		_, wait := runPipeline(t, p)
		if err := wait(); err == nil || !strings.Contains(err.Error(), "slot lost") {
			t.Fatalf("want the source error, got %v", err)
		}
		if indexOf(j.all(), "ack p1") < 0 {
			t.Fatalf("what was delivered before the failure must be committed: %v", j.all())
		}
	})
}

type flakyQuerier struct {
	mu    sync.Mutex
	fails int
}

func (q *flakyQuerier) Query(context.Context, string, int, ...any) ([]sources.Row, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fails > 0 {
		q.fails--
		return nil, errors.New("connection reset")
	}
	return []sources.Row{{"email": "a@b.co"}}, nil
}

func TestLookupFailureRetries(t *testing.T) {
	cfg, err := LoadWith("../config.example.yaml", testEnv(map[string]string{"META_ACCESS_TOKEN": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	j := newJournal()
	ch := sources.Change{Table: "public.leads", Op: sources.OpInsert, CommitTime: time.Now(), Commit: "c", Pos: "p1",
		After: sources.Row{"id": int64(1), "status": "new", "deleted": false}}
	p := newPipeline(t, &fakeSource{j: j, changes: []sources.Change{ch}}, &fakeSink{j: j}, &fakeStore{j: j})
	p.Mappings = cfg.Set
	q := &flakyQuerier{fails: 3}
	p.Querier = q
	cancel, wait := runPipeline(t, p)
	j.waitFor(t, "ack p1")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if q.fails != 0 || indexOf(j.all(), "deliver initial_lead") < 0 {
		t.Fatalf("lookup failures must be retried, not skipped: %v", j.all())
	}
}

// TestProtocolWindowBoundsUncommitted: while the oldest batch is held, at
// most MaxInFlight batches are delivered, so a crash resends at most that.
func TestProtocolWindowBoundsUncommitted(t *testing.T) {
	j := newJournal()
	release := make(chan struct{})
	var mu sync.Mutex
	delivered := 0
	const firstLead = 1234567890123000
	snk := &fakeSink{j: j, deliver: func(ctx context.Context, ev []sink.Event) (sink.Result, error) {
		mu.Lock()
		delivered++
		mu.Unlock()
		if ev[0].UserData.LeadID == firstLead { // the oldest batch is held
			select {
			case <-release:
			case <-ctx.Done():
				return sink.Result{}, ctx.Err()
			}
		}
		return sink.Result{Accepted: len(ev)}, nil
	}}
	var changes []sources.Change
	for i := 0; i < 40; i++ {
		c := leadChange(i, "new", sources.Position(fmt.Sprintf("p%02d", i)))
		c.After["fb_lead_id"] = fmt.Sprint(firstLead + i)
		changes = append(changes, c)
	}
	src := &fakeSource{j: j, changes: changes}
	p := newPipeline(t, src, snk, &fakeStore{j: j})
	p.Delivery.BatchSize = 1
	p.Delivery.MaxInFlight = 2
	cancel, wait := runPipeline(t, p)
	j.waitFor(t, "deliver")
	// Give the loop every chance to overrun the window: the source has
	// 40 changes ready and the second slot is free.
	j.waitFor(t, "emitted p05")
	mu.Lock()
	n := delivered
	mu.Unlock()
	if n > 2 {
		t.Fatalf("%d batches delivered while the oldest was held, want at most MaxInFlight (2)", n)
	}
	close(release)
	j.waitFor(t, "ack p39")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}
