// Command benchtable runs leadtail's benchmarks once and prints one table
// of the figures against their goals (issue 8): `make bench`.
//
// It runs the micro benchmarks (mapping, encoding, the fake's validation)
// and the whole-pipeline ones (cmd/leadtail, against throwaway PostgreSQL
// and MariaDB servers and the fake Graph API), shows their output as they
// go (on stderr), then prints a Markdown table on stdout.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	only := flag.String("bench", ".", "benchmark regexp passed to go test -bench")
	from := flag.String("from", "", "print the table of this saved benchmark output instead of running the benchmarks")
	flag.Parse()
	results := map[string]map[string]float64{}
	if *from != "" {
		data, err := os.ReadFile(*from)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if name, m, ok := parseLine(line); ok {
				results[name] = m
			}
		}
		printTable(os.Stdout, results)
		return
	}
	runs := [][]string{
		{"test", "-run", "^$", "-bench", *only, "-benchmem", "-count", "1", "./mapping", "./sink", "./sink/metatest"},
		{"test", "-run", "^$", "-bench", *only, "-benchtime", "1x", "-timeout", "90m", "./cmd/leadtail"},
	}
	for _, args := range runs {
		if err := run(args, results); err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
	}
	printTable(os.Stdout, results)
}

// run executes go with args, echoing its output to stderr and collecting
// every benchmark line's metrics by benchmark name (without -N).
func run(args []string, results map[string]map[string]float64) error {
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(os.Stderr, line)
		name, metrics, ok := parseLine(line)
		if ok {
			results[name] = metrics
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// parseLine reads "BenchmarkX/sub-2  1  123 ns/op  4.5 unit ...".
func parseLine(line string) (string, map[string]float64, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", nil, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return "", nil, false
	}
	name := strings.TrimPrefix(f[0], "Benchmark")
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	m := map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		m[f[i+1]] = v
	}
	return name, m, true
}

type table struct {
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func printTable(w io.Writer, r map[string]map[string]float64) {
	get := func(bench, unit string) (float64, bool) {
		m, ok := r[bench]
		if !ok {
			return 0, false
		}
		v, ok := m[unit]
		return v, ok
	}
	num := func(v float64) string { return thousands(v) }
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	var t table
	t.add("#", "figure", "leadtail", "reference", "ratio", "goal", "met")

	through := func(n, label, bench, tool string) {
		lt, ok1 := get(bench, "leadtail-changes/s")
		ref, ok2 := get(bench, tool+"-changes/s")
		ratio, ok3 := get(bench, "ratio")
		if !ok1 || !ok2 || !ok3 {
			t.add(n, label, "not run", "", "", "≥ 0.9", "")
			return
		}
		t.add(n, label, num(lt)+" changes/s", tool+" "+num(ref)+" changes/s", fmt.Sprintf("%.2f", ratio), "≥ 0.9", met(ratio >= 0.9))
		c := func(unit string) string { v, _ := get(bench, unit); return fmt.Sprintf("%.0f µs", v) }
		t.add("", "CPU per change (µs)", "leadtail "+c("leadtail-cpu-us/change")+", fake Meta "+c("fake-meta-cpu-us/change")+", server "+c("server-cpu-us/change"),
			tool+" "+c(tool+"-cpu-us/change")+", server "+c("ref-server-cpu-us/change"), "", "", "")
	}
	through("1", "PostgreSQL throughput: 1,000 inserts + 200,000 single-row updates, half of them stage changes", "PostgresVsRecvlogical", "recvlogical")
	through("2", "MariaDB throughput: the same workload", "MySQLVsMariadbBinlog", "mariadb-binlog")

	if p50, ok := get("PostgresLatency", "p50-ms"); ok {
		p99, _ := get("PostgresLatency", "p99-ms")
		t.add("3", "Latency at 500 changes/s, commit → accepted, default settings (batch_wait 1s)",
			fmt.Sprintf("p50 %.0f ms, p99 %.0f ms", p50, p99), "", "", "p99 ≤ 1,050 ms", met(p99 <= 1050))
	} else {
		t.add("3", "Latency at 500 changes/s", "not run", "", "", "p99 ≤ 1,050 ms", "")
	}

	mem := func(label, bench string) {
		big, ok1 := get(bench+"/rows=1000000", "peak-RSS-MiB")
		small, ok2 := get(bench+"/rows=100000", "peak-RSS-MiB")
		if !ok1 || !ok2 {
			t.add("4", label, "not run", "", "", "≤ 64 MiB, ratio ≤ 1.2", "")
			return
		}
		ratio := big / small
		t.add("4", label, fmt.Sprintf("%.1f MiB", big), fmt.Sprintf("100,000 rows: %.1f MiB", small), fmt.Sprintf("%.2f", ratio),
			"≤ 64 MiB, ratio ≤ 1.2", met(big <= 64 && ratio <= 1.2))
	}
	mem("Peak RSS, one 1,000,000-row transaction, PostgreSQL", "PostgresLargeTransaction")
	mem("Peak RSS, one 1,000,000-row transaction, MariaDB", "MySQLLargeTransaction")

	micro := func(label, bench, unit string) {
		ns, ok := get(bench, "ns/op")
		if !ok {
			t.add("5", label, "not run", "", "", "", "")
			return
		}
		allocs, _ := get(bench, "allocs/op")
		b, _ := get(bench, "B/op")
		t.add("5", label, fmt.Sprintf("%s %s; %s allocs/op, %s B/op", duration(ns), unit, num(allocs), num(b)), "", "", "", "")
	}
	micro("Map + normalise + hash one event (3 hashed fields, jsonb path)", "MapEvent", "per event")
	micro("Encode one 1,000-event request", "EncodeRequest", "per request")
	micro("Normalise + hash one email", "HashField/em", "per value")
	micro("Fake Graph API: validate one 1,000-event request (test cost, not leadtail's)", "CheckRequest", "per request")

	extra := func(label, bench, unit, suffix string) {
		if v, ok := get(bench, unit); ok {
			t.add("", label, num(v)+suffix, "", "", "", "")
		}
	}
	extra("PostgreSQL, 100,000 single-row insert transactions", "PostgresThroughput", "changes/s", " changes/s")
	extra("MariaDB, 100,000 single-row insert transactions", "MySQLThroughput", "changes/s", " changes/s")
	extra("Slot lag on an idle mapped table after steady traffic elsewhere (end)", "PostgresIdleSlotLag", "end-lag-bytes", " bytes")
	extra("Slot lag on an idle mapped table (max)", "PostgresIdleSlotLag", "max-lag-bytes", " bytes")

	fmt.Fprintf(w, "\nleadtail benchmarks, %s, %d CPUs, %s, %s, %s\n\n", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(),
		runtime.Version(), version("pg_config", "--version"), version("mariadbd", "--version"))
	for i, row := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		if i == 0 {
			fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		}
	}
}

func version(cmd string, args ...string) string {
	out, err := exec.Command(cmd, args...).Output()
	if err != nil {
		return cmd + " not found"
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	return strings.TrimSpace(string(line))
}

func duration(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// thousands renders v rounded, with commas: 12,345.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
