package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DeadLetter is one line of the dead-letter file: an event leadtail will
// not send (or Meta refused), with why. Contact data in Event is hashed.
type DeadLetter struct {
	// Time is when the event was dead-lettered (UTC).
	Time time.Time `json:"time"`
	// Reason is leadtail's reason: one of Prepare's, or "rejected by Meta: …".
	Reason string `json:"reason"`
	// Code, Subcode, Message and FbtraceID are Meta's, when Meta refused it.
	Code      int    `json:"code"`
	Subcode   int    `json:"subcode"`
	Message   string `json:"message"`
	FbtraceID string `json:"fbtrace_id"`
	// Mapping, Table and LeadCreated are the event's internal fields,
	// kept so that replay can validate the event again.
	Mapping     string `json:"mapping"`
	Table       string `json:"table"`
	LeadCreated int64  `json:"lead_created"`
	// Event is the event as it would go into data[].
	Event Event `json:"event"`
}

// newDeadLetter records ev with a reason and, when Meta refused it, Meta's error.
func newDeadLetter(ev *Event, now time.Time, reason string, g *GraphError, redact func(string) string) DeadLetter {
	d := DeadLetter{
		Time:        now.UTC(),
		Reason:      reason,
		Mapping:     ev.Mapping,
		Table:       ev.Table,
		LeadCreated: ev.LeadCreated,
		Event:       *ev,
	}
	if g != nil {
		d.Code, d.Subcode, d.FbtraceID = g.Code, g.ErrorSubcode, g.FbtraceID
		d.Message = g.Message
		if g.ErrorUserMsg != "" && g.ErrorUserMsg != g.Message {
			d.Message += " — " + g.ErrorUserMsg
		}
		d.Message = redact(d.Message)
	}
	return d
}

// event returns the dead-lettered event with its internal fields restored.
func (d *DeadLetter) event() Event {
	ev := d.Event
	ev.Mapping, ev.Table, ev.LeadCreated = d.Mapping, d.Table, d.LeadCreated
	return ev
}

// DeadLetterFile is the JSON-lines file of dead letters under state_dir.
//
// Every Append is written and fsynced before it returns; Rewrite replaces
// the file atomically. Both take an exclusive flock on "<path>.lock", so the
// daemon and `leadtail replay` may work on the same file at once: the file
// is opened per operation, never held open across a Rewrite.
type DeadLetterFile struct {
	path string
	mu   sync.Mutex // serialises this process's operations; flock serialises processes
}

