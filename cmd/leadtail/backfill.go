package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/connector"
)

// backfillFlags are the flags of `leadtail backfill`.
type backfillFlags struct {
	since  string
	dryRun bool
}

func (b *backfillFlags) register(fs *flag.FlagSet, only *string) {
	fs.StringVar(&b.since, "since", "", "window: leads whose stage changed within it (e.g. 72h, 3d; at most 7 days minus delivery.expiry_margin)")
	fs.StringVar(only, "mapping", "", "only this mapping")
	fs.BoolVar(&b.dryRun, "dry-run", false, "map and validate, send nothing, write no dead letter")
}

// run backfills: exit 2 for options or mappings that cannot be
// backfilled, 1 when it failed part way (a rerun is harmless: the same
// event_ids), 0 when every event was sent or dead-lettered.
func (b *backfillFlags) run(ctx context.Context, cfg *connector.Config, log hclog.Logger, only string, stdout, stderr io.Writer) int {
	opts := connector.BackfillOptions{Mapping: only, DryRun: b.dryRun, Out: stdout, Terminal: isTerminal(stdout)}
	if b.since != "" {
		d, err := connector.ParseWindow(b.since)
		if err != nil {
			fmt.Fprintf(stderr, "leadtail backfill: --since %v\n", err)
			return 2
		}
		opts.Since = d
	}
	if err := connector.CheckBackfill(cfg, opts); err != nil {
		fmt.Fprintf(stderr, "leadtail backfill: %v\n", err)
		return 2
	}
	if _, err := connector.Backfill(ctx, cfg, log, opts); err != nil {
		fmt.Fprintf(stderr, "leadtail backfill: %v\n", err)
		return 1
	}
	return 0
}

// isTerminal reports whether w is a terminal (a character device), where
// progress is drawn as a bar rather than printed as lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
