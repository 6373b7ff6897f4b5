package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	cases := []struct {
		line string
		name string
		want map[string]float64
		ok   bool
	}{
		{"BenchmarkMapEvent-2   	  254497	      8036 ns/op	    1464 B/op	      20 allocs/op", "MapEvent",
			map[string]float64{"ns/op": 8036, "B/op": 1464, "allocs/op": 20}, true},
		{"BenchmarkPostgresLargeTransaction/rows=100000-2 1 9.5e+09 ns/op 30.0 peak-RSS-MiB", "PostgresLargeTransaction/rows=100000",
			map[string]float64{"ns/op": 9.5e9, "peak-RSS-MiB": 30}, true},
		{"BenchmarkX", "", nil, false},
		{"ok  	github.com/leadtail/leadtail/mapping	0.1s", "", nil, false},
		{"BenchmarkPostgresThroughput-2 --- FAIL: something", "", nil, false},
	}
	for _, c := range cases {
		name, m, ok := parseLine(c.line)
		if ok != c.ok || name != c.name || len(m) != len(c.want) {
			t.Errorf("parseLine(%q) = %q, %v, %v", c.line, name, m, ok)
			continue
		}
		for k, v := range c.want {
			if m[k] != v {
				t.Errorf("parseLine(%q)[%s] = %v, want %v", c.line, k, m[k], v)
			}
		}
	}
}

func TestTable(t *testing.T) {
	r := map[string]map[string]float64{
		"PostgresVsRecvlogical": {"leadtail-changes/s": 15000, "recvlogical-changes/s": 16000, "ratio": 0.9375, "leadtail-cpu-us/change": 30},
		"PostgresLatency":       {"p50-ms": 700, "p99-ms": 1100},
		"MapEvent":              {"ns/op": 8036, "allocs/op": 20, "B/op": 1464},
	}
	var out bytes.Buffer
	printTable(&out, r)
	for _, want := range []string{
		"| 1 | PostgreSQL throughput", "15,000 changes/s", "recvlogical 16,000 changes/s", "| 0.94 | ≥ 0.9 | yes |",
		"| 2 | MariaDB throughput: the same workload | not run |",
		"p50 700 ms, p99 1100 ms", "p99 ≤ 1,050 ms | **no** |",
		"8.04 µs per event; 20 allocs/op, 1,464 B/op",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
