package sourcetest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestFaultProxy checks the proxy itself against an echo server: data
// flows, Cut ends both sides, Freeze swallows without closing, SetDown
// refuses new connections.
func TestFaultProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p := StartProxy(t, echo.Addr().String())
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	roundTrip := func(c net.Conn, msg string) error {
		if err := c.SetDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
			return err
		}
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			return fmt.Errorf("echo %q, want %q", buf, msg)
		}
		return nil
	}
	// waitConns waits until the proxy has registered n connections: the
	// client's dial returns before the proxy's Accept loop has run.
	waitConns := func(t *testing.T, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(p.current()) != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d proxied connection(s), want %d", len(p.current()), n)
			}
			time.Sleep(5 * time.Millisecond) // polling the proxy's state with a deadline
		}
	}

	for _, tc := range []struct {
		name  string
		fault func() int
		check func(t *testing.T, c net.Conn)
	}{
		{"forward", func() int { return 1 }, func(t *testing.T, c net.Conn) {
			if err := roundTrip(c, "hello"); err != nil {
				t.Fatal(err)
			}
		}},
		{"cut", p.Cut, func(t *testing.T, c net.Conn) {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("read after Cut: %v, want EOF or reset", err)
			}
		}},
		{"freeze", p.Freeze, func(t *testing.T, c net.Conn) {
			err := roundTrip(c, "lost")
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("round trip on a frozen connection: %v, want a timeout", err)
			}
			if p.Frozen() != 1 {
				t.Fatalf("%d frozen connections, want 1", p.Frozen())
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.Cut()
			c := dial(t)
			if err := roundTrip(c, "ping"); err != nil {
				t.Fatalf("before the fault: %v", err)
			}
			waitConns(t, 1)
			if n := tc.fault(); n != 1 {
				t.Fatalf("fault hit %d connections, want 1", n)
			}
			tc.check(t, c)
			// A new connection works whatever happened to the old one.
			if err := roundTrip(dial(t), "again"); err != nil {
				t.Fatalf("new connection after %s: %v", tc.name, err)
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		p.SetDown(true)
		c := dial(t)
		if err := roundTrip(c, "refused"); err == nil {
			t.Fatal("a connection while down was forwarded")
		}
		p.SetDown(false)
		if err := roundTrip(dial(t), "up"); err != nil {
			t.Fatalf("after SetDown(false): %v", err)
		}
	})
}
