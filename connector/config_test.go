package connector

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sink"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testEnv(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadWith("../config.example.yaml", testEnv(map[string]string{"META_ACCESS_TOKEN": "tok"}))
	if err != nil {
		t.Fatalf("config.example.yaml must load:\n%v", err)
	}
	if cfg.Source.Kind() != "postgres" || cfg.Source.Postgres.Slot != "leadtail" {
		t.Fatalf("source = %+v", cfg.Source)
	}
	if got := cfg.Set.Get("leads"); got == nil || got.Table() != "public.leads" {
		t.Fatalf("mapping leads missing: %+v", cfg.Set.Mappers())
	}
	if cfg.Meta.DryRun || cfg.Delivery.BatchSize != 500 || cfg.HTTP.Listen != "127.0.0.1:9464" {
		t.Fatalf("unexpected values: %+v %+v", cfg.Meta, cfg.Delivery)
	}
}

// TestExampleDocumentsEveryKey fails when a config key exists in the Go
// types but not in config.example.yaml (where every key is documented).
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	keys := []string{"log:", "level:", "format:", "state_dir:", "source:", "postgres:", "dsn:", "slot:", "publication:",
		"status_interval:", "heartbeat_interval:", "set_replica_identity_full:", "mysql:", "server_id:", "flavor:",
		"datetime_zone:", "heartbeat_period:", "meta:", "dataset_id:", "access_token:", "app_secret:", "api_version:",
		"endpoint:", "test_event_code:", "dry_run:", "delivery:", "batch_size:", "batch_wait:", "max_in_flight:",
		"request_timeout:", "retry_min:", "retry_max:", "halt_retry:", "expiry_margin:", "shutdown_timeout:", "http:",
		"listen:", "mapping_files:", "mappings:", "name:", "table:", "lead_event_source:", "key:", "filter:", "stage:",
		"column:", "events:", "transitions:", "fill_skipped:", "event_time:", "timezone:", "unit:", "lead_created_time:",
		"user_data:", "lookups:", "query:", "args:", "max_rows:", "cache_size:", "cache_ttl:", "custom_data:",
		"equals", "not_equals", "in", "not_in", "is_null", "literal", "json", "path", "lookup"}
	for _, k := range keys {
		if !strings.Contains(text, k) {
			t.Errorf("config.example.yaml does not mention %q", k)
		}
	}
}

func TestGoodConfigs(t *testing.T) {
	env := testEnv(map[string]string{"TEST_TOKEN": "secret-token-value", "BATCH": "250"})
	cfg, err := LoadWith("../testdata/config/good/minimal.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	def := sink.DefaultDeliveryConfig()
	if cfg.Delivery != def || cfg.StateDir != "./state" || cfg.Source.Postgres.Publication != "leadtail" ||
		cfg.Source.Postgres.StatusInterval != 10*time.Second || cfg.Meta.APIVersion != "v26.0" {
		t.Fatalf("defaults not applied: %+v %+v", cfg.Delivery, cfg.Source.Postgres)
	}
	cfg, err = LoadWith("../testdata/config/good/with-files.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source.Kind() != "mysql" || cfg.Source.MySQL.ServerID != 4242 || cfg.Source.MySQL.DatetimeZone != "UTC" {
		t.Fatalf("mysql section: %+v", cfg.Source.MySQL)
	}
	if cfg.Delivery.BatchSize != 250 || cfg.Delivery.BatchWait != 250*time.Millisecond || cfg.StateDir != "/tmp/leadtail-state" {
		t.Fatalf("expansion: batch_size %d state_dir %s", cfg.Delivery.BatchSize, cfg.StateDir)
	}
	var names []string
	for _, m := range cfg.Set.Mappers() {
		names = append(names, m.Name())
	}
	if strings.Join(names, ",") != "leads,opportunities" {
		t.Fatalf("mappings from files: %v", names)
	}
}

func TestPrintConfigRedacts(t *testing.T) {
	env := testEnv(map[string]string{"TEST_TOKEN": "secret-token-value", "MYSQL_PASSWORD": "hunter2"})
	for _, f := range []string{"minimal.yaml", "with-files.yaml"} {
		cfg, err := LoadWith("../testdata/config/good/"+f, env)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Meta.AppSecret = "app-secret-value"
		var buf bytes.Buffer
		if err := PrintConfig(&buf, cfg); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, secret := range []string{"secret-token-value", "hunter2", "app-secret-value"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s: printed config contains a secret:\n%s", f, out)
			}
		}
		if !strings.Contains(out, "<redacted>") {
			t.Errorf("%s: no redaction marker:\n%s", f, out)
		}
	}
}

// TestBadConfigs pairs each testdata/config/bad/*.yaml with the exact
// problems it must produce (*.err, one per line). Run with -update to
// rewrite them after a deliberate change, then read the diff.
func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("../testdata/config/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := LoadWith(f, testEnv(nil))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want *ConfigError, got %v", err)
			}
			dir := filepath.Dir(f) + string(filepath.Separator)
			got := strings.ReplaceAll(ce.Error(), dir, "") + "\n"
			for _, p := range ce.Problems {
				if p.Line == 0 {
					t.Errorf("problem without a line: %s", p)
				}
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./connector -run TestBadConfigs -update)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}
