package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/mapping"
	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/postgres"
)

var _ Source = (*postgres.Source)(nil)
var _ mapping.Querier = (*postgres.Source)(nil)

// errMySQLNotBuilt is returned while the MySQL source does not exist yet.
var errMySQLNotBuilt = errors.New("the MySQL/MariaDB source is not part of this build yet; use source.postgres")

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
		return nil, nil, errMySQLNotBuilt
	}
	return nil, nil, errors.New("no source configured")
}

// checkSource runs the source's preflight checks.
func checkSource(ctx context.Context, cfg *Config, log hclog.Logger) ([]sources.Problem, error) {
	switch {
	case cfg.Source.Postgres != nil:
		return postgres.Check(ctx, *cfg.Source.Postgres, cfg.Set.Columns())
	case cfg.Source.MySQL != nil:
		return nil, errMySQLNotBuilt
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
		return "", errMySQLNotBuilt
	}
	return "", errors.New("no source configured")
}
