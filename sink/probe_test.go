package sink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sink/metatest"
)

func TestProbe(t *testing.T) {
	srv := metatest.Start(t, metatest.Options{AppSecret: "app-secret"})
	base := func() sink.Config {
		c := sink.DefaultConfig()
		c.Endpoint = srv.URL()
		c.DatasetID = metatest.DefaultDatasetID
		c.AccessToken = sink.Secret(metatest.DefaultAccessToken)
		c.AppSecret = "app-secret"
		return c
	}
	cases := []struct {
		name   string
		mut    func(*sink.Config)
		expire bool
		check  string // "" = no problem
	}{
		{name: "all good", mut: func(*sink.Config) {}},
		{name: "wrong token", mut: func(c *sink.Config) { c.AccessToken = "nope" }, check: "meta.access_token"},
		{name: "expired token", mut: func(*sink.Config) {}, expire: true, check: "meta.access_token"},
		{name: "unknown dataset", mut: func(c *sink.Config) { c.DatasetID = "999999999999999" }, check: "meta.dataset_id"},
		{name: "wrong app secret", mut: func(c *sink.Config) { c.AppSecret = "other" }, check: "meta.app_secret"},
		{name: "old api version", mut: func(c *sink.Config) { c.APIVersion = "v20.0" }, check: "meta.api_version"},
		{name: "unreachable", mut: func(c *sink.Config) { c.Endpoint = "http://127.0.0.1:1" }, check: "meta.endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.expire {
				srv.ExpireToken()
				defer srv.RestoreToken()
			}
			c := base()
			tc.mut(&c)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			probs := sink.Probe(ctx, c, nil)
			if tc.check == "" {
				if len(probs) != 0 {
					t.Fatalf("unexpected problems: %+v", probs)
				}
				return
			}
			if len(probs) != 1 || probs[0].Check != tc.check || probs[0].Fix == "" {
				t.Fatalf("want one %s problem with a fix, got %+v", tc.check, probs)
			}
			for _, p := range probs {
				if strings.Contains(p.Problem+p.Fix, metatest.DefaultAccessToken) {
					t.Fatalf("problem mentions the token: %+v", p)
				}
			}
		})
	}
	if n := len(srv.Accepted()); n != 0 {
		t.Fatalf("probing sent %d events", n)
	}
}
