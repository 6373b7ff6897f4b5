package connector

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recipeNow is the fixed clock of the recipes' events.jsonl: every
// changes.jsonl is dated 2026-11-20, so the 7-day window is stable.
var recipeNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// recipeEnv is what the recipes read from the environment (the Twenty
// workspace schema, the vtiger custom field's column), as in their docs.
var recipeEnv = map[string]string{
	"TWENTY_WORKSPACE_SCHEMA": "workspace_1wgvd1injqtife6y4rvfbu3h5",
	"VTIGER_LEAD_ID_COLUMN":   "cf_853",
	"META_ACCESS_TOKEN":       "test-token",
}

// recipeConfig writes a minimal config that includes the recipe's mapping
// file through mapping_files, the way users include it.
func recipeConfig(t *testing.T, crm, kind string) string {
	t.Helper()
	mappingFile, err := filepath.Abs(filepath.Join("..", "testdata", "crm", crm, "mapping.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	source := `postgres: {dsn: "postgres://leadtail@127.0.0.1:5432/crm?sslmode=disable"}`
	if kind == "mysql" {
		source = `mysql: {dsn: "leadtail@tcp(127.0.0.1:3306)/crm", server_id: 4242}`
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state_dir: %s
source:
  %s
meta:
  dataset_id: "123456789012345"
  access_token: ${META_ACCESS_TOKEN}
http: {listen: ""}
mapping_files: [%q]
`, filepath.Join(dir, "state"), source, mappingFile)
	path := filepath.Join(dir, "leadtail.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRecipePreview runs each recipe's changes.jsonl through preview and
// compares the outcome with its events.jsonl (go test -run TestRecipePreview
// -update ./connector rewrites them).
func TestRecipePreview(t *testing.T) {
	for _, r := range []struct{ crm, kind string }{
		{"odoo", "postgres"},
		{"twenty", "postgres"},
		{"suitecrm", "mysql"},
		{"espocrm", "mysql"},
		{"vtiger", "mysql"},
	} {
		t.Run(r.crm, func(t *testing.T) {
			cfg, err := LoadWith(recipeConfig(t, r.crm, r.kind), testEnv(recipeEnv))
			if err != nil {
				t.Fatalf("the recipe must load through mapping_files:\n%v", err)
			}
			dir := filepath.Join("..", "testdata", "crm", r.crm)
			in, err := os.ReadFile(filepath.Join(dir, "changes.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Preview(context.Background(), cfg, "", recipeNow, bytes.NewReader(in), &out); err != nil {
				t.Fatalf("preview: %v", err)
			}
			golden := filepath.Join(dir, "events.jsonl")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("preview differs from %s (rerun with -update after checking):\n%s", golden, lineDiff(string(want), out.String()))
			}
			// Every outcome the recipe's story is meant to show must be
			// there: an event, and no accidental "no mapping" skips.
			if !strings.Contains(out.String(), `{"event":`) {
				t.Errorf("no event at all:\n%s", out.String())
			}
			if strings.Contains(out.String(), `"skip":"no mapping for table"`) {
				t.Errorf("a change record names a table the recipe does not map:\n%s", out.String())
			}
		})
	}
}

// lineDiff shows the first differing line of two line-oriented texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant %s\ngot  %s", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}
