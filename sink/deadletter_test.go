package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTestDeadLetters(t *testing.T) *DeadLetterFile {
	t.Helper()
	f, err := OpenDeadLetters(filepath.Join(t.TempDir(), "state", "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func testDeadLetter(i int) DeadLetter {
	ev := goodEvent(i)
	ev.LeadCreated = 1763600000
	return newDeadLetter(&ev, testNow, "rejected by Meta: Graph error 100/2804036",
		&GraphError{Code: 100, ErrorSubcode: 2804036, Message: "Invalid parameter", ErrorUserMsg: "bad lead id", FbtraceID: "AbC"},
		func(s string) string { return s })
}

func TestDeadLetterLineFormat(t *testing.T) {
	f := openTestDeadLetters(t)
	if err := f.Append([]DeadLetter{testDeadLetter(1)}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(data), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "reason", "code", "subcode", "message", "fbtrace_id", "mapping", "table", "lead_created", "event"} {
		if _, ok := m[k]; !ok {
			t.Errorf("line lacks %q: %s", k, data)
		}
	}
	if string(m["time"]) != `"2026-11-20T12:00:00Z"` || string(m["code"]) != "100" || string(m["subcode"]) != "2804036" ||
		string(m["fbtrace_id"]) != `"AbC"` || string(m["lead_created"]) != "1763600000" ||
		string(m["message"]) != `"Invalid parameter — bad lead id"` {
		t.Errorf("line = %s", data)
	}
	if !bytes.Contains(m["event"], []byte(`"lead_id":123456789012346`)) {
		t.Errorf("event = %s", m["event"])
	}
	if st, err := os.Stat(f.Path()); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v", st.Mode(), err)
	}
}

func TestDeadLetterAppendReadRewrite(t *testing.T) {
	f := openTestDeadLetters(t)
	if n, err := f.Count(); err != nil || n != 0 {
		t.Fatalf("fresh file: %d, %v", n, err)
	}
	if err := f.Append(nil); err != nil {
		t.Fatal(err)
	}
	var all []DeadLetter
	for i := range 5 {
		all = append(all, testDeadLetter(i))
	}
	if err := f.Append(all[:2]); err != nil {
		t.Fatal(err)
	}
	if err := f.Append(all[2:]); err != nil {
		t.Fatal(err)
	}
	got, err := f.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("read %d records", len(got))
	}
	for i := range got {
		if got[i].Event.EventID != all[i].Event.EventID || !got[i].Time.Equal(all[i].Time) ||
			got[i].event().LeadCreated != 1763600000 || got[i].event().Mapping != "leads" {
			t.Errorf("record %d = %+v", i, got[i])
		}
	}
	if err := f.Rewrite([]DeadLetter{got[1], got[3]}); err != nil {
		t.Fatal(err)
	}
	got, err = f.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Event.EventID != "ev-00001" || got[1].Event.EventID != "ev-00003" {
		t.Errorf("after rewrite: %+v", got)
	}
	if err := f.Rewrite(nil); err != nil {
		t.Fatal(err)
	}
	if n, err := f.Count(); err != nil || n != 0 {
		t.Errorf("after empty rewrite: %d, %v", n, err)
	}
	assertNoTempFiles(t, filepath.Dir(f.Path()))
}

func TestDeadLetterTornTail(t *testing.T) {
	f := openTestDeadLetters(t)
	if err := f.Append([]DeadLetter{testDeadLetter(0)}); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of an Append leaves an unfinished line.
	fh, err := os.OpenFile(f.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(`{"time":"2026-11-20T12:00:00Z","reas`); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	got, err := f.Read()
	if err != nil || len(got) != 1 {
		t.Fatalf("read with torn tail: %d, %v", len(got), err)
	}
	if err := f.Append([]DeadLetter{testDeadLetter(1)}); err != nil {
		t.Fatal(err)
	}
	got, err = f.Read()
	if err != nil || len(got) != 2 || got[1].Event.EventID != "ev-00001" {
		t.Fatalf("after append over torn tail: %+v, %v", got, err)
	}
}

func TestDeadLetterCorruptLine(t *testing.T) {
	f := openTestDeadLetters(t)
	if err := os.WriteFile(f.Path(), []byte("{\"reason\":\"x\"}\nnot json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := f.Read()
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), f.Path()) {
		t.Fatalf("err = %v, want one naming line 2 and the path", err)
	}
}

func TestDeadLetterConcurrentAppends(t *testing.T) {
	f := openTestDeadLetters(t)
	// A second handle on the same file, as `leadtail replay` has.
	g, err := OpenDeadLetters(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := f
			if w%2 == 1 {
				h = g
			}
			for i := range 10 {
				if err := h.Append([]DeadLetter{testDeadLetter(w*100 + i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if n, err := f.Count(); err != nil || n != 80 {
		t.Fatalf("count = %d, %v; want 80", n, err)
	}
}

func TestDeadLetterRewriteFromKeepsNewAppends(t *testing.T) {
	f := openTestDeadLetters(t)
	if err := f.Append([]DeadLetter{testDeadLetter(0), testDeadLetter(1)}); err != nil {
		t.Fatal(err)
	}
	recs, prefix, err := f.snapshot()
	if err != nil || len(recs) != 2 {
		t.Fatal(len(recs), err)
	}
	// The daemon appends while replay is sending.
	if err := f.Append([]DeadLetter{testDeadLetter(2)}); err != nil {
		t.Fatal(err)
	}
	if err := f.rewriteFrom(prefix, recs[1:]); err != nil {
		t.Fatal(err)
	}
	got, err := f.Read()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range got {
		ids = append(ids, d.Event.EventID)
	}
	if fmt.Sprint(ids) != "[ev-00001 ev-00002]" {
		t.Errorf("ids = %v", ids)
	}
}

func TestDeadLetterUnwritable(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		path  func(t *testing.T) string
		root  bool // meaningful as root too
		match string
	}{
		{"parent is a file", func(*testing.T) string { return filepath.Join(notADir, "dead-letters.jsonl") }, true, "not a directory"},
		{"path is a directory", func(t *testing.T) string { return t.TempDir() }, true, "is a directory"},
		{"read-only directory", func(t *testing.T) string {
			d := filepath.Join(t.TempDir(), "ro")
			if err := os.Mkdir(d, 0o500); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, "dead-letters.jsonl")
		}, false, "permission"},
		{"empty path", func(*testing.T) string { return "" }, true, "empty path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.root && os.Geteuid() == 0 {
				t.Skip("root ignores directory permissions")
			}
			p := tt.path(t)
			_, err := OpenDeadLetters(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.match) || !strings.Contains(err.Error(), p) {
				t.Errorf("err = %v", err)
			}
		})
	}
	// A file that becomes unwritable after opening: Append fails and says where.
	f := openTestDeadLetters(t)
	if err := os.Remove(f.Path()); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(f.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	err := f.Append([]DeadLetter{testDeadLetter(0)})
	if err == nil || !strings.Contains(err.Error(), f.Path()) {
		t.Fatalf("append err = %v", err)
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}
