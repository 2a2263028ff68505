package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// echoServer answers each line with the same line until the client closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T) *Proxy {
	t.Helper()
	p, err := Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// dial connects through the proxy.
func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip writes line and reads the answer within wait.
func roundTrip(c net.Conn, r *bufio.Reader, line string, wait time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	s, err := r.ReadString('\n')
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s, err
}

func mustEcho(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	got, err := roundTrip(c, r, line, 5*time.Second)
	if err != nil || got != line {
		t.Fatalf("echo of %q: got %q, %v", line, got, err)
	}
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// isReset reports whether err is what a peer sees of a reset or of a
// connection closed under it.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE)
}

func TestForward(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	mustEcho(t, c, r, "hello")
	mustEcho(t, c, r, "again")
	if p.Accepted() != 1 || p.Open() != 1 || p.Mode() != Forward {
		t.Fatalf("accepted %d, open %d, mode %v; want 1, 1, forward", p.Accepted(), p.Open(), p.Mode())
	}
	// A client's close reaches the server, whose close comes back.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the client's close: %v, want EOF", err)
	}
}

// TestBlackhole: bytes stop both ways on open and new connections, nothing
// is closed, and after Restore the held bytes arrive.
func TestBlackhole(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	mustEcho(t, c, r, "before")
	p.Blackhole()
	if _, err := roundTrip(c, r, "held", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("open connection in a blackhole: %v, want a timeout", err)
	}
	// A new connection is accepted (as the kernel would) but gets nothing.
	c2, r2 := dial(t, p)
	if _, err := roundTrip(c2, r2, "new", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection in a blackhole: %v, want a timeout", err)
	}
	if p.Open() != 2 {
		t.Fatalf("%d connections open in the blackhole, want 2 (none closed)", p.Open())
	}
	p.Restore()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if s, err := r.ReadString('\n'); err != nil || s != "held\n" {
		t.Fatalf("after restore the held line: %q, %v", s, err)
	}
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	if s, err := r2.ReadString('\n'); err != nil || s != "new\n" {
		t.Fatalf("after restore the new connection's line: %q, %v", s, err)
	}
	mustEcho(t, c, r, "after")
}

// TestCut: open connections are reset, new ones too, until Restore.
func TestCut(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	mustEcho(t, c, r, "before")
	p.Cut()
	if _, err := roundTrip(c, r, "cut", 5*time.Second); !isReset(err) {
		t.Fatalf("open connection after a cut: %v, want a reset", err)
	}
	// A new connection is reset: at the connect already, or at the first
	// read.
	c2, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err == nil {
		defer c2.Close()
		_, err = roundTrip(c2, bufio.NewReader(c2), "refused", 5*time.Second)
	}
	if !isReset(err) {
		t.Fatalf("new connection while cut: %v, want a reset", err)
	}
	if p.Open() != 0 {
		t.Fatalf("%d connections open while cut, want 0", p.Open())
	}
	p.Restore()
	c3, r3 := dial(t, p)
	mustEcho(t, c3, r3, "after")
}

// TestCutInBlackhole: a cut ends connections whose bytes a blackhole holds.
func TestCutInBlackhole(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	mustEcho(t, c, r, "before")
	p.Blackhole()
	if _, err := roundTrip(c, r, "held", 100*time.Millisecond); !isTimeout(err) {
		t.Fatalf("in a blackhole: %v, want a timeout", err)
	}
	p.Cut()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); !isReset(err) {
		t.Fatalf("after the cut: %v, want a reset", err)
	}
	p.Restore()
	c2, r2 := dial(t, p)
	mustEcho(t, c2, r2, "after")
}

func TestClose(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	mustEcho(t, c, r, "before")
	p.Blackhole()
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return with a connection held in a blackhole")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
}

func TestStartURL(t *testing.T) {
	target := echoServer(t)
	p, u, err := StartURL("postgres://user@"+target+"/db?search_path=s1", "5432")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if want := "postgres://user@" + p.Addr() + "/db?search_path=s1"; u != want {
		t.Errorf("url %q, want %q", u, want)
	}
	c, r := dial(t, p)
	mustEcho(t, c, r, "through the url's proxy")
	if _, _, err := StartURL("postgres://%zz", "5432"); err == nil {
		t.Error("a malformed URL was accepted")
	}
}
