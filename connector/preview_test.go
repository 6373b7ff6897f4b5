package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPreviewGolden runs each testdata/preview/NAME.in.jsonl through the
// example configuration and compares with NAME.golden.jsonl (-update rewrites).
func TestPreviewGolden(t *testing.T) {
	cfg, err := LoadWith("../config.example.yaml", testEnv(map[string]string{"META_ACCESS_TOKEN": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	ins, _ := filepath.Glob("../testdata/preview/*.in.jsonl")
	if len(ins) == 0 {
		t.Fatal("no preview fixtures")
	}
	for _, in := range ins {
		t.Run(filepath.Base(in), func(t *testing.T) {
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var out bytes.Buffer
			if err := Preview(context.Background(), cfg, "", now, f, &out); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(in, ".in.jsonl") + ".golden.jsonl"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != string(want) {
				t.Errorf("preview output differs from %s\n--- got\n%s", golden, out.String())
			}
			// Every output line is one of the three shapes of contract.md.
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				var m map[string]json.RawMessage
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not JSON: %s", line)
				}
				_, ev := m["event"]
				_, sk := m["skip"]
				_, dl := m["dead_letter"]
				if !(ev && !sk && (len(m) == 1 || dl && len(m) == 2)) && !(sk && len(m) == 1) {
					t.Errorf("bad line shape: %s", line)
				}
			}
		})
	}
}

func TestPreviewBadInput(t *testing.T) {
	cfg, err := LoadWith("../config.example.yaml", testEnv(map[string]string{"META_ACCESS_TOKEN": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, in, want string }{
		{"not json", "{nope\n", "stdin:1: not a change record"},
		{"unknown field", `{"table":"public.leads","op":"insert","commit_time":"2026-11-20T10:00:00Z","after":{},"colour":1}` + "\n", "stdin:1: not a change record"},
		{"bad op", `{"table":"public.leads","op":"upsert","commit_time":"2026-11-20T10:00:00Z","after":{}}` + "\n", `stdin:1: unknown op "upsert"`},
		{"missing commit time", "\n" + `{"table":"public.leads","op":"insert","after":{}}` + "\n", "stdin:2: commit_time is required"},
		{"insert without after", `{"table":"public.leads","op":"insert","commit_time":"2026-11-20T10:00:00Z"}` + "\n", "stdin:1: insert needs after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Preview(context.Background(), cfg, "", time.Now(), strings.NewReader(tc.in), &bytes.Buffer{})
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if err := Preview(context.Background(), cfg, "nope", time.Now(), strings.NewReader(""), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `no mapping named "nope"`) {
		t.Fatalf("unknown --mapping: %v", err)
	}
}
