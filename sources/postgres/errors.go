package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// classify turns server errors that reconnecting cannot fix into a
// *FatalError; everything else (network errors, shutdowns, too many
// connections, a slot still held by our previous connection) stays
// retryable. The decision is by SQLSTATE, never by message text.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var fe *FatalError
	if errors.As(err, &fe) {
		return err
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err // network, EOF, timeouts, decode errors: reconnect
	}
	if retryableCode(pgErr.Code) {
		return err
	}
	return &FatalError{err}
}

func retryableCode(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"): // connection exception
		return true
	case strings.HasPrefix(code, "53"): // insufficient resources (too many connections, ...)
		return true
	case strings.HasPrefix(code, "57"): // operator intervention: shutdown, restart, starting up
		return true
	case code == "55006": // object_in_use: slot still active for a dying walsender
		return true
	case code == "40001", code == "40P01": // serialization failure, deadlock
		return true
	}
	return false
}

func isFatal(err error) bool {
	var fe *FatalError
	return errors.As(err, &fe)
}
