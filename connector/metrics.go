package connector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/leadtail/leadtail/mapping"
	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources"
)

// BuildInfo names the running binary (leadtail_build_info).
type BuildInfo struct {
	Version, Commit string
}

// Metrics is leadtail's Prometheus instrumentation, on a registry of its
// own (never the global one). Label values are mapping names, event
// names, Meta keys, Meta error codes and leadtail's fixed reason strings:
// never row data, contact data or tokens.
//
// The pipeline counts through the unexported methods, the sink through
// SinkObserver; gauges that describe other systems (the source's lag, the
// sink's state, the dead-letter file) are read when scraped, through the
// Watch* functions. Every method is safe on a nil *Metrics (no metrics)
// and for concurrent use.
type Metrics struct {
	reg   *prometheus.Registry
	names []string
	log   hclog.Logger
	now   func() time.Time

	changes        prometheus.Counter
	sent           *prometheus.CounterVec
	deadLettered   *prometheus.CounterVec
	skipped        *prometheus.CounterVec
	dropped        *prometheus.CounterVec
	requests       *prometheus.CounterVec
	requestSeconds prometheus.Histogram
	retries        *prometheus.CounterVec
	warnings       prometheus.Counter
	batchSize      prometheus.Histogram
	latency        prometheus.Histogram
	lastCommit     prometheus.Gauge
	lastCheckpoint prometheus.Gauge

	lag lagTracker
	scr scraped
}

// Metric names. The Grafana dashboard in deploy/ uses them; a test checks
// that every name it uses is registered.
const (
	metricBuildInfo          = "leadtail_build_info"
	metricChanges            = "leadtail_changes_total"
	metricEventsSent         = "leadtail_events_sent_total"
	metricEventsDeadLettered = "leadtail_events_dead_lettered_total"
	metricChangesSkipped     = "leadtail_changes_skipped_total"
	metricValuesDropped      = "leadtail_values_dropped_total"
	metricRequests           = "leadtail_meta_requests_total"
	metricRequestSeconds     = "leadtail_meta_request_duration_seconds"
	metricRetries            = "leadtail_meta_retries_total"
	metricWarnings           = "leadtail_meta_event_warnings_total"
	metricBatchSize          = "leadtail_batch_size_events"
	metricLatency            = "leadtail_commit_to_accepted_seconds"
	metricLastCommit         = "leadtail_source_last_commit_timestamp_seconds"
	metricLastCheckpoint     = "leadtail_checkpoint_timestamp_seconds"
	metricThrottled          = "leadtail_meta_throttled"
	metricHalted             = "leadtail_meta_halted"
	metricDeadLetters        = "leadtail_dead_letters"
	metricSourceUp           = "leadtail_source_up"
	metricLagBytes           = "leadtail_replication_lag_bytes"
	metricLagSeconds         = "leadtail_replication_lag_seconds"
	metricRetainedBytes      = "leadtail_replication_retained_bytes"
	metricFilesBehind        = "leadtail_replication_binlog_files_behind"
	metricTxBehind           = "leadtail_replication_lag_transactions"
	metricHeartbeatAge       = "leadtail_source_heartbeat_age_seconds"
)

// sourceStatsTimeout bounds the database round trip of a scrape.
const sourceStatsTimeout = 3 * time.Second

