package postgres

import (
	"testing"

	"github.com/leadtail/leadtail/sources/postgres/pgtest"
	"github.com/leadtail/leadtail/sources/sourcetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	sourcetest.Run(t, &harness{srv: pgtest.Start(t)})
}
