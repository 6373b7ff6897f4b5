package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/leadtail/leadtail/sources"
	"github.com/leadtail/leadtail/sources/postgres/pgtest"
)

func testCheck(t *testing.T, e *testEnv) {
	tables := map[string][]string{
		"public.leads":    {"status", "email", "nope"},
		"public.contacts": {"phone"},
		"public.missing":  {"x"},
	}
	// A role without REPLICATION that owns nothing and may read leads only.
	e.Exec(t, "CREATE ROLE app LOGIN", "GRANT SELECT ON leads TO app")
	app := e.cfg
	app.DSN = strings.Replace(e.cfg.DSN, "postgres@", "app@", 1)
	probs, err := Check(ctxT(t), app, tables)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		check, contains string
		warning         bool
	}{
		{"replication privilege", "neither REPLICATION", false},
		{"replication slot", "will be created", true},
		{"publication", "may not create", false},
		{"table", "public.missing does not exist", false},
		{"column", "public.leads.nope", false},
		{"table privilege", "public.contacts", false},
		{"replica identity", "public.contacts", false},
	} {
		if !hasProblem(probs, want.check, want.contains, want.warning) {
			t.Errorf("no %s problem mentioning %q (warning %v)", want.check, want.contains, want.warning)
		}
	}
	for _, p := range probs {
		if p.Check == "replica identity" && strings.Contains(p.Problem, "public.leads") {
			t.Errorf("leads has REPLICA IDENTITY FULL but got %+v", p)
		}
		t.Logf("%+v", p)
	}

	// Once set up by a capable role, the mapping's tables check clean.
	delete(tables, "public.missing")
	tables["public.leads"] = []string{"status", "email"}
	e.Exec(t, "ALTER TABLE contacts REPLICA IDENTITY FULL")
	if err := e.newSource(t, []string{"public.leads", "public.contacts"}).Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	probs, err = Check(ctxT(t), e.cfg, tables)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if !p.Warning {
			t.Errorf("unexpected problem on a ready database: %+v", p)
		}
	}

	// Unreachable server: a problem, not an error.
	bad := e.cfg
	bad.DSN = "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"
	probs, err = Check(ctxT(t), bad, tables)
	if err != nil || !hasProblem(probs, "connection", "cannot connect", false) {
		t.Errorf("unreachable server: %v %+v", err, probs)
	}
}

// TestCheckWalLevelReplica: a server without logical decoding is reported
// by Check and stops Stream with a fatal error.
func TestCheckWalLevelReplica(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.WithSetting("wal_level", "replica"))
	e := newEnv(t, srv)
	probs, err := Check(ctxT(t), e.cfg, map[string][]string{"public.leads": {"status"}})
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(probs, "wal_level", "replica", false) {
		t.Errorf("no wal_level problem: %+v", probs)
	}
	err = e.newSource(t, nil).Stream(ctxT(t), "", func(context.Context, sources.Change) error { return nil })
	var fe *FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "wal_level") {
		t.Errorf("Stream with wal_level=replica: %v, want a fatal error about wal_level", err)
	}
}

// TestCheckNoWalSenders: with max_wal_senders = 0 normal queries work but
// replication connections fail; Check says so.
func TestCheckNoWalSenders(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.WithSetting("max_wal_senders", "0"))
	e := newEnv(t, srv)
	probs, err := Check(ctxT(t), e.cfg, map[string][]string{"public.leads": {"status"}})
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(probs, "replication connection", "max_wal_senders", false) {
		t.Errorf("no replication connection problem: %+v", probs)
	}
	if !hasProblem(probs, "wal senders", "all 0", false) {
		t.Errorf("no wal senders problem: %+v", probs)
	}
}