// NewMetrics returns the metrics of one process, with Go runtime and
// process collectors. log receives (at Debug) why a scrape could not read
// the source's lag; nil discards.
func NewMetrics(build BuildInfo, log hclog.Logger) *Metrics {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: log, now: time.Now}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: metricBuildInfo,
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": orUnknown(build.Version), "commit": orUnknown(build.Commit), "go_version": runtime.Version()}})
	info.Set(1)
	m.register(metricBuildInfo, info)

	m.changes = prometheus.NewCounter(prometheus.CounterOpts{Name: metricChanges,
		Help: "Row changes received from the source (transaction markers and heartbeats not counted)."})
	m.register(metricChanges, m.changes)
	m.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricEventsSent,
		Help: "Events accepted by Meta (with meta.dry_run: logged instead of sent)."}, []string{"mapping", "event_name"})
	m.register(metricEventsSent, m.sent)
	m.deadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricEventsDeadLettered,
		Help: "Events written to the dead-letter file, by reason (leadtail's check, or Meta's error code)."},
		[]string{"mapping", "event_name", "reason"})
	m.register(metricEventsDeadLettered, m.deadLettered)
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricChangesSkipped,
		Help: "Changes a mapping turned into no event, by reason."}, []string{"mapping", "reason"})
	m.register(metricChangesSkipped, m.skipped)
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricValuesDropped,
		Help: "Contact values left out of an event because they failed normalisation."}, []string{"mapping", "key", "reason"})
	m.register(metricValuesDropped, m.dropped)
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRequests,
		Help: "Requests to the Conversions API by outcome: class (ok, transient, throttled, halt, stale, bad_event) and Meta's error code and subcode (0: none)."},
		[]string{"class", "code", "subcode"})
	m.register(metricRequests, m.requests)
	m.requestSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: metricRequestSeconds,
		Help:    "Duration of requests to the Conversions API.",
		Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}})
	m.register(metricRequestSeconds, m.requestSeconds)
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRetries,
		Help: "Requests that will be sent again, by why: transient (Meta unwell, network), throttled, halted (configuration refused)."},
		[]string{"reason"})
	m.register(metricRetries, m.retries)
	m.warnings = prometheus.NewCounter(prometheus.CounterOpts{Name: metricWarnings,
		Help: "Events Meta accepted with a warning (messages, or events_received smaller than sent)."})
	m.register(metricWarnings, m.warnings)
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: metricBatchSize,
		Help:    "Events per batch handed to the sink.",
		Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}})
	m.register(metricBatchSize, m.batchSize)
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: metricLatency,
		Help:    "Time from the source's commit to Meta's acceptance of the event.",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400}})
	m.register(metricLatency, m.latency)
	m.lastCommit = prometheus.NewGauge(prometheus.GaugeOpts{Name: metricLastCommit,
		Help: "Commit time (Unix seconds) of the newest change received from the source."})
	m.register(metricLastCommit, m.lastCommit)
	m.lastCheckpoint = prometheus.NewGauge(prometheus.GaugeOpts{Name: metricLastCheckpoint,
		Help: "When (Unix seconds) the checkpoint was last saved."})
	m.register(metricLastCheckpoint, m.lastCheckpoint)

	m.scr = scraped{
		throttled:    m.desc(metricThrottled, "1 while Meta throttles and sending pauses."),
		halted:       m.desc(metricHalted, "1 while delivery is halted because Meta refuses the configuration (token, permission, dataset)."),
		deadLetters:  m.desc(metricDeadLetters, "Records in the dead-letter file."),
		sourceUp:     m.desc(metricSourceUp, "1 while the replication stream is connected."),
		lagBytes:     m.desc(metricLagBytes, "WAL/binlog bytes between the server's current end and the position it has as acknowledged (PostgreSQL: the slot's confirmed_flush_lsn)."),
		lagSeconds:   m.desc(metricLagSeconds, "Age of the oldest change received but not yet delivered or dead-lettered; 0 when caught up."),
		retained:     m.desc(metricRetainedBytes, "WAL the server retains for the slot (PostgreSQL: current WAL minus restart_lsn)."),
		filesBehind:  m.desc(metricFilesBehind, "Binlog files after the one holding the acknowledged position (MySQL/MariaDB file positions)."),
		txBehind:     m.desc(metricTxBehind, "Transactions the server committed past the acknowledged position (MySQL/MariaDB GTID positions)."),
		heartbeatAge: m.desc(metricHeartbeatAge, "Seconds since the last message (data, keepalive or heartbeat) on the replication connection."),
		m:            m,
	}
	m.reg.MustRegister(&m.scr)
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (m *Metrics) register(name string, c prometheus.Collector) {
	m.reg.MustRegister(c)
	m.names = append(m.names, name)
}

func (m *Metrics) desc(name, help string) *prometheus.Desc {
	m.names = append(m.names, name)
	return prometheus.NewDesc(name, help, nil, nil)
}

// Names returns the names of leadtail's own metrics (not go_* and process_*).
func (m *Metrics) Names() []string { return slices.Sorted(slices.Values(m.names)) }

// MetricNames returns the names of every metric leadtail registers besides
// the Go runtime's and the process's.
func MetricNames() []string { return NewMetrics(BuildInfo{}, nil).Names() }

