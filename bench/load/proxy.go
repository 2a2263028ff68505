package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// newReverseProxy returns the bare proxy that serves as the floor: the standard
// library's ReverseProxy with a connection pool large enough for the load.
func newReverseProxy(upstream *url.URL) *httputil.ReverseProxy {
	p := httputil.NewSingleHostReverseProxy(upstream)
	p.Transport = &http.Transport{
		Proxy:               nil, // never an environment proxy: loopback only
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	p.ErrorLog = slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn)
	return p
}

// fullDuplex lets h write its response while the request body is still being
// read. Without it, net/http's HTTP/1 server discards the unread request body
// when the first response bytes are flushed, which races with the proxy's
// Transport still copying that body upstream: with more than one CPU an
// early-flushed stream then fails with "use of closed network connection".
func fullDuplex(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An error means the writer cannot do it (HTTP/2); then there is no race.
		_ = http.NewResponseController(w).EnableFullDuplex()
		h.ServeHTTP(w, r)
	})
}

// proxyCmd runs the bare ReverseProxy until ctx ends.
func proxyCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:18091", "listen address (loopback only)")
	upstream := fs.String("upstream", "http://127.0.0.1:18090", "upstream base URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("%w: -upstream %q is not an absolute URL", errUsage, *upstream)
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}
	srv := &http.Server{Addr: *addr, Handler: fullDuplex(newReverseProxy(u)), ReadHeaderTimeout: 10 * time.Second}
	return serveUntil(ctx, srv, stderr, "proxy")
}

// serveUntil serves srv until ctx ends, then shuts it down within a bound.
func serveUntil(ctx context.Context, srv *http.Server, stderr io.Writer, what string) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", srv.Addr, err)
	}
	fmt.Fprintf(stderr, "load %s: listening on %s\n", what, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// checkLoopback refuses a listen or target address that is not on the
// loopback interface: this tool sends load, and load stays on this machine.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%w: address %q: %v", errUsage, hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: address %q is not a loopback address", errUsage, hostport)
	}
	return nil
}
