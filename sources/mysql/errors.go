package mysql

import (
	"errors"
	"fmt"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// FatalError is an error that reconnecting cannot fix: Stream returns it
// instead of retrying. Its message says what to do.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

func fatalf(format string, a ...any) error { return &FatalError{fmt.Errorf(format, a...)} }

// ErrPositionLost means the server no longer has the binlog the checkpoint
// points into: it was purged (expire_logs_days, binlog_expire_logs_seconds,
// PURGE BINARY LOGS) before leadtail caught up. Changes in between are
// lost to streaming; they can only be recovered by a backfill.
var ErrPositionLost = errors.New("binlog position no longer available on the server")

// positionLostError is a FatalError wrapping ErrPositionLost (and the
// server's error, when there is one) that says what to do.
func positionLostError(pos string, detail string, cause error) error {
	msg := fmt.Sprintf("mysql: the binlog no longer holds position %s (%s): changes since then cannot be streamed. "+
		"Delete the checkpoint in state_dir so that leadtail starts from the current end of the binlog, "+
		"run a backfill for the missed period, and keep binlogs longer (binlog_expire_logs_seconds)", pos, detail)
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return &FatalError{&positionLost{msg: msg, cause: cause}}
}

type positionLost struct {
	msg   string
	cause error
}

func (e *positionLost) Error() string { return e.msg }

func (e *positionLost) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrPositionLost}
	}
	return []error{ErrPositionLost, e.cause}
}

// ErrServerIDInUse means another replica is registered with this
// source's server_id: streaming would kill its connection (the server drops
// the older of two replicas with one id) and be killed in turn.
var ErrServerIDInUse = errors.New("server_id already used by another replica")

// emitError carries an error returned by emit: it ends Stream as is.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

// serverCode returns the MySQL error code carried by err, or 0.
func serverCode(err error) uint16 {
	var me *gomysql.MyError
	if errors.As(err, &me) {
		return me.Code
	}
	return 0
}

// Server error codes the source decides on. Decisions are by code, never
// by message text.
const (
	erDBAccessDenied     = 1044
	erAccessDenied       = 1045
	erParseError         = 1064
	erTableAccessDenied  = 1142
	erColumnAccessDenied = 1143
	erNoSuchTable        = 1146
	erBadField           = 1054
	erSpecificAccess     = 1227
	erMasterFatalBinlog  = 1236
	erUnknownSystemVar   = 1193
	erBadDB              = 1049
)

// classify marks server errors that reconnecting cannot fix as fatal:
// bad credentials and missing privileges. Network errors, shutdowns and
// "too many connections" stay retryable.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var fe *FatalError
	if errors.As(err, &fe) {
		return err
	}
	switch serverCode(err) {
	case erAccessDenied, erDBAccessDenied, erSpecificAccess, erTableAccessDenied:
		return &FatalError{err}
	}
	return err
}

func isFatal(err error) bool {
	var fe *FatalError
	return errors.As(err, &fe)
}
