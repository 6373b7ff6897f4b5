package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTick = 10 * time.Millisecond

// procStat returns a process's parent pid and its CPU times from
// /proc/pid/stat: own user+system, and its reaped children's.
func procStat(pid int) (ppid int, self, children time.Duration, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	n := func(k int) time.Duration { v, _ := strconv.ParseInt(f[k], 10, 64); return time.Duration(v) * clockTick }
	ppid, _ = strconv.Atoi(f[1])
	// Fields 14-17 of proc(5): utime, stime, cutime, cstime.
	return ppid, n(11) + n(12), n(13) + n(14), true
}

// treeCPU is the CPU time a server has used so far: the process, its
// exited children (a walsender that served pg_recvlogical) and the live
// ones (backends, the walsender serving leadtail).
func treeCPU(pid int) time.Duration {
	_, self, children, ok := procStat(pid)
	if !ok {
		return 0
	}
	total := self + children
	for _, c := range childPids(pid) {
		if _, s, cc, ok := procStat(c); ok {
			total += s + cc
		}
	}
	return total
}

// childPids lists the live (or not yet reaped) children of pid.
func childPids(pid int) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil || p == pid {
			continue
		}
		if pp, _, _, ok := procStat(p); ok && pp == pid {
			out = append(out, p)
		}
	}
	return out
}

// selfCPU is this test process's CPU time: the fake Graph API and the
// (mostly idle) benchmark driver.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter samples the CPU of the database server, leadtail and the fake
// across one phase of a benchmark.
type cpuMeter struct {
	serverPid              int
	server0, self0         time.Duration
	server, self, leadtail time.Duration
}

func startCPU(serverPid int) *cpuMeter {
	return &cpuMeter{serverPid: serverPid, server0: treeCPU(serverPid), self0: selfCPU()}
}

// stop ends the phase; leadtailPid (0 for none) is read before it exits.
func (m *cpuMeter) stop(leadtailPid int) {
	m.server = treeCPU(m.serverPid) - m.server0
	m.self = selfCPU() - m.self0
	if leadtailPid > 0 {
		_, s, _, _ := procStat(leadtailPid)
		m.leadtail = s
	}
}

// perChange is d per change in microseconds.
func perChange(d time.Duration, changes int) float64 {
	return float64(d.Microseconds()) / float64(changes)
}

// waitWalsendersGone waits until the server has no walsender process left,
// so that one which served a reference tool has been reaped (its CPU is
// then in the postmaster's children's times) before a phase starts or
// ends: one reaped during treeCPU's reading would be counted in the wrong
// phase.
func waitWalsendersGone(ctx context.Context, pid int) error {
	for {
		found := false
		for _, c := range childPids(pid) {
			if cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(c) + "/cmdline"); strings.Contains(string(cmd), "walsender") {
				found = true
				break
			}
		}
		if !found {
			return nil
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
