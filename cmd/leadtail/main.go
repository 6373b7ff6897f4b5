// Command leadtail tails a CRM database and reports lead-stage changes to
// Meta's Conversions API. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/connector"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// commitID may be set at build time (-ldflags "-X main.commitID=abc123")
// where the build has no VCS information, e.g. in a container build.
var commitID = ""

const usage = `leadtail streams CRM lead-stage changes to Meta's Conversions API.

Usage:
  leadtail run     -c FILE                 stream until SIGINT/SIGTERM, then drain
  leadtail check   -c FILE                 preflight: config, database, Meta
  leadtail preview -c FILE [--mapping NAME] [--now RFC3339]
                                           change records (JSON lines) on stdin -> events on stdout
  leadtail status  -c FILE                 checkpoint position, source lag, dead letters
  leadtail replay  -c FILE                 re-send dead-lettered events that are still valid
  leadtail backfill -c FILE --since 72h [--mapping NAME] [--dry-run]
                                           send the current stage of leads whose stage changed in the window
  leadtail config  -c FILE                 print the effective config, secrets redacted
  leadtail init    --dsn DSN [--out FILE]  inspect a CRM database (read-only), write a starter config
  leadtail version                         version and commit

-c may also be given as --config.
`

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd := args[0]
	if cmd == "version" {
		fmt.Fprintf(stdout, "leadtail %s (commit %s)\n", version, commit())
		return 0
	}
	if cmd == "init" {
		return runInit(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfgPath, only, nowFlag string
	fs.StringVar(&cfgPath, "c", "", "config file")
	fs.StringVar(&cfgPath, "config", "", "config file")
	var bf backfillFlags
	if cmd == "backfill" {
		bf.register(fs, &only)
	}
	if cmd == "preview" {
		fs.StringVar(&only, "mapping", "", "only this mapping")
		fs.StringVar(&nowFlag, "now", "", "evaluate the 7-day window at this time (RFC 3339) instead of now")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	switch cmd {
	case "run", "check", "preview", "status", "replay", "config", "backfill":
	default:
		fmt.Fprintf(stderr, "leadtail: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if cfgPath == "" {
		fmt.Fprintf(stderr, "leadtail %s: -c FILE is required\n", cmd)
		return 2
	}
	cfg, err := connector.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "leadtail",
		Level:      hclog.LevelFromString(cfg.Log.Level),
		JSONFormat: cfg.Log.Format == "json",
		Output:     stderr,
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "config":
		return exit(connector.PrintConfig(stdout, cfg), stderr, 1)
	case "preview":
		now := time.Now()
		if nowFlag != "" {
			if now, err = time.Parse(time.RFC3339, nowFlag); err != nil {
				fmt.Fprintf(stderr, "leadtail preview: --now: %v\n", err)
				return 2
			}
		}
		if err := connector.Preview(ctx, cfg, only, now, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "leadtail preview: %v\n", err)
			return 2
		}
		return 0
	case "check":
		ok, err := connector.Check(ctx, cfg, log, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "leadtail check: %v\n", err)
			return 1
		}
		if !ok {
			return 1
		}
		return 0
	case "status":
		return exit(connector.Status(ctx, cfg, log, stdout), stderr, 1)
	case "replay":
		left, err := connector.Replay(ctx, cfg, log, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "leadtail replay: %v\n", err)
			return 1
		}
		if left > 0 {
			return 1
		}
		return 0
	case "backfill":
		return bf.run(ctx, cfg, log, only, stdout, stderr)
	case "run":
		if path := os.Getenv("LEADTAIL_CPUPROFILE"); path != "" {
			// Profiling aid for `make bench` runs; off unless the variable is set.
			stopProfile, err := startCPUProfile(path)
			if err != nil {
				fmt.Fprintf(stderr, "leadtail: LEADTAIL_CPUPROFILE: %v\n", err)
				return 1
			}
			defer stopProfile()
		}
		err := connector.Run(ctx, cfg, log, connector.WithBuildInfo(version, commit()))
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error("stopped on a fatal error", "error", err)
			return 1
		}
		return 0
	}
	return 2
}

func exit(err error, stderr io.Writer, code int) int {
	if err != nil {
		fmt.Fprintf(stderr, "leadtail: %v\n", err)
		return code
	}
	return 0
}

func commit() string {
	if commitID != "" {
		return commitID
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// startCPUProfile writes a CPU profile to path until the returned func runs.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