// OpenDeadLetters opens (creating when missing, with its directory) the
// dead-letter file at path and checks that it can be written.
func OpenDeadLetters(path string) (*DeadLetterFile, error) {
	if path == "" {
		return nil, errors.New("dead letters: empty path")
	}
	if err := ensureDir("dead letters "+path, filepath.Dir(path)); err != nil {
		return nil, err
	}
	f := &DeadLetterFile{path: path}
	err := f.withLock(func() error {
		fh, created, err := f.openAppend()
		if err != nil {
			return err
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("dead letters: close %s: %w%s", path, err, hint(err))
		}
		if created {
			if err := syncDir(filepath.Dir(path)); err != nil {
				return fmt.Errorf("dead letters: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the file's path.
func (f *DeadLetterFile) Path() string { return f.path }

func (f *DeadLetterFile) withLock(fn func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	lockPath := f.path + ".lock"
	lf, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("dead letters: open lock file %s: %w%s", lockPath, err, hint(err))
	}
	defer lf.Close()
	if err := lockFile(lf); err != nil {
		return fmt.Errorf("dead letters: lock %s: %w", lockPath, err)
	}
	defer func() { _ = unlockFile(lf) }()
	return fn()
}

func (f *DeadLetterFile) openAppend() (*os.File, bool, error) {
	_, statErr := os.Stat(f.path)
	created := errors.Is(statErr, fs.ErrNotExist)
	fh, err := os.OpenFile(f.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("dead letters: open %s for appending: %w%s", f.path, err, hint(err))
	}
	return fh, created, nil
}

// Append writes the dead letters, one JSON line each, and fsyncs the file.
// On error nothing of batch is left in the file.
func (f *DeadLetterFile) Append(batch []DeadLetter) error {
	if len(batch) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for i := range batch {
		b, err := json.Marshal(&batch[i])
		if err != nil {
			return fmt.Errorf("dead letters: encode: %w", err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return f.withLock(func() error {
		fh, created, err := f.openAppend()
		if err != nil {
			return err
		}
		size, err := completeSize(fh)
		if err != nil {
			fh.Close()
			return fmt.Errorf("dead letters: read %s: %w%s", f.path, err, hint(err))
		}
		// A torn last line (a crash during an earlier Append, which then
		// never reported success) is cut off before writing.
		if err := fh.Truncate(size); err != nil {
			fh.Close()
			return fmt.Errorf("dead letters: truncate %s: %w%s", f.path, err, hint(err))
		}
		_, err = fh.Write(buf.Bytes())
		if err == nil {
			err = fh.Sync()
		}
		if err != nil {
			_ = fh.Truncate(size)
			_ = fh.Sync()
			fh.Close()
			return fmt.Errorf("dead letters: append %d records to %s: %w%s", len(batch), f.path, err, hint(err))
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("dead letters: close %s: %w%s", f.path, err, hint(err))
		}
		if created {
			if err := syncDir(filepath.Dir(f.path)); err != nil {
				return fmt.Errorf("dead letters: %w", err)
			}
		}
		return nil
	})
}

// completeSize returns the length of f up to and including its last
// newline: the part made of complete lines.
func completeSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := st.Size()
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end > 0 {
		n := int64(chunk)
		if end < n {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// Read returns every dead letter in file order. An unfinished last line
// (a crash during an Append that never reported success) is ignored; any
// other unreadable line is an error naming it.
func (f *DeadLetterFile) Read() ([]DeadLetter, error) {
	var out []DeadLetter
	err := f.withLock(func() error {
		var err error
		out, _, err = f.readLocked()
		return err
	})
	return out, err
}

// readLocked parses the file and returns the records and the byte length
// of the complete lines read.
func (f *DeadLetterFile) readLocked() ([]DeadLetter, int64, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("dead letters: read %s: %w%s", f.path, err, hint(err))
	}
	complete := bytes.LastIndexByte(data, '\n') + 1
	var out []DeadLetter
	line := 0
	for rest := data[:complete]; len(rest) > 0; {
		line++
		i := bytes.IndexByte(rest, '\n')
		l := bytes.TrimSpace(rest[:i])
		rest = rest[i+1:]
		if len(l) == 0 {
			continue
		}
		var d DeadLetter
		if err := json.Unmarshal(l, &d); err != nil {
			return nil, 0, fmt.Errorf("dead letters: %s line %d: %w", f.path, line, err)
		}
		out = append(out, d)
	}
	return out, int64(complete), nil
}

// Count returns the number of dead letters in the file.
func (f *DeadLetterFile) Count() (int, error) {
	d, err := f.Read()
	return len(d), err
}

// Rewrite atomically replaces the file's content with keep (temp file,
// fsync, rename, fsync directory).
func (f *DeadLetterFile) Rewrite(keep []DeadLetter) error {
	data, err := encodeDeadLetters(keep)
	if err != nil {
		return err
	}
	return f.withLock(func() error { return writeAtomic("dead letters", f.path, data, 0o600) })
}

// rewriteFrom replaces the records that made up the first prefix bytes of
// the file (read by snapshot) with keep, preserving whatever was appended
// after them in the meantime (by the daemon, while replay was sending).
func (f *DeadLetterFile) rewriteFrom(prefix int64, keep []DeadLetter) error {
	data, err := encodeDeadLetters(keep)
	if err != nil {
		return err
	}
	return f.withLock(func() error {
		cur, err := os.ReadFile(f.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("dead letters: read %s: %w%s", f.path, err, hint(err))
		}
		if int64(len(cur)) < prefix {
			return fmt.Errorf("dead letters: %s shrank while replaying (another replay?); nothing removed", f.path)
		}
		tail := cur[prefix:]
		tail = tail[:bytes.LastIndexByte(tail, '\n')+1]
		return writeAtomic("dead letters", f.path, append(data, tail...), 0o600)
	})
}

// snapshot reads the records and the byte length they occupy.
func (f *DeadLetterFile) snapshot() ([]DeadLetter, int64, error) {
	var (
		out []DeadLetter
		n   int64
	)
	err := f.withLock(func() error {
		var err error
		out, n, err = f.readLocked()
		return err
	})
	return out, n, err
}

func encodeDeadLetters(ds []DeadLetter) ([]byte, error) {
	var buf bytes.Buffer
	for i := range ds {
		b, err := json.Marshal(&ds[i])
		if err != nil {
			return nil, fmt.Errorf("dead letters: encode: %w", err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}
