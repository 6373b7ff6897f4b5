package connector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/mapping"
)

// Fuzz targets of the two parsers that read what users write (issue 6):
// the configuration loader and `preview`'s change records. The seed
// corpora in testdata/fuzz/ (and the f.Add seeds) run with every
// `go test`; `go test -fuzz FuzzLoadConfig ./connector` explores further.

var fuzzEnv = testEnv(map[string]string{
	"META_ACCESS_TOKEN": "fuzz-token", "META_DATASET_ID": "123456789012345", "LEADTAIL_STATE_DIR": "state",
})

// unsafeConfigPath: inputs naming device or kernel files are skipped, since
// mapping_files globs are read as given (a read of /dev/stdin or
// /proc/kmsg would block the fuzzer, not find a bug).
func unsafeConfigPath(data []byte) bool {
	for _, p := range []string{"/dev", "/proc", "/sys", "/run"} {
		if bytes.Contains(data, []byte(p)) {
			return true
		}
	}
	return false
}

// FuzzLoadConfig: any file content gives either a config or an error, never
// a panic; errors list their problems, each naming where; a loaded config
// prints (secrets redacted) without error.
func FuzzLoadConfig(f *testing.F) {
	for _, p := range []string{"../config.example.yaml"} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	for _, dir := range []string{"../testdata/config/good", "../testdata/config/bad"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, p := range files {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	for _, s := range []string{
		"", "{}", "source: {postgres: {dsn: x}}", "mappings: [{name: a}]", "state_dir: ${UNSET}\nlog: {level: ${X:-info}}",
		"a: &x [*x]", "mappings: !!binary aGVsbG8=", "delivery: {batch_size: 1e99}", "source:\n  postgres:\n    dsn: \"\\xff\"",
		"mapping_files: ['*.yaml']", "meta: {dataset_id: 0x10}", "\xff\xfe", "---\n---\n", "log: [1, 2]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if unsafeConfigPath(data) {
			t.Skip("names a device or kernel file")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "leadtail.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadWith(path, fuzzEnv)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("LoadWith returned config %v and error %v", cfg != nil, err)
		}
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				if len(ce.Problems) == 0 {
					t.Fatal("a ConfigError without problems")
				}
				for _, p := range ce.Problems {
					if p.Msg == "" || p.File == "" {
						t.Fatalf("a problem without message or file: %+v", p)
					}
				}
			}
			if strings.Contains(err.Error(), "fuzz-token") {
				t.Fatalf("the access token leaked into an error: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := PrintConfig(&out, cfg); err != nil {
			t.Fatalf("PrintConfig of a loaded config: %v", err)
		}
	})
}

// FuzzPreview: any input to `preview` gives output lines or an *InputError
// naming a line, never a panic; every output line is a JSON object with an
// event, a skip or a dead letter, and an event's contact data is hashed.
func FuzzPreview(f *testing.F) {
	cfg, err := LoadWith("../config.example.yaml", fuzzEnv)
	if err != nil {
		f.Fatal(err)
	}
	if data, err := os.ReadFile("../testdata/preview/leads.in.jsonl"); err == nil {
		f.Add(string(data))
		for _, l := range strings.Split(string(data), "\n") {
			f.Add(l)
		}
	}
	for _, s := range []string{
		"", "\n\n", "{}", "[]", "null", `{"table":"public.leads","op":"insert","commit_time":"2026-11-20T10:00:00Z","after":{}}`,
		`{"table":"public.leads","op":"update","commit_time":"2026-11-20T10:00:00Z","before":{"id":1,"status":"new"},"after":{"id":1,"status":"won","email":"A@B.CO","fb_lead_id":12345678901234567}}`,
		`{"table":"public.leads","op":"delete","commit_time":"2026-11-20T10:00:00Z","before":{"id":1}}`,
		`{"table":"x","op":"truncate","commit_time":"yesterday"}`, `{"table":"public.leads","op":"insert","commit_time":"2026-11-20T10:00:00Z","after":{"id":1e400}}`,
		`{"op":"insert"}{"op":"insert"}`, "\xff\xfe{}", `{"table":"public.leads","op":"insert","commit_time":"2026-11-20T10:00:00Z","after":{"id":1,"status":"new"},"lookups":{"contact":[{"email":null}]},"ordinal":-1}`,
	} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, in string) {
		var out bytes.Buffer
		err := Preview(context.Background(), cfg, "", now, strings.NewReader(in), &out)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Line < 1 {
				t.Fatalf("Preview error %v (%T) is not an InputError naming a line", err, err)
			}
		}
		sc := bufio.NewScanner(&out)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var line struct {
				Event      json.RawMessage `json:"event"`
				Skip       string          `json:"skip"`
				DeadLetter string          `json:"dead_letter"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("output line %q is not JSON: %v", sc.Text(), err)
			}
			if line.Skip == "" && line.Event == nil {
				t.Fatalf("output line %q has neither event nor skip", sc.Text())
			}
			if line.Event == nil {
				continue
			}
			var ev struct {
				UserData map[string]json.RawMessage `json:"user_data"`
			}
			if err := json.Unmarshal(line.Event, &ev); err != nil {
				t.Fatalf("event %s: %v", line.Event, err)
			}
			for _, k := range mapping.HashedKeys {
				raw, ok := ev.UserData[k]
				if !ok {
					continue
				}
				var hs []string
				if err := json.Unmarshal(raw, &hs); err != nil {
					t.Fatalf("user_data.%s = %s: not an array of strings", k, raw)
				}
				for _, h := range hs {
					if !mapping.IsSHA256Hex(h) || strings.ToLower(h) != h {
						t.Fatalf("user_data.%s holds %q: not a lower-case SHA-256 hex string (plaintext?)", k, h)
					}
				}
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	})
}