// Handler serves the registry in Prometheus' text (or OpenMetrics) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// WatchSink reports the sink's halt and throttle state.
func (m *Metrics) WatchSink(state func() sink.State) {
	if m == nil {
		return
	}
	m.scr.mu.Lock()
	m.scr.state = state
	m.scr.mu.Unlock()
}

// WatchSource reports whether src streams (when it can tell) and, when it
// has a Stats method, its lag.
func (m *Metrics) WatchSource(src Source) {
	if m == nil {
		return
	}
	m.scr.mu.Lock()
	defer m.scr.mu.Unlock()
	if s, ok := src.(streamer); ok {
		m.scr.streaming = s.Streaming
	}
	if s, ok := src.(statser); ok {
		m.scr.stats = s.Stats
	}
}

// WatchDeadLetters reports the number of records in the file at path.
func (m *Metrics) WatchDeadLetters(path string) {
	if m == nil {
		return
	}
	m.scr.mu.Lock()
	m.scr.dlPath = path
	m.scr.mu.Unlock()
}

// statser is implemented by sources that can say how far behind they are.
type statser interface {
	Stats(ctx context.Context) (sources.Stats, error)
}

// SinkObserver returns the sink.Observer that feeds these metrics.
func (m *Metrics) SinkObserver() sink.Observer {
	if m == nil {
		return nil
	}
	return sinkObserver{m}
}

type sinkObserver struct{ m *Metrics }

func (o sinkObserver) Request(r sink.RequestInfo) {
	m := o.m
	m.requests.WithLabelValues(r.Class, strconv.Itoa(r.Code), strconv.Itoa(r.Subcode)).Inc()
	m.requestSeconds.Observe(r.Duration.Seconds())
	switch r.Class {
	case "transient":
		m.retries.WithLabelValues("transient").Inc()
	case "throttled":
		m.retries.WithLabelValues("throttled").Inc()
	case "halt":
		m.retries.WithLabelValues("halted").Inc()
	}
	if r.Warnings > 0 {
		m.warnings.Add(float64(r.Warnings))
	}
}

func (o sinkObserver) Accepted(ev *sink.Event) {
	m := o.m
	m.sent.WithLabelValues(ev.Mapping, ev.EventName).Inc()
	if !ev.CommitTime.IsZero() {
		m.latency.Observe(max(m.now().Sub(ev.CommitTime).Seconds(), 0))
	}
}

func (o sinkObserver) DeadLettered(ev *sink.Event, reason string) {
	o.m.deadLettered.WithLabelValues(ev.Mapping, ev.EventName, reason).Inc()
}

// Counting from the pipeline.

func (m *Metrics) change() {
	if m != nil {
		m.changes.Inc()
	}
}

func (m *Metrics) skip(mappingName, reason string) {
	if m != nil {
		m.skipped.WithLabelValues(mappingName, skipLabel(reason)).Inc()
	}
}

func (m *Metrics) drop(mappingName, key, reason string) {
	if m != nil {
		m.dropped.WithLabelValues(mappingName, key, reason).Inc()
	}
}

func (m *Metrics) batch(events int) {
	if m != nil {
		m.batchSize.Observe(float64(events))
	}
}

func (m *Metrics) checkpointed() {
	if m != nil {
		m.lastCheckpoint.Set(float64(m.now().UnixNano()) / 1e9)
	}
}

// seen records change number seq (counted by the emitter) and its commit
// time; delivered records that every change up to seq is delivered or
// dead-lettered. Together they give leadtail_replication_lag_seconds.
func (m *Metrics) seen(seq uint64, commit time.Time) {
	if m == nil || commit.IsZero() {
		return
	}
	if m.lag.seen(seq, commit) {
		m.lastCommit.Set(float64(commit.UnixNano()) / 1e9)
	}
}

func (m *Metrics) delivered(seq uint64) {
	if m != nil {
		m.lag.delivered(seq)
	}
}

// skipReasons are mapping's stable skip reasons. Some skips append detail
// (the filter's column, the unmapped stage value, which is row data): the
// label is the stable prefix only.
var skipReasons = []string{
	mapping.SkipNoMapping, mapping.SkipDelete, mapping.SkipFiltered, mapping.SkipNullStage,
	mapping.SkipUnknownStage, mapping.SkipUnmappedStage, mapping.SkipNoBefore,
	mapping.SkipStageUnchanged, mapping.SkipBackward,
}

