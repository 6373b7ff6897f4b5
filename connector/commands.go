package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"gopkg.in/yaml.v3"

	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/mysql"
	"github.com/leadtail/leadtail/sources/postgres"
)

// DeadLetterFile is the dead-letter file's name under state_dir.
const DeadLetterFile = "dead-letters.jsonl"

func deadLetterPath(cfg *Config) string { return filepath.Join(cfg.StateDir, DeadLetterFile) }

func newClient(cfg *Config, log hclog.Logger, obs sink.Observer) (*sink.Client, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	dlq, err := sink.OpenDeadLetters(deadLetterPath(cfg))
	if err != nil {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	return sink.New(cfg.Meta, cfg.Delivery, sink.Options{Logger: log.Named("sink"), DeadLetters: dlq, Observer: obs})
}

// RunOption adjusts Run.
type RunOption func(*runOptions)

type runOptions struct {
	build BuildInfo
}

// WithBuildInfo names the binary in the startup log line and in
// leadtail_build_info.
func WithBuildInfo(version, commit string) RunOption {
	return func(o *runOptions) { o.build = BuildInfo{Version: version, Commit: commit} }
}

// Run streams changes until ctx is cancelled, then drains (see the package doc).
func Run(ctx context.Context, cfg *Config, log hclog.Logger, opts ...RunOption) error {
	var ro runOptions
	for _, o := range opts {
		o(&ro)
	}
	metrics := NewMetrics(ro.build, log.Named("metrics"))
	client, err := newClient(cfg, log, metrics.SinkObserver())
	if err != nil {
		return err
	}
	src, q, err := openSource(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer src.Close()
	metrics.WatchSink(client.State)
	metrics.WatchSource(src)
	metrics.WatchDeadLetters(deadLetterPath(cfg))
	p := &Pipeline{
		Source:   src,
		Sink:     client,
		Store:    sink.NewFileStore(cfg.StateDir),
		Mappings: cfg.Set,
		Querier:  q,
		Delivery: cfg.Delivery,
		Logger:   log.Named("pipeline"),
		Metrics:  metrics,
	}
	log.Info("leadtail starting", "version", orUnknown(ro.build.Version), "commit", orUnknown(ro.build.Commit),
		"source", cfg.Source.Kind(), "mappings", len(cfg.Set.Mappers()),
		"dataset_id", cfg.Meta.DatasetID, "dry_run", cfg.Meta.DryRun, "http_listen", cfg.HTTP.Listen)
	httpCtx, stopHTTP := context.WithCancel(ctx)
	httpDone := make(chan error, 1)
	if cfg.HTTP.Listen != "" {
		// Listen before streaming: a taken port is a startup error, not a late surprise.
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			stopHTTP()
			return fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
		}
		go func() {
			httpDone <- serveHTTP(httpCtx, ln, readiness(src, client), metrics.Handler(), log.Named("http"))
		}()
	} else {
		httpDone <- nil
	}
	err = p.Run(ctx)
	stopHTTP()
	if herr := <-httpDone; herr != nil && err == nil {
		err = herr
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// Replay re-sends dead letters that are still valid and removes those Meta
// accepts. It returns how many are left in the file.
func Replay(ctx context.Context, cfg *Config, log hclog.Logger, out io.Writer) (int, error) {
	client, err := newClient(cfg, log, nil)
	if err != nil {
		return 0, err
	}
	sent, left, err := client.Replay(ctx)
	if err != nil {
		return left, err
	}
	fmt.Fprintf(out, "replayed %d dead-lettered event(s); %d left in %s\n", sent, left, deadLetterPath(cfg))
	return left, nil
}

// Status prints the checkpoint position, source lag and dead-letter count.
func Status(ctx context.Context, cfg *Config, log hclog.Logger, out io.Writer) error {
	pos, err := sink.NewFileStore(cfg.StateDir).Load(ctx)
	if err != nil {
		return err
	}
	if pos == "" {
		fmt.Fprintf(out, "checkpoint:    none yet (%s)\n", cfg.StateDir)
	} else {
		fmt.Fprintf(out, "checkpoint:    %s\n", pos)
	}
	n, err := countDeadLetters(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "dead letters:  %d (%s)\n", n, deadLetterPath(cfg))
	lag, err := sourceLag(ctx, cfg, pos)
	if err != nil {
		fmt.Fprintf(out, "source lag:    unknown (%v)\n", err)
		return nil
	}
	fmt.Fprintf(out, "source lag:    %s\n", lag)
	return nil
}

func countDeadLetters(cfg *Config) (int, error) {
	if _, err := os.Stat(deadLetterPath(cfg)); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	dlq, err := sink.OpenDeadLetters(deadLetterPath(cfg))
	if err != nil {
		return 0, err
	}
	return dlq.Count()
}

// Check runs the preflight checks and prints one line per check; every
// problem comes with a one-line fix. ok is false when anything must be fixed.
func Check(ctx context.Context, cfg *Config, log hclog.Logger, out io.Writer) (bool, error) {
	ok := true
	report := func(p sources.Problem) {
		tag := "FAIL"
		if p.Warning {
			tag = "WARN"
		} else {
			ok = false
		}
		fmt.Fprintf(out, "%-5s %s: %s\n      fix: %s\n", tag, p.Check, p.Problem, p.Fix)
	}
	pass := func(check, msg string) { fmt.Fprintf(out, "ok    %s: %s\n", check, msg) }

	pass("config", fmt.Sprintf("%s (%d mapping(s), %s source)", cfg.Path, len(cfg.Set.Mappers()), cfg.Source.Kind()))
	if err := checkStateDir(cfg.StateDir); err != nil {
		report(sources.Problem{Check: "state_dir", Problem: err.Error(), Fix: "point state_dir at a directory leadtail may create and write (it holds the checkpoint and dead letters)"})
	} else {
		pass("state_dir", cfg.StateDir+" is writable")
	}
	if n := cfg.Meta.APIVersionNumber(); n < sink.OldestAPIVersion {
		report(sources.Problem{Check: "meta.api_version", Warning: true,
			Problem: fmt.Sprintf("%s may be past its end of life: an expired version loses events", cfg.Meta.APIVersion),
			Fix:     "set meta.api_version to a current Graph API version (v26.0 at the time of writing)"})
	}
	if cfg.Meta.TestEventCode != "" {
		report(sources.Problem{Check: "meta.test_event_code", Warning: true,
			Problem: "test events count as real data at Meta (they are not thrown away)",
			Fix:     "remove meta.test_event_code once the integration is verified"})
	}
	if cfg.Meta.DryRun {
		pass("meta", "dry_run: events are logged, not sent")
	} else {
		cctx, cancel := context.WithTimeout(ctx, cfg.Delivery.RequestTimeout)
		probs := sink.Probe(cctx, cfg.Meta, nil)
		cancel()
		for _, p := range probs {
			report(p)
		}
		if len(probs) == 0 {
			pass("meta", fmt.Sprintf("%s answers; token and dataset %s accepted", cfg.Meta.Endpoint, cfg.Meta.DatasetID))
		}
	}
	probs, err := checkSource(ctx, cfg, log)
	if err != nil {
		report(sources.Problem{Check: "source." + cfg.Source.Kind(), Problem: err.Error(), Fix: "make the database reachable with the configured DSN"})
	}
	for _, p := range probs {
		report(p)
	}
	if err == nil && len(probs) == 0 {
		pass("source."+cfg.Source.Kind(), "ready for replication")
	}
	return ok, nil
}

func checkStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("ok"))
	serr := f.Sync()
	f.Close()
	os.Remove(name)
	return errors.Join(werr, serr)
}

// PrintConfig writes the effective configuration (defaults applied,
// ${VARS} expanded) as YAML with every secret redacted.
func PrintConfig(out io.Writer, cfg *Config) error {
	c := *cfg
	if c.Source.Postgres != nil {
		pg := *c.Source.Postgres
		pg.DSN = postgres.RedactedDSN(pg.DSN)
		c.Source.Postgres = &pg
	}
	if c.Source.MySQL != nil {
		my := *c.Source.MySQL
		my.DSN = mysql.RedactedDSN(my.DSN)
		c.Source.MySQL = &my
	}
	enc := yaml.NewEncoder(out)
	enc.SetIndent(2)
	if err := enc.Encode(&c); err != nil {
		return err
	}
	return enc.Close()
}

// sourceLagTimeout bounds the database round trip of `status`.
const sourceLagTimeout = 10 * time.Second
