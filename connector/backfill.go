package connector

// Backfill
//
// `leadtail backfill --since D` sends the current stage of every lead whose
// stage changed within the last D. It reads the mapped tables over a
// regular connection (the source's lookup pool), page by page in key order
// (keyset pagination, so rows that change meanwhile are neither skipped nor
// read twice by the paging itself), maps each row as an insert at its
// current stage (mapping.MapCurrent) and hands the events to the same sink
// as `run`: validation, retries, throttling, dead letters.
//
// Why it can run next to `run`: a mapping that can be backfilled has an
// event_time column, and its event_ids are then a function of (lead, stage,
// stage-change time), not of the stream position, so backfill and stream
// give one stage change the same id and Meta keeps one of the two. Start
// `run` first: everything committed after its start position is streamed,
// everything before the scan is backfilled, and the overlap is harmless.
//
// What it does not do: send the stages a lead passed through before its
// current one (a scan does not know when they were reached, so
// fill_skipped does not apply), send anything older than 7 days minus
// delivery.expiry_margin (Meta discards such events, and rewriting
// event_time to squeeze them in would make it distrust the data), or
// touch the checkpoint.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/mapping"
	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources"
)

// BackfillOptions configure Backfill.
type BackfillOptions struct {
	// Since is the window: leads whose stage changed within it are sent.
	Since time.Duration
	// Mapping limits the backfill to one mapping ("" = all).
	Mapping string
	// DryRun maps and validates every row but sends nothing and writes no
	// dead letter: it counts what would be sent.
	DryRun bool
	// Out receives progress and the summary. Terminal draws a progress bar
	// (rewritten in place) instead of progress lines.
	Out      io.Writer
	Terminal bool
	// Now is the clock of the window and of validation. Default time.Now.
	Now func() time.Time
	// PageSize is how many rows one query reads. Default: batch_size ×
	// max_in_flight, so that one page fills every request in flight.
	PageSize int
}

// BackfillCounts is what a backfill did for one mapping.
type BackfillCounts struct {
	Mapping string
	// Total is what the count query found (rows in or near the window).
	Total int64
	// Rows were read; InWindow of them had a stage change in the window.
	Rows, InWindow int64
	// Events were made from them; Accepted by Meta (or, dry run: would be
	// sent), DeadLettered (dry run: would be).
	Events, Accepted, DeadLettered int64
	// Skipped counts rows in the window without an event, by reason.
	Skipped map[string]int64
	// Rejected counts dead letters by reason (dry run only: the sink
	// reports only how many it wrote).
	Rejected map[string]int64
}

// MaxBackfillWindow is the longest window Backfill accepts: Meta's 7 days
// minus the configured safety margin.
func MaxBackfillWindow(cfg *Config) time.Duration {
	return sink.MaxEventAge - cfg.Delivery.ExpiryMargin
}

// ParseWindow reads a --since value: a Go duration ("72h", "90m") or
// whole days ("3d", also "2d12h").
func ParseWindow(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: want a duration such as 72h or 3d", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 72h or 3d", s)
	}
	return days + d, nil
}

// CheckBackfill reports, before anything is read or sent, why a backfill
// with these options cannot run: a window that is not positive or longer
// than Meta's 7 days minus delivery.expiry_margin, an unknown mapping, or a
// mapping without an event_time column.
func CheckBackfill(cfg *Config, opts BackfillOptions) error {
	var errs []error
	maxWin := MaxBackfillWindow(cfg)
	switch {
	case opts.Since <= 0:
		errs = append(errs, errors.New("--since is required: how far back to look, e.g. --since 72h (at most "+humanDuration(maxWin)+")"))
	case opts.Since > maxWin:
		errs = append(errs, fmt.Errorf("--since %s is too long: Meta discards events older than 7 days and delivery.expiry_margin (%s) keeps a safety margin, "+
			"so the longest window is %s. Older stage changes cannot be sent (rewriting their event_time would make Meta distrust the data)",
			humanDuration(opts.Since), humanDuration(cfg.Delivery.ExpiryMargin), humanDuration(maxWin)))
	}
	ms, err := backfillMappers(cfg, opts.Mapping)
	if err != nil {
		errs = append(errs, err)
	}
	for _, m := range ms {
		if m.EventTimeColumn() == "" {
			errs = append(errs, fmt.Errorf("mapping %q cannot be backfilled: it has no event_time.column. A table scan sees each lead's current stage "+
				"but not when it was reached (the commit time exists only in the change stream), and its event_ids could not match the stream's. "+
				"Add event_time: {column: ...} naming a column your CRM sets on every stage change%s", m.Name(), otherMappingsHint(cfg, opts.Mapping)))
		}
	}
	return errors.Join(errs...)
}