func skipLabel(reason string) string {
	for _, r := range skipReasons {
		if strings.HasPrefix(reason, r) {
			return r
		}
	}
	return "other"
}

// lagTracker keeps the commit times of changes received but not yet
// delivered, coalesced per commit time: memory stays proportional to the
// distinct commit times in flight, which backpressure bounds.
type lagTracker struct {
	mu      sync.Mutex
	pending []lagEntry // ascending seq
	done    uint64     // highest delivered seq
	newest  time.Time
}

type lagEntry struct {
	seq uint64 // the last change with this commit time
	t   time.Time
}

// seen reports whether commit is the newest commit time so far.
func (l *lagTracker) seen(seq uint64, commit time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > l.done {
		if n := len(l.pending); n > 0 && !commit.After(l.pending[n-1].t) {
			// Same (or, clock skew, older) commit time: the older entry's
			// age stands for both.
			l.pending[n-1].seq = seq
		} else {
			l.pending = append(l.pending, lagEntry{seq, commit})
		}
	}
	if commit.After(l.newest) {
		l.newest = commit
		return true
	}
	return false
}

func (l *lagTracker) delivered(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq <= l.done {
		return
	}
	l.done = seq
	i := 0
	for i < len(l.pending) && l.pending[i].seq <= seq {
		i++
	}
	l.pending = append(l.pending[:0], l.pending[i:]...)
}

// oldest is the commit time of the oldest undelivered change, zero when
// everything received is delivered.
func (l *lagTracker) oldest() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return time.Time{}
	}
	return l.pending[0].t
}

// scraped collects the gauges read from other systems at scrape time.
type scraped struct {
	m *Metrics

	throttled, halted, deadLetters, sourceUp                            *prometheus.Desc
	lagBytes, lagSeconds, retained, filesBehind, txBehind, heartbeatAge *prometheus.Desc

	mu        sync.Mutex
	state     func() sink.State
	streaming func() (bool, string)
	stats     func(context.Context) (sources.Stats, error)
	dlPath    string
}

func (s *scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.throttled, s.halted, s.deadLetters, s.sourceUp,
		s.lagBytes, s.lagSeconds, s.retained, s.filesBehind, s.txBehind, s.heartbeatAge} {
		ch <- d
	}
}

func (s *scraped) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	state, streaming, stats, dlPath := s.state, s.streaming, s.stats, s.dlPath
	s.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	now := s.m.now()
	if state != nil {
		st := state()
		gauge(s.throttled, b2f(st.Throttled))
		gauge(s.halted, b2f(st.Halted))
	}
	if streaming != nil {
		up, _ := streaming()
		gauge(s.sourceUp, b2f(up))
	}
	if oldest := s.m.lag.oldest(); oldest.IsZero() {
		gauge(s.lagSeconds, 0)
	} else {
		gauge(s.lagSeconds, max(now.Sub(oldest).Seconds(), 0))
	}
	if dlPath != "" {
		if n, err := countLines(dlPath); err != nil {
			s.m.log.Debug("cannot count dead letters", "path", dlPath, "error", err)
		} else {
			gauge(s.deadLetters, float64(n))
		}
	}
	if stats != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sourceStatsTimeout)
		st, err := stats(ctx)
		cancel()
		if err != nil {
			s.m.log.Debug("cannot read the source's lag", "error", err)
		}
		for _, c := range []struct {
			d *prometheus.Desc
			v int64
		}{{s.lagBytes, st.LagBytes}, {s.retained, st.RetainedBytes}, {s.filesBehind, st.FilesBehind}, {s.txBehind, st.TransactionsBehind}} {
			if c.v >= 0 {
				gauge(c.d, float64(c.v))
			}
		}
		if !st.LastReceived.IsZero() {
			gauge(s.heartbeatAge, max(now.Sub(st.LastReceived).Seconds(), 0))
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// countLines counts the complete lines of the file at path (0 when it
// does not exist) without decoding them: the dead-letter file is only
// appended to or atomically replaced, so no lock is needed.
func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n := 0
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
