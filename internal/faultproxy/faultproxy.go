// Package faultproxy is a TCP proxy for tests that puts network faults
// between a program and a service it depends on (PostgreSQL, Redis): it
// forwards connections until told to cut them (every connection reset, new
// ones refused) or to blackhole them (connections stay open and new ones are
// accepted, but no byte moves either way, as when a network partition drops
// packets), and forwards again once restored.
//
// A blackhole holds what it has read instead of dropping it, so a partition
// that heals before the peers give up resumes their conversation, as TCP's
// retransmissions would; a peer that gave up and closed meanwhile is closed
// on the other side once the proxy forwards again. Tests only: nothing in
// the gateway imports it.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"
)

// Mode is what the proxy does with traffic.
type Mode uint8

// Modes.
const (
	Forward   Mode = iota // pass bytes both ways
	Blackhole             // accept and keep connections, move no byte
	Cut                   // reset every connection, accept and reset new ones
)

var modeNames = [...]string{"forward", "blackhole", "cut"}

// String returns the mode's name.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "unknown"
}

// dialTimeout bounds the proxy's own connection to the target.
const dialTimeout = 5 * time.Second

// Proxy forwards TCP connections from its listener to a target address,
// with faults on demand. It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	mode     Mode
	open     chan struct{} // closed while bytes may move; replaced on Blackhole
	conns    map[*pair]struct{}
	accepted int
	closed   bool
	wg       sync.WaitGroup
}

// pair is one client connection and its upstream.
type pair struct {
	client   net.Conn
	mu       sync.Mutex
	upstream net.Conn // nil until dialled
	once     sync.Once
	done     chan struct{} // closed when the pair is torn down
}

// Start listens on 127.0.0.1 on a free port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, open: make(chan struct{}), conns: map[*pair]struct{}{}}
	close(p.open)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// StartURL starts a proxy to the host of rawURL (a DSN such as
// postgres://user@host:5432/db; defaultPort when it names none) and
// returns it with rawURL pointing at the proxy instead.
func StartURL(rawURL, defaultPort string) (*Proxy, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("faultproxy: %w", err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	p, err := Start(target)
	if err != nil {
		return nil, "", err
	}
	u.Host = p.Addr()
	return p, u.String(), nil
}

// Addr returns the proxy's address (host:port) for clients to dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Accepted returns how many connections the proxy has accepted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Open returns how many connections are open through the proxy now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Cut resets every connection (the peers see ECONNRESET) and resets new
// ones as soon as they are accepted, until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.mode = Cut
	conns := p.takeConns()
	p.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
}

// Blackhole stops moving bytes on every connection, open or new, without
// closing any, until Restore or Cut.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	p.mode = Blackhole
	p.setOpen(false)
	p.mu.Unlock()
}

// Restore forwards again: held bytes move on, new connections are served.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.mode = Forward
	p.setOpen(true)
	p.mu.Unlock()
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.setOpen(true)
	conns := p.takeConns()
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
	return err
}

// setOpen opens or shuts the gate bytes wait at. The caller holds p.mu.
func (p *Proxy) setOpen(open bool) {
	select {
	case <-p.open:
		if !open {
			p.open = make(chan struct{})
		}
	default:
		if open {
			close(p.open)
		}
	}
}

// takeConns empties the set of connections and returns them. The caller
// holds p.mu.
func (p *Proxy) takeConns() []*pair {
	out := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	clear(p.conns)
	return out
}

// gate returns the channel that is closed while bytes may move.
func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

// wait blocks until bytes may move or c is torn down; it reports whether
// they may.
func (p *Proxy) wait(c *pair) bool {
	for {
		g := p.gate()
		select {
		case <-c.done:
			return false
		case <-g:
		}
		select {
		case <-c.done:
			return false
		default:
		}
		// The gate may have been shut again between the read of the
		// channel and now; look once more.
		if p.gate() == g {
			return true
		}
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		p.accepted++
		mode, closed := p.mode, p.closed
		c := &pair{client: conn, done: make(chan struct{})}
		if mode != Cut && !closed {
			p.conns[c] = struct{}{}
		}
		p.mu.Unlock()
		if mode == Cut || closed {
			c.reset()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve dials the target once bytes may move (a connection accepted during
// a blackhole waits, as a SYN would be retransmitted) and copies both ways.
func (p *Proxy) serve(c *pair) {
	defer p.wg.Done()
	defer p.forget(c)
	if !p.wait(c) {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		c.reset()
		return
	}
	p.mu.Lock()
	_, live := p.conns[c]
	p.mu.Unlock()
	if !live || !c.setUpstream(up) { // cut or closed while dialling
		resetConn(up)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.copy(c, up, c.client) }()
	go func() { defer wg.Done(); p.copy(c, c.client, up) }()
	wg.Wait()
}

// copy moves bytes from src to dst, each chunk only while the gate is open.
// When src ends, dst's write side is closed so the peer sees the end too
// (serve closes the pair once both directions have ended); any other error
// closes the pair, which ends the other direction.
func (p *Proxy) copy(c *pair, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait(c) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				c.close()
				return
			}
		}
		if err != nil {
			if !p.wait(c) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				_ = tc.CloseWrite()
				return
			}
			c.close()
			return
		}
	}
}

// forget removes c from the set of connections and closes it.
func (p *Proxy) forget(c *pair) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.close()
}

// setUpstream records the dialled upstream; false if the pair was torn
// down meanwhile (the caller closes up).
func (c *pair) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return false
	default:
	}
	c.upstream = up
	return true
}

// close closes both connections of the pair once.
func (c *pair) close() { c.end(func(conn net.Conn) { conn.Close() }) }

// reset closes both connections with RST instead of FIN.
func (c *pair) reset() { c.end(resetConn) }

func (c *pair) end(closeConn func(net.Conn)) {
	c.once.Do(func() {
		c.mu.Lock()
		close(c.done)
		up := c.upstream
		c.mu.Unlock()
		closeConn(c.client)
		if up != nil {
			closeConn(up)
		}
	})
}

// resetConn closes conn so that the peer sees a reset.
func resetConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}
