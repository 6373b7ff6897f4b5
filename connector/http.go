package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/leadtail/leadtail/sink"
)

// streamer is implemented by sources that can tell whether their
// replication stream is up (not reconnecting).
type streamer interface {
	Streaming() (bool, string)
}

// haltState is the sink's side of readiness.
type haltState interface {
	State() sink.State
}

// readiness answers /readyz: ready only while the source streams and the
// sink is not halted. A green check over a dead stream is worse than none.
func readiness(src Source, snk haltState) func() (bool, []string) {
	return func() (bool, []string) {
		var why []string
		if s, ok := src.(streamer); ok {
			if up, reason := s.Streaming(); !up {
				why = append(why, "source: "+reason)
			}
		}
		if st := snk.State(); st.Halted {
			why = append(why, "sink halted: "+st.Reason)
		}
		return len(why) == 0, why
	}
}

// serveHTTP serves /healthz, /readyz and (when metrics is not nil)
// /metrics on ln until ctx ends.
func serveHTTP(ctx context.Context, ln net.Listener, ready func() (bool, []string), metrics http.Handler, log hclog.Logger) error {
	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(why, "\n"))
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving http endpoints", "address", ln.Addr().String(), "metrics", metrics != nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
