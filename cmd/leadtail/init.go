package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/leadtail/leadtail/connector"
)

// runInit is `leadtail init --dsn DSN [--out FILE] [--recipes DIR]`: it
// needs no config (it writes one), so it has its own flags.
func runInit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts connector.InitOptions
	fs.StringVar(&opts.DSN, "dsn", "", "the CRM database: postgres://user:pass@host:5432/db or user:pass@tcp(host:3306)/db")
	fs.StringVar(&opts.Out, "out", "", "write the config to this file (default: stdout); never overwrites")
	fs.StringVar(&opts.RecipesDir, "recipes", "", "directory holding the recipes (<crm>/mapping.yaml); default ./testdata/crm")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if opts.DSN == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: leadtail init --dsn DSN [--out FILE] [--recipes DIR]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := connector.InitCommand(ctx, opts, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "leadtail init: %v\n", err)
		return 1
	}
	return 0
}
