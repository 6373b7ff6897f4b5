package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/mapping"
	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/mysql"
	"github.com/leadtail/leadtail/sources/postgres"
)

var (
	_ Source          = (*postgres.Source)(nil)
	_ mapping.Querier = (*postgres.Source)(nil)
	_ Source          = (*mysql.Source)(nil)
	_ mapping.Querier = (*mysql.Source)(nil)
)

// openSource builds the configured source; it also answers lookups.
func openSource(ctx context.Context, cfg *Config, log hclog.Logger) (Source, mapping.Querier, error) {
	switch {
	case cfg.Source.Postgres != nil:
		// Required columns turn a dropped mapped column into a clear error
		// instead of events silently missing a value.
		src, err := postgres.New(*cfg.Source.Postgres, cfg.Set.Tables(), log.Named("postgres"),
			postgres.WithRequiredColumns(cfg.Set.Columns()))
		if err != nil {
			return nil, nil, fmt.Errorf("postgres source: %w", err)
		}
		return src, src, nil
	case cfg.Source.MySQL != nil:
		// Of several instances on one configuration one streams, the others
		// wait on a named lock; the one taking over resumes from the shared
		// checkpoint (state_dir must be shared: see README, "Active/standby").
		src, err := mysql.New(*cfg.Source.MySQL, cfg.Set.Tables(), log.Named("mysql"),
			mysql.WithActiveLock(cfg.Meta.DatasetID, sink.NewFileStore(cfg.StateDir).Load),
			mysql.WithColumns(cfg.Set.Columns()))
		if err != nil {
			return nil, nil, fmt.Errorf("mysql source: %w", err)
		}
		return src, src, nil
	}
	return nil, nil, errors.New("no source configured")
}

// checkSource runs the source's preflight checks.
func checkSource(ctx context.Context, cfg *Config, log hclog.Logger) ([]sources.Problem, error) {
	switch {
	case cfg.Source.Postgres != nil:
		return postgres.Check(ctx, *cfg.Source.Postgres, cfg.Set.Columns())
	case cfg.Source.MySQL != nil:
		return mysql.Check(ctx, *cfg.Source.MySQL, cfg.Set.Columns())
	}
	return nil, errors.New("no source configured")
}

// sourceLag describes how far the source's durable position is behind.
func sourceLag(ctx context.Context, cfg *Config, pos sources.Position) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, sourceLagTimeout)
	defer cancel()
	switch {
	case cfg.Source.Postgres != nil:
		return postgres.Lag(ctx, *cfg.Source.Postgres)
	case cfg.Source.MySQL != nil:
		return mysql.Lag(ctx, *cfg.Source.MySQL, pos)
	}
	return "", errors.New("no source configured")
}
