package mysql

import (
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// slogToHclog routes go-mysql's slog output into the injected hclog
// logger, one level down at most Debug: the source logs what matters
// itself with stable messages, and go-mysql logs every connection loss as
// an error. Its messages carry no row data; the syncer clears the
// password before logging its config.
type slogToHclog struct {
	log   hclog.Logger
	attrs []any
}

func newSlog(l hclog.Logger) *slog.Logger {
	return slog.New(&slogToHclog{log: l.Named("go-mysql")})
}

func (h *slogToHclog) level(l slog.Level) hclog.Level {
	if l >= slog.LevelInfo {
		return hclog.Debug
	}
	return hclog.Trace
}

func (h *slogToHclog) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= h.level(l)
}

func (h *slogToHclog) Handle(_ context.Context, r slog.Record) error {
	args := append([]any(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "config" {
			return true // a struct dump with TLS settings and hooks: noise
		}
		args = append(args, a.Key, a.Value.String())
		return true
	})
	h.log.Log(h.level(r.Level), r.Message, args...)
	return nil
}

func (h *slogToHclog) WithAttrs(as []slog.Attr) slog.Handler {
	n := &slogToHclog{log: h.log, attrs: append([]any(nil), h.attrs...)}
	for _, a := range as {
		n.attrs = append(n.attrs, a.Key, a.Value.String())
	}
	return n
}

func (h *slogToHclog) WithGroup(name string) slog.Handler {
	return &slogToHclog{log: h.log.Named(name), attrs: h.attrs}
}
