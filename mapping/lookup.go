package mapping

import (
	"context"

	"github.com/leadtail/leadtail/sources"
)

// Querier runs a lookup query against the source database. Sources
// implement it over a regular (non-replication) connection pool. The query
// uses the database's own placeholders ($1 for PostgreSQL, ? for MySQL).
// It returns at most maxRows rows; no row is not an error.
type Querier interface {
	Query(ctx context.Context, query string, maxRows int, args ...any) ([]sources.Row, error)
}