func otherMappingsHint(cfg *Config, only string) string {
	if only != "" || len(cfg.Set.Mappers()) < 2 {
		return ""
	}
	return ", or backfill the other mappings one at a time with --mapping NAME"
}

func backfillMappers(cfg *Config, only string) ([]*mapping.Mapper, error) {
	if only == "" {
		return cfg.Set.Mappers(), nil
	}
	m := cfg.Set.Get(only)
	if m == nil {
		return nil, fmt.Errorf("no mapping named %q (have: %s)", only, strings.Join(mappingNames(cfg.Set), ", "))
	}
	return []*mapping.Mapper{m}, nil
}

// Backfill sends the current stage of every lead whose stage changed within
// opts.Since (see the notes at the top of this file). It returns the counts
// per mapping; an error ends it early (what was sent stays sent: a rerun
// sends the same event_ids, which Meta drops).
func Backfill(ctx context.Context, cfg *Config, log hclog.Logger, opts BackfillOptions) ([]BackfillCounts, error) {
	if err := CheckBackfill(cfg, opts); err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.PageSize <= 0 {
		opts.PageSize = cfg.Delivery.BatchSize * max(cfg.Delivery.MaxInFlight, 1)
	}
	ms, _ := backfillMappers(cfg, opts.Mapping)

	src, q, err := openSource(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var client *sink.Client
	if !opts.DryRun {
		if client, err = newClient(cfg, log, nil); err != nil {
			return nil, err
		}
	}
	b := &backfiller{cfg: cfg, log: log.Named("backfill"), opts: opts, q: q, client: client, dialect: dialectFor(cfg)}
	b.warnIfNotStreaming(ctx)
	now := opts.Now()
	since := now.Add(-opts.Since)
	log.Info("backfill starting", "since", since.UTC().Format(time.RFC3339), "window", opts.Since.String(),
		"mappings", len(ms), "dry_run", opts.DryRun)
	var out []BackfillCounts
	for _, m := range ms {
		c, err := b.mapping(ctx, m, since)
		out = append(out, c)
		if err != nil {
			b.summary(out)
			return out, fmt.Errorf("backfill %s: %w", m.Name(), err)
		}
	}
	b.summary(out)
	return out, nil
}

type backfiller struct {
	cfg     *Config
	log     hclog.Logger
	opts    BackfillOptions
	q       mapping.Querier
	client  *sink.Client
	dialect sqlDialect
}

// warnIfNotStreaming warns when no stream has started yet: changes made
// between this backfill and the first `run` would reach neither.
func (b *backfiller) warnIfNotStreaming(ctx context.Context) {
	const msg = "no stream position yet: start `leadtail run` before backfilling, or stage changes made between the backfill and the first run are sent by neither"
	if b.cfg.Source.Postgres != nil {
		rows, err := b.q.Query(ctx, `SELECT slot_name AS s FROM pg_replication_slots WHERE slot_name = $1`, 1, b.cfg.Source.Postgres.Slot)
		if err == nil && len(rows) == 0 {
			b.log.Warn(msg, "slot", b.cfg.Source.Postgres.Slot)
		}
		return
	}
	if pos, err := sink.NewFileStore(b.cfg.StateDir).Load(ctx); err == nil && pos == "" {
		b.log.Warn(msg, "state_dir", b.cfg.StateDir)
	}
}

// mapping backfills one mapping.
func (b *backfiller) mapping(ctx context.Context, m *mapping.Mapper, since time.Time) (BackfillCounts, error) {
	c := BackfillCounts{Mapping: m.Name(), Skipped: map[string]int64{}, Rejected: map[string]int64{}}
	pred, predArgs, err := b.windowPredicate(ctx, m, since)
	if err != nil {
		return c, err
	}
	table := b.dialect.table(m.Table())
	countSQL := "SELECT COUNT(*) AS n FROM " + table
	if pred != "" {
		countSQL += " WHERE " + pred
	}
	rows, err := b.q.Query(ctx, countSQL, 1, predArgs...)
	if err != nil {
		return c, fmt.Errorf("count rows: %w", err)
	}
	if len(rows) == 1 {
		c.Total = toInt64(rows[0]["n"])
	}
	if pred == "" {
		b.log.Warn("event_time column is not a timestamp, date or number: reading the whole table", "mapping", m.Name(), "table", m.Table())
	}
	prog := newProgress(b.opts.Out, b.opts.Terminal, m.Name(), b.opts.DryRun, b.opts.Now)
	prog.update(&c)

	cols := m.Columns()
	keys := m.Key()
	quoted := make([]string, len(cols))
	for i, col := range cols {
		quoted[i] = b.dialect.ident(col)
	}
	qkeys := make([]string, len(keys))
	for i, k := range keys {
		qkeys[i] = b.dialect.ident(k)
	}
	var after []any // key of the last row read
	for {
		var where []string
		args := append([]any(nil), predArgs...)
		if pred != "" {
			where = append(where, pred)
		}
		if after != nil {
			ph := make([]string, len(after))
			for i := range after {
				ph[i] = b.dialect.param(len(args) + i + 1)
			}
			args = append(args, after...)
			if len(keys) == 1 {
				where = append(where, qkeys[0]+" > "+ph[0])
			} else {
				where = append(where, "("+strings.Join(qkeys, ", ")+") > ("+strings.Join(ph, ", ")+")")
			}
		}
		sql := "SELECT " + strings.Join(quoted, ", ") + " FROM " + table
		if len(where) > 0 {
			sql += " WHERE " + strings.Join(where, " AND ")
		}
		sql += " ORDER BY " + strings.Join(qkeys, ", ") + " LIMIT " + strconv.Itoa(b.opts.PageSize)
		page, err := b.q.Query(ctx, sql, b.opts.PageSize, args...)
		if err != nil {
			return c, fmt.Errorf("read %s: %w", m.Table(), err)
		}
		if len(page) == 0 {
			break
		}
		last := page[len(page)-1]
		after = make([]any, len(keys))
		for i, k := range keys {
			if after[i] = last[k]; after[i] == nil {
				return c, fmt.Errorf("key column %s is NULL in %s: mappings[].key must name a unique, non-null key", k, m.Table())
			}
		}
		if err := b.page(ctx, m, since, page, &c); err != nil {
			return c, err
		}
		prog.update(&c)
		if len(page) < b.opts.PageSize {
			break
		}
	}
	prog.done(&c)
	return c, nil
}

// page maps one page of rows and delivers (or, dry run, validates) their events.
func (b *backfiller) page(ctx context.Context, m *mapping.Mapper, since time.Time, rows []sources.Row, c *BackfillCounts) error {
	now := b.opts.Now()
	var events []sink.Event
	for _, r := range rows {
		c.Rows++
		t, ok := m.StageTime(r)
		switch {
		case !ok:
			c.Skipped[mapping.SkipNoStageTime]++
			continue
		case t.Before(since):
			continue // changed before the window (the query's bound is wider)
		}
		c.InWindow++
		outs, err := m.MapCurrent(ctx, r, b.q, now)
		if err != nil {
			return fmt.Errorf("map: %w", err)
		}
		for _, o := range outs {
			if o.Event == nil {
				c.Skipped[o.Skip]++
				continue
			}
			events = append(events, *o.Event)
		}
	}
	c.Events += int64(len(events))
	if len(events) == 0 {
		return nil
	}
	if b.opts.DryRun {
		for i := range events {
			ev := &events[i]
			if reason := sink.Prepare(ev, now, b.cfg.Delivery.ExpiryMargin); reason != "" {
				c.DeadLettered++
				c.Rejected[reason]++
				continue
			}
			c.Accepted++
			b.log.Debug("dry run: event not sent", "mapping", ev.Mapping, "event_name", ev.EventName, "event_id", ev.EventID, "event_time", ev.EventTime)
		}
		return nil
	}
	res, err := b.client.Deliver(ctx, events)
	c.Accepted += int64(res.Accepted)
	c.DeadLettered += int64(res.DeadLettered)
	if err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	return nil
}

// windowPredicate returns a SQL condition that holds for every row whose
// event_time lies in the window (and a few before it: the exact check is
// done on the decoded value, in the mapping's time zone), with its
// arguments; "" when the column's type allows none (text).
func (b *backfiller) windowPredicate(ctx context.Context, m *mapping.Mapper, since time.Time) (string, []any, error) {
	schema, table, _ := strings.Cut(m.Table(), ".")
	col := m.EventTimeColumn()
	rows, err := b.q.Query(ctx, "SELECT data_type AS t FROM information_schema.columns WHERE table_schema = "+b.dialect.param(1)+
		" AND table_name = "+b.dialect.param(2)+" AND column_name = "+b.dialect.param(3), 1, schema, table, col)
	if err != nil {
		return "", nil, fmt.Errorf("read the type of %s.%s: %w", m.Table(), col, err)
	}
	if len(rows) == 0 {
		return "", nil, fmt.Errorf("table %s has no column %s (mappings[].event_time.column), or it cannot be read", m.Table(), col)
	}
	typ := strings.ToLower(strings.TrimSpace(toText(rows[0]["t"])))
	qcol := b.dialect.ident(col)
	// Zone-less values are read in the mapping's zone (±14 h): a bound a
	// day and a half early keeps every row of the window.
	early := since.Add(-36 * time.Hour).UTC()
	switch {
	case strings.HasPrefix(typ, "timestamp"), typ == "datetime":
		return qcol + " >= " + b.dialect.param(1), []any{early.Format("2006-01-02 15:04:05")}, nil
	case typ == "date":
		return qcol + " >= " + b.dialect.param(1), []any{early.Format("2006-01-02")}, nil
	case strings.Contains(typ, "int"), typ == "numeric", typ == "decimal", typ == "double precision", typ == "double", typ == "real", typ == "float":
		bound := since.Unix() - 1
		if m.EventTimeUnit() == "ms" {
			bound = since.UnixMilli() - 1000
		}
		return qcol + " >= " + b.dialect.param(1), []any{bound}, nil
	}
	return "", nil, nil
}

// sqlDialect is the little SQL that differs between the two sources.
type sqlDialect struct{ mysql bool }

func dialectFor(cfg *Config) sqlDialect { return sqlDialect{mysql: cfg.Source.MySQL != nil} }

func (d sqlDialect) ident(s string) string {
	if d.mysql {
		return "`" + strings.ReplaceAll(s, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func (d sqlDialect) table(t string) string {
	schema, table, _ := strings.Cut(t, ".")
	return d.ident(schema) + "." + d.ident(table)
}

func (d sqlDialect) param(n int) string {
	if d.mysql {
		return "?"
	}
	return "$" + strconv.Itoa(n)
}

func toText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		return int64(x)
	case int:
		return int64(x)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(toText(v)), 10, 64)
	return n
}

// summary prints what each mapping's backfill did.
func (b *backfiller) summary(all []BackfillCounts) {
	w := b.opts.Out
	sent, dead := "sent", "dead-lettered ("+deadLetterPath(b.cfg)+")"
	if b.opts.DryRun {
		sent, dead = "would be sent", "would be dead-lettered"
	}
	for _, c := range all {
		fmt.Fprintf(w, "backfill %s: %d row(s) read, %d with a stage change in the window: %d event(s) %s, %d %s, %d skipped\n",
			c.Mapping, c.Rows, c.InWindow, c.Accepted, sent, c.DeadLettered, dead, sum(c.Skipped))
		for _, k := range sortedByCount(c.Skipped) {
			fmt.Fprintf(w, "  skipped %d: %s\n", c.Skipped[k], k)
		}
		for _, k := range sortedByCount(c.Rejected) {
			fmt.Fprintf(w, "  %s %d: %s\n", dead, c.Rejected[k], k)
		}
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func sortedByCount(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// progress shows how far a mapping's backfill got: a bar rewritten in
// place on a terminal, otherwise a line at most every progressEvery.
type progress struct {
	w        io.Writer
	terminal bool
	name     string
	dryRun   bool
	now      func() time.Time
	last     time.Time
}

const progressEvery = 2 * time.Second

func newProgress(w io.Writer, terminal bool, name string, dryRun bool, now func() time.Time) *progress {
	return &progress{w: w, terminal: terminal, name: name, dryRun: dryRun, now: now}
}

func (p *progress) text(c *BackfillCounts) string {
	verb := "sent"
	if p.dryRun {
		verb = "would be sent"
	}
	total := ""
	if c.Total > 0 {
		total = fmt.Sprintf("/%d (%d%%)", c.Total, min(100, c.Rows*100/c.Total))
	}
	return fmt.Sprintf("%d%s rows, %d event(s) %s, %d dead-lettered, %d skipped", c.Rows, total, c.Accepted, verb, c.DeadLettered, sum(c.Skipped))
}

func (p *progress) update(c *BackfillCounts) {
	if p.terminal {
		const width = 30
		filled := width
		if c.Total > 0 {
			filled = int(min(c.Rows, c.Total) * width / c.Total)
		} else if c.Rows == 0 {
			filled = 0
		}
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		fmt.Fprintf(p.w, "\r\x1b[K%s [%s] %s", p.name, bar, p.text(c))
		return
	}
	if now := p.now(); p.last.IsZero() || now.Sub(p.last) >= progressEvery {
		p.last = now
		fmt.Fprintf(p.w, "backfill %s: %s\n", p.name, p.text(c))
	}
}

func (p *progress) done(c *BackfillCounts) {
	if p.terminal {
		p.update(c)
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprintf(p.w, "backfill %s: %s, done\n", p.name, p.text(c))
}

// humanDuration prints 6d23h rather than 167h0m0s.
func humanDuration(d time.Duration) string {
	days := d / (24 * time.Hour)
	rest := d - days*24*time.Hour
	r := ""
	if rest != 0 {
		r = rest.String()
		if strings.HasSuffix(r, "m0s") {
			r = strings.TrimSuffix(r, "0s")
		}
		if strings.HasSuffix(r, "h0m") {
			r = strings.TrimSuffix(r, "0m")
		}
	}
	switch {
	case days == 0 && r == "":
		return "0s"
	case days == 0:
		return r
	}
	return fmt.Sprintf("%dd%s", days, r)
}
